"""The PostgreSQL store's writes: the statements of one operation on the writer's connection.

No per-process counters: the next event ``seq`` and turn index come from the call's
own row (``UPDATE ... RETURNING`` in the same statement that uses them), so they are
right whichever worker writes and after any restart, and the unique indexes catch a
second writer of a call. No statement here reads a result the next one needs, so a
whole batch can go in one pipeline (one round trip, not one per statement).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from voicebot.store.errors import DuplicateCallId


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def jsonb(value: Any) -> Jsonb:
    return Jsonb(value, dumps=_dumps)


def create_call(conn: psycopg.Connection, call_id: str, protocol: str, caller: dict[str, Any], started: str,
                worker_id: str) -> None:
    """A plain INSERT: an id another worker (or a late event) took first fails on the key (``is_duplicate``)."""
    conn.execute(
        "INSERT INTO calls (call_id, protocol, caller, started_at, worker_id) VALUES (%s, %s, %s, %s, %s)",
        (call_id, protocol, jsonb(caller), started, worker_id),
    )


def is_duplicate(exc: BaseException, call_id: str) -> DuplicateCallId | None:
    """The ``DuplicateCallId`` a failed create means, if it failed on the calls' key."""
    if isinstance(exc, psycopg.errors.UniqueViolation) and exc.diag.constraint_name == "calls_pkey":
        return DuplicateCallId(call_id)
    return None


def end_call(conn: psycopg.Connection, call_id: str, status: str, ended: str) -> None:
    conn.execute("UPDATE calls SET status = %s, ended_at = %s WHERE call_id = %s AND ended_at IS NULL",
                 (status, ended, call_id))


# The call's row, made if missing (an event for an unknown call still lands), hands out the next seq;
# an event that brings its own seq moves the counter past it.
_INSERT_EVENT = """
WITH c AS (
    INSERT INTO calls AS c (call_id, protocol, started_at, worker_id, next_seq)
    VALUES (%(id)s, 'unknown', %(ts)s, %(w)s, COALESCE(%(seq)s::integer, 0) + 1)
    ON CONFLICT (call_id) DO UPDATE SET next_seq = CASE WHEN %(seq)s::integer IS NULL THEN c.next_seq + 1
                                                        ELSE GREATEST(c.next_seq, %(seq)s::integer + 1) END
    RETURNING COALESCE(%(seq)s::integer, c.next_seq - 1) AS seq
)
INSERT INTO events (call_id, seq, ts, type, payload) SELECT %(id)s, c.seq, %(ts)s, %(type)s, %(payload)s FROM c
"""


def add_event(conn: psycopg.Connection, call_id: str, event: dict[str, Any], ts: str, worker_id: str) -> None:
    etype = str(event.get("type", "unknown"))
    seq = event.get("seq")
    if not isinstance(seq, int) or isinstance(seq, bool):
        seq = None
    conn.execute(_INSERT_EVENT, {"id": call_id, "ts": ts, "w": worker_id, "seq": seq, "type": etype,
                                 "payload": jsonb(event)})
    handler = _DERIVED.get(etype)
    if handler is not None:
        handler(conn, call_id, event, ts)


def _turn(conn: psycopg.Connection, call_id: str, speaker: str, event: dict[str, Any], ts: str) -> None:
    text = str(event.get("text", "")).strip()
    if not text:
        return
    conn.execute(
        "WITH c AS (UPDATE calls SET turns = turns + 1 WHERE call_id = %s RETURNING turns - 1 AS idx) "
        "INSERT INTO turns (call_id, idx, speaker, text, confidence, start_s, end_s, ts) "
        "SELECT %s, c.idx, %s, %s, %s, %s, %s, %s FROM c",
        (call_id, call_id, speaker, text, event.get("confidence"), event.get("start"), event.get("end"), ts),
    )


def _on_final(conn: psycopg.Connection, call_id: str, event: dict[str, Any], ts: str) -> None:
    _turn(conn, call_id, "agent" if event.get("speaker") == "agent" else "caller", event, ts)


def _on_utterance(conn: psycopg.Connection, call_id: str, event: dict[str, Any], ts: str) -> None:
    _turn(conn, call_id, "bot", event, ts)


def _on_intent(conn: psycopg.Connection, call_id: str, event: dict[str, Any], ts: str) -> None:
    label = str(event.get("label", ""))
    # The caller turn it was decided on: the latest one (read through the unique (call_id, idx) index).
    conn.execute(
        "INSERT INTO intents (call_id, turn_idx, label, confidence, alternatives, slots, ts) "
        "VALUES (%s, (SELECT MAX(idx) FROM turns WHERE call_id = %s AND speaker = 'caller'), %s, %s, %s, %s, %s)",
        (call_id, call_id, label, float(event.get("confidence") or 0.0),
         jsonb(event.get("alternatives", [])), jsonb(event.get("slots", {})), ts),
    )
    conn.execute("UPDATE calls SET first_intent = COALESCE(first_intent, %s), last_intent = %s WHERE call_id = %s",
                 (label, label, call_id))


def _on_route(conn: psycopg.Connection, call_id: str, event: dict[str, Any], ts: str) -> None:
    conn.execute("UPDATE calls SET route = %s WHERE call_id = %s", (event.get("route"), call_id))


def _on_handoff(conn: psycopg.Connection, call_id: str, event: dict[str, Any], ts: str) -> None:
    reason = str(event.get("reason", ""))
    conn.execute("INSERT INTO handoffs (call_id, reason, context, ts) VALUES (%s, %s, %s, %s)",
                 (call_id, reason, jsonb(event.get("context", {})), ts))
    conn.execute("UPDATE calls SET handoff = %s WHERE call_id = %s", (reason, call_id))


def _on_takeover(conn: psycopg.Connection, call_id: str, event: dict[str, Any], ts: str) -> None:
    conn.execute("UPDATE calls SET handled_by = 'human', agent_id = %s WHERE call_id = %s",
                 (event.get("agent_id"), call_id))


def _on_end(conn: psycopg.Connection, call_id: str, event: dict[str, Any], ts: str) -> None:
    end_call(conn, call_id, str(event.get("reason") or "completed"), ts)


_DERIVED: dict[str, Callable[[psycopg.Connection, str, dict[str, Any], str], None]] = {
    "transcript.final": _on_final,
    "bot.utterance": _on_utterance,
    "intent": _on_intent,
    "route": _on_route,
    "handoff": _on_handoff,
    "agent.takeover": _on_takeover,
    "call.end": _on_end,
}

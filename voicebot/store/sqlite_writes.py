"""The SQLite store's per-event writes: the ``events`` row and the derived tables, on the writer's connection."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any


def iso(ts: float | None = None) -> str:
    """ISO 8601 UTC with milliseconds (sorts as text, parses in PostgreSQL)."""
    return datetime.fromtimestamp(time.time() if ts is None else ts, UTC).isoformat(timespec="milliseconds")


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


class EventWrites:
    """The per-event write handlers of ``CallStore`` (run on its writer thread only).

    A mixin: the per-call counters and ``worker_id`` are set by ``CallStore.__init__``.
    """

    worker_id: str
    _next_seq: dict[str, int]
    _next_turn: dict[str, int]
    _caller_turn: dict[str, int]

    def _counter(self, conn: sqlite3.Connection, counters: dict[str, int], sql: str, call_id: str) -> int:
        """The next number of a per-call counter, seeded from the file once (never MAX+1 per write)."""
        if call_id not in counters:
            counters[call_id] = int(conn.execute(sql, (call_id,)).fetchone()[0])
        value = counters[call_id]
        counters[call_id] = value + 1
        return value

    def _apply_event(self, conn: sqlite3.Connection, call_id: str, event: dict[str, Any]) -> None:
        etype = str(event.get("type", "unknown"))
        ts = iso(event.get("ts") if isinstance(event.get("ts"), (int, float)) else None)
        conn.execute(
            "INSERT INTO calls (call_id, protocol, started_at, worker_id) VALUES (?, 'unknown', ?, ?) "
            "ON CONFLICT (call_id) DO NOTHING",
            (call_id, ts, self.worker_id),
        )
        seq = event.get("seq")
        next_seq = self._counter(conn, self._next_seq, _NEXT_SEQ_SQL, call_id)
        if isinstance(seq, int) and not isinstance(seq, bool):
            self._next_seq[call_id] = max(next_seq, seq + 1)
        else:
            seq = next_seq
        # UNIQUE (call_id, seq): a second writer of the same call fails here instead of merging.
        conn.execute(
            "INSERT INTO events (call_id, seq, ts, type, payload) VALUES (?, ?, ?, ?, ?)",
            (call_id, seq, ts, etype, _json(event)),
        )
        handler = _DERIVED.get(etype)
        if handler is not None:
            handler(self, conn, call_id, event, ts)

    def _turn(self, conn: sqlite3.Connection, call_id: str, speaker: str, event: dict[str, Any], ts: str) -> int:
        text = str(event.get("text", "")).strip()
        idx = self._counter(conn, self._next_turn, _NEXT_TURN_SQL, call_id)
        conn.execute(
            "INSERT INTO turns (call_id, idx, speaker, text, confidence, start_s, end_s, ts) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (call_id, idx, speaker, text, event.get("confidence"), event.get("start"), event.get("end"), ts),
        )
        conn.execute("UPDATE calls SET turns = turns + 1 WHERE call_id = ?", (call_id,))
        return idx

    def _on_final(self, conn: sqlite3.Connection, call_id: str, event: dict[str, Any], ts: str) -> None:
        if not str(event.get("text", "")).strip():
            return
        if event.get("speaker") == "agent":  # the agent's own words after a takeover
            self._turn(conn, call_id, "agent", event, ts)
        else:
            self._caller_turn[call_id] = self._turn(conn, call_id, "caller", event, ts)

    def _on_utterance(self, conn: sqlite3.Connection, call_id: str, event: dict[str, Any], ts: str) -> None:
        if str(event.get("text", "")).strip():
            self._turn(conn, call_id, "bot", event, ts)

    def _on_intent(self, conn: sqlite3.Connection, call_id: str, event: dict[str, Any], ts: str) -> None:
        label = str(event.get("label", ""))
        conn.execute(
            "INSERT INTO intents (call_id, turn_idx, label, confidence, alternatives, slots, ts) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (call_id, self._caller_turn.get(call_id), label, float(event.get("confidence") or 0.0),
             _json(event.get("alternatives", [])), _json(event.get("slots", {})), ts),
        )
        conn.execute(
            "UPDATE calls SET first_intent = COALESCE(first_intent, ?), last_intent = ? WHERE call_id = ?",
            (label, label, call_id),
        )

    def _on_route(self, conn: sqlite3.Connection, call_id: str, event: dict[str, Any], ts: str) -> None:
        conn.execute("UPDATE calls SET route = ? WHERE call_id = ?", (event.get("route"), call_id))

    def _on_handoff(self, conn: sqlite3.Connection, call_id: str, event: dict[str, Any], ts: str) -> None:
        reason = str(event.get("reason", ""))
        conn.execute(
            "INSERT INTO handoffs (call_id, reason, context, ts) VALUES (?, ?, ?, ?)",
            (call_id, reason, _json(event.get("context", {})), ts),
        )
        conn.execute("UPDATE calls SET handoff = ? WHERE call_id = ?", (reason, call_id))

    def _on_takeover(self, conn: sqlite3.Connection, call_id: str, event: dict[str, Any], ts: str) -> None:
        conn.execute(
            "UPDATE calls SET handled_by = 'human', agent_id = ? WHERE call_id = ?", (event.get("agent_id"), call_id)
        )

    def _on_end(self, conn: sqlite3.Connection, call_id: str, event: dict[str, Any], ts: str) -> None:
        conn.execute(
            "UPDATE calls SET status = ?, ended_at = ? WHERE call_id = ? AND ended_at IS NULL",
            (str(event.get("reason") or "completed"), ts, call_id),
        )
        # The counters are seeded again from the file should anything come after the end.
        self._next_seq.pop(call_id, None)
        self._next_turn.pop(call_id, None)
        self._caller_turn.pop(call_id, None)


_NEXT_SEQ_SQL = "SELECT COALESCE(MAX(seq), -1) + 1 FROM events WHERE call_id = ?"
_NEXT_TURN_SQL = "SELECT COALESCE(MAX(idx), -1) + 1 FROM turns WHERE call_id = ?"

_DERIVED: dict[str, Callable[[EventWrites, sqlite3.Connection, str, dict[str, Any], str], None]] = {
    "transcript.final": EventWrites._on_final,
    "bot.utterance": EventWrites._on_utterance,
    "intent": EventWrites._on_intent,
    "route": EventWrites._on_route,
    "handoff": EventWrites._on_handoff,
    "agent.takeover": EventWrites._on_takeover,
    "call.end": EventWrites._on_end,
}

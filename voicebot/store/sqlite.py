"""The call store on SQLite (WAL mode), written from one dedicated thread.

Every write is a message on a queue: the caller (the server's event loop)
never waits for the disk. One writer thread owns the one write connection and
commits in small batches, so a burst of events from many calls costs one
fsync, not hundreds. Reads (`voicebot calls`, tests) open their own short-lived
connections; WAL lets them run while the writer writes.

Besides the raw ``events`` table the writer keeps the derived tables (``turns``,
``intents``, ``handoffs``) and the ``calls`` summary columns up to date, so the
history can be queried without replaying JSON.
"""

from __future__ import annotations

import json
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from voicebot.assist.redact import redact_event

log = logging.getLogger(__name__)

_BATCH_MAX = 500
_STOP = object()


def iso(ts: float | None = None) -> str:
    """ISO 8601 UTC with milliseconds (sorts as text, parses in PostgreSQL)."""
    return datetime.fromtimestamp(time.time() if ts is None else ts, UTC).isoformat(timespec="milliseconds")


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


class CallStore:
    """Persistent record of calls. Writes are queued and never block; reads are synchronous.

    ``redact=True`` masks personal data in every event before it is written
    (``voicebot.assist.redact``); callers that already redacted pass
    ``redacted=True`` to ``add_event`` to skip the second pass.
    """

    def __init__(self, path: Path | str, *, redact: bool = False) -> None:
        self.path = Path(path)
        self.redact = redact
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._closed = False
        # Per-call counters kept by the writer thread only.
        self._next_seq: dict[str, int] = {}
        self._caller_turn: dict[str, int] = {}
        self._thread = threading.Thread(target=self._run, name=f"callstore:{self.path.name}", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise RuntimeError(f"cannot open call store {self.path}: {self._error}") from self._error

    # ------------------------------------------------------------------ writes (queued)
    def create_call(
        self, call_id: str, *, protocol: str = "voicebot.v1", caller: dict[str, Any] | None = None,
        started_at: float | None = None,
    ) -> None:
        caller = caller or {}
        if self.redact:
            caller = redact_event(caller)
        self._put(("create", call_id, protocol, caller, iso(started_at)))

    def add_event(self, call_id: str, event: dict[str, Any], *, redacted: bool = False) -> None:
        if self.redact and not redacted:
            event = redact_event(event)
        self._put(("event", call_id, event))

    def end_call(self, call_id: str, status: str = "completed", ended_at: float | None = None) -> None:
        """Close a call (idempotent: the first status wins)."""
        self._put(("end", call_id, status, iso(ended_at)))

    def recover_interrupted(self) -> None:
        """Mark calls still 'active' from an earlier process (it crashed or was killed) as interrupted."""
        self._put(("recover", iso()))

    def flush(self, timeout: float = 10.0) -> bool:
        """Block until everything queued so far is committed. True if it was in time."""
        if self._closed:
            return True
        done = threading.Event()
        self._put(("flush", done))
        return done.wait(timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Commit what is queued, then stop the writer thread."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        self._thread.join(timeout)

    def _put(self, op: Any) -> None:
        if self._closed:
            log.warning("call store closed; dropped %s", op[0])
            return
        self._queue.put(op)

    # ------------------------------------------------------------------ writer thread
    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        return conn

    def _run(self) -> None:
        try:
            conn = self._connect()
            conn.executescript(resources.files("voicebot.store").joinpath("schema.sql").read_text("utf-8"))
        except (sqlite3.Error, OSError) as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        stop = False
        while not stop:
            batch = [self._queue.get()]
            while len(batch) < _BATCH_MAX:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            waiters: list[threading.Event] = []
            conn.execute("BEGIN")
            for op in batch:
                if op is _STOP:
                    stop = True
                    continue
                if op[0] == "flush":
                    waiters.append(op[1])
                    continue
                try:
                    self._apply(conn, op)
                except sqlite3.Error:
                    # One bad write (a constraint, a full disk) must not stop the record of other calls.
                    log.exception("call store: %s for call %s failed", op[0], op[1] if len(op) > 1 else "")
            try:
                conn.execute("COMMIT")
            except sqlite3.Error:
                log.exception("call store: commit failed; %d operations lost", len(batch))
                conn.execute("ROLLBACK")
            for waiter in waiters:
                waiter.set()
        conn.close()

    def _apply(self, conn: sqlite3.Connection, op: tuple[Any, ...]) -> None:
        kind = op[0]
        if kind == "create":
            _, call_id, protocol, caller, started = op
            conn.execute(
                "INSERT INTO calls (call_id, protocol, caller, started_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (call_id) DO NOTHING",
                (call_id, protocol, _json(caller), started),
            )
        elif kind == "event":
            self._apply_event(conn, op[1], op[2])
        elif kind == "end":
            _, call_id, status, ended = op
            conn.execute(
                "UPDATE calls SET status = ?, ended_at = ? WHERE call_id = ? AND ended_at IS NULL",
                (status, ended, call_id),
            )
        elif kind == "recover":
            cur = conn.execute(
                "UPDATE calls SET status = 'interrupted', ended_at = ? WHERE ended_at IS NULL", (op[1],)
            )
            if cur.rowcount:
                log.warning("call store: %d call(s) left open by an earlier process marked interrupted", cur.rowcount)

    def _apply_event(self, conn: sqlite3.Connection, call_id: str, event: dict[str, Any]) -> None:
        etype = str(event.get("type", "unknown"))
        ts = iso(event.get("ts") if isinstance(event.get("ts"), (int, float)) else None)
        conn.execute(
            "INSERT INTO calls (call_id, protocol, started_at) VALUES (?, 'unknown', ?) "
            "ON CONFLICT (call_id) DO NOTHING",
            (call_id, ts),
        )
        seq = event.get("seq")
        if not isinstance(seq, int):
            seq = self._next_seq.get(call_id, 0)
        self._next_seq[call_id] = seq + 1
        conn.execute(
            "INSERT INTO events (call_id, seq, ts, type, payload) VALUES (?, ?, ?, ?, ?)",
            (call_id, seq, ts, etype, _json(event)),
        )
        handler = _DERIVED.get(etype)
        if handler is not None:
            handler(self, conn, call_id, event, ts)

    def _turn(self, conn: sqlite3.Connection, call_id: str, speaker: str, event: dict[str, Any], ts: str) -> int:
        text = str(event.get("text", "")).strip()
        row = conn.execute("SELECT COALESCE(MAX(idx), -1) + 1 FROM turns WHERE call_id = ?", (call_id,)).fetchone()
        idx = int(row[0])
        conn.execute(
            "INSERT INTO turns (call_id, idx, speaker, text, confidence, start_s, end_s, ts) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (call_id, idx, speaker, text, event.get("confidence"), event.get("start"), event.get("end"), ts),
        )
        conn.execute("UPDATE calls SET turns = turns + 1 WHERE call_id = ?", (call_id,))
        return idx

    def _on_final(self, conn: sqlite3.Connection, call_id: str, event: dict[str, Any], ts: str) -> None:
        if str(event.get("text", "")).strip():
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
        self._next_seq.pop(call_id, None)
        self._caller_turn.pop(call_id, None)

    # ------------------------------------------------------------------ reads
    def list_calls(self, limit: int = 50, status: str | None = None) -> list[dict[str, Any]]:
        """The most recent calls first, as plain dicts of the ``calls`` columns."""
        return list_calls(self.path, limit=limit, status=status)

    def get_call(self, call_id: str) -> dict[str, Any] | None:
        """One call with its turns, intents, handoffs and events (an unambiguous id prefix is enough)."""
        return get_call(self.path, call_id)


_DERIVED: dict[str, Callable[[CallStore, sqlite3.Connection, str, dict[str, Any], str], None]] = {
    "transcript.final": CallStore._on_final,
    "bot.utterance": CallStore._on_utterance,
    "intent": CallStore._on_intent,
    "route": CallStore._on_route,
    "handoff": CallStore._on_handoff,
    "agent.takeover": CallStore._on_takeover,
    "call.end": CallStore._on_end,
}


def _open_read(path: Path | str) -> sqlite3.Connection:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"call store not found: {path}")
    conn = sqlite3.connect(path, timeout=30.0)
    conn.row_factory = sqlite3.Row
    return conn


def list_calls(path: Path | str, limit: int = 50, status: str | None = None) -> list[dict[str, Any]]:
    """Read the most recent calls from a store file (no writer thread needed)."""
    with _open_read(path) as conn:
        sql = "SELECT * FROM calls"
        params: list[Any] = []
        if status:
            sql += " WHERE status = ?"
            params.append(status)
        sql += " ORDER BY started_at DESC LIMIT ?"
        params.append(limit)
        return [_row(r) for r in conn.execute(sql, params)]


def get_call(path: Path | str, call_id: str) -> dict[str, Any] | None:
    """One call with its turns, intents, handoffs and events from a store file."""
    with _open_read(path) as conn:
        rows = conn.execute("SELECT * FROM calls WHERE call_id = ?", (call_id,)).fetchall()
        if not rows:
            like = call_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            rows = conn.execute("SELECT * FROM calls WHERE call_id LIKE ? ESCAPE '\\' LIMIT 2", (like,)).fetchall()
            if len(rows) != 1:
                return None
        call = _row(rows[0])
        cid = call["call_id"]

        def rows_of(table: str, order: str) -> list[dict[str, Any]]:
            # table and order are constants from this function, never user input.
            sql = f"SELECT * FROM {table} WHERE call_id = ? ORDER BY {order}"  # noqa: S608
            return [_row(r) for r in conn.execute(sql, (cid,))]

        call["turns_list"] = rows_of("turns", "idx")
        call["intents"] = rows_of("intents", "id")
        call["handoffs"] = rows_of("handoffs", "id")
        call["events"] = [json.loads(r["payload"]) for r in rows_of("events", "seq, id")]
        return call


def _row(row: sqlite3.Row) -> dict[str, Any]:
    out = dict(row)
    for key in ("caller", "alternatives", "slots", "context"):
        if isinstance(out.get(key), str):
            try:
                out[key] = json.loads(out[key])
            except json.JSONDecodeError:
                pass
    return out

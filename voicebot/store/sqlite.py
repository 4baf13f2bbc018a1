"""The call store on SQLite (WAL mode), written from one dedicated thread.

Every write is a message on a queue: the caller (the server's event loop)
never waits for the disk. One writer thread owns the one write connection and
commits everything queued in one transaction (group commit), so a burst of
events from many calls costs one commit, not hundreds.

Every write returns a ``concurrent.futures.Future`` that resolves once the
write is committed (``None``) or failed (``StoreError``). A server that must
not show a client anything the store could still lose waits on it
(``await asyncio.wrap_future(fut)``, or a done-callback) before sending. With
``synchronous=NORMAL`` a commit is in the WAL file, safe from a killed process
(not from a power cut; ``FULL`` syncs every commit to the disk).

Besides the raw ``events`` table the writer keeps the derived tables (``turns``,
``intents``, ``handoffs``) and the ``calls`` summary columns up to date, so the
history can be queried without replaying JSON. Call ids are unique for ever:
``create_call`` refuses an id the store has seen (``DuplicateCallId``).

The schema comes from the Alembic migrations (``voicebot.store.migrations``),
run when the store opens a file that is not at their head; every store is one
worker with a lease (``voicebot.store.leases``), so recovery closes only the
calls of workers that are gone.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from voicebot.store.errors import DuplicateCallId, StoreClosed, StoreError
from voicebot.store.leases import Clock, WorkerLease, default_worker_id
from voicebot.store.queued import _STOP, QueuedCallStore
from voicebot.store.reads import get_call, list_calls
from voicebot.store.sqlite_schema import migrate_sqlite
from voicebot.store.sqlite_writes import EventWrites, _json, iso

__all__ = ["CallStore", "DuplicateCallId", "StoreClosed", "StoreError", "get_call", "iso", "list_calls"]

log = logging.getLogger(__name__)

_SYNC_MODES = ("OFF", "NORMAL", "FULL", "EXTRA")


class CallStore(QueuedCallStore, EventWrites):
    """Persistent record of calls. Writes are queued and never block; reads are synchronous.

    ``redact=True`` masks personal data in every event before it is written
    (``voicebot.assist.redact``); callers that already redacted pass
    ``redacted=True`` to ``add_event`` to skip the second pass.
    """

    _log = log
    _reader: sqlite3.Connection | None

    def __init__(
        self, path: Path | str, *, redact: bool = False, synchronous: str = "NORMAL",
        worker_id: str = "", lease_s: float = 15.0, clock: Clock = time.time, heartbeat_s: float | None = None,
    ) -> None:
        """``heartbeat_s``: how often the lease is renewed (default a third of ``lease_s``; 0 = only by
        ``heartbeat()``, for tests on a controlled clock)."""
        if synchronous.upper() not in _SYNC_MODES:
            raise ValueError(f"synchronous must be one of {', '.join(_SYNC_MODES)}, not {synchronous!r}")
        self.path = Path(path)
        self.redact = redact
        self.synchronous = synchronous.upper()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._init_queue(WorkerLease(worker_id or default_worker_id(), lease_s, clock),
                         f"call store {self.path.name} is closed")
        # Per-call counters kept by the writer thread only (seeded from the file when missing).
        self._next_seq: dict[str, int] = {}
        self._next_turn: dict[str, int] = {}
        self._caller_turn: dict[str, int] = {}
        self._start_writer(f"callstore:{self.path.name}", str(self.path), lease_s, heartbeat_s,
                           f"callstore-heartbeat:{self.path.name}")

    # ------------------------------------------------------------------ writes (queued; the rest in QueuedCallStore)
    def call_exists(self, call_id: str) -> bool:
        """True if the id was ever used here: queued, committed, by this process or an earlier one."""
        with self._lock:
            if call_id in self._pending_ids:
                return True
            if self._reader is None:
                self._reader = sqlite3.connect(self.path, timeout=30.0, check_same_thread=False)
            row = self._reader.execute("SELECT 1 FROM calls WHERE call_id = ?", (call_id,)).fetchone()
            return row is not None

    def close(self, timeout: float = 10.0) -> None:
        """Commit what is queued, then stop the writer thread."""
        super().close(timeout)

    # ------------------------------------------------------------------ writer thread
    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self.synchronous}")  # one of _SYNC_MODES
        conn.execute("PRAGMA foreign_keys=ON")
        return conn

    def _open(self) -> sqlite3.Connection | None:
        try:
            conn = self._connect()
        except (sqlite3.Error, OSError) as exc:
            self._error = exc
            return None
        try:
            migrate_sqlite(conn, self.path)
            conn.execute("BEGIN")
            self.lease.open(conn.execute, iso)
            conn.execute("COMMIT")
        except Exception as exc:  # noqa: BLE001 - whatever stops the schema, the store must say so at open
            self._error = exc
            conn.close()
            return None
        return conn

    def _run(self) -> None:
        conn = self._open()
        self._ready.set()
        if conn is None:
            return
        stop = False
        while not stop:
            stop = self._commit_batch(conn, self._take_batch())
        conn.close()
        self._fail_leftovers()

    def _commit_batch(self, conn: sqlite3.Connection, batch: list[Any]) -> bool:
        """Apply a batch in one transaction, then resolve its futures; True if a stop was in it."""
        stop = False
        results: list[tuple[Future[None], BaseException | None]] = []
        created: list[str] = []
        conn.execute("BEGIN")
        for item in batch:
            if item is _STOP:
                stop = True
                continue
            fut, op = item
            results.append((fut, self._apply_one(conn, op)))
            if op[0] == "create":
                created.append(op[1])
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            log.exception("call store: commit failed; %d operations lost", len(batch))
            conn.execute("ROLLBACK")
            self._next_seq.clear()  # the counters ran ahead of what is on file
            self._next_turn.clear()
            results = [(fut, StoreError(f"commit failed: {exc}")) for fut, _ in results]
        self._settle(results, created)
        return stop

    def _apply_one(self, conn: sqlite3.Connection, op: tuple[Any, ...]) -> BaseException | None:
        if op[0] == "flush":
            return None
        # A savepoint per operation: one bad write (a constraint) is undone whole and must not
        # stop the record of other calls.
        conn.execute("SAVEPOINT op")
        try:
            self._apply(conn, op)
        except (sqlite3.Error, StoreError) as exc:
            conn.execute("ROLLBACK TO op")
            conn.execute("RELEASE op")
            self._next_seq.pop(op[1], None)
            self._next_turn.pop(op[1], None)
            if not isinstance(exc, DuplicateCallId):
                log.error("call store: %s for call %s failed: %s", op[0], op[1] if len(op) > 1 else "", exc)
            return exc if isinstance(exc, StoreError) else StoreError(str(exc))
        conn.execute("RELEASE op")
        return None

    def _apply(self, conn: sqlite3.Connection, op: tuple[Any, ...]) -> None:
        kind = op[0]
        if kind == "create":
            _, call_id, protocol, caller, started, worker_id = op
            cur = conn.execute(
                "INSERT INTO calls (call_id, protocol, caller, started_at, worker_id) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (call_id) DO NOTHING",
                (call_id, protocol, _json(caller), started, worker_id),
            )
            if cur.rowcount == 0:  # another process (or a late event) took the id first
                log.warning("call store: call id %r used before; not created again", call_id)
                raise DuplicateCallId(call_id)
        elif kind == "event":
            self._apply_event(conn, op[1], op[2])
        elif kind == "end":
            _, call_id, status, ended = op
            conn.execute(
                "UPDATE calls SET status = ?, ended_at = ? WHERE call_id = ? AND ended_at IS NULL",
                (status, ended, call_id),
            )
        else:
            self._apply_lease(conn.execute, op)

    # ------------------------------------------------------------------ reads
    def list_calls(self, limit: int = 50, status: str | None = None) -> list[dict[str, Any]]:
        """The most recent calls first, as plain dicts of the ``calls`` columns."""
        return list_calls(self.path, limit=limit, status=status)

    def get_call(self, call_id: str) -> dict[str, Any] | None:
        """One call with its turns, intents, handoffs and events (an unambiguous id prefix is enough)."""
        return get_call(self.path, call_id)

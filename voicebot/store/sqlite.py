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
import queue
import sqlite3
import threading
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from voicebot.assist.redact import redact_event
from voicebot.store.errors import DuplicateCallId, StoreClosed, StoreError
from voicebot.store.leases import Clock, Heartbeat, WorkerLease, default_worker_id
from voicebot.store.reads import get_call, list_calls
from voicebot.store.sqlite_schema import migrate_sqlite
from voicebot.store.sqlite_writes import EventWrites, _json, iso

__all__ = ["CallStore", "DuplicateCallId", "StoreClosed", "StoreError", "get_call", "iso", "list_calls"]

log = logging.getLogger(__name__)

_BATCH_MAX = 500
_STOP = object()
_SYNC_MODES = ("OFF", "NORMAL", "FULL", "EXTRA")


def _done(exc: BaseException | None = None) -> Future[None]:
    fut: Future[None] = Future()
    if exc is None:
        fut.set_result(None)
    else:
        fut.set_exception(exc)
    return fut


class CallStore(EventWrites):
    """Persistent record of calls. Writes are queued and never block; reads are synchronous.

    ``redact=True`` masks personal data in every event before it is written
    (``voicebot.assist.redact``); callers that already redacted pass
    ``redacted=True`` to ``add_event`` to skip the second pass.
    """

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
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()  # orders _put against close, guards _pending_ids and the reader
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._closed = False
        self._pending_ids: set[str] = set()  # created but not yet committed
        self._reader: sqlite3.Connection | None = None
        # Per-call counters kept by the writer thread only (seeded from the file when missing).
        self._next_seq: dict[str, int] = {}
        self._next_turn: dict[str, int] = {}
        self._caller_turn: dict[str, int] = {}
        self.lease = WorkerLease(worker_id or default_worker_id(), lease_s, clock)
        self.worker_id = self.lease.worker_id
        self._thread = threading.Thread(target=self._run, name=f"callstore:{self.path.name}", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise RuntimeError(f"cannot open call store {self.path}: {self._error}") from self._error
        self._heartbeat = Heartbeat(self.heartbeat, lease_s / 3 if heartbeat_s is None else heartbeat_s,
                                    f"callstore-heartbeat:{self.path.name}")
        self._heartbeat.start()

    # ------------------------------------------------------------------ writes (queued)
    def create_call(
        self, call_id: str, *, protocol: str = "voicebot.v1", caller: dict[str, Any] | None = None,
        started_at: float | None = None,
    ) -> Future[None]:
        """Record a new call. Raises ``DuplicateCallId`` if the id was ever used in this store."""
        caller = caller or {}
        if self.redact:
            caller = redact_event(caller)
        if self.call_exists(call_id):
            raise DuplicateCallId(call_id)
        with self._lock:
            self._pending_ids.add(call_id)
        return self._put(("create", call_id, protocol, caller, iso(started_at), self.worker_id))

    def call_exists(self, call_id: str) -> bool:
        """True if the id was ever used here: queued, committed, by this process or an earlier one."""
        with self._lock:
            if call_id in self._pending_ids:
                return True
            if self._reader is None:
                self._reader = sqlite3.connect(self.path, timeout=30.0, check_same_thread=False)
            row = self._reader.execute("SELECT 1 FROM calls WHERE call_id = ?", (call_id,)).fetchone()
            return row is not None

    def add_event(self, call_id: str, event: dict[str, Any] | BaseModel, *, redacted: bool = False) -> Future[None]:
        """Queue one event (a dict, or a typed event of voicebot.protocol); the future resolves when committed."""
        if isinstance(event, BaseModel):
            event = event.model_dump(mode="json")
        if self.redact and not redacted:
            event = redact_event(event)
        return self._put(("event", call_id, event))

    def end_call(self, call_id: str, status: str = "completed", ended_at: float | None = None) -> Future[None]:
        """Close a call (idempotent: the first status wins)."""
        return self._put(("end", call_id, status, iso(ended_at)))

    def recover_interrupted(self) -> Future[None]:
        """Mark interrupted the open calls of gone workers: this worker's previous process, expired leases."""
        return self._put(("recover", self.lease.clock()))

    def heartbeat(self) -> Future[None]:
        """Renew this worker's lease and sweep the calls of workers whose lease expired (the thread calls it)."""
        return self._put(("heartbeat", self.lease.clock()))

    def flush(self, timeout: float = 10.0) -> bool:
        """Block until everything queued so far is committed. True if it was in time."""
        if self._closed:
            return True
        try:
            self._put(("flush",)).result(timeout)
        except TimeoutError:
            return False
        except StoreError:
            return True  # closed meanwhile: what was queued before is committed
        return True

    def close(self, timeout: float = 10.0) -> None:
        """Commit what is queued, then stop the writer thread."""
        self._heartbeat.stop()
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put((Future(), ("release", self.lease.clock())))
            self._queue.put(_STOP)
        self._thread.join(timeout)
        with self._lock:
            if self._reader is not None:
                self._reader.close()
                self._reader = None

    def _put(self, op: tuple[Any, ...]) -> Future[None]:
        with self._lock:
            if self._closed:
                log.warning("call store closed; dropped %s", op[0])
                return _done(StoreClosed(f"call store {self.path.name} is closed"))
            fut: Future[None] = Future()
            self._queue.put((fut, op))
        return fut

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
            batch = [self._queue.get()]
            while len(batch) < _BATCH_MAX:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stop = self._commit_batch(conn, batch)
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
        with self._lock:
            self._pending_ids.difference_update(created)
        for fut, err in results:
            if err is None:
                fut.set_result(None)
            else:
                fut.set_exception(err)
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

    def _fail_leftovers(self) -> None:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not _STOP:
                item[0].set_exception(StoreClosed("call store closed before this write"))

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
        elif kind == "recover":
            self.lease.recover(conn.execute, op[1], iso)
        elif kind == "heartbeat":
            self.lease.renew(conn.execute, op[1], iso)
        elif kind == "release":
            self.lease.release(conn.execute, op[1], iso)

    # ------------------------------------------------------------------ reads
    def list_calls(self, limit: int = 50, status: str | None = None) -> list[dict[str, Any]]:
        """The most recent calls first, as plain dicts of the ``calls`` columns."""
        return list_calls(self.path, limit=limit, status=status)

    def get_call(self, call_id: str) -> dict[str, Any] | None:
        """One call with its turns, intents, handoffs and events (an unambiguous id prefix is enough)."""
        return get_call(self.path, call_id)

"""The call store on PostgreSQL (psycopg 3): the SQLite ``CallStore``'s interface for many workers.

Same contract as ``voicebot.store.sqlite.CallStore``: writes are queued and never
block the caller, one writer thread commits everything queued in one transaction
(group commit), each write's future resolves at commit (``None``) or fails
(``StoreError``, ``DuplicateCallId``), one bad write is undone whole by its
savepoint. What differs is what many workers on one database need: counters live
in the call's row (no ``MAX()+1``), every call carries the worker id that holds
it, and recovery closes only the calls of workers whose lease ran out
(``voicebot.store.leases``). The schema comes from the Alembic migrations, run at
open under an advisory lock (two workers starting at once migrate in turn).
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future
from typing import Any

import psycopg

from voicebot.store import migrations, pg_reads, pg_writes
from voicebot.store.errors import StoreError
from voicebot.store.leases import Clock, WorkerLease, default_worker_id
from voicebot.store.queued import _STOP, QueuedCallStore
from voicebot.store.sqlite import iso

__all__ = ["PostgresCallStore"]

log = logging.getLogger(__name__)

_PIPELINED = frozenset({"create", "event", "end", "flush"})  # writes that read no result back


def redacted_url(url: str) -> str:
    """The URL for messages: without a password."""
    head, sep, tail = url.rpartition("@")
    if not sep or ":" not in head.split("//", 1)[-1]:
        return url
    return head.rsplit(":", 1)[0] + ":***@" + tail


class PostgresCallStore(QueuedCallStore):
    """Persistent record of calls in PostgreSQL. Writes are queued and never block; reads are synchronous."""

    _log = log
    _reader: psycopg.Connection | None

    def __init__(
        self, url: str, *, redact: bool = False, worker_id: str = "", lease_s: float = 15.0,
        clock: Clock = time.time, heartbeat_s: float | None = None, connect_timeout: float = 10.0,
    ) -> None:
        self.url = url
        self.redact = redact
        self.connect_timeout = connect_timeout
        self._init_queue(WorkerLease(worker_id or default_worker_id(), lease_s, clock, paramstyle="format"),
                         "call store is closed")
        self._conn: psycopg.Connection | None = None
        self._start_writer(f"callstore-pg:{self.worker_id}", redacted_url(url), lease_s, heartbeat_s,
                           f"callstore-heartbeat:{self.worker_id}")

    # ------------------------------------------------------------------ writes (queued: QueuedCallStore)
    def call_exists(self, call_id: str) -> bool:
        """True if the id was ever used here: queued by this worker, or committed by any worker."""
        with self._lock:
            if call_id in self._pending_ids:
                return True
            return self._read(lambda conn: conn.execute("SELECT 1 FROM calls WHERE call_id = %s",
                                                        (call_id,)).fetchone()) is not None

    # ------------------------------------------------------------------ writer thread
    def _connect(self) -> psycopg.Connection:
        return psycopg.connect(self.url, autocommit=True, connect_timeout=max(1, int(self.connect_timeout)),
                               application_name=f"voicebot:{self.worker_id}")

    def _run(self) -> None:
        try:
            self._conn = self._connect()  # first: an unreachable server is psycopg's one-line error
            migrations.upgrade(self.url)
            with self._conn.transaction():
                self.lease.open(self._conn.execute, iso)
        except Exception as exc:  # noqa: BLE001 - whatever stops the open, the constructor reports it
            self._error = exc
            if self._conn is not None:
                self._conn.close()
            self._ready.set()
            return
        self._ready.set()
        stop = False
        while not stop:
            stop = self._commit_batch(self._take_batch())
        if self._conn is not None:
            self._conn.close()
        self._fail_leftovers()

    def _commit_batch(self, batch: list[Any]) -> bool:
        """Apply a batch in one transaction, then resolve its futures; True if a stop was in it.

        Fast path: the whole batch pipelined, no savepoints. Should any write fail (a taken seq or
        call id: rare), that transaction is rolled back and the batch is applied again one
        savepoint per write, so only the bad write fails.
        """
        stop = any(item is _STOP for item in batch)
        items = [item for item in batch if item is not _STOP]
        results: list[tuple[Future[None], BaseException | None]] = []
        created = [op[1] for _, op in items if op[0] == "create"]
        try:
            if self._conn is None or self._conn.closed:  # lost earlier: try again for this batch
                self._conn = self._connect()
            try:
                self._apply_pipelined(self._conn, [op for _, op in items])
                results = [(fut, None) for fut, _ in items]
            except psycopg.Error:
                if self._conn.broken:
                    raise
                with self._conn.transaction():
                    results = [(fut, self._apply_one(self._conn, op)) for fut, op in items]
        except psycopg.Error as exc:
            log.error("call store: commit failed; %d operations lost: %s", len(items), exc)
            if self._conn is not None and self._conn.broken:
                self._conn.close()
                self._conn = None
            results = [(fut, StoreError(f"commit failed: {exc}")) for fut, _ in items]
        self._settle(results, created)
        return stop

    def _apply_pipelined(self, conn: psycopg.Connection, ops: list[tuple[Any, ...]]) -> None:
        """All ops in one transaction; call writes in pipelines (lease ops read row counts: not pipelined)."""
        with conn.transaction():
            run: list[tuple[Any, ...]] = []
            for op in [*ops, ("end-of-batch",)]:
                if op[0] in _PIPELINED:
                    run.append(op)
                    continue
                if run:
                    with conn.pipeline():
                        for call_op in run:
                            self._apply(conn, call_op)
                    run = []
                if op[0] != "end-of-batch":
                    self._apply(conn, op)

    def _apply_one(self, conn: psycopg.Connection, op: tuple[Any, ...]) -> BaseException | None:
        if op[0] == "flush":
            return None
        try:
            with conn.transaction():  # a savepoint: one bad write is undone whole, the batch goes on
                self._apply(conn, op)
        except (psycopg.Error, StoreError) as exc:
            if isinstance(exc, psycopg.Error) and conn.broken:
                raise  # the connection is gone: the whole batch fails (and the next one reconnects)
            duplicate = pg_writes.is_duplicate(exc, op[1]) if op[0] == "create" else None
            if duplicate is not None:
                return duplicate
            log.error("call store: %s for call %s failed: %s", op[0], op[1] if len(op) > 1 else "", exc)
            return exc if isinstance(exc, StoreError) else StoreError(str(exc))
        return None

    def _apply(self, conn: psycopg.Connection, op: tuple[Any, ...]) -> None:
        kind = op[0]
        if kind == "flush":
            return
        if kind == "create":
            _, call_id, protocol, caller, started, worker_id = op
            pg_writes.create_call(conn, call_id, protocol, caller, started, worker_id)
        elif kind == "event":
            event = op[2]
            ts = iso(event.get("ts") if isinstance(event.get("ts"), (int, float)) else None)
            pg_writes.add_event(conn, op[1], event, ts, self.worker_id)
        elif kind == "end":
            pg_writes.end_call(conn, op[1], op[2], op[3])
        else:
            self._apply_lease(conn.execute, op)

    # ------------------------------------------------------------------ reads
    def _read(self, fn: Any) -> Any:
        """Run ``fn(conn)`` on the reader connection (caller holds ``_lock``); reconnects once if it broke."""
        for attempt in (0, 1):
            if self._reader is None or self._reader.closed:
                self._reader = self._connect()
            try:
                return fn(self._reader)
            except psycopg.OperationalError:
                self._reader.close()
                self._reader = None
                if attempt:
                    raise
        return None

    def list_calls(self, limit: int = 50, status: str | None = None) -> list[dict[str, Any]]:
        """The most recent calls first, as plain dicts of the ``calls`` columns."""
        with self._lock:
            return self._read(lambda conn: pg_reads.list_calls(conn, limit=limit, status=status))

    def get_call(self, call_id: str) -> dict[str, Any] | None:
        """One call with its turns, intents, handoffs and events (an unambiguous id prefix is enough)."""
        with self._lock:
            return self._read(lambda conn: pg_reads.get_call(conn, call_id))

"""The queueing front end both call stores share (``CallStore`` on SQLite, ``PostgresCallStore``).

Every write is an operation tuple on a queue (``("event", call_id, event)``,
``("end", ...)``, ...) with a ``concurrent.futures.Future`` that the backend's
writer thread resolves once the operation is committed (``None``) or failed
(``StoreError``). This class owns the queue and its lock, the ids created but
not yet committed, the lease heartbeat, the writes that are the same on every
backend, and the writer thread's batching; a backend adds its writer thread
(``_run``: open, then ``_take_batch`` / commit / ``_settle`` until ``_STOP``),
how it applies an operation, and its reads.
"""

from __future__ import annotations

import logging
import queue
import threading
from concurrent.futures import Future
from typing import Any, Protocol

from pydantic import BaseModel

from voicebot.assist.redact import redact_event
from voicebot.store.errors import DuplicateCallId, StoreClosed, StoreError
from voicebot.store.leases import Execute, Heartbeat, WorkerLease
from voicebot.store.sqlite_writes import iso

_BATCH_MAX = 500
_STOP = object()


def _done(exc: BaseException | None = None) -> Future[None]:
    fut: Future[None] = Future()
    if exc is None:
        fut.set_result(None)
    else:
        fut.set_exception(exc)
    return fut


class _Closable(Protocol):
    def close(self) -> None: ...


class QueuedCallStore:
    """A call store's queued writes: they never block, and their futures resolve at commit.

    A backend calls ``_init_queue`` in its constructor, then ``_start_writer``; it defines
    ``_run`` (the writer thread) and ``call_exists``.
    """

    _log: logging.Logger = logging.getLogger(__name__)  # a backend sets its module's logger
    redact: bool
    lease: WorkerLease
    worker_id: str
    _reader: _Closable | None
    _heartbeat: Heartbeat

    def _init_queue(self, lease: WorkerLease, closed_message: str) -> None:
        """The lease, the queue and its bookkeeping (``closed_message``: the ``StoreClosed`` of writes after close)."""
        self.lease = lease
        self.worker_id = lease.worker_id
        self._closed_message = closed_message
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()  # orders _put against close, guards _pending_ids and the reader
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._closed = False
        self._pending_ids: set[str] = set()  # created but not yet committed
        self._reader = None

    def _start_writer(
        self, thread_name: str, where: str, lease_s: float, heartbeat_s: float | None, heartbeat_name: str,
    ) -> None:
        """Start the writer thread and wait until it opened (``RuntimeError`` if not), then the heartbeat."""
        self._thread = threading.Thread(target=self._run, name=thread_name, daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise RuntimeError(f"cannot open call store {where}: {self._error}") from self._error
        self._heartbeat = Heartbeat(self.heartbeat, lease_s / 3 if heartbeat_s is None else heartbeat_s,
                                    heartbeat_name)
        self._heartbeat.start()

    def _run(self) -> None:
        raise NotImplementedError

    def call_exists(self, call_id: str) -> bool:
        raise NotImplementedError

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
        """Commit what is queued, end this worker's lease, then stop the writer thread."""
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
                self._log.warning("call store closed; dropped %s", op[0])
                return _done(StoreClosed(self._closed_message))
            fut: Future[None] = Future()
            self._queue.put((fut, op))
        return fut

    # ------------------------------------------------------------------ writer thread
    def _take_batch(self) -> list[Any]:
        """Wait for the next queued item, then take what else is queued, up to ``_BATCH_MAX`` in all."""
        batch = [self._queue.get()]
        while len(batch) < _BATCH_MAX:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _settle(self, results: list[tuple[Future[None], BaseException | None]], created: list[str]) -> None:
        """After a batch's commit (or its failure): forget its pending ids, then resolve its futures."""
        with self._lock:
            self._pending_ids.difference_update(created)
        for fut, err in results:
            if err is None:
                fut.set_result(None)
            else:
                fut.set_exception(err)

    def _apply_lease(self, execute: Execute, op: tuple[Any, ...]) -> None:
        """The lease operations (``recover``, ``heartbeat``, ``release``); any other does nothing."""
        kind = op[0]
        if kind == "recover":
            self.lease.recover(execute, op[1], iso)
        elif kind == "heartbeat":
            self.lease.renew(execute, op[1], iso)
        elif kind == "release":
            self.lease.release(execute, op[1], iso)

    def _fail_leftovers(self) -> None:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not _STOP:
                item[0].set_exception(StoreClosed("call store closed before this write"))

"""Stateless call workers: every worker's agents see every worker's calls, over the bus.

Several ``voicebot serve`` processes share only the PostgreSQL store and its
LISTEN/NOTIFY bus (``voicebot.store.bus``). Each worker's ``Federation``

- publishes its calls' stamped agent-view events (after the store committed them,
  as the hub delivers to its own agents) and every change of their row in the
  agents' list;
- mirrors the other workers' calls as ``RemoteCall``s the hub lists and lets agents
  subscribe to (replay: the store's record merged with what the bus brought);
- sends an agent's takeover/release of a call held elsewhere to the owning worker
  and waits for its reply (``CallRejected`` with the owner's error code, or
  ``worker_unreachable`` if none comes);
- every ``lease_s / 3`` re-reads from the store the other workers' open calls (a call
  it never heard of: it started later, a message was lost) and whether the calls it
  mirrors have ended (a dead worker's calls are closed as ``interrupted`` by the
  lease sweep: they leave the live list here too).

The bus is at most once; the store is the record. Bus I/O runs on a publisher
thread (batched, one round trip per batch) and store reads on one reader thread:
nothing here blocks the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import uuid
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

import psycopg
from pydantic import ValidationError

from voicebot.assist.redact import redact_event
from voicebot.protocol.agent import CallSummary
from voicebot.protocol.base import Message, to_json
from voicebot.protocol.events import CallEvent, SuggestionsEvent, parse_call_event
from voicebot.server.hub import CallHub, CallRejected, _redacted
from voicebot.server.remote import RemoteCall
from voicebot.store import pg_peers
from voicebot.store.bus import BusMessage, PgEventBus

log = logging.getLogger(__name__)

CONTROL_TIMEOUT_S = 5.0  # the owning worker answers a takeover in one bus round trip; longer means it is gone
_OUTBOX_MAX = 20_000  # bus messages waiting for the publisher; beyond, events are dropped (the store has them)
_BATCH_MAX = 500
_PRUNED_MAX = 10_000  # ids of ended calls remembered as out of the list


class ControlRequest(Message):
    """An agent's takeover/release of a call, sent to the worker that holds it."""

    request_id: str
    action: Literal["takeover", "release"]
    agent_id: str
    to: str  # the worker that holds the call


class ControlReply(Message):
    """The owning worker's answer to a ``ControlRequest``."""

    request_id: str
    to: str  # the worker that asked
    ok: bool
    code: str = ""
    message: str = ""


class Federation:
    """This worker's link to the other workers: outgoing calls and events, mirrored remote calls, control."""

    def __init__(self, hub: CallHub, url: str, worker_id: str, lease_s: float, *,
                 bus: PgEventBus | None = None, control_timeout_s: float = CONTROL_TIMEOUT_S) -> None:
        self.hub = hub
        self.control_timeout_s = control_timeout_s
        self.url = url
        self.worker_id = worker_id
        self.interval = lease_s / 3  # as often as the store's heartbeat sweeps expired leases
        self.bus = bus or PgEventBus(url, worker_id)
        self.remote: dict[str, RemoteCall] = {}
        self.dropped = 0
        self._pending: dict[str, asyncio.Future[ControlReply]] = {}
        self._outbox: deque[tuple[str, str, str]] = deque()
        self._wake = threading.Condition()
        self._stopping = False
        self._publisher = threading.Thread(target=self._publish_loop, name=f"federation-pub:{worker_id}", daemon=True)
        self._reads = ThreadPoolExecutor(max_workers=1, thread_name_prefix="federation-reads")
        self._db: psycopg.Connection | None = None  # used on the reader thread only
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loading: set[str] = set()  # calls whose store record is being read
        self._pruned: dict[str, None] = {}  # ended calls dropped from the list: late messages stay out
        self._loop: asyncio.AbstractEventLoop | None = None

    # ------------------------------------------------------------------ life
    async def start(self) -> None:
        """Listen on the bus, list the calls the other workers hold now, then keep that list true."""
        self._loop = asyncio.get_running_loop()
        self._publisher.start()
        await asyncio.to_thread(self.bus.subscribe, self._heard)
        self.hub.federation = self
        await self.reconcile()
        await asyncio.gather(*self._tasks, return_exceptions=True)  # their histories: listed before agents ask
        self._spawn(self._reconcile_loop(), "federation-reconcile")

    async def aclose(self) -> None:
        self._loop = None  # what the bus still hears is dropped
        for task in list(self._tasks):
            task.cancel()
        for future in self._pending.values():
            future.cancel()
        with self._wake:  # what is queued (the last call updates) still goes out
            self._stopping = True
            self._wake.notify()
        if self._publisher.is_alive():
            await asyncio.to_thread(self._publisher.join, 5.0)
        await asyncio.to_thread(self.bus.close)
        await asyncio.get_running_loop().run_in_executor(self._reads, self._close_db)
        self._reads.shutdown(wait=False)

    # ------------------------------------------------------------------ what the hub asks
    def local_event(self, call_id: str, event: CallEvent) -> None:
        """One of this worker's calls' events, as its agents see it, for the other workers' agents."""
        self._send(call_id, to_json(event), "event")

    def local_update(self, summary: CallSummary) -> None:
        self._send(summary.call_id, to_json(summary), "call")

    def find(self, call_id: str) -> RemoteCall | None:
        remote = self.remote.get(call_id)
        return remote if remote is not None and remote.row is not None else None

    def calls(self) -> list[RemoteCall]:
        """The other workers' calls this worker knows: live ones first, then the ended ones, newest first."""
        known = [r for r in self.remote.values() if r.row is not None]
        return [r for r in known if r.live] + sorted((r for r in known if not r.live),
                                                     key=lambda r: -(r.summary().ended_at or 0.0))

    async def control(self, call_id: str, action: Literal["takeover", "release"], agent_id: str) -> RemoteCall:
        """Take over or release a call another worker holds; its error, or ``worker_unreachable``."""
        remote = self.find(call_id)
        if remote is None or not remote.live:
            raise CallRejected("unknown_call", f"no active call {call_id!r}")
        if self._loop is None:
            raise CallRejected("shutting_down", "the server is shutting down")
        request = ControlRequest(request_id=uuid.uuid4().hex, action=action, agent_id=agent_id, to=remote.worker_id)
        future: asyncio.Future[ControlReply] = self._loop.create_future()
        self._pending[request.request_id] = future
        self._send(call_id, to_json(request), "control")
        try:
            reply = await asyncio.wait_for(future, self.control_timeout_s)
        except TimeoutError:
            raise CallRejected("worker_unreachable", f"the worker holding call {call_id!r} did not answer "
                               f"within {self.control_timeout_s:g} s") from None
        finally:
            self._pending.pop(request.request_id, None)
        if not reply.ok:
            raise CallRejected(reply.code or "error", reply.message)
        return remote

    # ------------------------------------------------------------------ incoming
    def _heard(self, message: BusMessage) -> None:
        """On the bus's listener thread: hand the message to the event loop."""
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed: the server is gone
                self._loop.call_soon_threadsafe(self._on_message, message)

    def _on_message(self, message: BusMessage) -> None:
        try:
            if message.kind == "event":
                self._on_event(message)
            elif message.kind == "call":
                self._on_update(message)
            elif message.kind == "control":
                request = ControlRequest.model_validate_json(message.data)
                if request.to == self.worker_id:
                    self._spawn(self._serve_control(message.call_id, request, message.worker_id),
                                f"control-{message.call_id}")
            elif message.kind == "reply":
                reply = ControlReply.model_validate_json(message.data)
                future = self._pending.get(reply.request_id) if reply.to == self.worker_id else None
                if future is not None and not future.done():
                    future.set_result(reply)
        except (ValidationError, ValueError) as exc:
            log.warning("federation: dropped a bad %r message from worker %s: %s", message.kind, message.worker_id,
                        str(exc).splitlines()[0])

    def _on_event(self, message: BusMessage) -> None:
        if message.call_id in self.hub.calls or message.call_id in self._pruned:
            return  # ours (an earlier process of this worker id said it), or ended and out of the list
        event = parse_call_event(json.loads(message.data))
        remote = self._mirror(message.call_id, message.worker_id)
        if remote.hear(event) and remote.row is not None:
            self.hub.show_event(message.call_id, event)

    def _on_update(self, message: BusMessage) -> None:
        if message.call_id in self.hub.calls or message.call_id in self._pruned:
            return
        summary = CallSummary.model_validate_json(message.data)
        remote = self._mirror(message.call_id, message.worker_id)
        remote.row = summary
        self.hub.show_update(summary)
        if not remote.live:
            self._prune()

    async def _serve_control(self, call_id: str, request: ControlRequest, requester: str) -> None:
        """Another worker's agent takes over / releases one of our calls: do it, and answer."""
        reply = ControlReply(request_id=request.request_id, to=requester, ok=True)
        try:
            if call_id not in self.hub.calls:
                raise CallRejected("unknown_call", f"no active call {call_id!r}")
            if request.action == "takeover":
                await self.hub.take_over(call_id, request.agent_id)
            else:
                await self.hub.release(call_id, request.agent_id)
            log.info("agent %s (on another worker): %s of call %s", request.agent_id, request.action, call_id)
        except CallRejected as exc:
            reply = reply.model_copy(update={"ok": False, "code": exc.code, "message": str(exc)})
        except Exception as exc:  # noqa: BLE001 - the asking agent gets an error, not a timeout
            log.exception("federation: %s of call %s failed", request.action, call_id)
            reply = reply.model_copy(update={"ok": False, "code": "internal", "message": type(exc).__name__})
        self._send(call_id, to_json(reply), "reply")

    # ------------------------------------------------------------------ mirrors
    def _mirror(self, call_id: str, worker_id: str) -> RemoteCall:
        remote = self.remote.get(call_id)
        if remote is None:
            remote = self.remote[call_id] = RemoteCall(call_id, worker_id)
            self._ensure_loaded(remote)
        return remote

    def _ensure_loaded(self, remote: RemoteCall) -> None:
        if not remote.loaded and remote.call_id not in self._loading:
            self._loading.add(remote.call_id)
            self._spawn(self._load(remote), f"federation-load-{remote.call_id}")

    async def _load(self, remote: RemoteCall) -> None:
        """Merge the store's record of a call first heard of now (its history before this worker listened)."""
        try:
            stored = await self._query(pg_peers.call_with_events, remote.call_id)
        except Exception as exc:  # noqa: BLE001 - the next reconcile tries again
            log.warning("federation: reading call %s from the store failed: %s", remote.call_id, exc)
            return
        finally:
            self._loading.discard(remote.call_id)
        if stored is None:
            return
        had_row = remote.row is not None
        remote.load(stored[0], stored[1], self._agent_view)
        if not had_row and remote.row is not None:
            if self.hub.redact_agents and not self.hub.redact_store:
                remote.row = remote.row.model_copy(update={"caller": redact_event(remote.row.caller)})
            self.hub.show_update(remote.row)

    def _agent_view(self, event: CallEvent) -> CallEvent:
        """A stored event as agents see it (the store keeps it unmasked where only agents get masking)."""
        if self.hub.redact_agents and not self.hub.redact_store and not isinstance(event, SuggestionsEvent):
            return _redacted(event)
        return event

    async def reconcile(self) -> None:
        """Calls of other workers this one never heard of; mirrored calls the store has closed."""
        live = [cid for cid, r in self.remote.items() if r.live]
        elsewhere, ended = await self._query(_state, self.worker_id, live)
        for call_id, worker in elsewhere.items():
            if call_id not in self.hub.calls:
                self._mirror(call_id, worker)
        for known in list(self.remote.values()):
            self._ensure_loaded(known)  # a read that failed, or a call whose row was not committed yet
        for call_id, (status, ended_at) in ended.items():
            remote = self.remote.get(call_id)
            if remote is not None and remote.live:
                remote.end(status, ended_at)
                self.hub.show_update(remote.summary())
        if ended:
            self._prune()

    async def _reconcile_loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)  # a timer, like the lease heartbeat it follows
            try:
                await self.reconcile()
            except Exception as exc:  # noqa: BLE001 - a store hiccup must not end the federation
                log.warning("federation: re-reading the other workers' calls failed: %s", exc)

    def _prune(self) -> None:
        """Keep the ``server.recent_calls`` newest ended remote calls."""
        ended = [r for r in self.calls() if not r.live]
        for remote in ended[self.hub.settings.server.recent_calls:]:
            del self.remote[remote.call_id]
            self._pruned[remote.call_id] = None
        for call_id in list(self._pruned)[:max(0, len(self._pruned) - _PRUNED_MAX)]:
            del self._pruned[call_id]

    # ------------------------------------------------------------------ threads
    async def _query(self, fn: Any, *args: Any) -> Any:
        """``fn(conn, *args)`` on the reader thread (one connection, one query at a time)."""
        return await asyncio.get_running_loop().run_in_executor(self._reads, self._read, fn, *args)

    def _read(self, fn: Any, *args: Any) -> Any:
        """Run ``fn(conn, *args)`` on the reader thread's connection; reconnects once if it broke."""
        for attempt in (0, 1):
            if self._db is None or self._db.closed:
                self._db = psycopg.connect(self.url, autocommit=True, application_name=f"federation:{self.worker_id}")
            try:
                return fn(self._db, *args)
            except psycopg.OperationalError:
                self._db.close()
                self._db = None
                if attempt:
                    raise
        return None

    def _close_db(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def _send(self, call_id: str, data: str, kind: str) -> None:
        with self._wake:
            if len(self._outbox) >= _OUTBOX_MAX:
                self.dropped += 1
                if self.dropped == 1 or self.dropped % 1000 == 0:
                    log.warning("federation: the bus is behind; %d message(s) dropped", self.dropped)
                return
            self._outbox.append((call_id, data, kind))
            self._wake.notify()

    def _publish_loop(self) -> None:
        while True:
            with self._wake:
                while not self._outbox and not self._stopping:
                    self._wake.wait()
                if not self._outbox:
                    return
                batch = [self._outbox.popleft() for _ in range(min(len(self._outbox), _BATCH_MAX))]
            try:
                self.bus.publish_many(batch)
            except Exception as exc:  # noqa: BLE001 - at most once: the store keeps the record
                log.warning("federation: %d bus message(s) lost: %s", len(batch), exc)

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _state(conn: psycopg.Connection, worker_id: str, live: list[str]) -> tuple[dict[str, str],
                                                                             dict[str, tuple[str, float]]]:
    return pg_peers.open_elsewhere(conn, worker_id), pg_peers.ended_among(conn, live)

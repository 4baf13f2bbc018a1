"""The server runtime: what every endpoint shares, and its life.

``ServerRuntime`` holds the settings, engines, hub, store, metrics and agent
tokens: *loading* (the HTTP side is up, ``/readyz`` says 503, calls are refused
with ``not_ready``), *ready*, *shutting_down* (``drain``: no new calls, every
call ends with ``shutdown`` after delivering what is queued), *stopped*; or
*failed* when a model cannot be loaded.

This module is at the bottom of the server's import graph: it imports the hub,
metrics and auth, never an endpoint. Endpoints see it through the narrow
``CallRuntime`` protocol below.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from voicebot.assist.kb import KnowledgeBase
from voicebot.config import Settings
from voicebot.server.access import AccessPolicy
from voicebot.server.auth import AgentAuth
from voicebot.server.hub import AudioSink, CallHub, EventSink, Session
from voicebot.server.looplag import LoopLag
from voicebot.server.metrics import ServerMetrics
from voicebot.store.base import CallStoreBackend
from voicebot.store.factory import is_postgres, open_store
from voicebot.telephony.transfer import HandoffTransfer

log = logging.getLogger(__name__)

SessionFactory = Callable[..., Any]


class Drainable(Protocol):
    """A caller connection as the runtime sees it: something to end on shutdown."""

    async def shutdown(self) -> None: ...


class CallRuntime(Protocol):
    """What an endpoint needs of the runtime (and all it may touch)."""

    settings: Settings
    state: str
    hub: CallHub
    metrics: ServerMetrics
    auth: AgentAuth
    access: AccessPolicy
    connections: set[Drainable]
    transfer: HandoffTransfer
    transfers: set[asyncio.Task[None]]
    loop_lag: LoopLag

    def new_session(
        self, call_id: str, *, emit: EventSink, send_audio: AudioSink, out_rate: int, metadata: dict[str, Any],
    ) -> Session: ...

    def reserve_line(self) -> bool: ...

    def release_line(self) -> None: ...


def _import(spec: str) -> Any:
    """The object named by ``"package.module:attr"``."""
    module_name, _, attr = spec.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in (attr or "CallSession").split("."):
        obj = getattr(obj, part)
    return obj


def resolve_session_factory(spec: str, engines_loader: str = "") -> tuple[SessionFactory, Callable[[Settings], Any]]:
    """The session class and the engine loader.

    ``spec`` (``server.session_factory``) names a class with ``CallSession``'s signature (empty: the
    real one); ``engines_loader`` (``server.engines_loader``) a function ``settings -> Engines``
    (empty: the class's ``load_engines``, else ``Engines.load``).
    """
    from voicebot.dialog.session import CallSession
    from voicebot.engines import Engines

    factory: Any = _import(spec) if spec else CallSession
    loader = _import(engines_loader) if engines_loader else getattr(factory, "load_engines", Engines.load)
    return factory, loader


class _MeasuredLoopLag(LoopLag):
    """The loop lag, each tick also observed on ``/metrics`` (``voicebot_loop_lag_seconds``)."""

    def __init__(self, metrics: ServerMetrics) -> None:
        super().__init__()
        self.metrics = metrics

    def record(self, now: float) -> None:
        late = max(0.0, now - self._last_tick - self.interval_s)
        super().record(now)
        self.metrics.loop_lag.observe(late)


class ServerRuntime:
    """Everything the endpoints share; one per app."""

    def __init__(
        self, settings: Settings, *,
        on_ready: Callable[[ServerRuntime], Awaitable[None]] | None = None,
        on_fatal: Callable[[BaseException], None] | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = ServerMetrics()
        self.auth = AgentAuth(settings.server.agent_tokens)
        # Optional access checks (caller tokens, Twilio signatures, Origins, login throttle).
        self.access = AccessPolicy(settings.server, settings.telephony)
        self.state = "starting"
        self.failure = ""
        self.on_ready = on_ready
        self.on_fatal = on_fatal
        self.store: CallStoreBackend | None = None
        self.hub = CallHub(settings, self.metrics)
        self.federation: Any = None  # voicebot.server.federation.Federation: workers sharing a PostgreSQL store
        self.engines: Any = None  # voicebot.engines.Engines: the models
        self.clients: Any = None  # voicebot.call.clients.EngineClients: how calls reach them
        # Transfer on handoff (signed webhook, Twilio redirect); built at start: a bad
        # telephony setting fails there in one line. Transfers in flight outlive their calls.
        self.transfer: HandoffTransfer = HandoffTransfer(settings.telephony)
        self.transfers: set[asyncio.Task[None]] = set()
        self.loop_lag = _MeasuredLoopLag(self.metrics)  # the server's own lag, so it is never blamed on a client
        self.domain: Any = None  # voicebot.dialog.domain.Domain
        self.session_factory: SessionFactory | None = None
        self.connections: set[Drainable] = set()
        # Caller sockets upgraded but not yet started: they hold a line, so two callers racing for
        # the last one are told apart at the upgrade (HTTP 503), not by a busy error after it.
        self.reserved_lines = 0
        self._load_task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ life
    async def startup(self) -> None:
        """Open the store, then load the models in the background (``/readyz`` says when)."""
        # The worker id: several workers may share one database; recovery closes only the calls
        # of workers that are gone (their lease expired), never another live worker's.
        worker = f"{socket.gethostname()}:{self.settings.server.port or os.getpid()}"
        # The hub redacts before it writes (redacted=True): the store must not redact again.
        self.store = await asyncio.to_thread(open_store, self.settings.store, worker_id=worker, redact=False)
        self.store.recover_interrupted()
        self.hub.store = self.store
        if is_postgres(self.settings.store.url):
            # Workers on one database share their calls over its bus: any worker's agents see them all.
            from voicebot.server.federation import Federation

            self.federation = Federation(self.hub, self.settings.store.url, self.store.worker_id,
                                         self.settings.store.lease_s)
            await self.federation.start()
        self.loop_lag.start()
        self.state = "loading"
        self._load_task = asyncio.create_task(self._load(), name="load-engines")

    async def _load(self) -> None:
        """Models, then their clients, then the domain and the agents' knowledge base."""
        try:
            from voicebot.dialog.domain import load_domain

            server = self.settings.server
            factory, loader = resolve_session_factory(server.session_factory, server.engines_loader)
            if self.settings.engines.backend == "ray" and not server.engines_loader:  # models on Ray Serve
                from voicebot.engines_ray.worker import RayEngines

                loader = RayEngines.load
            engines = await asyncio.to_thread(loader, self.settings)
            self.domain = await asyncio.to_thread(load_domain, self.settings.dialog.domain)
            clients = engines.clients()
            await clients.start()
            self.engines, self.clients = engines, clients
            self.metrics.watch_engines(clients)
            self.hub.kb = await asyncio.to_thread(KnowledgeBase.from_domain, self.domain, engines.encoder)
            self.session_factory = factory
        except Exception as exc:  # noqa: BLE001 - reported on /readyz and by the serve command
            self.state = "failed"
            self.failure = f"{type(exc).__name__}: {exc}"
            log.error("loading the models failed: %s", self.failure)
            if self.on_fatal is not None:
                self.on_fatal(exc)
            return
        if self.state == "loading":
            self.state = "ready"
            log.info("ready: %s", ", ".join(f"{k} {v:.1f}s" for k, v in getattr(engines, "load_seconds", {}).items()))
            if self.on_ready is not None:
                await self.on_ready(self)

    def new_session(self, call_id: str, **kwargs: Any) -> Any:
        if self.session_factory is None or self.clients is None:
            raise RuntimeError("the server is not ready")
        return self.session_factory(self.clients, self.settings, call_id, domain=self.domain, realtime=True, **kwargs)

    def reserve_line(self) -> bool:
        """Hold a line for a caller socket about to be accepted; False: every line is taken."""
        if self.hub.full or len(self.hub.calls) + self.reserved_lines >= self.settings.server.max_calls:
            return False
        self.reserved_lines += 1
        return True

    def release_line(self) -> None:
        """The socket's call opened (it now counts in the hub) or the socket went away."""
        self.reserved_lines = max(0, self.reserved_lines - 1)

    async def drain(self) -> None:
        """Stop taking calls; end every call with ``shutdown`` once its in-flight events are out."""
        if self.state in ("shutting_down", "stopped"):
            return
        self.state = "shutting_down"
        self.hub.accepting = False
        calls = list(self.connections)
        if calls:
            log.info("shutting down: ending %d call(s)", len(calls))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    asyncio.gather(*(c.shutdown() for c in calls), return_exceptions=True),
                    self.settings.server.shutdown_timeout_s,
                )
        for agent in list(self.hub.agents):
            agent.close(1001, "server shutting down")

    async def shutdown(self) -> None:
        await self.drain()
        if self._load_task is not None and not self._load_task.done():
            self._load_task.cancel()
        await self.hub.aclose()
        if self.federation is not None:
            await self.federation.aclose()  # after the drain: the calls' last updates still go out
        if self.clients is not None:
            with contextlib.suppress(Exception):
                await self.clients.aclose()
        for task in list(self.transfers):
            task.cancel()
        await self.transfer.aclose()
        await self.loop_lag.aclose()
        if self.store is not None:
            await asyncio.to_thread(self.store.close)
        self.state = "stopped"

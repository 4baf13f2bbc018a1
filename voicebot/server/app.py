"""The voicebot web app: one process, many calls, models loaded once.

``ServerRuntime`` holds what the endpoints share (settings, engines, hub, store,
metrics, agent tokens) and its life: *loading* (the HTTP side is up, ``/readyz``
says 503, calls are refused with ``not_ready``), *ready*, *shutting_down*
(``drain``: no new calls, every call ends with ``shutdown`` after delivering what
is queued), *stopped*; or *failed* when a model cannot be loaded.
``create_app`` builds the Starlette app around a runtime.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib import resources
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles

from voicebot.assist.kb import KnowledgeBase
from voicebot.config import Settings
from voicebot.server.agent import AgentAuth, agent_endpoint
from voicebot.server.hub import CallHub
from voicebot.server.metrics import ServerMetrics
from voicebot.server.native import native_endpoint
from voicebot.server.twilio import twilio_endpoint
from voicebot.store.sqlite import CallStore

log = logging.getLogger(__name__)

STATIC_DIR = Path(str(resources.files("voicebot.server").joinpath("static")))
SessionFactory = Callable[..., Any]


def resolve_session_factory(spec: str) -> tuple[SessionFactory, Callable[[Settings], Any]]:
    """The session class and its engine loader: ``"module:attr"``, or the real pipeline when empty."""
    if not spec:
        from voicebot.dialog.session import CallSession
        from voicebot.engines import Engines

        return CallSession, Engines.load
    module_name, _, attr = spec.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in (attr or "CallSession").split("."):
        obj = getattr(obj, part)
    loader = getattr(obj, "load_engines", None)
    if loader is None:
        from voicebot.engines import Engines

        loader = Engines.load
    return obj, loader


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
        self.state = "starting"
        self.failure = ""
        self.on_ready = on_ready
        self.on_fatal = on_fatal
        self.store: CallStore | None = None
        self.hub = CallHub(settings, self.metrics)
        self.engines: Any = None
        self.session_factory: SessionFactory | None = None
        self.connections: set[Any] = set()  # CallConnection; Any avoids an import cycle
        self._load_task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ life
    async def startup(self) -> None:
        """Open the store, then load the models in the background (``/readyz`` says when)."""
        self.store = await asyncio.to_thread(CallStore, self.settings.store.path)
        self.store.recover_interrupted()
        self.hub.store = self.store
        self.state = "loading"
        self._load_task = asyncio.create_task(self._load(), name="load-engines")

    async def _load(self) -> None:
        try:
            factory, loader = resolve_session_factory(self.settings.server.session_factory)
            engines = await asyncio.to_thread(loader, self.settings)
            if hasattr(engines, "start"):
                await engines.start()
            self.hub.kb = await asyncio.to_thread(self._load_kb, engines)
            self.engines, self.session_factory = engines, factory
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

    def _load_kb(self, engines: Any) -> KnowledgeBase:
        """The agents' knowledge base from the engines' domain, else from the configured domain folder."""
        encoder = getattr(engines, "encoder", None)
        domain = getattr(engines, "domain", None)
        if domain is None:  # a custom session class that brings no domain: load it ourselves
            try:
                from voicebot.dialog.domain import load_domain

                domain = load_domain(self.settings.dialog.domain)
            except Exception as exc:  # noqa: BLE001 - no domain means no suggestions, not no server
                log.warning("domain %s not loadable (%s); reading kb.toml alone", self.settings.dialog.domain, exc)
                return KnowledgeBase.load(Path(self.settings.dialog.domain) / "kb.toml", encoder)
        return KnowledgeBase.from_domain(domain, encoder)

    def new_session(self, call_id: str, **kwargs: Any) -> Any:
        if self.session_factory is None:
            raise RuntimeError("the server is not ready")
        return self.session_factory(self.engines, self.settings, call_id, realtime=True, **kwargs)

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
        if self.engines is not None and hasattr(self.engines, "aclose"):
            with contextlib.suppress(Exception):
                await self.engines.aclose()
        if self.store is not None:
            await asyncio.to_thread(self.store.close)
        self.state = "stopped"


# ---------------------------------------------------------------------- HTTP endpoints


async def healthz(request: Request) -> Response:
    runtime: ServerRuntime = request.app.state.runtime
    return JSONResponse({"status": "ok", "state": runtime.state, "active_calls": len(runtime.hub.calls)})


async def readyz(request: Request) -> Response:
    runtime: ServerRuntime = request.app.state.runtime
    body: dict[str, Any] = {"status": runtime.state}
    if runtime.failure:
        body["error"] = runtime.failure
    return JSONResponse(body, status_code=200 if runtime.state == "ready" else 503)


async def metrics(request: Request) -> Response:
    data, content_type = request.app.state.runtime.metrics.render()
    return Response(data, media_type=content_type)


async def agent_page(request: Request) -> Response:
    return FileResponse(STATIC_DIR / "agent.html", headers={"Cache-Control": "no-cache"})


async def phone_page(request: Request) -> Response:
    return FileResponse(STATIC_DIR / "phone.html", headers={"Cache-Control": "no-cache"})


def create_app(runtime: ServerRuntime) -> Starlette:
    """The Starlette app for one runtime (``app.state.runtime``)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await runtime.startup()
        try:
            yield
        finally:
            await runtime.shutdown()

    routes = [
        Route("/", agent_page),
        Route("/phone", phone_page),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics),
        WebSocketRoute("/v1/call", native_endpoint),
        WebSocketRoute("/v1/twilio", twilio_endpoint),
        WebSocketRoute("/v1/agent", agent_endpoint),
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.runtime = runtime
    return app

"""The voicebot web app: one process, many calls, models loaded once.

``create_app`` builds the Starlette app (HTTP endpoints, the three websockets,
the static pages) around a ``ServerRuntime`` (``voicebot.server.runtime``: what
the endpoints share, and its life). This module is the top of the server's
import graph: nothing in ``voicebot.server`` imports it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles

from voicebot.server.access import SecurityMiddleware
from voicebot.server.agent import agent_endpoint
from voicebot.server.native import native_endpoint
from voicebot.server.runtime import ServerRuntime, resolve_session_factory
from voicebot.server.twilio import twilio_endpoint

__all__ = ["ServerRuntime", "create_app", "resolve_session_factory"]

log = logging.getLogger(__name__)

STATIC_DIR = Path(str(resources.files("voicebot.server").joinpath("static")))


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
    runtime: ServerRuntime = request.app.state.runtime
    if not runtime.access.metrics_ok(request.headers):
        return JSONResponse({"error": "unauthorized"}, status_code=401, headers={"WWW-Authenticate": "Bearer"})
    data, content_type = runtime.metrics.render()
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
    # Security headers on every HTTP response; browsers from Origins not allowed get 403.
    app = Starlette(routes=routes, lifespan=lifespan,
                    middleware=[Middleware(SecurityMiddleware, policy=runtime.access)])
    app.state.runtime = runtime
    return app

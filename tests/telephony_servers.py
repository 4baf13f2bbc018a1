"""Real local HTTP servers for the telephony tests: a webhook receiver and a fake of Twilio's REST API.

Each runs a Starlette app under uvicorn in its own thread on 127.0.0.1 (a free port), so the
code under test talks real HTTP over a real socket. Both check what they get the way the
real counterpart would (the receiver its own HMAC, the fake Twilio basic auth and the form)
and answer from a script: a list of statuses to give in turn, or "stall" to never answer.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

STALL = "stall"


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    verdict: str  # what the server made of it: "ok", or why it refused
    form: dict[str, str] = field(default_factory=dict)


class LocalHttpServer:
    """A Starlette app on a real socket; requests are recorded, answers scripted."""

    def __init__(self, routes: list[Route]) -> None:
        self.received: list[Received] = []
        self.script: list[int | str] = []  # consumed one per request; empty = 200
        self._cond = threading.Condition()
        self._release: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        config = uvicorn.Config(Starlette(routes=routes, lifespan=self._lifespan), host="127.0.0.1", port=0,
                                log_config=None, access_log=False, lifespan="on", timeout_graceful_shutdown=5)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="telephony-fake", daemon=True)
        self.port = 0

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        self._loop, self._release = asyncio.get_running_loop(), asyncio.Event()
        yield

    def __enter__(self) -> LocalHttpServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("local HTTP server did not start")
            time.sleep(0.01)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._release is not None:
            self._loop.call_soon_threadsafe(self._release.set)  # let stalled handlers finish
        self.server.should_exit = True
        self.thread.join(30)

    def url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def record(self, item: Received) -> int | str:
        with self._cond:
            self.received.append(item)
            self._cond.notify_all()
            return self.script.pop(0) if self.script else 200

    async def stall(self) -> None:
        assert self._release is not None
        await self._release.wait()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """Block until ``count`` requests arrived (a condition, not a sleep)."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.received) >= count, timeout):
                raise AssertionError(f"expected {count} requests, got {len(self.received)}")
            return list(self.received)


class WebhookReceiver(LocalHttpServer):
    """Accepts ``POST /hook`` and checks ``X-Voicebot-Signature`` with its own HMAC-SHA256."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        super().__init__([Route("/hook", self._hook, methods=["POST"])])

    def expected_signature(self, body: bytes) -> str:
        return "sha256=" + hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()

    async def _hook(self, request: Request) -> Response:
        body = await request.body()
        headers = {k.lower(): v for k, v in request.headers.items()}
        signature = headers.get("x-voicebot-signature", "")
        verdict = "ok" if hmac.compare_digest(signature, self.expected_signature(body)) else "bad signature"
        answer = self.record(Received(request.url.path, headers, body, verdict))
        if answer == STALL:
            await self.stall()
            answer = 200
        if verdict != "ok":
            return JSONResponse({"error": verdict}, status_code=401)
        return JSONResponse({"received": True}, status_code=int(answer))

    def payloads(self) -> list[dict[str, Any]]:
        return [json.loads(r.body) for r in self.received]


class FakeTwilio(LocalHttpServer):
    """``POST /2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json`` as Twilio answers it."""

    def __init__(self, account_sid: str, auth_token: str, live_calls: set[str]) -> None:
        self.account_sid, self.auth_token, self.live_calls = account_sid, auth_token, live_calls
        super().__init__([Route("/2010-04-01/Accounts/{account}/Calls/{call}.json", self._update, methods=["POST"])])

    def _authorized(self, request: Request) -> bool:
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        user, _, password = base64.b64decode(encoded).decode().partition(":")
        return user == self.account_sid and password == self.auth_token

    async def _update(self, request: Request) -> Response:
        body = await request.body()
        headers = {k.lower(): v for k, v in request.headers.items()}
        form = {k: v[0] for k, v in parse_qs(body.decode("ascii")).items()}
        call = request.path_params["call"]
        verdict = "ok"
        if not self._authorized(request):
            verdict = "unauthorized"
        elif not headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            verdict = "not a form"
        elif call not in self.live_calls:
            verdict = "not in progress"
        answer = self.record(Received(request.url.path, headers, body, verdict, form))
        if answer == STALL:
            await self.stall()
        if verdict == "unauthorized":
            return JSONResponse({"code": 20003, "message": "Authenticate", "status": 401}, status_code=401)
        if verdict == "not a form":
            return JSONResponse({"code": 20001, "message": "Bad request", "status": 400}, status_code=400)
        if verdict == "not in progress":
            return JSONResponse({"code": 21220, "message": "Call is not in-progress. Cannot redirect.",
                                 "status": 400}, status_code=400)
        if answer != 200 and answer != STALL:
            return JSONResponse({"code": 20500, "message": "Internal Server Error", "status": answer},
                                status_code=int(answer))
        return JSONResponse({"sid": call, "account_sid": request.path_params["account"], "status": "in-progress",
                             "api_version": "2010-04-01"})

"""The agents' websocket, ``/v1/agent`` (protocol ``voicebot.agent.v1``).

An agent authenticates with ``?token=...`` or a first ``{"type": "auth", "token": ...}``
message, gets the list of calls, subscribes to one call or to all (``"*"``) and
then receives every event of those calls as it happens, after a replay of what
happened before. ``takeover`` hands a call to the agent (the bot stops
speaking), ``release`` gives it back. A wrong or missing token gets an
``unauthorized`` error and close code 4401; the token is never logged, only a
short hash of it.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import secrets
from typing import TYPE_CHECKING, Any

from starlette.websockets import WebSocket

from voicebot.server.hub import CallRejected
from voicebot.server.outbox import Outbox, error_event

if TYPE_CHECKING:
    from voicebot.server.app import ServerRuntime

log = logging.getLogger(__name__)

PROTOCOL = "voicebot.agent.v1"
CLOSE_UNAUTHORIZED = 4401


def fingerprint(token: str | None) -> str:
    """A short, non-reversible name for a token, fit for logs."""
    if not token:
        return "none"
    return hashlib.sha256(token.encode("utf-8")).hexdigest()[:8]


class AgentAuth:
    """The accepted agent tokens: from config/env, or one generated at start."""

    def __init__(self, tokens: str) -> None:
        self.tokens = [t.strip() for t in tokens.split(",") if t.strip()]
        self.generated = not self.tokens
        if self.generated:
            self.tokens = [secrets.token_urlsafe(18)]

    def check(self, token: Any) -> bool:
        if not isinstance(token, str) or not token:
            return False
        # Compare against every token in constant time, so timing does not tell which matched.
        matches = [hmac.compare_digest(token.encode(), t.encode()) for t in self.tokens]
        return any(matches)


class AgentConnection:
    """One agent's websocket: authentication, subscriptions, takeover/release."""

    def __init__(self, ws: WebSocket, runtime: ServerRuntime) -> None:
        self.ws = ws
        self.runtime = runtime
        settings = runtime.settings.server
        self.settings = settings
        peer = f"{ws.client.host}:{ws.client.port}" if ws.client else "?"
        self.peer = peer
        self.agent_id = "agent"
        self.subscriptions: set[str] = set()
        self.outbox = Outbox(ws, maxsize=settings.send_queue_max, send_timeout=settings.send_timeout_s,
                             name=f"agent {peer}", on_slow=self._on_slow)
        self.errors = 0
        self._serve_task: asyncio.Task[Any] | None = None
        self._drop_task: asyncio.Task[None] | None = None

    def deliver(self, event: dict[str, Any]) -> bool:
        return self.outbox.send_event(event)

    def close(self, code: int, reason: str) -> None:
        """Close after what is queued has been sent (server shutdown)."""
        self.outbox.close(code, reason)

    def _on_slow(self) -> None:
        self.runtime.hub.remove_agent(self)
        self._drop_task = asyncio.create_task(self._drop_slow_client())

    async def _drop_slow_client(self) -> None:
        await self.outbox.wait_closed(grace=self.settings.send_timeout_s * 2 + 1)
        if self._serve_task is not None and not self._serve_task.done():
            self._serve_task.cancel()  # it may wait forever on a client that neither reads nor writes

    async def serve(self) -> None:
        self._serve_task = asyncio.current_task()
        await self.ws.accept()
        self.outbox.start()
        try:
            if await self._authenticate():
                await self._loop()
        except asyncio.CancelledError:
            if not self.outbox.slow:
                raise  # not ours: the server is stopping
        finally:
            self.runtime.hub.remove_agent(self)
            self.outbox.close(1000)
            await self.outbox.wait_closed(grace=2.0)

    async def _authenticate(self) -> bool:
        token: Any = self.ws.query_params.get("token")
        name: Any = self.ws.query_params.get("agent")
        if token is None:
            try:
                message = await asyncio.wait_for(self.ws.receive(), self.settings.auth_timeout_s)
            except TimeoutError:
                message = {"type": "timeout"}
            if message.get("type") == "websocket.disconnect":
                return False
            try:
                auth = json.loads(message.get("text") or "")
            except json.JSONDecodeError:
                auth = None
            if isinstance(auth, dict) and auth.get("type") == "auth":
                token, name = auth.get("token"), auth.get("agent") or name
        if not self.runtime.auth.check(token):
            log.warning("agent from %s refused: bad or missing token (sha256 %s)", self.peer,
                        fingerprint(token if isinstance(token, str) else None))
            self.runtime.metrics.errors.labels("unauthorized").inc()
            self.outbox.send_event(error_event("unauthorized", "a valid agent token is required", fatal=True))
            self.outbox.close(CLOSE_UNAUTHORIZED, "unauthorized")
            return False
        self.agent_id = str(name)[:64] if isinstance(name, str) and name.strip() else f"agent-{fingerprint(token)[:6]}"
        self.runtime.hub.add_agent(self)
        log.info("agent %s connected from %s (token sha256 %s)", self.agent_id, self.peer, fingerprint(token))
        self.deliver({"type": "auth.ok", "agent_id": self.agent_id, "protocol": PROTOCOL})
        self.deliver({"type": "calls", "calls": self.runtime.hub.list_calls()})
        return True

    async def _loop(self) -> None:
        while True:
            message = await self.ws.receive()
            if message["type"] == "websocket.disconnect" or self.outbox.slow:
                return
            text = message.get("text")
            size = len(text.encode("utf-8", "replace")) if text is not None else len(message.get("bytes") or b"")
            if size > self.settings.max_frame_bytes:
                self._error("frame_too_large", f"a message may have at most {self.settings.max_frame_bytes} bytes")
                continue
            if text is None:
                self._error("bad_json", "agents send JSON text messages, not binary")
                continue
            try:
                request = json.loads(text)
            except json.JSONDecodeError as exc:
                self._error("bad_json", f"not JSON ({exc.msg})")
                continue
            if not isinstance(request, dict):
                self._error("bad_json", "a message must be a JSON object with a \"type\"")
                continue
            await self._handle(request)
            if self.errors > self.settings.max_errors:
                self.outbox.close(1008, "too many errors")
                return

    async def _handle(self, request: dict[str, Any]) -> None:
        hub = self.runtime.hub
        rtype = request.get("type")
        call_id = request.get("call_id")
        if rtype == "list":
            self.deliver({"type": "calls", "calls": hub.list_calls()})
        elif rtype == "subscribe":
            self._subscribe(call_id)
        elif rtype == "unsubscribe":
            self.subscriptions.discard(str(call_id))
            self.deliver({"type": "unsubscribed", "call_id": call_id})
        elif rtype in ("takeover", "release"):
            try:
                if rtype == "takeover":
                    await hub.take_over(str(call_id), self.agent_id)
                else:
                    await hub.release(str(call_id), self.agent_id)
            except CallRejected as exc:
                self._error(exc.code, str(exc), call_id=call_id)
                return
            log.info("agent %s: %s of call %s", self.agent_id, rtype, call_id)
            self.deliver({"type": "ack", "action": rtype, "call_id": call_id})
        elif rtype == "ping":
            self.deliver({"type": "pong", "id": request.get("id")})
        elif rtype == "auth":
            self.deliver({"type": "auth.ok", "agent_id": self.agent_id, "protocol": PROTOCOL})
        else:
            self._error("unknown_type", f"unknown message type {rtype!r}; expected list, subscribe, "
                        "unsubscribe, takeover, release or ping")

    def _subscribe(self, call_id: Any) -> None:
        hub = self.runtime.hub
        if call_id == "*":
            self.subscriptions.add("*")
            self.deliver({"type": "subscribed", "call_id": "*"})
            for live in [*hub.calls.values(), *reversed(hub.recent)]:
                self.deliver({"type": "replay", "call_id": live.call_id, "call": live.summary(),
                              "events": hub.replay(live)})
            return
        call = hub.find(call_id) if isinstance(call_id, str) else None
        if call is None:
            self._error("unknown_call", f"no call {call_id!r}", call_id=call_id)
            return
        self.subscriptions.add(call.call_id)
        self.deliver({"type": "subscribed", "call_id": call.call_id})
        self.deliver({"type": "replay", "call_id": call.call_id, "call": call.summary(), "events": hub.replay(call)})

    def _error(self, code: str, message: str, **extra: Any) -> None:
        self.errors += 1
        self.runtime.metrics.errors.labels(code).inc()
        self.deliver(error_event(code, message, **extra))


async def agent_endpoint(ws: WebSocket) -> None:
    """``/v1/agent``: one agent's live view and controls."""
    await AgentConnection(ws, ws.app.state.runtime).serve()

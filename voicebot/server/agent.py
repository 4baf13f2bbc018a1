"""The agents' websocket, ``/v1/agent`` (protocol ``voicebot.agent.v1``).

An agent authenticates with ``?token=...`` or a first ``{"type": "auth", "token": ...}``
message, gets the list of calls, subscribes to one call or to all (``"*"``) and
then receives every event of those calls as it happens, after a replay of what
happened before. ``takeover`` hands a call to the agent (the bot stops
speaking), ``release`` gives it back. After a takeover, ``audio.start`` opens the
agent's voice on the call (``agent_voice.py``: binary frames both ways);
``wrapup`` records the agent's wrap-up code (``agent_wrapup.py``). A wrong or missing token gets an
``unauthorized`` error and close code 4401; the token is never logged, only a
short hash of it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from pydantic import BaseModel, ValidationError
from starlette.websockets import WebSocket

from voicebot.audio.codecs import AudioFormat
from voicebot.protocol.agent import (
    PROTOCOL,
    AckMessage,
    AudioStartMessage,
    AudioStopMessage,
    AuthMessage,
    AuthOkMessage,
    CallsMessage,
    ListMessage,
    ReleaseMessage,
    ReplayMessage,
    SubscribedMessage,
    SubscribeMessage,
    TakeoverMessage,
    UnsubscribedMessage,
    UnsubscribeMessage,
    WrapupMessage,
    parse_client_message,
)
from voicebot.protocol.base import Inbound, PingMessage, PongMessage, ProtocolError, decode_json
from voicebot.server.access import CLOSE_TOO_MANY_ATTEMPTS, CLOSE_UNAUTHORIZED
from voicebot.server.agent_voice import AgentVoice, VoiceRefused
from voicebot.server.agent_wrapup import WrapupRefused, record_wrapup, wrapup_codes
from voicebot.server.auth import AgentAuth, fingerprint
from voicebot.server.hub import CallRejected
from voicebot.server.outbox import Outbox, error_event
from voicebot.server.runtime import CallRuntime

__all__ = ["PROTOCOL", "AgentAuth", "AgentConnection", "agent_endpoint", "fingerprint"]

log = logging.getLogger(__name__)


class AgentConnection:
    """One agent's websocket: authentication, subscriptions, takeover/release."""

    def __init__(self, ws: WebSocket, runtime: CallRuntime) -> None:
        self.ws = ws
        self.runtime = runtime
        settings = runtime.settings.server
        self.settings = settings
        peer = f"{ws.client.host}:{ws.client.port}" if ws.client else "?"
        self.peer = peer
        self.address = ws.client.host if ws.client else "?"  # failed logins are counted per address
        self.agent_id = "agent"
        self.subscriptions: set[str] = set()
        self.held: set[str] = set()  # calls this connection took over (and has not released)
        self.voice: AgentVoice | None = None  # the agent's voice channel, on one call at a time
        self.outbox = Outbox(ws, maxsize=settings.send_queue_max, send_timeout=settings.send_timeout_s,
                             name=f"agent {peer}", on_slow=self._on_slow, lag=runtime.loop_lag)
        self.errors = 0
        self._serve_task: asyncio.Task[Any] | None = None
        self._drop_task: asyncio.Task[None] | None = None

    def deliver(self, message: BaseModel) -> bool:
        return self.outbox.send_event(message)

    def _send(self, item: BaseModel | bytes) -> bool:
        """The voice channel's sink: typed messages as JSON, audio as binary frames."""
        return self.outbox.put(item) if isinstance(item, bytes) else self.outbox.send_event(item)

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
            await self._stop_voice("stopped", notify=False)
            self.outbox.close(1000)
            await self.outbox.wait_closed(grace=2.0)

    async def _authenticate(self) -> bool:
        throttle = self.runtime.access.logins
        if throttle.blocked(self.address):
            log.warning("agent from %s refused: too many failed logins", self.peer)
            self.runtime.metrics.errors.labels("too_many_attempts").inc()
            self.outbox.send_event(error_event("too_many_attempts", "too many failed logins from this address; "
                                               "try again later", fatal=True))
            self.outbox.close(CLOSE_TOO_MANY_ATTEMPTS, "too many attempts")
            return False
        token: str | None = self.ws.query_params.get("token")
        name: str | None = self.ws.query_params.get("agent")
        if token is None:
            try:
                message = await asyncio.wait_for(self.ws.receive(), self.settings.auth_timeout_s)
            except TimeoutError:
                message = {"type": "timeout"}
            if message.get("type") == "websocket.disconnect":
                return False
            auth = _auth_message(message.get("text"), self.settings.max_frame_bytes)
            if auth is not None:
                token, name = auth.token, auth.agent or name
        if not self.runtime.auth.check(token):
            throttle.failed(self.address)
            log.warning("agent from %s refused: bad or missing token (sha256 %s)", self.peer,
                        fingerprint(token))
            self.runtime.metrics.errors.labels("unauthorized").inc()
            self.outbox.send_event(error_event("unauthorized", "a valid agent token is required", fatal=True))
            self.outbox.close(CLOSE_UNAUTHORIZED, "unauthorized")
            return False
        throttle.succeeded(self.address)
        self.agent_id = name[:64] if name and name.strip() else f"agent-{fingerprint(token)[:6]}"
        self.runtime.hub.add_agent(self)
        log.info("agent %s connected from %s (token sha256 %s)", self.agent_id, self.peer, fingerprint(token))
        self.deliver(AuthOkMessage(agent_id=self.agent_id, wrapup_codes=wrapup_codes(self.settings.wrapup_codes)))
        self.deliver(CallsMessage(calls=self.runtime.hub.list_calls()))
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
            elif text is None:
                await self._on_audio(message.get("bytes") or b"")
            else:
                try:
                    request = parse_client_message(text)
                except ProtocolError as exc:
                    self._error(exc.code, exc.message)
                else:
                    await self._handle(request)
            # Every kind of error counts, bad JSON included.
            if self.errors > self.settings.max_errors:
                self.outbox.close(1008, "too many errors")
                return

    async def _handle(self, request: Inbound) -> None:
        hub = self.runtime.hub
        if isinstance(request, ListMessage):
            self.deliver(CallsMessage(calls=hub.list_calls()))
        elif isinstance(request, SubscribeMessage):
            self._subscribe(request.call_id)
        elif isinstance(request, UnsubscribeMessage):
            self.subscriptions.discard(request.call_id)
            self.deliver(UnsubscribedMessage(call_id=request.call_id))
        elif isinstance(request, (TakeoverMessage, ReleaseMessage)):
            call_id = request.call_id
            try:
                if isinstance(request, TakeoverMessage):
                    await hub.take_over(call_id, self.agent_id)
                    self.held.add(call_id)
                else:
                    if self.voice is not None and self.voice.call.call_id == call_id:
                        await self._stop_voice("released")
                    await hub.release(call_id, self.agent_id)
                    self.held.discard(call_id)
            except CallRejected as exc:
                self._error(exc.code, str(exc), call_id=call_id)
                return
            log.info("agent %s: %s of call %s", self.agent_id, request.type, call_id)
            self.deliver(AckMessage(action=request.type, call_id=call_id))
        elif isinstance(request, AudioStartMessage):
            await self._start_voice(request)
        elif isinstance(request, AudioStopMessage):
            if self.voice is not None and self.voice.call.call_id == request.call_id:
                await self._stop_voice("stopped")
        elif isinstance(request, WrapupMessage):
            try:
                record_wrapup(self.runtime, request, self.agent_id)
            except WrapupRefused as exc:
                self._error(exc.code, str(exc), call_id=request.call_id)
                return
            self.deliver(AckMessage(action="wrapup", call_id=request.call_id))
        elif isinstance(request, PingMessage):
            self.deliver(PongMessage(id=request.id))
        elif isinstance(request, AuthMessage):
            self.deliver(AuthOkMessage(agent_id=self.agent_id))

    # ------------------------------------------------------------------ the agent's voice
    async def _start_voice(self, request: AudioStartMessage) -> None:
        """Open the voice channel (one call at a time: a new one closes the one before)."""
        await self._stop_voice("stopped")
        call = self.runtime.hub.calls.get(request.call_id)
        try:
            self.voice = AgentVoice.start(
                self.runtime, call, self.agent_id, request.call_id in self.held,
                AudioFormat(request.encoding, request.sample_rate), self._send)
        except VoiceRefused as exc:
            self._error(exc.code, str(exc), call_id=request.call_id)

    async def _on_audio(self, data: bytes) -> None:
        voice = self.voice
        if voice is None:
            self._error("audio_before_start", "send \"audio.start\" for a call you took over before audio")
            return
        if not voice.held:
            # Released (by anyone), or the call ended: the channel closes; this frame is dropped.
            ended = voice.call.state == "ended"
            await self._stop_voice("ended" if ended else "released")
            return
        try:
            voice.on_bytes(data)
        except VoiceRefused as exc:
            self._error(exc.code, str(exc), call_id=voice.call.call_id)

    async def _stop_voice(self, reason: str, *, notify: bool = True) -> None:
        voice, self.voice = self.voice, None
        if voice is not None:
            await voice.stop(reason, notify=notify)

    def _subscribe(self, call_id: str) -> None:
        hub = self.runtime.hub
        if call_id == "*":
            self.subscriptions.add("*")
            self.deliver(SubscribedMessage(call_id="*"))
            for live in hub.replayable():  # this worker's calls and the other workers'
                self.deliver(ReplayMessage(call_id=live.call_id, call=live.summary(), events=hub.replay(live)))
            return
        call = hub.find(call_id)
        if call is None:
            self._error("unknown_call", f"no call {call_id!r}", call_id=call_id)
            return
        self.subscriptions.add(call.call_id)
        self.deliver(SubscribedMessage(call_id=call.call_id))
        self.deliver(ReplayMessage(call_id=call.call_id, call=call.summary(), events=hub.replay(call)))

    def _error(self, code: str, message: str, *, call_id: str = "") -> None:
        self.errors += 1
        self.runtime.metrics.errors.labels(code).inc()
        self.deliver(error_event(code, message, call_id=call_id))


def _auth_message(text: str | None, max_bytes: int) -> AuthMessage | None:
    """The first message as an ``auth`` request, or None (which then fails the token check)."""
    if not text or len(text) > max_bytes:
        return None
    try:
        message = decode_json(text)
        return AuthMessage.model_validate(message) if message.get("type") == "auth" else None
    except (ProtocolError, ValidationError):
        return None


async def agent_endpoint(ws: WebSocket) -> None:
    """``/v1/agent``: one agent's live view and controls."""
    await AgentConnection(ws, ws.app.state.runtime).serve()

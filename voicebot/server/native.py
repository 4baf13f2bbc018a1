"""The native caller protocol, ``voicebot.v1`` (see docs/PROTOCOL.md).

Client → server: a JSON ``start`` (encoding, sample_rate, optional call_id and
caller metadata), then binary frames of audio in that format, then ``stop``.
Server → client: JSON events (``call.started``, transcripts, ``intent``,
``bot.utterance``, ``handoff``, ``call.end``, ``error``, ...) and binary bot audio
in the caller's own encoding and rate, in order. The messages and their
validation live in ``voicebot.protocol.native``.
"""

from __future__ import annotations

import uuid

from starlette.websockets import WebSocket

from voicebot.audio.codecs import AudioFormat
from voicebot.protocol.base import PingMessage, PongMessage, ProtocolError
from voicebot.protocol.events import CallEvent, CallStartedEvent
from voicebot.protocol.native import PROTOCOL, StartMessage, StopMessage, parse_client_message
from voicebot.server.access import bearer
from voicebot.server.calls import CallConnection


class NativeConnection(CallConnection):
    """One call over the native protocol."""

    protocol = PROTOCOL
    authorized = False

    async def authorize(self) -> bool:
        """With ``server.caller_tokens``: an ``Authorization: Bearer`` header on the upgrade, else a
        ``token`` in ``start`` (checked there). Never a token in the URL."""
        access = self.runtime.access
        if not access.callers_need_token:
            self.authorized = True
            return True
        token = bearer(self.ws.headers)
        if token is None:
            return True  # the start message must carry it
        if not access.caller_token_ok(token):
            await self.refuse("a valid caller token is required (Authorization: Bearer, or \"token\" in start)")
            return False
        self.authorized = True
        return True

    async def accept(self) -> None:
        # Browsers may name the protocol in Sec-WebSocket-Protocol; echo it back if so.
        offered = self.ws.scope.get("subprotocols") or []
        await self.ws.accept(subprotocol=PROTOCOL if PROTOCOL in offered else None)

    async def on_text(self, text: str) -> None:
        try:
            message = parse_client_message(text)
        except ProtocolError as exc:
            if exc.kind == "start" and self.call is not None:
                await self.fail("already_started", "this connection already carries a call; open a new one")
            else:
                await self.reject(exc)
            return
        if isinstance(message, StartMessage):
            await self._on_start(message)
        elif isinstance(message, StopMessage):
            if self.call is None:
                await self.fail("not_started", "\"stop\" before \"start\"")
                return
            self.stopped = True
            await self.close(1000, "completed")
        elif isinstance(message, PingMessage):
            self.outbox.send_event(PongMessage(id=message.id))

    async def on_bytes(self, data: bytes) -> None:
        if self.call is None:
            await self.fail("audio_before_start", "binary audio arrived before the \"start\" message; "
                            "send {\"type\": \"start\", \"encoding\": ..., \"sample_rate\": ...} first")
            return
        if not data:
            return
        self.push_audio(data)

    def deliver_event(self, event: CallEvent) -> None:
        self.outbox.send_event(event)

    def deliver_audio(self, data: bytes) -> None:
        self.outbox.put(data)

    async def _on_start(self, message: StartMessage) -> None:
        if self.call is not None:
            await self.fail("already_started", "this connection already carries a call; open a new one")
            return
        if not self.authorized:
            if not self.runtime.access.caller_token_ok(message.token):
                await self.refuse("a valid caller token is required (Authorization: Bearer, or \"token\" in start)")
                return
            self.authorized = True
        fmt = AudioFormat(message.encoding, message.sample_rate)  # validated by the message model
        await self.start_call(
            message.call_id or uuid.uuid4().hex, message.caller or {}, fmt, fmt,
            CallStartedEvent(protocol=PROTOCOL, encoding=fmt.encoding, sample_rate=fmt.sample_rate),
        )


async def native_endpoint(ws: WebSocket) -> None:
    """``/v1/call``: one caller, one call."""
    await NativeConnection(ws, ws.app.state.runtime).serve()

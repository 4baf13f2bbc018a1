"""A Twilio Media Streams compatible endpoint (bidirectional ``<Connect><Stream>``).

Inbound: ``connected``, ``start`` (streamSid, callSid, mediaFormat,
customParameters), ``media`` (base64 µ-law 8 kHz), ``mark``, ``dtmf``, ``stop``.
Outbound: ``media`` with the bot's audio (base64 µ-law 8 kHz), a ``mark`` after
each bot utterance (Twilio echoes it back once the caller has heard it) and
``clear`` on a barge-in pause or stop (Twilio drops what it has buffered). Errors go out as
``{"event": "error", "type": "error", "code": ..., "message": ...}``. Twilio's
messages carry ``event``, not ``type``: on this endpoint Twilio's shape wins.
The messages and their validation live in ``voicebot.protocol.twilio``.
"""

from __future__ import annotations

import base64
import re
from typing import Any

from starlette.websockets import WebSocket

from voicebot.audio.codecs import AudioFormat
from voicebot.protocol.base import ProtocolError, to_json
from voicebot.protocol.events import (
    BargeInEvent,
    BotAudioEndEvent,
    CallEvent,
    CallStartedEvent,
    DtmfEvent,
    ErrorEvent,
    PlaybackMarkEvent,
)
from voicebot.protocol.twilio import (
    PROTOCOL,
    ClearMessage,
    DtmfMessage,
    MarkMessage,
    MarkName,
    MediaMessage,
    OutMarkMessage,
    OutMedia,
    OutMediaMessage,
    StartMessage,
    StopMessage,
    TwilioErrorMessage,
    parse_client_message,
)
from voicebot.server.calls import CLOSE_POLICY, CallConnection
from voicebot.server.runtime import CallRuntime

_SID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")


class TwilioConnection(CallConnection):
    """One call from a Twilio (or Twilio-compatible) media stream."""

    protocol = PROTOCOL

    def __init__(self, ws: WebSocket, runtime: CallRuntime) -> None:
        super().__init__(ws, runtime)
        self.stream_sid: str | None = None
        self._marks = 0
        self._sids: tuple[str | None, str | None] = (None, None)  # call and account SID, from "start"

    async def authorize(self) -> bool:
        """With ``server.twilio_validate``: Twilio's ``X-Twilio-Signature`` on the upgrade request."""
        if self.runtime.access.twilio_ok(self.ws.scope, self.ws.headers):
            return True
        await self.refuse("the X-Twilio-Signature of this request is missing or does not match")
        return False

    def encode_error(self, event: ErrorEvent) -> str:
        return to_json(TwilioErrorMessage(**dict(event), streamSid=self.stream_sid))

    async def on_text(self, text: str) -> None:
        try:
            message: Any = parse_client_message(text)
        except ProtocolError as exc:
            if exc.kind == "media" and self.call is None:
                await self.fail("audio_before_start", "\"media\" arrived before \"start\"")
            elif exc.kind == "start" and self.call is not None:
                await self.fail("already_started", "this stream already started")
            else:
                await self.reject(exc)
            return
        if isinstance(message, MediaMessage):
            self._on_media(message)
        elif isinstance(message, StartMessage):
            await self._on_start(message)
        elif isinstance(message, MarkMessage):
            if self.call is not None:
                self.runtime.hub.publish(self.call, PlaybackMarkEvent(name=message.mark.name))
        elif isinstance(message, DtmfMessage):
            if self.call is not None:
                self.runtime.hub.publish(self.call, DtmfEvent(digit=message.dtmf.digit))
        elif isinstance(message, StopMessage):
            self.stopped = True
            await self.close(1000, "completed")
        # connected: nothing to do

    async def on_bytes(self, data: bytes) -> None:
        await self.fail("bad_audio", "Twilio media streams send audio as base64 in \"media\" messages, not binary")

    def _on_media(self, message: MediaMessage) -> None:
        if self.call is None:
            self.spawn(self.fail("audio_before_start", "\"media\" arrived before \"start\""))
            return
        if not message.media.inbound:
            return  # an echo of our own audio on a both-tracks stream
        data = message.media.audio
        if data:
            self.push_audio(data)

    async def _on_start(self, message: StartMessage) -> None:
        if self.call is not None:
            await self.fail("already_started", "this stream already started")
            return
        start = message.start
        fmt = AudioFormat(start.mediaFormat.encoding, start.mediaFormat.sampleRate)  # validated by the model
        self.stream_sid = start.streamSid or message.streamSid
        call_id = next((s for s in (start.callSid, self.stream_sid) if s and _SID.match(s)), None)
        if call_id is None:
            await self.fail("bad_start", "\"start\" needs a streamSid or callSid of 1-64 letters, digits, . _ : -",
                            close=CLOSE_POLICY)
            return
        self._sids = (start.callSid, start.accountSid)
        caller: dict[str, Any] = dict(start.customParameters)
        if start.callSid is not None:
            caller.setdefault("call_sid", start.callSid)
        await self.start_call(
            call_id, caller, fmt, fmt,
            CallStartedEvent(protocol=PROTOCOL, encoding=fmt.encoding, sample_rate=fmt.sample_rate,
                             stream_sid=self.stream_sid),
        )

    def twilio_sids(self) -> tuple[str | None, str | None]:
        return self._sids

    def deliver_event(self, event: CallEvent) -> None:
        # Twilio understands only its own messages; voicebot events go to agents and the store.
        if isinstance(event, ErrorEvent):
            self.outbox.put(self.encode_error(event))

    def deliver_audio(self, data: bytes) -> None:
        self.outbox.send_event(OutMediaMessage(
            streamSid=self.stream_sid, media=OutMedia(payload=base64.b64encode(data).decode("ascii"))))

    def on_call_event(self, event: CallEvent) -> None:
        if isinstance(event, BotAudioEndEvent):
            self._marks += 1
            self.outbox.send_event(OutMarkMessage(streamSid=self.stream_sid, mark=MarkName(name=f"bot-{self._marks}")))
        elif isinstance(event, BargeInEvent) and event.action in ("paused", "stopped"):
            # Bot audio runs ahead of real time (tts.playback_lead_ms): what Twilio holds would go on
            # talking over the caller. On a pause the player sends the dropped audio again if the
            # caller only said "mhm", so the caller hears every word once.
            self.outbox.send_event(ClearMessage(streamSid=self.stream_sid))


async def twilio_endpoint(ws: WebSocket) -> None:
    """``/v1/twilio``: one Twilio media stream, one call."""
    await TwilioConnection(ws, ws.app.state.runtime).serve()

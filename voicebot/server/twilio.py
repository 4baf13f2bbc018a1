"""A Twilio Media Streams compatible endpoint (bidirectional ``<Connect><Stream>``).

Inbound: ``connected``, ``start`` (streamSid, callSid, mediaFormat,
customParameters), ``media`` (base64 µ-law 8 kHz), ``mark``, ``dtmf``, ``stop``.
Outbound: ``media`` with the bot's audio (base64 µ-law 8 kHz), a ``mark`` after
each bot utterance (Twilio echoes it back once the caller has heard it) and
``clear`` on barge-in (Twilio drops what it has buffered). Errors go out as
``{"event": "error", "type": "error", "code": ..., "message": ...}``. Twilio's
messages carry ``event``, not ``type``: on this endpoint Twilio's shape wins.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from starlette.websockets import WebSocket

from voicebot.server.calls import CLOSE_UNSUPPORTED, CallConnection, parse_format
from voicebot.server.outbox import dumps

PROTOCOL = "twilio"
_SID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")


class TwilioConnection(CallConnection):
    """One call from a Twilio (or Twilio-compatible) media stream."""

    protocol = PROTOCOL

    def __init__(self, ws: WebSocket, runtime: Any) -> None:
        super().__init__(ws, runtime)
        self.stream_sid: str | None = None
        self._marks = 0

    def encode_error(self, event: dict[str, Any]) -> str:
        return dumps({"event": "error", **event, "streamSid": self.stream_sid})

    async def on_text(self, text: str) -> None:
        try:
            message = json.loads(text)
        except json.JSONDecodeError as exc:
            await self.fail("bad_json", f"a message must be one JSON object ({exc.msg} at {exc.pos})")
            return
        if not isinstance(message, dict):
            await self.fail("bad_json", "a message must be a JSON object with an \"event\"")
            return
        event = message.get("event")
        if event == "media":
            self._on_media(message)
        elif event == "start":
            await self._on_start(message)
        elif event == "connected":
            return
        elif event == "mark":
            name = (message.get("mark") or {}).get("name")
            if self.call is not None:
                self.runtime.hub.publish(self.call, {"type": "playback.mark", "name": name})
        elif event == "dtmf":
            digit = (message.get("dtmf") or {}).get("digit")
            if self.call is not None:
                self.runtime.hub.publish(self.call, {"type": "dtmf", "digit": digit})
        elif event == "stop":
            self.stopped = True
            await self.close(1000, "completed")
        else:
            await self.fail("unknown_type", f"unknown event {event!r}; expected connected, start, media, mark, "
                            "dtmf or stop")

    async def on_bytes(self, data: bytes) -> None:
        await self.fail("bad_audio", "Twilio media streams send audio as base64 in \"media\" messages, not binary")

    def _on_media(self, message: dict[str, Any]) -> None:
        media = message.get("media")
        if self.call is None:
            self.spawn(self.fail("audio_before_start", "\"media\" arrived before \"start\""))
            return
        if not isinstance(media, dict) or not isinstance(media.get("payload"), str):
            self.spawn(self.fail("bad_audio", "\"media\" needs media.payload (base64 audio)"))
            return
        if media.get("track", "inbound") not in ("inbound", "inbound_track"):
            return  # an echo of our own audio on a both-tracks stream
        try:
            data = base64.b64decode(media["payload"], validate=True)
        except (binascii.Error, ValueError):
            self.spawn(self.fail("bad_audio", "media.payload is not valid base64"))
            return
        if data:
            self.push_audio(data)

    async def _on_start(self, message: dict[str, Any]) -> None:
        if self.call is not None:
            await self.fail("already_started", "this stream already started")
            return
        start = message.get("start")
        if not isinstance(start, dict):
            await self.fail("bad_start", "\"start\" needs a \"start\" object", close=1008)
            return
        media_format = start.get("mediaFormat") or {}
        fmt, code, error = parse_format(media_format.get("encoding", "audio/x-mulaw"),
                                        media_format.get("sampleRate", 8000))
        if fmt is None:
            await self.fail(code, error, close=CLOSE_UNSUPPORTED)
            return
        sid = start.get("streamSid") or message.get("streamSid")
        self.stream_sid = sid if isinstance(sid, str) else None
        call_sid = start.get("callSid")
        call_id = next((s for s in (call_sid, self.stream_sid) if isinstance(s, str) and _SID.match(s)), None)
        if call_id is None:
            await self.fail("bad_start", "\"start\" needs a streamSid or callSid of 1-64 letters, digits, . _ : -",
                            close=1008)
            return
        params = start.get("customParameters")
        caller: dict[str, Any] = dict(params) if isinstance(params, dict) else {}
        if isinstance(call_sid, str):
            caller.setdefault("call_sid", call_sid)
        await self.start_call(
            call_id, caller, fmt, fmt,
            {"protocol": PROTOCOL, "encoding": fmt.encoding, "sample_rate": fmt.sample_rate,
             "stream_sid": self.stream_sid},
        )

    def deliver_event(self, event: dict[str, Any]) -> None:
        # Twilio understands only its own messages; voicebot events go to agents and the store.
        if event.get("type") == "error":
            self.outbox.put(self.encode_error(event))

    def deliver_audio(self, data: bytes) -> None:
        self.outbox.send_event({
            "event": "media", "streamSid": self.stream_sid,
            "media": {"payload": base64.b64encode(data).decode("ascii")},
        })

    def on_call_event(self, event: dict[str, Any]) -> None:
        etype = event.get("type")
        if etype == "bot.audio.end":
            self._marks += 1
            self.outbox.send_event({"event": "mark", "streamSid": self.stream_sid,
                                    "mark": {"name": f"bot-{self._marks}"}})
        elif etype == "bargein" and event.get("action") != "resumed":
            self.outbox.send_event({"event": "clear", "streamSid": self.stream_sid})


async def twilio_endpoint(ws: WebSocket) -> None:
    """``/v1/twilio``: one Twilio media stream, one call."""
    await TwilioConnection(ws, ws.app.state.runtime).serve()

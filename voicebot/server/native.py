"""The native caller protocol, ``voicebot.v1`` (see docs/PROTOCOL.md).

Client → server: a JSON ``start`` (encoding, sample_rate, optional call_id and
caller metadata), then binary frames of audio in that format, then ``stop``.
Server → client: JSON events (``call.started``, transcripts, ``intent``,
``bot.utterance``, ``handoff``, ``call.end``, ``error``, ...) and binary bot audio
in the caller's own encoding and rate, in order.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from starlette.websockets import WebSocket

from voicebot.server.calls import CLOSE_POLICY, CLOSE_UNSUPPORTED, CallConnection, parse_format

PROTOCOL = "voicebot.v1"
_CALL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")


class NativeConnection(CallConnection):
    """One call over the native protocol."""

    protocol = PROTOCOL

    async def accept(self) -> None:
        # Browsers may name the protocol in Sec-WebSocket-Protocol; echo it back if so.
        offered = self.ws.scope.get("subprotocols") or []
        await self.ws.accept(subprotocol=PROTOCOL if PROTOCOL in offered else None)

    async def on_text(self, text: str) -> None:
        try:
            message = json.loads(text)
        except json.JSONDecodeError as exc:
            await self.fail("bad_json", f"a text message must be one JSON object ({exc.msg} at {exc.pos})")
            return
        if not isinstance(message, dict):
            await self.fail("bad_json", "a text message must be a JSON object with a \"type\"")
            return
        mtype = message.get("type")
        if mtype == "start":
            await self._on_start(message)
        elif mtype == "stop":
            if self.call is None:
                await self.fail("not_started", "\"stop\" before \"start\"")
                return
            self.stopped = True
            await self.close(1000, "completed")
        elif mtype == "ping":
            self.outbox.send_event({"type": "pong", "id": message.get("id")})
        else:
            await self.fail("unknown_type", f"unknown message type {mtype!r}; expected start, stop or ping"
                            if mtype is not None else "a message needs a \"type\"")

    async def on_bytes(self, data: bytes) -> None:
        if self.call is None:
            await self.fail("audio_before_start", "binary audio arrived before the \"start\" message; "
                            "send {\"type\": \"start\", \"encoding\": ..., \"sample_rate\": ...} first")
            return
        if not data:
            return
        self.push_audio(data)

    def deliver_event(self, event: dict[str, Any]) -> None:
        self.outbox.send_event(event)

    def deliver_audio(self, data: bytes) -> None:
        self.outbox.put(data)

    async def _on_start(self, message: dict[str, Any]) -> None:
        if self.call is not None:
            await self.fail("already_started", "this connection already carries a call; open a new one")
            return
        protocol = message.get("protocol", PROTOCOL)
        if protocol != PROTOCOL:
            await self.fail("unsupported_protocol", f"protocol {protocol!r} is not supported; use {PROTOCOL!r}",
                            close=CLOSE_UNSUPPORTED)
            return
        if "encoding" not in message or "sample_rate" not in message:
            await self.fail("bad_start", "\"start\" needs \"encoding\" (pcm_s16le, mulaw, alaw) and \"sample_rate\"",
                            close=CLOSE_POLICY)
            return
        fmt, code, error = parse_format(message["encoding"], message["sample_rate"])
        if fmt is None:
            await self.fail(code, error, close=CLOSE_UNSUPPORTED)
            return
        channels = message.get("channels", 1)
        if channels != 1:
            await self.fail("unsupported_channels", f"only mono audio is supported, got channels={channels!r}",
                            close=CLOSE_UNSUPPORTED)
            return
        call_id = message.get("call_id") or uuid.uuid4().hex
        if not isinstance(call_id, str) or not _CALL_ID.match(call_id):
            await self.fail("bad_start", "call_id must be 1-64 characters of letters, digits and . _ : -",
                            close=CLOSE_POLICY)
            return
        caller = message.get("caller") or {}
        if not isinstance(caller, dict):
            await self.fail("bad_start", "caller must be a JSON object", close=CLOSE_POLICY)
            return
        await self.start_call(
            call_id, caller, fmt, fmt,
            {"protocol": PROTOCOL, "encoding": fmt.encoding, "sample_rate": fmt.sample_rate},
        )


async def native_endpoint(ws: WebSocket) -> None:
    """``/v1/call``: one caller, one call."""
    await NativeConnection(ws, ws.app.state.runtime).serve()

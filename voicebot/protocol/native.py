"""``voicebot.v1`` on ``/v1/call``: the native caller protocol (docs/PROTOCOL.md).

Client → server: ``start`` (JSON, first), binary audio, ``stop``, ``ping``.
Server → client: every call event (``voicebot.protocol.events``), ``pong``,
and binary bot audio. ``parse_client_message`` turns one text message into its
model or a ``ProtocolError`` with the documented error code.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import Field, TypeAdapter, field_validator, model_validator

from voicebot.audio.codecs import SUPPORTED_ENCODINGS, SUPPORTED_RATES, AudioFormat
from voicebot.audio.errors import AudioFormatError
from voicebot.protocol.base import Inbound, PingMessage, PongMessage, decode_json, validate_message, wire_error
from voicebot.protocol.events import CallerEvent

PROTOCOL = "voicebot.v1"
CALL_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"
_CALL_ID = re.compile(CALL_ID_PATTERN)


def check_encoding(value: Any) -> str:
    """The canonical name of a declared encoding (aliases accepted); else ``unsupported_encoding``."""
    try:
        return AudioFormat(value if isinstance(value, str) else str(value), 16000).encoding
    except AudioFormatError as exc:
        raise wire_error("unsupported_encoding", str(exc)) from None


def check_rate(value: Any) -> int:
    """A supported sample rate; else ``unsupported_rate``."""
    try:
        return AudioFormat("pcm_s16le", value).sample_rate
    except AudioFormatError as exc:
        raise wire_error("unsupported_rate", str(exc)) from None


class StartMessage(Inbound):
    """Opens the call: the audio format of what follows, an optional own call id and caller metadata."""

    type: Literal["start"] = "start"
    protocol: Literal["voicebot.v1"] = PROTOCOL
    encoding: str = Field(description="pcm_s16le, mulaw or alaw (aliases such as ulaw, pcmu, linear16 accepted)",
                          json_schema_extra={"examples": list(SUPPORTED_ENCODINGS)})
    sample_rate: int = Field(json_schema_extra={"enum": list(SUPPORTED_RATES)})
    channels: Literal[1] = 1
    call_id: str | None = Field(None, pattern=CALL_ID_PATTERN, description="the server makes one if absent")
    caller: dict[str, Any] | None = Field(None, description="metadata shown to agents and stored")
    token: str | None = Field(None, description="the caller token, where the server wants one (server.caller_tokens)")

    @model_validator(mode="before")
    @classmethod
    def _protocol_then_required(cls, data: Any) -> Any:
        # The order of today's checks: a foreign protocol first, then a start without a format.
        if isinstance(data, dict):
            protocol = data.get("protocol", PROTOCOL)
            if protocol != PROTOCOL:
                raise wire_error("unsupported_protocol", f"protocol {protocol!r} is not supported; use {PROTOCOL!r}")
            if "encoding" not in data or "sample_rate" not in data:
                raise wire_error("bad_start", "\"start\" needs \"encoding\" (pcm_s16le, mulaw, alaw) and "
                                 "\"sample_rate\"")
        return data

    @field_validator("encoding", mode="before")
    @classmethod
    def _encoding(cls, value: Any) -> str:
        return check_encoding(value)

    @field_validator("sample_rate", mode="before")
    @classmethod
    def _rate(cls, value: Any) -> int:
        return check_rate(value)

    @field_validator("channels", mode="before")
    @classmethod
    def _mono(cls, value: Any) -> int:
        if value != 1 or isinstance(value, bool):
            raise wire_error("unsupported_channels", f"only mono audio is supported, got channels={value!r}")
        return 1

    @field_validator("call_id", mode="before")
    @classmethod
    def _call_id(cls, value: Any) -> str | None:
        if not value:
            return None
        if not isinstance(value, str) or not _CALL_ID.match(value):
            raise wire_error("bad_start", "call_id must be 1-64 characters of letters, digits and . _ : -")
        return value

    @field_validator("caller", mode="before")
    @classmethod
    def _caller(cls, value: Any) -> dict[str, Any] | None:
        if not value:
            return None
        if not isinstance(value, dict):
            raise wire_error("bad_start", "caller must be a JSON object")
        return value


class StopMessage(Inbound):
    """The caller hangs up: the call ends as ``completed``."""

    type: Literal["stop"] = "stop"


ClientMessage = Annotated[StartMessage | StopMessage | PingMessage, Field(discriminator="type")]
ServerMessage = Annotated[CallerEvent | PongMessage, Field(discriminator="type")]
CLIENT_MESSAGES: dict[str, type[StartMessage | StopMessage | PingMessage]] = {
    "start": StartMessage, "stop": StopMessage, "ping": PingMessage,
}
SERVER_MESSAGES: TypeAdapter[Any] = TypeAdapter(ServerMessage)


def parse_client_message(text: str) -> StartMessage | StopMessage | PingMessage:
    """One client text message as its model; ``ProtocolError`` (with the wire code) if it is bad."""
    return validate_message(decode_json(text), CLIENT_MESSAGES, field_codes={"type": "unknown_type"},
                            default_code="bad_start")

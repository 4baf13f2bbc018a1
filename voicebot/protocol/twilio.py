"""Twilio Media Streams on ``/v1/twilio`` (bidirectional ``<Connect><Stream>``).

Twilio's messages carry ``event``, not ``type``. Inbound: ``connected``,
``start``, ``media`` (base64 µ-law 8 kHz), ``mark``, ``dtmf``, ``stop``; fields
we do not use are ignored. Outbound: ``media``, ``mark``, ``clear`` and our
``error`` (an ``error`` call event that also carries ``event`` and
``streamSid``). Voicebot call events are not sent to Twilio.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, PrivateAttr, TypeAdapter, field_validator

from voicebot.protocol.base import Inbound, Message, decode_json, validate_message, wire_error
from voicebot.protocol.events import ErrorEvent
from voicebot.protocol.native import check_encoding, check_rate

PROTOCOL = "twilio"


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


class MediaFormat(Inbound):
    encoding: str = "audio/x-mulaw"
    sampleRate: int = 8000
    channels: int = 1

    @field_validator("encoding", mode="before")
    @classmethod
    def _encoding(cls, value: Any) -> str:
        return check_encoding(value)

    @field_validator("sampleRate", mode="before")
    @classmethod
    def _rate(cls, value: Any) -> int:
        return check_rate(value)


class StartInfo(Inbound):
    streamSid: str | None = None
    callSid: str | None = None
    accountSid: str | None = None
    tracks: list[str] = Field(default_factory=list)
    mediaFormat: MediaFormat = Field(default_factory=MediaFormat)
    customParameters: dict[str, Any] = Field(default_factory=dict, description="become the caller metadata")

    @field_validator("streamSid", "callSid", "accountSid", mode="before")
    @classmethod
    def _sid(cls, value: Any) -> str | None:
        return _str_or_none(value)  # a malformed sid is ignored; the server then needs the other one

    @field_validator("tracks", mode="before")
    @classmethod
    def _tracks(cls, value: Any) -> list[str]:
        return [t for t in value if isinstance(t, str)] if isinstance(value, list) else []

    @field_validator("mediaFormat", mode="before")
    @classmethod
    def _format(cls, value: Any) -> Any:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise wire_error("bad_start", "start.mediaFormat must be an object (encoding, sampleRate, channels)")
        return value

    @field_validator("customParameters", mode="before")
    @classmethod
    def _params(cls, value: Any) -> dict[str, Any]:
        return value if isinstance(value, dict) else {}


class ConnectedMessage(Inbound):
    event: Literal["connected"] = "connected"
    protocol: str | None = None
    version: str | None = None


class StartMessage(Inbound):
    event: Literal["start"] = "start"
    sequenceNumber: str | None = None
    streamSid: str | None = None
    start: StartInfo

    @field_validator("start", mode="before")
    @classmethod
    def _start(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            raise wire_error("bad_start", "\"start\" needs a \"start\" object")
        return value

    @field_validator("streamSid", "sequenceNumber", mode="before")
    @classmethod
    def _sid(cls, value: Any) -> str | None:
        return _str_or_none(value)


class MediaPayload(Inbound):
    track: str = "inbound"
    chunk: str | None = None
    timestamp: str | None = None
    payload: str = Field(description="base64 audio (µ-law 8 kHz unless start.mediaFormat says otherwise)")

    _audio: bytes = PrivateAttr(default=b"")

    @field_validator("payload")
    @classmethod
    def _base64(cls, value: str) -> str:
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise wire_error("bad_audio", "media.payload is not valid base64") from None
        return value

    @property
    def audio(self) -> bytes:
        if not self._audio and self.payload:
            self._audio = base64.b64decode(self.payload)
        return self._audio

    @property
    def inbound(self) -> bool:
        """False for an echo of our own audio on a both-tracks stream."""
        return self.track in ("inbound", "inbound_track")


class MediaMessage(Inbound):
    event: Literal["media"] = "media"
    sequenceNumber: str | None = None
    streamSid: str | None = None
    media: MediaPayload

    @field_validator("media", mode="before")
    @classmethod
    def _media(cls, value: Any) -> Any:
        if not isinstance(value, dict) or not isinstance(value.get("payload"), str):
            raise wire_error("bad_audio", "\"media\" needs media.payload (base64 audio)")
        return value


class MarkName(Message):
    name: str | None = None


class InMark(Inbound):
    name: str | None = None


class MarkMessage(Inbound):
    """Inbound: Twilio echoes a mark once the audio before it was played."""

    event: Literal["mark"] = "mark"
    sequenceNumber: str | None = None
    streamSid: str | None = None
    mark: InMark = Field(default_factory=InMark)


class Dtmf(Inbound):
    digit: str | None = None
    track: str | None = None


class DtmfMessage(Inbound):
    event: Literal["dtmf"] = "dtmf"
    sequenceNumber: str | None = None
    streamSid: str | None = None
    dtmf: Dtmf = Field(default_factory=Dtmf)


class StopMessage(Inbound):
    event: Literal["stop"] = "stop"
    sequenceNumber: str | None = None
    streamSid: str | None = None
    stop: dict[str, Any] | None = None


# ---------------------------------------------------------------------------- server → Twilio


class OutMedia(Message):
    payload: str


class OutMediaMessage(Message):
    """The bot's audio, base64 in the stream's format."""

    event: Literal["media"] = "media"
    streamSid: str | None
    media: OutMedia


class OutMarkMessage(Message):
    """Sent after each bot utterance; Twilio echoes it when the caller has heard it."""

    event: Literal["mark"] = "mark"
    streamSid: str | None
    mark: MarkName


class ClearMessage(Message):
    """Barge-in: Twilio drops the audio it has buffered."""

    event: Literal["clear"] = "clear"
    streamSid: str | None


class TwilioErrorMessage(ErrorEvent):
    """An ``error`` event in Twilio's shape: ``event`` and ``type`` both say "error"."""

    OMIT_IF_NONE: ClassVar[frozenset[str]] = frozenset({"seq"})

    event: Literal["error"] = "error"
    streamSid: str | None = None


ClientMessage = Annotated[
    ConnectedMessage | StartMessage | MediaMessage | MarkMessage | DtmfMessage | StopMessage,
    Field(discriminator="event"),
]
ServerMessage = Annotated[
    OutMediaMessage | OutMarkMessage | ClearMessage | TwilioErrorMessage, Field(discriminator="event"),
]
CLIENT_MESSAGES: dict[str, type[Inbound]] = {
    "connected": ConnectedMessage, "start": StartMessage, "media": MediaMessage, "mark": MarkMessage,
    "dtmf": DtmfMessage, "stop": StopMessage,
}
SERVER_MESSAGES: TypeAdapter[Any] = TypeAdapter(ServerMessage)


def parse_client_message(text: str) -> Inbound:
    """One Twilio message as its model; ``ProtocolError`` (``kind`` = the event) if it is bad."""
    return validate_message(decode_json(text, key="event"), CLIENT_MESSAGES, key="event",
                            field_codes={"start": "bad_start", "media": "bad_audio"}, default_code="bad_message")

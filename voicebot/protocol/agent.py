"""``voicebot.agent.v1`` on ``/v1/agent``: the agents' live view and controls (docs/PROTOCOL.md).

Agent → server: ``auth`` (unless ``?token=`` was given), ``list``,
``subscribe``/``unsubscribe`` (a call id or ``"*"``), ``takeover``, ``release``,
``audio.start``/``audio.stop`` (the agent's voice on a call it took over),
``wrapup``, ``ping``. Server → agent: ``auth.ok``, ``calls``, ``call.update``
(one ``CallSummary`` row), ``subscribed``, ``unsubscribed``, ``replay``, ``ack``,
``audio.started``/``audio.stopped``, ``pong``, ``error`` and every call event of
the subscribed calls (with ``suggestions``, which only agents get).

Binary frames, both ways, only between ``audio.started`` and ``audio.stopped``:
the agent's microphone to the server, the caller's audio to the agent, mono in
the encoding and rate the agent declared in ``audio.start`` (``AGENT_BINARY``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, TypeAdapter, field_validator

from voicebot.audio.codecs import SUPPORTED_ENCODINGS, SUPPORTED_RATES
from voicebot.protocol.base import Inbound, Message, PingMessage, PongMessage, decode_json, validate_message, wire_error
from voicebot.protocol.events import AnyCallEvent
from voicebot.protocol.native import check_encoding, check_rate

PROTOCOL = "voicebot.agent.v1"
CallState = Literal["bot", "human", "ended"]


class AuthMessage(Inbound):
    """The first message when the token is not in the URL."""

    type: Literal["auth"] = "auth"
    token: str | None = None
    agent: str | None = Field(None, description="the agent's display name")

    @field_validator("token", "agent", mode="before")
    @classmethod
    def _text(cls, value: Any) -> str | None:
        return value if isinstance(value, str) else None  # a non-string token is simply not a valid one


class ListMessage(Inbound):
    type: Literal["list"] = "list"


class _CallRequest(Inbound):
    call_id: str = Field(description="a call id, or \"*\" (subscribe only) for every call")

    @field_validator("call_id", mode="before")
    @classmethod
    def _call_id(cls, value: Any) -> str:
        if not isinstance(value, str) or not value:
            raise wire_error("unknown_call", f"no call {value!r}")
        return value


class SubscribeMessage(_CallRequest):
    type: Literal["subscribe"] = "subscribe"


class UnsubscribeMessage(_CallRequest):
    type: Literal["unsubscribe"] = "unsubscribe"


class TakeoverMessage(_CallRequest):
    type: Literal["takeover"] = "takeover"


class ReleaseMessage(_CallRequest):
    type: Literal["release"] = "release"


class AudioStartMessage(_CallRequest):
    """The agent's voice on a call it has taken over: binary frames of this format follow (mono)."""

    type: Literal["audio.start"] = "audio.start"
    encoding: str = Field("pcm_s16le", description="pcm_s16le, mulaw or alaw (the caller's audio comes back in "
                          "the same)", json_schema_extra={"examples": list(SUPPORTED_ENCODINGS)})
    sample_rate: int = Field(16000, json_schema_extra={"enum": list(SUPPORTED_RATES)})

    @field_validator("encoding", mode="before")
    @classmethod
    def _encoding(cls, value: Any) -> str:
        return check_encoding(value)

    @field_validator("sample_rate", mode="before")
    @classmethod
    def _rate(cls, value: Any) -> int:
        return check_rate(value)


class AudioStopMessage(_CallRequest):
    type: Literal["audio.stop"] = "audio.stop"


class WrapupMessage(_CallRequest):
    """The agent's wrap-up of a call it handled: a code from ``server.wrapup_codes`` and a note."""

    type: Literal["wrapup"] = "wrapup"
    code: str = Field(max_length=64)
    note: str = Field("", max_length=2000)


# ---------------------------------------------------------------------------- server → agent


class CallSummary(Message):
    """One row of the agents' call list."""

    call_id: str
    protocol: str
    caller: dict[str, Any] = Field(default_factory=dict)
    started_at: float
    state: CallState = "bot"
    intent: str | None = None
    confidence: float | None = None
    turns: int = 0
    agent_id: str | None = None
    handoff: str | None = None
    end_reason: str | None = None
    ended_at: float | None = None


class WrapupCode(Message):
    code: str
    label: str


class AuthOkMessage(Message):
    type: Literal["auth.ok"] = "auth.ok"
    agent_id: str
    protocol: Literal["voicebot.agent.v1"] = PROTOCOL
    wrapup_codes: list[WrapupCode] = Field(default_factory=list, description="server.wrapup_codes")


class CallsMessage(Message):
    """Active calls, then the most recently ended ones."""

    type: Literal["calls"] = "calls"
    calls: list[CallSummary]


class CallUpdateMessage(Message):
    """A call started, ended, changed state, got an intent or a handoff."""

    type: Literal["call.update"] = "call.update"
    call: CallSummary


class SubscribedMessage(Message):
    type: Literal["subscribed"] = "subscribed"
    call_id: str


class UnsubscribedMessage(Message):
    type: Literal["unsubscribed"] = "unsubscribed"
    call_id: str


class ReplayMessage(Message):
    """Everything a call emitted so far (the newest partial transcript last)."""

    type: Literal["replay"] = "replay"
    call_id: str
    call: CallSummary
    events: list[AnyCallEvent]


class AckMessage(Message):
    type: Literal["ack"] = "ack"
    action: Literal["takeover", "release", "wrapup"]
    call_id: str


class AudioStartedMessage(Message):
    """The voice channel is open: binary frames both ways in ``encoding``/``sample_rate``; the caller's
    line runs at ``caller_encoding``/``caller_sample_rate`` (the server converts)."""

    type: Literal["audio.started"] = "audio.started"
    call_id: str
    encoding: str
    sample_rate: int
    caller_encoding: str
    caller_sample_rate: int
    max_frame_ms: int = Field(description="the longest binary frame accepted, in milliseconds of audio")


class AudioStoppedMessage(Message):
    """The voice channel is closed (``audio.stop``, release, the call ended, or the agent lost the call)."""

    type: Literal["audio.stopped"] = "audio.stopped"
    call_id: str
    reason: Literal["stopped", "released", "ended", "not_taken_over"] = "stopped"


ClientMessage = Annotated[
    AuthMessage | ListMessage | SubscribeMessage | UnsubscribeMessage | TakeoverMessage | ReleaseMessage
    | AudioStartMessage | AudioStopMessage | WrapupMessage | PingMessage,
    Field(discriminator="type"),
]
AgentMessage = (
    AuthOkMessage | CallsMessage | CallUpdateMessage | SubscribedMessage | UnsubscribedMessage | ReplayMessage
    | AckMessage | AudioStartedMessage | AudioStoppedMessage | PongMessage
)
ServerMessage = Annotated[AgentMessage | AnyCallEvent, Field(discriminator="type")]
CLIENT_MESSAGES: dict[str, type[Inbound]] = {
    "auth": AuthMessage, "list": ListMessage, "subscribe": SubscribeMessage, "unsubscribe": UnsubscribeMessage,
    "takeover": TakeoverMessage, "release": ReleaseMessage, "audio.start": AudioStartMessage,
    "audio.stop": AudioStopMessage, "wrapup": WrapupMessage, "ping": PingMessage,
}
# The binary frames (``voicebot protocol schema`` "binary").
AGENT_BINARY = {
    "client_to_server": "the agent's microphone, after audio.started: mono audio in the encoding and rate of "
                        "its audio.start, at most max_frame_ms per frame",
    "server_to_client": "the caller's audio of the call in audio.started, converted to the agent's encoding and rate",
}
SERVER_MESSAGES: TypeAdapter[Any] = TypeAdapter(ServerMessage)


def parse_client_message(text: str) -> Inbound:
    """One agent message as its model; ``ProtocolError`` with the wire code if it is bad."""
    return validate_message(decode_json(text), CLIENT_MESSAGES, field_codes={"call_id": "unknown_call"},
                            default_code="bad_message")

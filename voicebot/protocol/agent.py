"""``voicebot.agent.v1`` on ``/v1/agent``: the agents' live view and controls (docs/PROTOCOL.md).

Agent → server: ``auth`` (unless ``?token=`` was given), ``list``,
``subscribe``/``unsubscribe`` (a call id or ``"*"``), ``takeover``, ``release``,
``ping``. Server → agent: ``auth.ok``, ``calls``, ``call.update`` (one
``CallSummary`` row), ``subscribed``, ``unsubscribed``, ``replay``, ``ack``,
``pong``, ``error`` and every call event of the subscribed calls (with
``suggestions``, which only agents get).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, TypeAdapter, field_validator

from voicebot.protocol.base import Inbound, Message, PingMessage, PongMessage, decode_json, validate_message, wire_error
from voicebot.protocol.events import AnyCallEvent

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


class AuthOkMessage(Message):
    type: Literal["auth.ok"] = "auth.ok"
    agent_id: str
    protocol: Literal["voicebot.agent.v1"] = PROTOCOL


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
    action: Literal["takeover", "release"]
    call_id: str


ClientMessage = Annotated[
    AuthMessage | ListMessage | SubscribeMessage | UnsubscribeMessage | TakeoverMessage | ReleaseMessage
    | PingMessage,
    Field(discriminator="type"),
]
AgentMessage = (
    AuthOkMessage | CallsMessage | CallUpdateMessage | SubscribedMessage | UnsubscribedMessage | ReplayMessage
    | AckMessage | PongMessage
)
ServerMessage = Annotated[AgentMessage | AnyCallEvent, Field(discriminator="type")]
CLIENT_MESSAGES: dict[str, type[Inbound]] = {
    "auth": AuthMessage, "list": ListMessage, "subscribe": SubscribeMessage, "unsubscribe": UnsubscribeMessage,
    "takeover": TakeoverMessage, "release": ReleaseMessage, "ping": PingMessage,
}
SERVER_MESSAGES: TypeAdapter[Any] = TypeAdapter(ServerMessage)


def parse_client_message(text: str) -> Inbound:
    """One agent message as its model; ``ProtocolError`` with the wire code if it is bad."""
    return validate_message(decode_json(text), CLIENT_MESSAGES, field_codes={"call_id": "unknown_call"},
                            default_code="bad_message")

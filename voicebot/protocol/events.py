"""Call events: what a call emits, to the caller, the hub, the store and agents.

One model per event ``type``. The session builds them, the hub stamps
``call_id``/``seq``/``ts`` on them, the transports serialize them with
``dump``/``to_json``. Times named ``t``/``start``/``end`` are caller stream
time in seconds; ``ts`` is Unix wall time; ``*_ms`` are milliseconds (-1 = not
measured). ``AnyCallEvent`` is the discriminated union of them all.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, TypeAdapter

from voicebot.protocol.base import Message, OmitsUnset, dump, to_json

__all__ = ["AnyCallEvent", "CallEvent", "CallerEvent", "dump", "parse_call_event", "to_json"]


class CallEvent(OmitsUnset):
    """Base of every call event: stamped by the hub with the call id, a per-call ``seq`` and ``ts``."""

    OMIT_IF_NONE: ClassVar[frozenset[str]] = frozenset({"seq"})

    type: str
    call_id: str = ""
    seq: int | None = None  # per call from 0, no gaps; absent until the hub stamps it
    ts: float = Field(default_factory=time.time)


class CallStartedEvent(CallEvent):
    """The call is open (the transport's first event, ``seq`` 0)."""

    OMIT_IF_NONE: ClassVar[frozenset[str]] = frozenset({"seq", "stream_sid"})

    type: Literal["call.started"] = "call.started"
    protocol: str
    encoding: str
    sample_rate: int
    stream_sid: str | None = None  # Twilio only


class CallStartEvent(CallEvent):
    """The session started (the greeting follows)."""

    type: Literal["call.start"] = "call.start"
    metadata: dict[str, Any] = Field(default_factory=dict)
    realtime: bool = True


class SpeechStartedEvent(CallEvent):
    type: Literal["speech.started"] = "speech.started"
    t: float


class SpeechEndedEvent(CallEvent):
    type: Literal["speech.ended"] = "speech.ended"
    t: float
    start: float


Speaker = Literal["caller", "agent"]


class WordTiming(Message):
    text: str
    start: float
    end: float
    p: float  # word probability


class TranscriptPartialEvent(CallEvent):
    """While the caller speaks; ``committed`` is the prefix that will not change any more."""

    type: Literal["transcript.partial"] = "transcript.partial"
    text: str
    confidence: float = 0.0
    start: float = 0.0
    end: float = 0.0
    committed: str = ""
    speaker: Speaker = "caller"  # "agent": an agent's own words after a takeover (agents and the store only)


class TranscriptFinalEvent(CallEvent):
    """The caller's turn; ``latency_ms`` is end of turn → final transcript."""

    OMIT_IF_NONE: ClassVar[frozenset[str]] = frozenset({"seq", "latency_ms"})

    type: Literal["transcript.final"] = "transcript.final"
    text: str
    confidence: float = 0.0
    start: float = 0.0
    end: float = 0.0
    words: list[WordTiming] = Field(default_factory=list)
    latency_ms: float | None = None
    speaker: Speaker = "caller"


class IntentAlternative(Message):
    label: str
    confidence: float


class IntentEvent(CallEvent):
    type: Literal["intent"] = "intent"
    label: str
    confidence: float
    alternatives: list[IntentAlternative] = Field(default_factory=list)
    slots: dict[str, str] = Field(default_factory=dict)


class RouteEvent(CallEvent):
    type: Literal["route"] = "route"
    route: str
    intent: str


class HandoffEvent(CallEvent):
    """A human takes over; ``context`` is the agent's picture (transcript, intent, slots, summary, ...)."""

    type: Literal["handoff"] = "handoff"
    reason: str
    context: dict[str, Any] = Field(default_factory=dict)


class BotUtteranceEvent(CallEvent):
    type: Literal["bot.utterance"] = "bot.utterance"
    text: str
    action: str = ""


class BotAudioStartEvent(CallEvent):
    type: Literal["bot.audio.start"] = "bot.audio.start"


class BotAudioEndEvent(CallEvent):
    type: Literal["bot.audio.end"] = "bot.audio.end"
    completed: bool = True
    seconds: float = 0.0


BargeInAction = Literal["paused", "resumed", "stopped"]


class BargeInEvent(CallEvent):
    """The caller spoke over the bot. On ``paused``/``stopped`` a client drops buffered bot audio."""

    OMIT_IF_NONE: ClassVar[frozenset[str]] = frozenset({"seq", "text"})

    type: Literal["bargein"] = "bargein"
    action: BargeInAction
    t: float = 0.0
    text: str | None = None  # the transcript that decided it, if any


class LatencyEvent(CallEvent):
    """One turn's latency breakdown in milliseconds (-1 = not measured)."""

    OMIT_IF_NONE: ClassVar[frozenset[str]] = frozenset({"seq", "eot_model_ms"})

    type: Literal["latency"] = "latency"
    endpoint_ms: float
    asr_ms: float
    intent_ms: float
    tts_first_audio_ms: float
    voice_to_voice_ms: float
    eot_model_ms: float | None = None  # end-of-turn model, where one decides


class AgentTakeoverEvent(CallEvent):
    type: Literal["agent.takeover"] = "agent.takeover"
    agent_id: str


class AgentReleaseEvent(CallEvent):
    type: Literal["agent.release"] = "agent.release"
    agent_id: str


class CallEndEvent(CallEvent):
    """The last event of a call; the server then closes the connection."""

    type: Literal["call.end"] = "call.end"
    reason: str = "completed"  # completed | interrupted | shutdown | error | ...
    route: str | None = None
    handoff: bool = False


class ErrorEvent(CallEvent):
    """Bad input or a failure; ``fatal`` when the connection is then closed."""

    type: Literal["error"] = "error"
    code: str
    message: str
    fatal: bool = False


class PlaybackMarkEvent(CallEvent):
    """Twilio echoed one of our marks: the caller has heard the bot utterance ``name``."""

    type: Literal["playback.mark"] = "playback.mark"
    name: str | None = None


class DtmfEvent(CallEvent):
    """A key the caller pressed (Twilio ``dtmf``)."""

    type: Literal["dtmf"] = "dtmf"
    digit: str | None = None


class Suggestion(Message):
    title: str
    answer: str
    intent: str | None = None
    score: float


class SuggestionsEvent(CallEvent):
    """Agent assist (agents only): knowledge-base answers for the latest final transcript."""

    type: Literal["suggestions"] = "suggestions"
    for_text: str
    intent: str | None = None
    items: list[Suggestion] = Field(default_factory=list)
    next_steps: list[str] = Field(default_factory=list)


# What the caller's own connection gets (voicebot.v1); agents and the store also get the Twilio
# stream's marks and keys, and the agent-assist suggestions.
class TransferTarget(Message):
    """Where a handed-off call goes: a queue, a phone number or a SIP address."""

    kind: Literal["queue", "number", "sip"]
    value: str


class TransferEvent(CallEvent):
    """Native protocol: the call leaves the bot for ``target`` (the handover phrase has been played).

    With ``ends_stream`` the server then ends the call and closes; the gateway bridges it. Without,
    nothing is configured to take the call elsewhere: it stays for an agent to take over here.
    """

    type: Literal["transfer"] = "transfer"
    target: TransferTarget | None = None  # None: the gateway uses its own default for ``route``
    route: str = ""
    reason: str = ""
    priority: bool = False
    ends_stream: bool = False


class WrapupEvent(CallEvent):
    """The agent's wrap-up of a call it handled (agents and the store): a code and an optional note."""

    type: Literal["wrapup"] = "wrapup"
    agent_id: str
    code: str
    label: str = ""  # the code's display name, from server.wrapup_codes
    note: str = ""


class TransferResultEvent(CallEvent):
    """How a transfer went (agents and the store): the signed webhook and, for Twilio calls, the redirect."""

    type: Literal["transfer.result"] = "transfer.result"
    ok: bool
    target: TransferTarget | None = None
    webhook: dict[str, Any] = Field(default_factory=dict)  # outcome, attempts, status, error
    redirect: dict[str, Any] = Field(default_factory=dict)
    delivery_id: str = ""


_CallerEvents = (
    CallStartedEvent | CallStartEvent | SpeechStartedEvent | SpeechEndedEvent | TranscriptPartialEvent
    | TranscriptFinalEvent | IntentEvent | RouteEvent | HandoffEvent | BotUtteranceEvent | BotAudioStartEvent
    | BotAudioEndEvent | BargeInEvent | LatencyEvent | AgentTakeoverEvent | AgentReleaseEvent | CallEndEvent
    | ErrorEvent | TransferEvent
)
CallerEvent = Annotated[_CallerEvents, Field(discriminator="type")]
AnyCallEvent = Annotated[
    _CallerEvents | PlaybackMarkEvent | DtmfEvent | SuggestionsEvent | TransferResultEvent | WrapupEvent,
    Field(discriminator="type"),
]

CALL_EVENTS: TypeAdapter[AnyCallEvent] = TypeAdapter(AnyCallEvent)


def parse_call_event(data: dict[str, Any]) -> CallEvent:
    """Validate a dict (e.g. a stored event) into its event model; raises pydantic.ValidationError."""
    return CALL_EVENTS.validate_python(data)

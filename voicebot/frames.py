"""Typed frames: the only currency between pipeline stages.

Every frame is a frozen dataclass. Audio always carries its own sample rate;
nothing in the pipeline assumes one. The call's stages (``voicebot.call``)
publish these frames on the call's frame bus; observers turn the ones the
outside world sees into typed wire events (``voicebot.protocol.events``), in
one place: ``voicebot/call/events.py``.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Union

import numpy as np


@dataclass(frozen=True)
class AudioFrame:
    """Mono 16-bit PCM with an explicit sample rate.

    ``t`` is the stream time of the first sample in seconds (caller timeline).
    """

    pcm: np.ndarray
    sample_rate: int
    t: float = 0.0

    def __post_init__(self) -> None:
        if self.pcm.dtype != np.int16 or self.pcm.ndim != 1:
            raise ValueError(
                f"AudioFrame needs a 1-D int16 array, got {self.pcm.dtype} with shape {self.pcm.shape}"
            )
        if self.sample_rate <= 0:
            raise ValueError(f"AudioFrame sample_rate must be positive, got {self.sample_rate}")

    @property
    def duration(self) -> float:
        return len(self.pcm) / self.sample_rate

    @property
    def end(self) -> float:
        return self.t + self.duration


@dataclass(frozen=True)
class SpeechStarted:
    """The VAD saw the caller start speaking at stream time ``t`` (seconds)."""

    t: float


@dataclass(frozen=True)
class SpeechEnded:
    """The endpointer decided the caller's turn ended at stream time ``t``.

    ``audio`` is the whole turn at the ASR rate (pre-roll included), so the final
    decode sees exactly what the VAD judged to be speech.
    """

    t: float
    start: float
    audio: np.ndarray | None = field(default=None, repr=False, compare=False)
    sample_rate: int = 16000


@dataclass(frozen=True)
class Word:
    text: str
    start: float
    end: float
    probability: float


@dataclass(frozen=True)
class Transcript:
    """A partial (``is_final=False``) or final transcript of one caller turn.

    For partials, ``committed`` is the prefix that will not change any more
    (the LocalAgreement policy); ``text`` is committed text plus the tentative tail.
    """

    text: str
    is_final: bool
    confidence: float
    words: tuple[Word, ...] = ()
    start: float = 0.0
    end: float = 0.0
    committed: str = ""


@dataclass(frozen=True)
class Intent:
    """An intent decision for one caller turn, with calibrated confidence."""

    label: str
    confidence: float
    alternatives: tuple[tuple[str, float], ...] = ()
    slots: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class BotUtterance:
    """Text the bot is about to speak. ``action`` names the policy step."""

    text: str
    action: str = ""


@dataclass(frozen=True)
class BotAudio:
    """Synthesized bot speech (mono int16, explicit rate)."""

    pcm: np.ndarray
    sample_rate: int

    @property
    def duration(self) -> float:
        return len(self.pcm) / self.sample_rate


@dataclass(frozen=True)
class Handoff:
    """The call goes to a human. ``context`` is the whole picture for the agent."""

    reason: str
    context: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Route:
    """The call is routed to a team (a queue name from the domain config)."""

    route: str
    intent: str


@dataclass(frozen=True)
class Error:
    """A recoverable or fatal problem, reported as an ``error`` event."""

    code: str
    text: str


@dataclass(frozen=True)
class EndOfCall:
    """The call is over; ``route`` and ``handoff`` say where it went."""

    reason: str = "completed"
    route: str | None = None
    handoff: bool = False
    wall_time: float = field(default_factory=time.time)



# ---------------------------------------------------------------- call-core frames
# Published on a call's frame bus between the stages (voicebot.call); ``wall`` times
# are time.perf_counter() marks, taken where the thing happened, for the latency observer.


@dataclass(frozen=True)
class SessionStarted:
    """The call's pipeline is up (the greeting follows)."""

    metadata: dict[str, Any] = field(default_factory=dict)
    realtime: bool = True


@dataclass(frozen=True)
class VoiceActivity:
    """The VAD's verdict on the newest analysed caller audio (one per pushed frame).

    ``t`` is the caller stream time analysed so far, ``wall`` when that audio arrived.
    """

    t: float
    probability: float
    voiced: bool
    wall: float


@dataclass(frozen=True)
class UserTurn:
    """One caller turn, decided by the turn-taker: the finals of one concern, merged."""

    transcript: Transcript
    parts: tuple[Transcript, ...] = ()


@dataclass(frozen=True)
class TurnDecided:
    """The dialog's answer to one caller turn: what it understood and what it does."""

    caller: str
    asr_confidence: float
    intent: str
    confidence: float
    slots: dict[str, str]
    say: str
    action: str
    wall: float


@dataclass(frozen=True)
class BargeIn:
    """The caller spoke over the bot: playback ``paused``, ``resumed`` or ``stopped``."""

    action: str  # paused | resumed | stopped (the wire spelling)
    t: float
    text: str = ""


@dataclass(frozen=True)
class BotSpeechStarted:
    """The bot starts saying one utterance."""


@dataclass(frozen=True)
class BotFirstAudio:
    """The first audio frame of a bot utterance left for the caller at ``wall``."""

    wall: float


@dataclass(frozen=True)
class BotSpeechEnded:
    completed: bool
    seconds: float


@dataclass(frozen=True)
class TurnLatency:
    """Measured spans of one turn in milliseconds (-1 = not measured)."""

    endpoint_ms: float
    asr_ms: float
    intent_ms: float
    tts_first_audio_ms: float
    voice_to_voice_ms: float


@dataclass(frozen=True)
class AgentTookOver:
    agent_id: str


@dataclass(frozen=True)
class AgentReleased:
    agent_id: str


@dataclass(frozen=True)
class SpeculativeFinal:
    """The turn decoded at final quality at the caller's first pause, before the end of turn is
    decided (``voicebot.call.speculation``). It becomes the final only if no speech follows;
    otherwise a ``SpeculationDropped`` with the same ``seq`` throws it away. Never a wire event."""

    seq: int
    transcript: Transcript


@dataclass(frozen=True)
class SpeculationDropped:
    """The caller spoke again: the speculation ``seq`` (its final, intent and held audio) is void."""

    seq: int


Frame = Union[
    AudioFrame, SpeechStarted, SpeechEnded, Transcript, Intent, BotUtterance, BotAudio, Handoff, Route, Error,
    EndOfCall, SessionStarted, VoiceActivity, UserTurn, TurnDecided, BargeIn, BotSpeechStarted, BotFirstAudio,
    BotSpeechEnded, TurnLatency, AgentTookOver, AgentReleased, SpeculativeFinal, SpeculationDropped,
]


def frame_to_dict(frame: Any) -> dict[str, Any]:
    """Plain dict of any dataclass frame (debugging / logging helper)."""
    return asdict(frame)

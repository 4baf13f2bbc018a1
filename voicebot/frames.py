"""Typed frames: the only currency between pipeline stages.

Every frame is a frozen dataclass. Audio always carries its own sample rate;
nothing in the pipeline assumes one. ``to_event()`` gives the JSON-ready dict a
wire protocol or the call store uses (audio frames are sent as binary, so they
have no event form).
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

    def to_event(self) -> dict[str, Any]:
        return {"type": "speech.started", "t": round(self.t, 3)}


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

    def to_event(self) -> dict[str, Any]:
        return {"type": "speech.ended", "t": round(self.t, 3), "start": round(self.start, 3)}


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

    def to_event(self) -> dict[str, Any]:
        event: dict[str, Any] = {
            "type": "transcript.final" if self.is_final else "transcript.partial",
            "text": self.text,
            "confidence": round(self.confidence, 4),
            "start": round(self.start, 3),
            "end": round(self.end, 3),
        }
        if self.is_final:
            event["words"] = [
                {"text": w.text, "start": round(w.start, 3), "end": round(w.end, 3), "p": round(w.probability, 4)}
                for w in self.words
            ]
        else:
            event["committed"] = self.committed
        return event


@dataclass(frozen=True)
class Intent:
    """An intent decision for one caller turn, with calibrated confidence."""

    label: str
    confidence: float
    alternatives: tuple[tuple[str, float], ...] = ()
    slots: dict[str, str] = field(default_factory=dict)

    def to_event(self) -> dict[str, Any]:
        return {
            "type": "intent",
            "label": self.label,
            "confidence": round(self.confidence, 4),
            "alternatives": [{"label": label, "confidence": round(p, 4)} for label, p in self.alternatives],
            "slots": dict(self.slots),
        }


@dataclass(frozen=True)
class BotUtterance:
    """Text the bot is about to speak. ``action`` names the policy step."""

    text: str
    action: str = ""

    def to_event(self) -> dict[str, Any]:
        return {"type": "bot.utterance", "text": self.text, "action": self.action}


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

    def to_event(self) -> dict[str, Any]:
        return {"type": "handoff", "reason": self.reason, "context": self.context}


@dataclass(frozen=True)
class Route:
    """The call is routed to a team (a queue name from the domain config)."""

    route: str
    intent: str

    def to_event(self) -> dict[str, Any]:
        return {"type": "route", "route": self.route, "intent": self.intent}


@dataclass(frozen=True)
class Error:
    """A recoverable or fatal problem, reported as an ``error`` event."""

    code: str
    text: str

    def to_event(self) -> dict[str, Any]:
        return {"type": "error", "code": self.code, "message": self.text}


@dataclass(frozen=True)
class EndOfCall:
    reason: str = "completed"
    wall_time: float = field(default_factory=time.time)

    def to_event(self) -> dict[str, Any]:
        return {"type": "call.end", "reason": self.reason}


Frame = Union[
    AudioFrame, SpeechStarted, SpeechEnded, Transcript, Intent, BotUtterance, BotAudio, Handoff, Route, Error, EndOfCall
]


def frame_to_dict(frame: Any) -> dict[str, Any]:
    """Plain dict of any dataclass frame (debugging / logging helper)."""
    return asdict(frame)

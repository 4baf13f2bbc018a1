"""Turn bookkeeping of the streaming recognizer: the ongoing ``_Turn``, its final-quality ``Segment``s,
``GuardEvent``, ``Pending``."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from voicebot.asr.commit import LocalAgreement
from voicebot.asr.transcriber import TranscriptionResult
from voicebot.frames import Frame, Transcript

Pending = Frame | asyncio.Task[Transcript]


@dataclass(frozen=True)
class GuardEvent:
    """A final the hallucination guards changed: which turn, why, and the text before (measuring false blanks)."""

    turn: int
    reasons: tuple[str, ...]
    before: str


@dataclass
class Segment:
    """A part of the turn decoded at final quality (``voicebot.asr.segments``): from the turn's start or
    a cut inside a pause, to the sample where its decode was started (inside the next pause)."""

    start: int  # turn-audio samples
    end: int
    prompt: str  # the decode's prompt (the guards' prompt-echo check needs the same)
    task: asyncio.Task[TranscriptionResult | None] | None = None  # the cleaned result (None: nothing decoded)
    confirmed: bool = False  # the turn is over: a decode not yet queued is not speculative
    before: str = ""  # the text before the guards (``GuardEvent``)


@dataclass
class _Turn:
    """The ongoing turn: where its audio starts, the commit state and the rolling-buffer cut."""

    index: int
    speech_start: float
    audio_start: float  # stream time of the turn audio's first sample (pre-roll included)
    agreement: LocalAgreement
    cut_samples: int = 0  # audio before this was committed and cut off (rolling buffer)
    frozen: list[str] = field(default_factory=list)  # words committed before the cut
    next_partial_at: int = 0  # turn-audio sample count at which the next partial is due
    partial_seq: int = 0
    emitted_seq: int = -1
    last_text: str = ""
    silence_frames: int = 0  # analysed frames of trailing silence
    # Pause-segmented finals: the kept segments (decoded or decoding), the early decode's segment (the speculation),
    # and the voiced frames heard since the last cut (a tail without speech is not decoded).
    segments: list[Segment] = field(default_factory=list)
    pending: Segment | None = None
    voiced_since_cut: int = 0

    @property
    def cut(self) -> int:
        """Turn-audio sample where the undecided part starts (the end of the last kept segment)."""
        return self.segments[-1].end if self.segments else 0


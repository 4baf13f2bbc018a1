"""End-of-turn signals as a live phone call produces them, recorded once and replayed under many rules.

The turn-end set (``voicebot.eval.turn_end``) scores each pause with whisper's words of the whole clip
and audio cut at a word boundary. A live call gives the end-of-turn stage less: the newest *partial*
(decoded every few hundred ms, so it lags the last words) until the speculative final lands, Smart Turn
on the turn's audio with line hiss after it, and a silence clock that the VAD's hangover starts late.
``PauseRecorder`` watches a real ``CallSession``'s frame bus and writes down, for every pause inside a
caller's turn, when each signal became available (stream ms of silence) and what it said. ``end_ms``
then tells, for any rule, after how much silence that pause would have ended the turn: for the last
pause of a turn that is the end-of-turn delay, for a pause inside it (the caller goes on) ending before
the caller spoke again is a cut-in. ``scripts/bench_turn_live.py`` drives it over the phone bench's turns.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from voicebot.frames import SpeculativeFinal, SpeechEnded, SpeechStarted, Transcript, VoiceActivity
from voicebot.turn.cues import incomplete_cue

ASK_MS = (200, 300, 400, 600)  # Smart Turn is asked at each of these silences
FALLBACK_MS = 1200.0


@dataclass
class TextSignal:
    ms: float  # silence when the text became available
    kind: str  # start (the newest partial when the pause began) | partial | speculative
    text: str
    prob: float | None
    cue: bool


@dataclass
class AudioSignal:
    asked_ms: float
    ready_ms: float
    prob: float


@dataclass
class PauseRecord:
    turn: str
    start_t: float  # stream time of the last voiced VAD frame before the pause
    final: bool = False  # the turn's last pause (set by the driver once the turn's audio is over)
    resumed_ms: float | None = None  # voice came back after this much silence (None: it did not)
    ended_ms: float | None = None  # the endpointer's own end of turn (the fallback)
    texts: list[TextSignal] = field(default_factory=list)
    audio: list[AudioSignal] = field(default_factory=list)
    true_gap_ms: float | None = None  # last VAD-voiced frame minus the caller's last voiced frame (final pauses)

    def to_json(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> PauseRecord:
        return cls(**{**d, "texts": [TextSignal(**t) for t in d["texts"]],
                      "audio": [AudioSignal(**a) for a in d["audio"]]})


class PauseRecorder:
    """Subscribes to a session's bus; ``pauses`` holds one ``PauseRecord`` per pause of 100 ms or more."""

    def __init__(self, session: Any, text_model: Any, smart_turn: Any, turn: str = "",
                 ask_ms: tuple[int, ...] = ASK_MS) -> None:
        self.session = session
        self.text_model = text_model
        self.smart_turn = smart_turn
        self.turn = turn
        self.ask_ms = ask_ms
        self.pauses: list[PauseRecord] = []
        self.ends: list[float] = []  # stream time at which each turn's SpeechEnded was published
        self._in_turn = False
        self._text = ""
        self._last_voice = 0.0
        self._current: PauseRecord | None = None
        self._asked: set[int] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        session.bus.subscribe(self.on_frame, VoiceActivity, SpeechStarted, SpeechEnded, Transcript, SpeculativeFinal)

    @property
    def now(self) -> float:
        return float(self.session.recognizer_stage.time)

    def _silence_ms(self) -> float:
        return (self.now - self._last_voice) * 1000.0

    def _prob(self, text: str) -> float | None:
        return float(self.text_model.predict(text)) if text.strip() else None

    def _add_text(self, kind: str, text: str) -> None:
        if self._current is not None:
            self._current.texts.append(TextSignal(round(self._silence_ms(), 1), kind, text, self._prob(text),
                                                  incomplete_cue(text) is not None))

    async def on_frame(self, frame: object) -> None:
        if isinstance(frame, SpeechStarted):
            self._in_turn, self._text, self._last_voice, self._current = True, "", frame.t, None
        elif isinstance(frame, SpeechEnded):
            self.ends.append(self.now)
            if self._current is not None and self._current.ended_ms is None:
                self._current.ended_ms = round(self._silence_ms(), 1)
            self._in_turn, self._current = False, None
        elif isinstance(frame, Transcript) and not frame.is_final:
            self._text = frame.text
            self._add_text("partial", frame.text)
        elif isinstance(frame, SpeculativeFinal) and self._in_turn:
            self._text = frame.transcript.text
            self._add_text("speculative", frame.transcript.text)
        elif isinstance(frame, VoiceActivity) and self._in_turn:
            self._on_voice(frame)

    def _on_voice(self, frame: VoiceActivity) -> None:
        if frame.voiced:
            if self._current is not None:
                self._current.resumed_ms = round((frame.t - self._last_voice) * 1000.0, 1)
            self._current, self._last_voice = None, frame.t
            return
        silence = (frame.t - self._last_voice) * 1000.0
        if self._current is None:
            if silence < 100.0:
                return
            self._current = PauseRecord(self.turn, self._last_voice)
            self.pauses.append(self._current)
            self._asked = set()
            self._current.texts.append(TextSignal(round(silence, 1), "start", self._text, self._prob(self._text),
                                                  incomplete_cue(self._text) is not None))
        for ms in self.ask_ms:
            if silence >= ms and ms not in self._asked:
                self._asked.add(ms)
                audio = self.session.recognizer.endpointer.current_turn_audio()
                if len(audio):
                    task = asyncio.create_task(self._ask(self._current, ms, audio))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)

    async def _ask(self, record: PauseRecord, ms: int, audio: Any) -> None:
        loop = asyncio.get_running_loop()
        prob = await loop.run_in_executor(None, self.smart_turn.predict, audio)
        ready = (self.now - record.start_t) * 1000.0
        record.audio.append(AudioSignal(ms, round(ready, 1), float(prob)))

    async def drain(self) -> None:
        if self._tasks:
            await asyncio.wait(set(self._tasks))


# --- replay: after how much silence would a rule end this pause? -------------------------------------------


@dataclass(frozen=True)
class Seen:
    """What a rule knows at one moment of a pause."""

    ms: float
    text_prob: float | None  # the newest text's P(complete) (the speculative final's once it landed)
    text_at_ask: float | None  # the text model's answer when the models were asked (min_silence), then spec
    cue: bool
    speculative: bool  # the final-quality text has landed
    audio: dict[int, float]  # Smart Turn's answers ready by now, by the silence it was asked at


Rule = Callable[[Seen], bool]


def seen_at(p: PauseRecord, ms: float, ask_ms: float = 200.0) -> Seen:
    texts = [t for t in p.texts if t.ms <= ms]
    newest = texts[-1] if texts else None
    spec = next((t for t in reversed(texts) if t.kind == "speculative"), None)
    # The shipped stage: the text at the ask (the newest text then), replaced by the speculative final.
    asked = [t for t in texts if t.ms <= ask_ms]
    at_ask = spec if spec is not None else (asked[-1] if asked else None)
    audio = {int(a.asked_ms): a.prob for a in p.audio if a.ready_ms <= ms}
    return Seen(ms, newest.prob if newest else None, at_ask.prob if at_ask else None,
                bool(newest.cue) if newest else False, spec is not None, audio)


def end_ms(p: PauseRecord, rule: Rule, step_ms: float = 20.0, fallback_ms: float = FALLBACK_MS) -> float:
    """The first silence (on a ``step_ms`` grid, from 100 ms) at which ``rule`` ends the pause; else the fallback."""
    ms = 100.0
    while ms < fallback_ms:
        if rule(seen_at(p, ms)):
            return ms
        ms += step_ms
    return fallback_ms

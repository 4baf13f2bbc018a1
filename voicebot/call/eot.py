"""The end-of-turn stage: end a caller's turn as soon as the signals agree, not after a fixed silence.

While the caller is silent inside a turn, it asks the end-of-turn models once per pause
(after ``turn.model_silence_ms``, at most ``turn.min_silence_ms``): Smart Turn on the turn's audio
and the German text model on the newest transcript; then ``TurnEndDecider``
(``voicebot.turn.decision``) decides on every frame whether the silence so far is enough.
With ``turn.adaptive_wait_ms`` set, a confident end also waits out this caller's own pauses
(``voicebot.turn.pauses``): a caller who went on 0.6 s after a turn this stage ended earlier in the
call (a turn, confirmed by the endpointer) is not answered within 0.7 s of silence again (at most
``adaptive_wait_ms``).
When it says end, the recognizer closes the turn at once and its final follows. The endpointer's
own end of turn stays as the fallback (``turn.max_silence_ms``). A caller who speaks again starts a new pause.
A speculative final (``turn.speculate``) replaces the partial as the text model's input:
partials stop while a speculation holds the turn, and the final-quality text is the better one.

The models judge the whole concern, not the fragment after an early end: when this stage ended a turn
inside a concern (a pause between two sentences) and the caller went on, the turn-taker holds that
part's final (``concern``). The text model then reads the held text with the new part after it, and
Smart Turn hears the earlier part's audio before the new one (its last 8 s). Judged alone, the short
rest of a concern looked unfinished (a weak text signal, little audio), so on the phone bench about
half of those turns waited for the fallback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence

import numpy as np

from voicebot.call.bus import FrameBus
from voicebot.call.clients import EndOfTurnClient
from voicebot.call.recognizer import RecognizerStage
from voicebot.frames import SpeculativeFinal, SpeechEnded, SpeechStarted, Transcript, VoiceActivity
from voicebot.turn.decision import TurnEndDecider
from voicebot.turn.features import SAMPLE_RATE
from voicebot.turn.pauses import CallerPauses

log = logging.getLogger(__name__)

# Smart Turn reads the last 8 s of a turn: no more of an earlier part is carried.
CARRY_S = 8.0


class EndOfTurnStage:
    def __init__(
        self, bus: FrameBus, recognizer: RecognizerStage, models: EndOfTurnClient, decider: TurnEndDecider,
        pauses: CallerPauses | None = None, concern: Callable[[], Sequence[Transcript]] | None = None,
    ) -> None:
        """``concern``: the finals of this concern said before the current turn and still waiting for it
        (the turn-taker's held parts); empty when the current turn starts a concern."""
        self.bus = bus
        self.concern = concern or (lambda: ())
        self.recognizer = recognizer
        self.models = models
        self.decider = decider
        self.in_turn = False
        self.text = ""
        self.last_voice = 0.0
        self.decisions: list[str] = []  # why each turn ended early (observability, tests)
        self.model_ms: float | None = None  # the newest Smart Turn inference, wall ms
        self.asked_at_ms: list[float] = []  # the silence (stream ms) at which each pause's models were asked
        # This caller's pauses before going on; a settings section without turn.adaptive_wait_ms: off.
        self.pauses = pauses or CallerPauses(float(getattr(decider.config, "adaptive_wait_ms", 0.0) or 0.0))
        self._ended_at: float | None = None  # last voice of the turn this stage ended early (stream s)
        self.ended_silence_ms: list[float] = []  # the silence at which each turn was ended early (stream ms)
        self._carry: np.ndarray | None = None  # the audio of the concern's parts this stage ended early
        self._reset_pause()
        bus.subscribe(self.on_frame, VoiceActivity, SpeechStarted, SpeechEnded, Transcript, SpeculativeFinal)

    def _reset_pause(self) -> None:
        self._asked = False
        self._text_prob: float | None = None
        self._audio: asyncio.Task[float | None] | None = None

    async def on_frame(self, frame: object) -> None:
        if isinstance(frame, SpeechStarted):
            if self._ended_at is not None:  # the caller went on after a turn we ended: a pause, not an end
                self.pauses.went_on((frame.t - self._ended_at) * 1000.0)
                self._ended_at = None
            self.in_turn, self.text, self.last_voice = True, "", frame.t
            self._cancel()
        elif isinstance(frame, SpeechEnded):
            if self.in_turn:  # the endpointer ended it, not this stage: no audio of it is carried
                self._carry = None
            self.in_turn = False
            self._cancel()
        elif isinstance(frame, Transcript) and not frame.is_final:
            self.text = frame.text
        elif isinstance(frame, SpeculativeFinal) and self.in_turn:
            self.text = frame.transcript.text
            if self._asked:  # the models were asked on the partial: ask the text model again
                self._text_prob = self.models.text_complete(self._concern_text())
        elif isinstance(frame, VoiceActivity) and self.in_turn:
            await self._on_voice(frame)

    async def _on_voice(self, frame: VoiceActivity) -> None:
        if frame.voiced:
            self.last_voice = frame.t
            self._cancel()
            return
        silence_ms = (frame.t - self.last_voice) * 1000.0
        config = self.decider.config
        # The models may be asked before the decision is due (turn.model_silence_ms), so Smart Turn's run
        # is over by min_silence_ms instead of coming on top of it.
        ask_ms = min(getattr(config, "model_silence_ms", 0.0) or config.min_silence_ms, config.min_silence_ms)
        if silence_ms < ask_ms:
            return
        if not self._asked:  # once per pause: the models see the turn as it is now
            self._asked = True
            self.asked_at_ms.append(silence_ms)
            self._text_prob = self.models.text_complete(self._concern_text())
            if self.models.smart_turn is not None:
                self._audio = asyncio.create_task(self._timed(self._concern_audio()))
        audio_prob = None
        if self._audio is not None:
            if not self._audio.done():
                return  # the audio model is still thinking; the endpointer's fallback stays in force
            audio_prob = self._audio.result()
        decision = self.decider.decide(silence_ms, audio_prob, self._text_prob, self._concern_text())
        if decision.end and decision.reason != "max_silence":
            if silence_ms < self.pauses.wait_ms():
                return  # this caller has gone on after pauses this long: wait them out
            self._ended_at = self.last_voice
            self._carry = self._concern_audio()
            self.ended_silence_ms.append(silence_ms)
            self.decisions.append(decision.reason)
            self.in_turn = False
            self._cancel()
            await self.recognizer.end_turn()

    def _concern_text(self) -> str:
        """The newest text of this turn after the held finals of the same concern."""
        held = " ".join(t.text.strip() for t in self.concern() if t.text.strip())
        return f"{held} {self.text}".strip() if held else self.text

    def _concern_audio(self) -> np.ndarray:
        """This turn's audio, after the audio of the concern's earlier parts while their finals are held."""
        audio = self.recognizer.recognizer.endpointer.current_turn_audio()
        room = int(CARRY_S * SAMPLE_RATE) - len(audio)
        if self._carry is None or room <= 0 or not self.concern():
            return audio
        return np.concatenate([self._carry[-room:], audio])

    async def _timed(self, audio: object) -> float | None:
        started = time.perf_counter()
        try:
            return await self.models.audio_complete(audio)  # type: ignore[arg-type]
        except Exception:  # noqa: BLE001 - without the audio model the text and silence still decide
            log.exception("call %s: Smart Turn failed", self.bus.call_id)
            return None
        finally:
            self.model_ms = (time.perf_counter() - started) * 1000.0

    def _cancel(self) -> None:
        if self._audio is not None and not self._audio.done():
            self._audio.cancel()
        self._reset_pause()

    async def aclose(self) -> None:
        task = self._audio
        self._cancel()
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

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
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from voicebot.call.bus import FrameBus
from voicebot.call.clients import EndOfTurnClient
from voicebot.call.recognizer import RecognizerStage
from voicebot.frames import SpeculativeFinal, SpeechEnded, SpeechStarted, Transcript, VoiceActivity
from voicebot.turn.decision import TurnEndDecider
from voicebot.turn.pauses import CallerPauses

log = logging.getLogger(__name__)


class EndOfTurnStage:
    def __init__(
        self, bus: FrameBus, recognizer: RecognizerStage, models: EndOfTurnClient, decider: TurnEndDecider,
        pauses: CallerPauses | None = None,
    ) -> None:
        self.bus = bus
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
            self.in_turn = False
            self._cancel()
        elif isinstance(frame, Transcript) and not frame.is_final:
            self.text = frame.text
        elif isinstance(frame, SpeculativeFinal) and self.in_turn:
            self.text = frame.transcript.text
            if self._asked:  # the models were asked on the partial: ask the text model again
                self._text_prob = self.models.text_complete(self.text)
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
            self._text_prob = self.models.text_complete(self.text)
            if self.models.smart_turn is not None:
                audio = self.recognizer.recognizer.endpointer.current_turn_audio()
                self._audio = asyncio.create_task(self._timed(audio))
        audio_prob = None
        if self._audio is not None:
            if not self._audio.done():
                return  # the audio model is still thinking; the endpointer's fallback stays in force
            audio_prob = self._audio.result()
        decision = self.decider.decide(silence_ms, audio_prob, self._text_prob, self.text)
        if decision.end and decision.reason != "max_silence":
            if silence_ms < self.pauses.wait_ms():
                return  # this caller has gone on after pauses this long: wait them out
            self._ended_at = self.last_voice
            self.ended_silence_ms.append(silence_ms)
            self.decisions.append(decision.reason)
            self.in_turn = False
            self._cancel()
            await self.recognizer.end_turn()

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

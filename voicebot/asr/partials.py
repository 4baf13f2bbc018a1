"""Partial decoding of the streaming recognizer: the ``PartialDecoding`` mixin (commits, rolling buffer)."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING, Any

import numpy as np

from voicebot.asr.commit import word_key
from voicebot.asr.transcriber import ASR_SAMPLE_RATE, TranscriptionResult
from voicebot.asr.turns import Pending, _Turn
from voicebot.frames import Transcript

if TYPE_CHECKING:
    from voicebot.asr.scheduler import AsrScheduler
    from voicebot.config import Settings
    from voicebot.vad import Endpointer


class PartialDecoding:
    """``StreamingRecognizer``'s partial decodes: re-decode the turn so far, commit, cut the rolling buffer.

    A mixin: the attributes below are set by ``StreamingRecognizer.__init__``.
    """

    settings: Settings
    scheduler: AsrScheduler
    endpointer: Endpointer
    call_id: str
    buffer_cuts: int
    _turn: _Turn | None
    _interval: int
    _window: int
    _partials: set[asyncio.Task[None]]
    _out: deque[Pending]

    if TYPE_CHECKING:

        def _notify(self, _task: asyncio.Task[Any]) -> None: ...

        def _clean(self, result: TranscriptionResult) -> TranscriptionResult: ...

    # --- partials -----------------------------------------------------------------------

    def _maybe_partial(self) -> None:
        turn = self._turn
        if turn is None or not self.endpointer.in_speech:
            return
        if turn.silence_frames > 0:
            # The caller paused: nothing new to transcribe, and the decode at the pause comes next; a partial
            # started now would take a core from it.
            return
        audio = self.endpointer.current_turn_audio()
        if len(audio) < turn.next_partial_at:
            return
        interval = self._partial_interval()
        if interval is None:
            return  # finals wait for the model: no partial now, ask again with the next audio
        turn.next_partial_at = len(audio) + interval
        window = audio[turn.cut_samples :]
        # Ask for word timings once the buffer grows towards the window, so a cut is possible.
        words = len(window) > self._window // 2
        turn.partial_seq += 1
        end_time = turn.audio_start + len(audio) / ASR_SAMPLE_RATE
        task = asyncio.create_task(self._partial(turn, turn.partial_seq, window, end_time, words))
        self._partials.add(task)
        task.add_done_callback(self._partials.discard)
        task.add_done_callback(self._notify)

    def _partial_interval(self) -> int | None:
        """Samples of audio until the next partial: the scheduler stretches ``asr.partial_interval_ms``
        under load (``AsrScheduler.partial_interval_ms``); ``None`` while finals wait."""
        adapt = getattr(self.scheduler, "partial_interval_ms", None)
        if adapt is None:  # an ASR client without the adaptive rate (a remote engine)
            return self._interval
        base_ms = self._interval * 1000 // ASR_SAMPLE_RATE
        ms = adapt(base_ms)
        return None if ms is None else max(1, ms * ASR_SAMPLE_RATE // 1000)

    async def _partial(self, turn: _Turn, seq: int, window: np.ndarray, end_time: float, words: bool) -> None:
        prompt = None
        if turn.frozen:
            prompt = f"{self.settings.asr.initial_prompt} {' '.join(turn.frozen[-40:])}".strip()
        offset = turn.audio_start + turn.cut_samples / ASR_SAMPLE_RATE
        cut_at_request = turn.cut_samples
        result = await self.scheduler.transcribe(
            window, call_id=self.call_id, final=False, offset=offset, initial_prompt=prompt,
            word_timestamps=words or None,
        )
        # Drop results that are outdated: the turn ended, a newer partial was emitted,
        # or the buffer was cut after this request was made.
        if result is None or self._turn is not turn or seq <= turn.emitted_seq or cut_at_request != turn.cut_samples:
            return
        turn.emitted_seq = seq
        result = self._clean(result)
        if not result.text:
            return  # nothing heard yet (or all phantom): no information, keep the commit state
        update = turn.agreement.update(result.text.split())
        committed = [*turn.frozen, *update.committed]
        text = " ".join([*committed, *update.tentative])
        if words and result.words:
            self._cut(turn, result, len(update.committed))
        if text == turn.last_text:
            return
        turn.last_text = text
        self._out.append(
            Transcript(
                text=text, is_final=False, confidence=result.turn_confidence, start=turn.speech_start, end=end_time,
                committed=" ".join(committed),
            )
        )

    def _cut(self, turn: _Turn, result: TranscriptionResult, n_committed: int) -> None:
        """Rolling buffer: cut the audio after the last committed word with a known end time."""
        if n_committed == 0 or not result.words:
            return
        # Timed words and text words may be split differently ("Willens-" + "Erklärung"):
        # find the timed word where the committed text ends by comparing concatenated keys.
        target = "".join(word_key(w) for w in turn.agreement.committed)
        joined = ""
        end: float | None = None
        for w in result.words:
            joined += word_key(w.text)
            if joined == target:
                end = w.end  # stream time
                break
            if len(joined) >= len(target):
                return  # the timed words do not line up with the committed ones: no safe cut
        if end is None:
            return
        cut = int(round((end - turn.audio_start) * ASR_SAMPLE_RATE))
        if cut <= turn.cut_samples:
            return
        turn.frozen.extend(turn.agreement.committed)
        turn.agreement.reset()
        turn.cut_samples = cut
        self.buffer_cuts += 1

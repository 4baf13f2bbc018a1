"""Pause-segmented finals: the turn decoded at final quality piece by piece while the caller talks.

Each part of a turn that ends in a pause of ``asr.segment_pause_ms`` is decoded at final quality
(beam search, word timings) as soon as the pause is heard. If the caller speaks again, that decode
is kept as a ``Segment``, cut inside the silence, so no word is split; the next part starts at
the cut. When the turn ends, only the tail since the last cut still needs decoding, and usually
it already is: the decode started at the last pause is the tail. The final ``Transcript`` is the
segments' texts joined, words with their absolute times. Each segment is decoded with the kept
segments' text as its prompt (Whisper keeps the context), waits for them to finish first, and
passes the hallucination guards on its own; the first-word clamp (``voicebot.asr.timing``) only
applies to the first segment, the one that starts with the pre-roll (a later segment's words never
start before its cut).

Segment decodes are ``speculative`` for the scheduler (every other call's confirmed final goes
first) until the turn ends (``AsrScheduler.promote``). A segment after a cut is decoded in the
turn-sized window of ``asr.final_chunk_length`` (``window_s`` where the ASR client takes it, else
trailing silence up to ``asr.final_short_turn_s``): the longer window that a short whole turn
needs (20 s on a phone call, ``asr.final_short_window_s``; 30 s when this was measured) would cost a
short segment 3x a 10 s one, and on phone turns WER was the same (``scripts/bench_segments.py``).
``asr.segment_pause_ms = 0`` decodes the whole turn at its end (the early decode of
``asr.speculative_final_ms`` still runs).

The decode at a pause starts ``asr.pause_decode_ms`` into it (before the end-of-turn models decide, so the tail
is decoding when the turn ends); it is kept as a segment only if the pause reaches ``asr.segment_pause_ms``.
With ``turn.speculate`` a speculation starts at ``turn.speculate_after_ms``; its
``SpeculativeFinal`` text is the joined text. Speech that resumes after a pause shorter than
``asr.segment_pause_ms`` voids it (wasted work); after a longer one it is kept as a segment.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from voicebot.asr.timing import clamp_first_word
from voicebot.asr.transcriber import ASR_SAMPLE_RATE, TranscriptionResult, empty_result
from voicebot.asr.turns import GuardEvent, Pending, Segment, _Turn
from voicebot.asr.windows import encoder_window_s, short_final_window_s
from voicebot.frames import SpeculationDropped, SpeculativeFinal, SpeechEnded, Transcript

if TYPE_CHECKING:
    from voicebot.asr.scheduler import AsrScheduler
    from voicebot.config import Settings
    from voicebot.vad import Endpointer

# A tail after a cut with less voiced audio than this is not decoded: the caller's "speech" after
# the last kept segment was a blip (a click, a breath), and Whisper would only invent words.
MIN_TAIL_VOICED_MS = 100
# Words of the kept segments' text given as the next segment's prompt (as partials do after a cut).
PROMPT_WORDS = 40


def join_results(parts: Sequence[TranscriptionResult]) -> TranscriptionResult:
    """One turn's result from its segments' (cleaned) results: texts and words in order.

    One part is returned as it is, so a turn without cuts keeps exactly the old final. Otherwise
    the log-probability and the no-speech probability are the word-weighted means over the parts
    that hold text, so the turn's ``confidence`` stays the geometric mean of all its words."""
    if len(parts) == 1:
        return parts[0]
    spoken = [p for p in parts if p.text.strip()]
    duration = sum(p.duration for p in parts)
    if not spoken:
        return empty_result(duration)
    weights = np.array([max(1, len(p.words)) for p in spoken], dtype=np.float64)
    return TranscriptionResult(
        text=" ".join(p.text.strip() for p in spoken),
        words=tuple(w for p in spoken for w in p.words),
        avg_logprob=float(np.average([p.avg_logprob for p in spoken], weights=weights)),
        no_speech_prob=float(np.average([p.no_speech_prob for p in spoken], weights=weights)),
        duration=duration,
        decode_seconds=sum(p.decode_seconds for p in parts),
        segments=sum(p.segments for p in parts),
        guard=tuple(r for p in parts for r in p.guard),
    )


def pad_to_turn_window(audio: np.ndarray, short_turn_s: float) -> np.ndarray:
    """``audio`` with trailing digital silence up to ``short_turn_s`` (``asr.final_short_turn_s``).

    For an ASR client without ``window_s``: a final shorter than that decodes in the short whole
    turn's longer window (``asr.final_short_window_wideband_s``, where it keeps its last word); padded,
    a segment after a cut is decoded in the turn-sized window. The encoder sees exactly what
    ``window_s`` would give it: the engine pads every window with the same zeros after the audio."""
    need = int(np.ceil(short_turn_s * ASR_SAMPLE_RATE)) + 1 - len(audio)
    if need <= 0:
        return audio
    return np.concatenate([audio, np.zeros(need, dtype=audio.dtype)])


class SegmentedFinals:
    """``StreamingRecognizer``'s final decodes: early decodes at pauses, kept segments, the final.

    A mixin: the attributes below are set by ``StreamingRecognizer.__init__``.
    """

    settings: Settings
    scheduler: AsrScheduler
    endpointer: Endpointer
    call_id: str
    narrowband: bool | None  # a phone call (short whole turns decode in asr.final_short_window_s)
    speculation: dict[str, int]
    segment_stats: dict[str, int]
    wasted_seconds: float
    guard_log: list[GuardEvent]
    results_ready: asyncio.Event
    _turn: _Turn | None
    _out: deque[Pending]
    _speculate: bool
    _spec_seq: int
    _frame_ms: float
    _client_kw: frozenset[str]

    if TYPE_CHECKING:

        def _clean(self, result: TranscriptionResult, prompt: str | None = None) -> TranscriptionResult: ...

    # --- at a pause ---------------------------------------------------------------------

    def _watch_silence(self) -> None:
        """After a pause, decode the undecided part of the turn now; keep it if the caller goes on.

        The endpointer waits ``vad.end_silence_ms`` before it ends a turn; if the caller stays
        silent, the decode started at the pause is the tail and is ready (nearly) at once.
        """
        turn = self._turn
        asr = self.settings.asr
        segmenting = asr.segment_pause_ms > 0
        # Whole-turn early decodes wait for the post-roll: they must hold the same audio as the final.
        # A speculation (turn.speculate) or a segment starts at the pause: the trailing silence it lacks
        # does not change what Whisper hears.
        wait_ms: float = asr.speculative_final_ms
        if self._speculate:
            wait_ms = self.settings.turn.speculate_after_ms
        elif segmenting:
            wait_ms = asr.segment_pause_ms
            if asr.pause_decode_ms > 0:  # start before the end-of-turn decision; kept only past segment_pause_ms
                wait_ms = min(wait_ms, asr.pause_decode_ms)
        elif wait_ms > 0:
            wait_ms = max(wait_ms, self.endpointer.settings.post_roll_ms)
        if turn is None or wait_ms <= 0 or not self.endpointer.in_speech:
            return
        if self.endpointer.last_probability >= self.endpointer.settings.effective_neg_threshold:
            pause_ms = turn.silence_frames * self._frame_ms
            turn.silence_frames = 0
            turn.voiced_since_cut += 1
            if turn.pending is not None:
                long_enough = turn.pending.end - turn.pending.start >= asr.segment_min_s * ASR_SAMPLE_RATE
                if segmenting and pause_ms >= asr.segment_pause_ms and long_enough:
                    self._keep(turn)
                else:
                    self._void(turn)
                if self._speculate:
                    self._out.append(SpeculationDropped(self._spec_seq))
            return
        turn.silence_frames += 1
        if turn.pending is not None or turn.silence_frames * self._frame_ms < wait_ms:
            return
        if self.scheduler.queued_finals > 0:
            return  # the machine is behind: no early work now (the next pause or the end decodes it)
        audio = self.endpointer.current_turn_audio()
        segment = self._decode(turn, audio, len(audio))
        turn.pending = segment
        if self._speculate:
            self._spec_seq += 1
            self.scheduler.cancel_partials(self.call_id)  # the final-quality decode supersedes them
            assert segment.task is not None
            segment.task.add_done_callback(partial(self._speculated, turn=turn, seq=self._spec_seq))

    def _segment_tasks(self) -> list[asyncio.Task[TranscriptionResult | None]]:
        """The ongoing turn's segment decodes still running."""
        turn = self._turn
        if turn is None:
            return []
        return [s.task for s in (*turn.segments, turn.pending) if s is not None and s.task is not None
                and not s.task.done()]

    def _keep(self, turn: _Turn) -> None:
        """Speech resumed after a long enough pause: the early decode is the next kept segment."""
        assert turn.pending is not None
        turn.segments.append(turn.pending)
        turn.pending = None
        turn.voiced_since_cut = 1  # this frame is voiced
        self.segment_stats["kept"] += 1

    def _void(self, turn: _Turn) -> None:
        """Speech resumed too soon (a speculation inside a sentence): its decode is thrown away."""
        assert turn.pending is not None
        self.speculation["wasted"] += 1
        task = turn.pending.task
        turn.pending = None
        if task is None:
            return
        if task.done() and not task.cancelled() and task.exception() is None and (result := task.result()):
            self.wasted_seconds += result.decode_seconds
        # Still waiting for earlier segments or queued: never decoded (the scheduler skips a cancelled
        # request). In flight: its result is ignored.
        task.cancel()

    def _decode(self, turn: _Turn, audio: np.ndarray, end: int, *, confirmed: bool = False) -> Segment:
        """Start the final-quality decode of ``audio[turn.cut:end]`` (after the kept segments)."""
        before = list(turn.segments)
        segment = Segment(start=turn.cut, end=end, prompt=self.settings.asr.initial_prompt, confirmed=confirmed)
        segment.task = asyncio.create_task(self._decode_segment(turn, segment, audio[segment.start : end], before),
                                           name=f"asr-segment-{self.call_id}")
        return segment

    async def _decode_segment(
        self, turn: _Turn, segment: Segment, audio: np.ndarray, before: list[Segment],
    ) -> TranscriptionResult | None:
        asr = self.settings.asr
        tasks = [s.task for s in before if s.task is not None]
        if tasks:  # the prompt needs their text; never cancel them with this one (asyncio.wait)
            await asyncio.wait(tasks)
        context = " ".join(r.text for s in before if (r := _result(s)) is not None and r.text)
        if context:
            segment.prompt = f"{asr.initial_prompt} {' '.join(context.split()[-PROMPT_WORDS:])}".strip()
        kw: dict[str, Any] = {}
        if "speculative" in self._client_kw:
            kw["speculative"] = not segment.confirmed
        offset = turn.audio_start + segment.start / ASR_SAMPLE_RATE
        if segment.start > 0:  # after a cut: the turn-sized window, not the short whole turn's 30 s one
            if "window_s" in self._client_kw:
                kw["window_s"] = encoder_window_s(len(audio) / ASR_SAMPLE_RATE, asr.final_chunk_length,
                                                  asr.window_buckets)
            else:
                audio = pad_to_turn_window(audio, asr.final_short_turn_s)
        elif self.narrowband and "window_s" in self._client_kw:
            short = short_final_window_s(asr, len(audio) / ASR_SAMPLE_RATE, self.narrowband)  # a short whole phone turn
            if short is not None:
                kw["window_s"] = short
        result = await self.scheduler.transcribe(
            audio, call_id=self.call_id, final=True, offset=offset, initial_prompt=segment.prompt, **kw,
        )
        if result is None:  # the scheduler was closed under us
            return None
        segment.before = result.text
        if segment.start > 0:  # no word of this segment starts before its cut (a first word stretched back)
            start = turn.audio_start + segment.start / ASR_SAMPLE_RATE
            result = replace(result, words=tuple(replace(w, start=max(w.start, start), end=max(w.end, start))
                                                 for w in result.words))
        return self._clean(result, segment.prompt)

    def _speculated(self, task: asyncio.Task[TranscriptionResult | None], *, turn: _Turn, seq: int) -> None:
        """A speculation finished: publish it (joined with the kept segments) while it still holds."""
        if task.cancelled() or task.exception() is not None or task.result() is None:
            return
        if self._turn is not turn or turn.pending is None or turn.pending.task is not task:
            return  # the turn ended (the final uses it as it is) or speech resumed (void or kept)
        parts = [*turn.segments, turn.pending]
        self._out.append(SpeculativeFinal(seq, self._transcript(
            parts, start=turn.speech_start, end=turn.audio_start + turn.pending.end / ASR_SAMPLE_RATE)))
        self.results_ready.set()

    # --- at the end of the turn ---------------------------------------------------------

    def _close_turn(self, turn: _Turn, audio: np.ndarray) -> list[Segment]:
        """The turn ended with ``audio``: its segments, the last one being the tail (decoding or decoded)."""
        # A forced cut (vad.max_turn_s) can end the turn before audio a segment or the early decode
        # covers: that text would run into the next turn. Those parts are decoded with the next turn.
        # (A little more than the turn's audio is only the silence the endpointer did not keep.)
        limit = len(audio) + self.endpointer.settings.end_silence_ms * ASR_SAMPLE_RATE // 1000
        while turn.segments and turn.segments[-1].end > limit:
            dropped = turn.segments.pop()
            if dropped.task is not None:
                dropped.task.cancel()
            self.segment_stats["kept"] -= 1
        if turn.pending is not None and (turn.pending.end > limit or turn.pending.start != turn.cut):
            self._void(turn)
            if self._speculate:
                self._out.insert(len(self._out) - 1, SpeculationDropped(self._spec_seq))  # before SpeechEnded
        for segment in turn.segments:
            segment.confirmed = True
        tail = turn.pending
        if tail is not None:
            self.speculation["used"] += 1
            tail.confirmed = True
        elif turn.cut > 0 and turn.voiced_since_cut * self._frame_ms < MIN_TAIL_VOICED_MS:
            self.segment_stats["tails_skipped"] += 1
        elif turn.cut < len(audio):
            tail = self._decode(turn, audio, len(audio), confirmed=True)
        promote = getattr(self.scheduler, "promote", None)
        if promote is not None:
            promote(self.call_id)  # the call's queued segment decodes are confirmed finals now
        if turn.segments:
            self.segment_stats["segmented_turns"] += 1
        return [*turn.segments, *([tail] if tail is not None else [])]

    async def _final(self, event: SpeechEnded, parts: list[Segment], index: int) -> Transcript:
        tasks = [p.task for p in parts if p.task is not None]
        if tasks:
            await asyncio.wait(tasks)
        for p in parts:
            if (r := _result(p)) is not None and r.guard:
                self.guard_log.append(GuardEvent(index, r.guard, p.before))
        return self._transcript(parts, start=event.start, end=event.t)

    def _transcript(self, parts: list[Segment], *, start: float, end: float) -> Transcript:
        """The joined final of ``parts`` (all decoded); the same parts always give the same Transcript."""
        results = []
        for p in parts:
            if (r := _result(p)) is not None:
                # Only the first segment starts with the pre-roll that stretches a first word.
                results.append(replace(r, words=clamp_first_word(r.words)) if p.start == 0 else r)
        if not results:  # nothing decoded (the scheduler was closed, or no audio)
            return Transcript("", True, 0.0, (), start, end, "")
        joined = join_results(results)
        return Transcript(
            text=joined.text, is_final=True, confidence=joined.turn_confidence, words=joined.words,
            start=start, end=end, committed=joined.text,
        )


def _result(segment: Segment) -> TranscriptionResult | None:
    """A finished segment's cleaned result; ``None`` if it was cancelled, failed or never decoded."""
    task = segment.task
    if task is None or not task.done() or task.cancelled() or task.exception() is not None:
        return None
    return task.result()

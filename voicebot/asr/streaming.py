"""Streaming speech recognition for one call: VAD turns, partials, finals.

``StreamingRecognizer`` is fed the caller's 16 kHz ``AudioFrame``s. The
endpointer (``voicebot.vad``) cuts turns; while the caller speaks, every
``asr.partial_interval_ms`` of audio the turn so far is re-decoded in the
background (greedy, no word timings) and run through the LocalAgreement commit
policy; at the end of the turn the whole turn is decoded once more (beam search,
word timings) as the final. Every result passes the hallucination guards.

Nothing is decoded outside a turn (the endpointer's VAD and energy gate decide),
so silence and line noise cost nothing and say nothing.

Speculative finals: after ``asr.speculative_final_ms`` of trailing silence the
turn is decoded at final quality right away; when the endpointer then ends the
turn (``vad.end_silence_ms`` later) without new speech, that result is the final,
so the end-of-turn -> final latency mostly disappears. With ``turn.speculate`` the
decode starts at the first pause (``turn.speculate_after_ms``), partials stop while
it is alive, and its result comes out at once as a ``SpeculativeFinal`` (the call
core answers it speculatively, ``voicebot.call.speculation``); speech that resumes
voids it with a ``SpeculationDropped``. Either way the speculative result, when
used, IS the final: the turn is never decoded twice.

Output order: events come out in stream order: ``SpeechStarted``, partials,
``SpeechEnded``, the final ``Transcript``. A final is awaited in the background;
events after it wait until it is done (so a consumer never sees turn k+1 before
turn k's final). A partial that completes after its turn ended is discarded: the
final supersedes it. Every turn gets a final, possibly with empty text (the turn
was noise, or all phantom): consumers act on ``text``.

Long turns use a rolling buffer: once the undecided part of the turn is longer
than half the encoder window (``asr.chunk_length``), partials ask for word timings,
the audio up to the end of the committed words is cut off, and the committed text
becomes the prompt for the rest, so partial decodes stay window-sized.

Telephone calls (``narrowband=True``, or 8 kHz frames) use ``vad.narrowband_threshold``:
Silero is far less sure of speech in the phone band.

Nothing of a turn is lost at its edges: every turn keeps at least ``MIN_PRE_ROLL_MS`` of
audio before the VAD onset (the detector hears speech late, most of all in the phone
band: see ``voicebot.eval.vad_onset``) and the endpointer's post-roll after it; finals
are decoded in a window sized to the turn (``asr.final_chunk_length``, 30 s for short turns); a turn longer
than ``vad.max_turn_s`` is cut by the endpointer at a pause and goes on as the next turn,
so no word is split between two decodes. ``guard_log`` records every final the
hallucination guards changed (the evaluation counts false blanks on real speech).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Iterable
from functools import partial
from typing import Any

import numpy as np

from voicebot.asr.commit import LocalAgreement
from voicebot.asr.guards import clean_transcript
from voicebot.asr.partials import PartialDecoding
from voicebot.asr.scheduler import AsrScheduler
from voicebot.asr.timing import clamp_first_word
from voicebot.asr.transcriber import ASR_SAMPLE_RATE, TranscriptionResult
from voicebot.asr.turns import GuardEvent as GuardEvent
from voicebot.asr.turns import Pending as Pending
from voicebot.asr.turns import _Turn
from voicebot.audio.resample import StreamResampler
from voicebot.config import Settings, VadSettings
from voicebot.frames import (
    AudioFrame,
    Frame,
    SpeculationDropped,
    SpeculativeFinal,
    SpeechEnded,
    SpeechStarted,
    Transcript,
)
from voicebot.vad import Endpointer, EndpointerSettings, SileroVadModel, build_detector

# The least pre-roll a turn gets. Measured (python -m voicebot.eval.vad_onset, 270 clips of
# speech-de + speech-de-more): the detector's speech onset comes after the start of speech by
# p50/p90/p99 24/414/952 ms wideband (Silero 0.5) and 120/664/1226 ms through the phone line
# (Silero 0.3); with 300 ms of pre-roll 13% (wideband) and 29% (telephone) of turns started
# after the first sound of speech. Leading silence costs Whisper nothing; a clipped first word is lost.
MIN_PRE_ROLL_MS = 1000


def endpointer_settings(vad: VadSettings, narrowband: bool = False) -> EndpointerSettings:
    """The endpointer's settings from the ``[vad]`` config section (telephone-band calls: lower threshold)."""
    threshold = vad.narrowband_threshold if narrowband else vad.threshold
    return EndpointerSettings(
        detector=vad.detector, threshold=threshold, webrtc_aggressiveness=vad.webrtc_aggressiveness,
        pre_roll_ms=max(vad.pre_roll_ms, MIN_PRE_ROLL_MS), min_speech_ms=vad.min_speech_ms,
        end_silence_ms=vad.end_silence_ms,
        max_turn_s=vad.max_turn_s, energy_floor_dbfs=vad.energy_floor_dbfs,
    )


class StreamingRecognizer(PartialDecoding):
    """One call's streaming ASR: ``push`` audio, get speech events and transcripts."""

    def __init__(
        self,
        scheduler: AsrScheduler,
        settings: Settings,
        call_id: str,
        vad_model: SileroVadModel | None = None,
        *,
        narrowband: bool | None = None,
        endpointer: Endpointer | None = None,
    ) -> None:
        """``narrowband``: the caller's audio comes through a telephone channel (8 kHz); the VAD
        then uses ``vad.narrowband_threshold``. ``None`` decides from the first frame's rate."""
        self.scheduler = scheduler
        self.settings = settings
        self.call_id = call_id
        self.narrowband = narrowband
        self._vad_model = vad_model
        self._own_endpointer = endpointer is None
        asr = settings.asr
        if endpointer is None:
            endpointer = self._build_endpointer(bool(narrowband))
        self.endpointer = endpointer
        self._interval = max(1, asr.partial_interval_ms * ASR_SAMPLE_RATE // 1000)
        self._min_partial = asr.min_partial_audio_ms * ASR_SAMPLE_RATE // 1000
        self._window = max(2, asr.chunk_length) * ASR_SAMPLE_RATE
        self._step = self.endpointer.detector.frame_samples
        self._frame_ms = 1000.0 * self._step / ASR_SAMPLE_RATE
        self._resampler: StreamResampler | None = None
        self._turn: _Turn | None = None
        self._turns = 0
        self._out: deque[Pending] = deque()
        self._partials: set[asyncio.Task[None]] = set()
        self._closed = False
        self.buffer_cuts = 0  # rolling-buffer cuts so far (observability, tests)
        self.speculation = {"used": 0, "wasted": 0}  # early final decodes used / thrown away
        self.wasted_seconds = 0.0  # decode seconds of speculations thrown away after they finished
        # turn.speculate: speculate at the first pause and publish the result (SpeculativeFinal).
        self._speculate = bool(getattr(getattr(settings, "turn", None), "speculate", False))
        self._spec_seq = 0  # the current turn's speculation (SpeculativeFinal / SpeculationDropped seq)
        # Set when a background decode finishes: its frames are ready for ``poll()``, so a
        # caller can wait on this instead of polling on a timer.
        self.results_ready = asyncio.Event()
        self.guard_log: list[GuardEvent] = []  # finals the guards changed (observability, eval)

    @property
    def in_speech(self) -> bool:
        return self.endpointer.in_speech

    def _build_endpointer(self, narrowband: bool) -> Endpointer:
        ep_settings = endpointer_settings(self.settings.vad, narrowband)
        return Endpointer(ep_settings, build_detector(ep_settings, self._vad_model))

    # --- public API ---------------------------------------------------------------------

    async def push(self, frame: AudioFrame) -> list[Frame]:
        """Feed caller audio (16 kHz; other rates are resampled); returns the events ready now."""
        if self._closed:
            raise RuntimeError("StreamingRecognizer is closed")
        if self.narrowband is None:
            self.narrowband = frame.sample_rate <= 8000
            if self.narrowband and self._own_endpointer:
                self.endpointer = self._build_endpointer(True)  # nothing analysed yet
        if frame.sample_rate != ASR_SAMPLE_RATE:
            if self._resampler is None or self._resampler.src_rate != frame.sample_rate:
                self._resampler = StreamResampler(frame.sample_rate, ASR_SAMPLE_RATE)
            frame = AudioFrame(self._resampler.process(frame.pcm), ASR_SAMPLE_RATE, frame.t)
        # Feed the endpointer one detector frame at a time so that at most one event
        # comes out per step and the turn's audio start can be read right after it.
        pcm = frame.pcm
        for i in range(0, len(pcm), self._step):
            piece = AudioFrame(pcm[i : i + self._step], ASR_SAMPLE_RATE, frame.t + i / ASR_SAMPLE_RATE)
            analysed = self.endpointer.time
            events = self.endpointer.process(piece)
            for event in events:
                self._on_event(event)
            if not events and self.endpointer.time != analysed:
                self._watch_silence()
        if self._turn is None or self._turn.speculation is None or not self._speculate:
            self._maybe_partial()  # no partials while a speculation holds the turn as it is
        return self._drain()

    async def poll(self) -> list[Frame]:
        """Events ready now, without new audio (finished partials, finals)."""
        await asyncio.sleep(0)  # let finished background tasks deliver
        return self._drain()

    async def wait_partials(self) -> list[Frame]:
        """Wait for the partial decodes in flight, then return what is ready (offline runs, tests)."""
        if self._partials:
            await asyncio.gather(*list(self._partials), return_exceptions=True)
        return self._drain()

    def end_turn(self) -> list[Frame]:
        """Close the ongoing turn now (the end-of-turn models decided); its final follows as usual."""
        for event in self.endpointer.end_turn():
            self._on_event(event)
        return self._drain()

    async def flush(self) -> list[Frame]:
        """End of input: close an ongoing turn and wait for every pending result."""
        for event in self.endpointer.flush():
            self._on_event(event)
        out = await self.wait_partials()
        pending = [p for p in self._out if isinstance(p, asyncio.Task)]
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        return out + self._drain()

    async def aclose(self) -> None:
        """Hang-up: cancel everything in flight."""
        self._closed = True
        self.scheduler.cancel_partials(self.call_id)
        tasks: list[asyncio.Task[Any]] = [*self._partials, *(p for p in self._out if isinstance(p, asyncio.Task))]
        if self._turn is not None and self._turn.speculation is not None:
            tasks.append(self._turn.speculation)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._out.clear()

    def _notify(self, _task: asyncio.Task[Any]) -> None:
        self.results_ready.set()

    # --- turns --------------------------------------------------------------------------

    def _on_event(self, event: SpeechStarted | SpeechEnded) -> None:
        if isinstance(event, SpeechStarted):
            self._turns += 1
            self._turn = _Turn(
                index=self._turns, speech_start=event.t, audio_start=self.endpointer.turn_audio_start,
                agreement=LocalAgreement(self.settings.asr.commit_agreement),
                next_partial_at=max(self._min_partial, self._interval),
            )
            self._out.append(event)
            return
        turn = self._turn
        self._turn = None
        self.scheduler.cancel_partials(self.call_id)
        self._out.append(event)
        audio_start = turn.audio_start if turn is not None else event.start
        audio = event.audio if event.audio is not None else np.zeros(0, dtype=np.int16)
        early = turn.speculation if turn is not None else None
        slack = self.endpointer.settings.end_silence_ms * ASR_SAMPLE_RATE // 1000
        if early is not None and turn is not None and turn.speculation_samples > len(audio) + slack:
            # A forced cut ended the turn well before the audio the early decode covers: its text could
            # run into the next turn (duplicated words). Decode the turn as cut instead. (A little more
            # than the turn's audio is only the silence the endpointer did not keep as post-roll.)
            self._drop_speculation(early)
            early = None
            if self._speculate:
                self._out.insert(len(self._out) - 1, SpeculationDropped(self._spec_seq))  # before SpeechEnded
        if early is not None:
            self.speculation["used"] += 1
        index = turn.index if turn is not None else self._turns
        task = asyncio.create_task(self._final(event, audio, audio_start, early, index),
                                   name=f"asr-final-{self.call_id}")
        task.add_done_callback(self._notify)
        self._out.append(task)

    def _watch_silence(self) -> None:
        """Speculative final: after ``asr.speculative_final_ms`` of trailing silence, decode the turn now.

        The endpointer waits ``vad.end_silence_ms`` (600 ms) before it ends a turn; if
        the caller stays silent, the final decoded 400 ms earlier is ready at once.
        If they speak again, the early decode is cancelled (wasted work, not a wrong result).
        """
        turn = self._turn
        # Not before the post-roll has been heard: the early decode must hold the same audio as the final.
        # A speculation (turn.speculate) starts at the first pause: the trailing silence it lacks does
        # not change what Whisper hears.
        wait_ms = self.settings.asr.speculative_final_ms
        if self._speculate:
            wait_ms = int(self.settings.turn.speculate_after_ms)
        elif wait_ms > 0:
            wait_ms = max(wait_ms, self.endpointer.settings.post_roll_ms)
        if turn is None or wait_ms <= 0 or not self.endpointer.in_speech:
            return
        if turn.speculation is None and self.scheduler.queued_finals > 0:
            return  # the machine is behind: no work that may be thrown away
        if self.endpointer.last_probability >= self.endpointer.settings.effective_neg_threshold:
            turn.silence_frames = 0
            if turn.speculation is not None:
                self._drop_speculation(turn.speculation)
                turn.speculation = None
                if self._speculate:
                    self._out.append(SpeculationDropped(self._spec_seq))
            return
        turn.silence_frames += 1
        if turn.speculation is None and turn.silence_frames * self._frame_ms >= wait_ms:
            audio = self.endpointer.current_turn_audio()
            turn.speculation_samples = len(audio)
            turn.speculation = asyncio.create_task(
                self.scheduler.transcribe(audio, call_id=self.call_id, final=True, offset=turn.audio_start)
            )
            if self._speculate:
                self._spec_seq += 1
                self.scheduler.cancel_partials(self.call_id)  # the final-quality decode supersedes them
                turn.speculation.add_done_callback(partial(self._speculated, turn=turn, seq=self._spec_seq))

    def _drop_speculation(self, task: asyncio.Task[TranscriptionResult | None]) -> None:
        self.speculation["wasted"] += 1
        if task.done() and not task.cancelled() and task.exception() is None and (result := task.result()):
            self.wasted_seconds += result.decode_seconds
        task.cancel()  # still queued: never decoded; in flight: its result is ignored

    def _speculated(self, task: asyncio.Task[TranscriptionResult | None], *, turn: _Turn, seq: int) -> None:
        """A speculation finished: publish it while its turn is still open and it still holds."""
        if task.cancelled() or task.exception() is not None or (result := task.result()) is None:
            return
        if self._turn is not turn or turn.speculation is not task:
            return  # the turn ended (the final uses it as it is) or speech resumed (void)
        result = self._clean(result)
        self._out.append(SpeculativeFinal(seq, Transcript(
            text=result.text, is_final=True, confidence=result.confidence, words=clamp_first_word(result.words),
            start=turn.speech_start, end=turn.audio_start + turn.speculation_samples / ASR_SAMPLE_RATE,
            committed=result.text,
        )))
        self.results_ready.set()

    async def _final(
        self, event: SpeechEnded, audio: np.ndarray, audio_start: float,
        early: asyncio.Task[TranscriptionResult | None] | None = None, index: int = 0,
    ) -> Transcript:
        if early is not None:
            result = await early  # the same turn audio (plus a few ms of silence), decoded early
        else:
            result = await self.scheduler.transcribe(audio, call_id=self.call_id, final=True, offset=audio_start)
        if result is None:  # the scheduler was closed under us
            return Transcript("", True, 0.0, (), event.start, event.t, "")
        before = result.text
        result = self._clean(result)
        if result.guard:
            self.guard_log.append(GuardEvent(index, result.guard, before))
        return Transcript(
            text=result.text, is_final=True, confidence=result.confidence, words=clamp_first_word(result.words),
            start=event.start, end=event.t, committed=result.text,
        )

    # --- helpers ------------------------------------------------------------------------

    def _clean(self, result: TranscriptionResult) -> TranscriptionResult:
        asr = self.settings.asr
        return clean_transcript(
            result, no_speech_threshold=asr.no_speech_threshold, log_prob_threshold=asr.log_prob_threshold,
            prompt=f"{asr.initial_prompt} {asr.hotwords}",
        )

    def _drain(self) -> list[Frame]:
        """Pop the ready prefix of the output queue (a final still decoding blocks what follows)."""
        out: list[Frame] = []
        while self._out:
            head = self._out[0]
            if isinstance(head, asyncio.Task):
                if not head.done():
                    break
                self._out.popleft()
                if not head.cancelled() and head.exception() is None:
                    out.append(head.result())
                continue
            self._out.popleft()
            out.append(head)
        return out


async def run_stream(
    recognizer: StreamingRecognizer,
    pcm16k: np.ndarray,
    *,
    frame_ms: int = 20,
    realtime: bool = False,
    wait_partials: bool = True,
) -> AsyncIterator[tuple[float, Frame]]:
    """Stream a whole recording through ``recognizer``; yields ``(wall seconds, frame)``.

    ``realtime`` paces frames at the speed of speech (a live caller). Otherwise
    frames go in as fast as possible; with ``wait_partials`` every partial decode
    is awaited before more audio goes in, so partials look as they would on a
    machine that keeps up (deterministic, for tests and ``voicebot transcribe``).
    """
    loop = asyncio.get_running_loop()
    started = loop.time()
    step = ASR_SAMPLE_RATE * frame_ms // 1000
    for i in range(0, len(pcm16k), step):
        t = i / ASR_SAMPLE_RATE
        if realtime:
            delay = started + t - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
        frames: Iterable[Frame] = await recognizer.push(AudioFrame(pcm16k[i : i + step], ASR_SAMPLE_RATE, t))
        if wait_partials and not realtime:
            frames = [*frames, *await recognizer.wait_partials()]
        for f in frames:
            yield loop.time() - started, f
    for f in await recognizer.flush():
        yield loop.time() - started, f

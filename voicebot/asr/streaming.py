"""Streaming speech recognition for one call: VAD turns, partials, finals.

``StreamingRecognizer`` is fed the caller's 16 kHz ``AudioFrame``s. The
endpointer (``voicebot.vad``) cuts turns; while the caller speaks, every
``asr.partial_interval_ms`` of audio the turn so far is re-decoded in the
background (greedy, no word timings) and run through the LocalAgreement commit
policy; the final (beam search, word timings) is decoded at the pauses: each part of the
turn that ends in a pause of ``asr.segment_pause_ms`` is decoded while the caller goes on, and
at the end only the tail since the last cut (``voicebot.asr.segments``; with
``asr.segment_pause_ms = 0`` the whole turn at its end). Every result passes the hallucination guards.

Nothing is decoded outside a turn (the endpointer's VAD and energy gate decide),
so silence and line noise cost nothing and say nothing.

Speculative finals: after ``asr.speculative_final_ms`` of trailing silence the
turn is decoded at final quality right away; when the endpointer then ends the
turn (``vad.end_silence_ms`` later) without new speech, that result is the final,
so the end-of-turn -> final latency mostly disappears. With ``turn.speculate`` the
decode starts at the first pause (``turn.speculate_after_ms``), partials stop while
it is alive, and its result comes out at once as a ``SpeculativeFinal`` (the call
core answers it speculatively, ``voicebot.call.speculation``); speech that resumes
voids it with a ``SpeculationDropped`` (its decode is kept as a segment when the pause was
long enough). Either way the speculative result, when used, IS the final (or its tail): no audio
of a turn is decoded twice at final quality.

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
from typing import Any

import numpy as np

from voicebot.asr.commit import LocalAgreement
from voicebot.asr.decode_pool import accepts
from voicebot.asr.guards import clean_for
from voicebot.asr.partials import PartialDecoding
from voicebot.asr.scheduler import AsrScheduler
from voicebot.asr.segments import SegmentedFinals
from voicebot.asr.transcriber import ASR_SAMPLE_RATE, TranscriptionResult
from voicebot.asr.turns import GuardEvent as GuardEvent
from voicebot.asr.turns import Pending as Pending
from voicebot.asr.turns import _Turn
from voicebot.audio.resample import StreamResampler
from voicebot.config import Settings, VadSettings
from voicebot.frames import (
    AudioFrame,
    Frame,
    SpeechEnded,
    SpeechStarted,
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
    neg = vad.narrowband_neg_threshold if narrowband else None  # None: threshold - 0.15
    return EndpointerSettings(
        detector=vad.detector, threshold=threshold, neg_threshold=neg, webrtc_aggressiveness=vad.webrtc_aggressiveness,
        pre_roll_ms=max(vad.pre_roll_ms, MIN_PRE_ROLL_MS), min_speech_ms=vad.min_speech_ms,
        end_silence_ms=vad.end_silence_ms,
        max_turn_s=vad.max_turn_s, energy_floor_dbfs=vad.energy_floor_dbfs, idle_reset_ms=vad.idle_reset_ms,
    )


class StreamingRecognizer(PartialDecoding, SegmentedFinals):
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
        # Pause-segmented finals (segments.py): segments kept, tails not decoded (no speech), turns cut.
        self.segment_stats = {"kept": 0, "tails_skipped": 0, "segmented_turns": 0}
        self._client_kw = frozenset(k for k in ("speculative", "window_s") if accepts(scheduler.transcribe, k))
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
                self._resampler = StreamResampler(frame.sample_rate, ASR_SAMPLE_RATE,
                                                  low_latency=self.settings.asr.low_latency_resample)
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
        if self._turn is None or self._turn.pending is None or not self._speculate:
            self._maybe_partial()  # no partials while a speculation holds the turn as it is
        return self._drain()

    async def poll(self) -> list[Frame]:
        """Events ready now, without new audio (finished partials, finals)."""
        await asyncio.sleep(0)  # let finished background tasks deliver
        return self._drain()

    async def wait_partials(self) -> list[Frame]:
        """Wait for the partial and segment decodes in flight, then return what is ready (offline runs,
        tests: as on a machine that keeps up with the caller)."""
        tasks = [*self._partials, *self._segment_tasks()]
        if tasks:
            await asyncio.wait(tasks)  # never cancels them (a segment's task is shared with the final)
            await asyncio.sleep(0)  # let done callbacks (a speculation's publication) run
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
        tasks += self._segment_tasks()  # the open turn's segment decodes (and its speculation)
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
        audio = event.audio if event.audio is not None else np.zeros(0, dtype=np.int16)
        if turn is None:  # no turn was open (cannot happen with the endpointer's events): decode it whole
            turn = _Turn(index=self._turns, speech_start=event.start, audio_start=event.start,
                         agreement=LocalAgreement(self.settings.asr.commit_agreement))
        parts = self._close_turn(turn, audio)  # the kept segments and the tail (segments.py)
        task = asyncio.create_task(self._final(event, parts, turn.index), name=f"asr-final-{self.call_id}")
        task.add_done_callback(self._notify)
        self._out.append(task)

    # --- helpers ------------------------------------------------------------------------

    def _clean(self, result: TranscriptionResult, prompt: str | None = None) -> TranscriptionResult:
        """The guards, with the prompt the decode used (``prompt``; default ``asr.initial_prompt``)."""
        return clean_for(self.settings.asr, result, prompt)

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

"""Bot speech out: sentence-by-sentence synthesis, resampling, paced frames, barge-in.

``TtsPlayer.speak(text)`` splits the text into sentences and synthesizes them in
an executor thread one at a time (the engines are synchronous and Pico holds the
GIL), starting on sentence *k + 1* while sentence *k* is being sent. So the first
audio leaves after the first sentence is ready, not after the whole text.

Audio is resampled to the caller's rate with one streaming resampler per
utterance (no clicks between sentences) and sent as ``BotAudio`` frames of
``frame_ms``. With ``realtime=True`` frames are paced at the speed of playback
(what a telephone leg expects); with ``realtime=False`` they go out as fast as
the consumer takes them (tests, offline evaluation), still yielding to the event
loop between frames so barge-in can interleave.

``pause()`` holds the next frame (within one frame, <= ``frame_ms``), ``resume()``
continues where it paused, ``stop()`` ends the utterance: ``speak`` returns with
``completed=False``. ``apply(action)`` takes a ``BargeInAction``.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from voicebot.audio.resample import StreamResampler
from voicebot.frames import BotAudio
from voicebot.tts.bargein import BargeInAction
from voicebot.tts.base import SynthesizedAudio, Synthesizer, split_sentences

if TYPE_CHECKING:
    from voicebot.call.clients import SpeechClient

SendAudio = Callable[[BotAudio], Awaitable[None]]


@dataclass(frozen=True)
class PlaybackResult:
    """How an utterance went.

    ``first_audio_at``: clock time (``time.monotonic`` unless a clock was given)
    when the first frame was sent; ``first_audio_latency``: that minus the time
    ``speak`` was called; ``seconds``: audio actually sent.
    """

    completed: bool
    first_audio_at: float | None
    seconds: float
    first_audio_latency: float | None = None
    sentences: int = 0
    paused_seconds: float = 0.0


class TtsPlayer:
    """Speaks text to one call: synthesis in an executor, paced frames, pause/resume/stop."""

    def __init__(
        self,
        synth: Synthesizer | SpeechClient,  # a synthesizer (run in ``executor``) or an async client
        out_rate: int,
        send: SendAudio,
        frame_ms: int = 20,
        realtime: bool = True,
        *,
        executor: Executor | None = None,
        clock: Callable[[], float] = time.monotonic,
        lead_ms: float = 0.0,
    ) -> None:
        """``lead_ms``: how far ahead of real time audio may leave (a gateway's jitter buffer
        never runs dry; on barge-in the client drops what it holds)."""
        if frame_ms <= 0:
            raise ValueError(f"frame_ms must be positive, got {frame_ms}")
        self.synth = synth
        self.out_rate = out_rate
        self.send = send
        self.frame_ms = frame_ms
        self.realtime = realtime
        self.executor = executor
        self.clock = clock
        self.lead = max(0.0, lead_ms) / 1000.0
        self._frame = max(1, out_rate * frame_ms // 1000)
        self._resume_event = asyncio.Event()
        self._resume_event.set()
        self._stopped = False
        self._speaking = False
        self._lock = asyncio.Lock()
        # Per-utterance progress (reset by speak).
        self._first_at: float | None = None
        self._sent = 0  # samples sent
        self._paused_total = 0.0
        self._origin = 0.0  # loop time at which sample 0 was due

    # --- control ----------------------------------------------------------------------

    @property
    def playing(self) -> bool:
        """True while an utterance is being sent (not paused, not stopped)."""
        return self._speaking and self._resume_event.is_set() and not self._stopped

    @property
    def speaking(self) -> bool:
        """True from ``speak`` until it returns, paused or not."""
        return self._speaking

    @property
    def paused(self) -> bool:
        return self._speaking and not self._resume_event.is_set() and not self._stopped

    def pause(self) -> None:
        if self._speaking and not self._stopped:
            self._resume_event.clear()

    def resume(self) -> None:
        self._resume_event.set()

    def stop(self) -> None:
        if self._speaking:
            self._stopped = True
            self._resume_event.set()  # wake a paused loop so it can finish

    def apply(self, action: BargeInAction) -> None:
        """Apply a barge-in decision."""
        if action is BargeInAction.PAUSE:
            self.pause()
        elif action is BargeInAction.RESUME:
            self.resume()
        elif action is BargeInAction.STOP:
            self.stop()

    # --- speaking ---------------------------------------------------------------------

    async def speak(self, text: str) -> PlaybackResult:
        """Synthesize and send ``text``; a running utterance is stopped first."""
        self.stop()
        async with self._lock:
            self._stopped = False
            self._resume_event.set()
            self._speaking = True
            try:
                return await self._speak(text)
            finally:
                self._speaking = False
                self._resume_event.set()

    async def _speak(self, text: str) -> PlaybackResult:
        loop = asyncio.get_running_loop()
        started = self.clock()
        sentences = split_sentences(text)
        resampler = StreamResampler(self.synth.sample_rate, self.out_rate)
        self._first_at = None
        self._sent = 0
        self._paused_total = 0.0
        # The pacing origin: frame k is due at origin + k * frame duration (pauses shift it).
        self._origin = loop.time()
        pending = np.zeros(0, dtype=np.int16)
        next_task = self._synthesize(sentences[0]) if sentences else None
        for i in range(len(sentences)):
            assert next_task is not None
            audio = await next_task
            if self._stopped:
                break
            next_task = self._synthesize(sentences[i + 1]) if i + 1 < len(sentences) else None
            if audio.sample_rate != resampler.src_rate:
                resampler = StreamResampler(audio.sample_rate, self.out_rate)
            last = next_task is None
            pending = np.concatenate([pending, resampler.process(audio.pcm, last=last)])
            n_full = len(pending) if last else len(pending) // self._frame * self._frame
            if not await self._send_frames(pending[:n_full], started):
                break
            pending = pending[n_full:]
        if next_task is not None:
            next_task.cancel()  # the executor finishes the sentence; its audio is discarded
        completed = not self._stopped
        return PlaybackResult(
            completed=completed,
            first_audio_at=self._first_at,
            seconds=self._sent / self.out_rate,
            first_audio_latency=(self._first_at - started) if self._first_at is not None else None,
            sentences=len(sentences),
            paused_seconds=self._paused_total,
        )

    def _synthesize(self, sentence: str) -> asyncio.Future[SynthesizedAudio]:
        if inspect.iscoroutinefunction(self.synth.synthesize):  # an engine client (voicebot.call.clients)
            return asyncio.ensure_future(self.synth.synthesize(sentence))
        loop = asyncio.get_running_loop()
        return loop.run_in_executor(self.executor, self.synth.synthesize, sentence)

    async def _send_frames(self, pcm: np.ndarray, started: float) -> bool:
        """Send ``pcm`` frame by frame; False if the utterance was stopped."""
        loop = asyncio.get_running_loop()
        i = 0
        while i < len(pcm):
            if not self._resume_event.is_set():
                paused_at = loop.time()
                await self._resume_event.wait()
                pause = loop.time() - paused_at
                self._paused_total += pause
                self._origin += pause  # pacing continues where it paused
            if self._stopped:
                return False
            if self.realtime:
                delay = self._origin + self._sent / self.out_rate - self.lead - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                    continue  # paused or stopped while asleep? check again before sending
            frame = pcm[i : i + self._frame]
            if self._first_at is None:
                self._first_at = self.clock()
            await self.send(BotAudio(frame.copy(), self.out_rate))
            self._sent += len(frame)
            i += len(frame)
            if not self.realtime:
                await asyncio.sleep(0)  # let barge-in events in between frames
        return True

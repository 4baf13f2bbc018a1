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

With ``lead_ms`` audio leaves up to that far ahead of real time, so a gateway's
jitter buffer never runs dry when the loop stalls (Pico holds the GIL while it
synthesizes the next sentence). The pacing clock starts at the first frame sent,
and restarts when the caller ran dry, so the caller holds ``lead_ms`` of audio,
no more (a late first sentence never becomes a permanent extra buffer).

``pause()`` holds the next frame (within one frame, <= ``frame_ms``), ``resume()``
continues where the caller stopped hearing: on ``paused`` the client drops what
it holds (docs/PROTOCOL.md; Twilio ``clear``), so the audio sent ahead of the
caller's playout at the pause is sent again on resume. ``stop()`` ends the
utterance: ``speak`` returns with ``completed=False``. ``apply(action)`` takes a
``BargeInAction``.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from voicebot.audio.resample import StreamResampler
from voicebot.frames import BotAudio
from voicebot.tts.bargein import BargeInAction
from voicebot.tts.base import SynthesizedAudio, Synthesizer, split_sentences, trim_trailing_silence

if TYPE_CHECKING:
    from voicebot.call.clients import SpeechClient

SendAudio = Callable[[BotAudio], Awaitable[None]]
# Silence kept after an utterance's last sentence: after it the caller's turn begins (a voice's
# sentence-end silence, 0.25 s with Pico, is only dead air there).
LAST_SILENCE_S = 0.05


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
    # Times the caller's playout ran dry mid-utterance (audio late by more than the lead), and how long.
    underruns: int = 0
    underrun_seconds: float = 0.0
    replayed_seconds: float = 0.0  # audio sent again after pauses (the client dropped it)


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
        self._origin = 0.0  # loop time at which the caller plays sample 0 (pauses and underruns shift it)
        self._tail: deque[np.ndarray] = deque()  # the last frames sent: what a pause may have to send again
        self._tail_len = 0
        self._paused_clock: float | None = None  # loop time of pause()
        self._replay = np.zeros(0, dtype=np.int16)  # dropped by the client at a pause: sent again first
        self._underruns = 0
        self._underrun_s = 0.0
        self._replayed = 0

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
        if self._speaking and not self._stopped and self._resume_event.is_set():
            self._resume_event.clear()
            self._paused_clock = asyncio.get_running_loop().time()
            self._take_unplayed()

    def resume(self) -> None:
        if self._paused_clock is not None and not self._resume_event.is_set():
            pause = asyncio.get_running_loop().time() - self._paused_clock
            self._paused_total += pause
            self._origin += pause  # pacing continues where it paused
        self._paused_clock = None
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
            self._paused_clock = None
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
        self._tail.clear()
        self._tail_len = 0
        self._replay = np.zeros(0, dtype=np.int16)
        self._underruns, self._underrun_s, self._replayed = 0, 0.0, 0
        # The pacing origin: sample k plays at the caller at origin + k / rate (set by the first frame).
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
            pcm = trim_trailing_silence(audio.pcm, audio.sample_rate, LAST_SILENCE_S) if last else audio.pcm
            pending = np.concatenate([pending, resampler.process(pcm, last=last)])
            n_full = len(pending) if last else len(pending) // self._frame * self._frame
            if not await self._send_frames(pending[:n_full], started):
                break
            pending = pending[n_full:]
        if next_task is not None:
            next_task.cancel()  # the executor finishes the sentence; its audio is discarded
        if not self._stopped:
            await self._drain(started)
        completed = not self._stopped
        return PlaybackResult(
            completed=completed,
            first_audio_at=self._first_at,
            seconds=self._sent / self.out_rate,
            first_audio_latency=(self._first_at - started) if self._first_at is not None else None,
            sentences=len(sentences),
            paused_seconds=self._paused_total,
            underruns=self._underruns,
            underrun_seconds=self._underrun_s,
            replayed_seconds=self._replayed / self.out_rate,
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
        while i < len(pcm) or len(self._replay):
            if not self._resume_event.is_set():
                await self._resume_event.wait()
            if self._stopped:
                return False
            if len(self._replay):  # the client dropped it on "paused": send it again first
                pcm, i = np.concatenate([self._replay, pcm[i:]]), 0
                self._replay = np.zeros(0, dtype=np.int16)
            if self.realtime:
                now = loop.time()
                if self._first_at is None:
                    self._origin = now  # the caller starts playing when the first frame arrives
                due = self._origin + self._sent / self.out_rate  # when the caller plays the next sample
                # Later than a frame: the caller ran dry and its playout restarts with this frame. (Less is
                # jitter a gateway absorbs; the pacing catches up, so sleep overshoot never accumulates.)
                if now > due + self.frame_ms / 1000.0:
                    self._underruns += 1
                    self._underrun_s += now - due
                    self._origin += now - due
                    due = now
                delay = due - self.lead - now
                if delay > 0:
                    await asyncio.sleep(delay)
                    continue  # paused or stopped while asleep? check again before sending
            frame = pcm[i : i + self._frame]
            if self._first_at is None:
                self._first_at = self.clock()
            await self.send(BotAudio(frame.copy(), self.out_rate))
            self._sent += len(frame)
            self._keep_sent(frame)
            i += len(frame)
            if not self.realtime:
                await asyncio.sleep(0)  # let barge-in events in between frames
        return True

    async def _drain(self, started: float) -> None:
        """Wait until the caller has played the audio sent ahead (``lead_ms``): until then the bot is
        still speaking, and a pause in that time must be able to send it again."""
        loop = asyncio.get_running_loop()
        while self.realtime and self.lead and not self._stopped:
            if not self._resume_event.is_set():
                await self._resume_event.wait()
                continue
            if len(self._replay):
                if not await self._send_frames(np.zeros(0, dtype=np.int16), started):
                    return
                continue
            left = self._origin + self._sent / self.out_rate - loop.time()
            if left <= 0:
                return
            await asyncio.sleep(min(left, self.frame_ms / 1000.0))  # wake for a pause within a frame

    def _keep_sent(self, frame: np.ndarray) -> None:
        """Remember a sent frame; keep the lead, a frame in flight and a frame of slack."""
        self._tail.append(frame)
        self._tail_len += len(frame)
        keep = int(self.lead * self.out_rate) + 2 * self._frame
        while self._tail_len - len(self._tail[0]) >= keep:
            self._tail_len -= len(self._tail.popleft())

    def _take_unplayed(self) -> None:
        """At ``pause()``: the audio sent but not yet played by the caller goes back to be sent again."""
        if not self.realtime or self._first_at is None or self._paused_clock is None:
            return
        played = int((self._paused_clock - self._origin) * self.out_rate)
        unplayed = max(0, self._sent - played)
        back: list[np.ndarray] = []
        taken = 0
        while self._tail and taken < unplayed:  # whole frames: the one playing is heard again, from its start
            frame = self._tail.pop()
            back.append(frame)
            taken += len(frame)
        if not back:
            return
        self._tail_len -= taken
        self._replay = np.concatenate([*reversed(back), self._replay])
        self._sent -= taken
        self._replayed += taken

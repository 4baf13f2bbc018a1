"""Bot audio sent ahead of real time (``tts.playback_lead_ms``), on virtual time, heard by a model caller.

The caller plays frames as they arrive (a gateway's jitter buffer) and drops what it holds on a
barge-in pause, as docs/PROTOCOL.md asks of native clients and Twilio does on ``clear``. The player
must then send that audio again on resume, so the caller hears every sample, in order.
"""

from __future__ import annotations

import asyncio

import numpy as np
from test_playback import AsyncSynth
from virtual_clock import run_virtual

from voicebot.frames import BotAudio
from voicebot.tts.base import SynthesizedAudio
from voicebot.tts.playback import TtsPlayer

RATE = 8000


class Caller:
    """A playout buffer at the caller: audio plays in arrival order, in real (virtual) time."""

    def __init__(self) -> None:
        self.queue = np.zeros(0, dtype=np.int16)
        self.heard: list[np.ndarray] = []
        self.play_t: float | None = None  # loop time at which the queue's first sample plays
        self.dry = 0.0  # seconds the playout had nothing to play after it started
        self.held: list[float] = []  # seconds buffered at each arrival

    def advance(self, t: float) -> None:
        if self.play_t is None:
            return
        due = (t - self.play_t) * RATE
        n = len(self.queue) if due >= len(self.queue) else max(0, int(round(due)))
        self.heard.append(self.queue[:n])
        self.queue = self.queue[n:]
        self.play_t += n / RATE

    async def __call__(self, audio: BotAudio) -> None:
        t = asyncio.get_running_loop().time()
        self.advance(t)
        if self.play_t is None or (not len(self.queue) and self.play_t < t):
            if self.play_t is not None:
                self.dry += t - self.play_t
            self.play_t = t
        self.queue = np.concatenate([self.queue, audio.pcm])
        self.held.append(len(self.queue) / RATE)

    def drop(self) -> None:
        self.advance(asyncio.get_running_loop().time())
        self.queue = self.queue[:0]

    def finish(self) -> np.ndarray:
        self.advance(float("inf"))
        return np.concatenate(self.heard) if self.heard else np.zeros(0, dtype=np.int16)


class RampSynth(AsyncSynth):
    """Every sample distinct (a ramp), so what the caller heard can be checked sample by sample."""

    async def synthesize(self, text: str) -> SynthesizedAudio:  # type: ignore[override]
        n = int(self.seconds * RATE)
        start = len(self.calls) * n
        self.calls.append(text)
        if self.delay:
            await asyncio.sleep(self.delay)
        return SynthesizedAudio(((np.arange(start, start + n)) % 30000).astype(np.int16), RATE)


def test_a_pause_drops_what_the_caller_holds_and_resume_sends_it_again() -> None:
    async def run() -> tuple[object, np.ndarray, Caller]:
        caller = Caller()
        player = TtsPlayer(RampSynth(seconds=1.0), RATE, caller, frame_ms=20, realtime=True, lead_ms=250)
        speak = asyncio.create_task(player.speak("Eins. Zwei."))
        await asyncio.sleep(0.7)
        player.pause()
        caller.drop()  # the "paused" event (or Twilio's clear) reached the caller
        await asyncio.sleep(0.4)
        player.resume()
        result = await speak
        return result, caller.finish(), caller

    result, heard, caller = run_virtual(run())
    assert result.completed and result.replayed_seconds >= 0.25
    expected = np.arange(2 * RATE) % 30000
    # Every sample heard, in order; a resume may repeat at most the frame that was playing.
    i = int(np.argmax(np.diff(heard.astype(np.int64)) != 1)) + 1
    assert np.array_equal(heard[:i], expected[:i])
    rest = heard[i:]
    assert 0 <= i - int(rest[0]) <= 160 and np.array_equal(rest, expected[int(rest[0]):])


def test_the_caller_holds_the_lead_even_when_the_first_sentence_is_late() -> None:
    async def run() -> Caller:
        caller = Caller()
        synth = RampSynth(seconds=1.0, delay=0.3)  # 300 ms to synthesize each sentence
        player = TtsPlayer(synth, RATE, caller, frame_ms=20, realtime=True, lead_ms=200)
        result = await player.speak("Eins. Zwei. Drei.")
        assert result.completed and result.underruns == 0
        return caller

    caller = run_virtual(run())
    assert max(caller.held) <= 0.2 + 0.02 + 1e-9  # never more than the lead (+ the frame just sent)
    assert caller.dry == 0.0


def test_speak_returns_when_the_caller_has_heard_the_last_sample() -> None:
    async def run() -> tuple[float, float]:
        caller = Caller()
        player = TtsPlayer(AsyncSynth(seconds=0.6), 16000, _resampled(caller), frame_ms=20, realtime=True,
                           lead_ms=200)
        loop = asyncio.get_running_loop()
        await player.speak("Eins.")
        return loop.time(), caller.play_t + len(caller.queue) / RATE if caller.play_t is not None else 0.0

    returned, played_out = run_virtual(run())
    assert abs(returned - played_out) <= 0.021  # not 200 ms early: barge-in stays armed to the end


def test_slow_synthesis_is_counted_as_underruns() -> None:
    async def run() -> tuple[object, Caller]:
        caller = Caller()
        synth = RampSynth(seconds=0.3, delay=0.5)  # each sentence takes longer to make than to play
        player = TtsPlayer(synth, RATE, caller, frame_ms=20, realtime=True, lead_ms=100)
        return await player.speak("Eins. Zwei. Drei."), caller

    result, caller = run_virtual(run())
    assert result.underruns == 2 and abs(result.underrun_seconds - caller.dry) < 1e-6


def _resampled(caller: Caller):  # type: ignore[no-untyped-def]
    """The fake synthesizer speaks at 16 kHz; the model caller counts at 8 kHz."""

    async def send(audio: BotAudio) -> None:
        await caller(BotAudio(audio.pcm[::2].copy(), RATE))

    return send


def test_a_backchannel_in_the_last_lead_is_replayed_before_speak_returns() -> None:
    async def run() -> tuple[object, np.ndarray]:
        caller = Caller()
        player = TtsPlayer(RampSynth(seconds=0.5), RATE, caller, frame_ms=20, realtime=True, lead_ms=200)
        speak = asyncio.create_task(player.speak("Eins."))
        await asyncio.sleep(0.4)  # all 0.5 s were sent by 0.3 s; the caller is at 0.4 s
        player.pause()
        caller.drop()
        await asyncio.sleep(0.3)
        assert not speak.done()  # paused with audio the caller has not heard: still speaking
        player.resume()
        return await speak, caller.finish()

    result, heard = run_virtual(run())
    assert result.completed and result.replayed_seconds > 0.05
    assert np.array_equal(np.unique(heard), np.arange(int(0.5 * RATE)))  # every sample heard

"""The ASR scheduler under load: finals before partials, and a partial rate that gives way.

Orchestration (the adaptive interval's arithmetic) runs on a fake transcriber that
subclasses the real one and advances a fake clock per decode; ordering and the
"no partials while finals wait" behaviour run on real whisper-base with real German
speech through the telephone channel. No wall-clock assertions.
"""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from tests.fake_engines import FakeTranscriber
from voicebot.asr.partial_rate import adaptive_interval_ms
from voicebot.asr.scheduler import AsrScheduler
from voicebot.asr.streaming import StreamingRecognizer
from voicebot.audio.channel import telephone_channel
from voicebot.audio.io import load_for_asr
from voicebot.audio.resample import resample
from voicebot.config import Settings
from voicebot.frames import AudioFrame
from voicebot.vad import SileroVadModel

MORE = Path(__file__).resolve().parents[2] / "shared" / "data" / "speech-de-more"
AUDIO = np.zeros(8000, dtype=np.int16)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class ClockedTranscriber(FakeTranscriber):
    """Every decode "takes" ``cost`` seconds of the scheduler's (fake) clock."""

    def __init__(self, settings: Settings, clock: FakeClock, cost: float) -> None:
        super().__init__(settings, decode_s=0.0)
        self.clock = clock
        self.cost = cost

    def transcribe(self, audio, beam_size=None, word_timestamps=True, initial_prompt=None, offset=0.0):  # type: ignore[override]
        self.clock.now += self.cost
        return super().transcribe(audio, beam_size, word_timestamps, initial_prompt, offset)


def test_adaptive_interval_grows_with_calls_and_decode_time_and_is_capped() -> None:
    intervals = [adaptive_interval_ms(400, calls, 0.1, 0.35, 4000) for calls in (1, 3, 6, 12, 64)]
    assert intervals[0] == 400  # a lone call on an idle box keeps the configured rate
    assert intervals == sorted(intervals) and len(set(intervals)) == len(intervals)
    assert intervals[-1] == 4000  # asr.partial_max_interval_ms
    assert adaptive_interval_ms(400, 4, 0.4, 0.35, 4000) > adaptive_interval_ms(400, 4, 0.2, 0.35, 4000)
    assert adaptive_interval_ms(400, 32, 0.2, 0.35, 0) > 4000  # no cap


async def test_scheduler_stretches_partials_from_measured_decodes(settings: Settings) -> None:
    asr = replace(settings.asr, partial_cpu_share=0.35, partial_max_interval_ms=4000)
    clock = FakeClock()
    engine = ClockedTranscriber(settings, clock, cost=0.2)
    async with AsrScheduler(engine, asr, clock=clock) as scheduler:
        assert scheduler.partial_interval_ms(400) == 400  # nothing measured yet
        await scheduler.transcribe(AUDIO, call_id="a", final=False)
        one = scheduler.partial_interval_ms(400)
        await scheduler.transcribe(AUDIO, call_id="b", final=False)
        two = scheduler.partial_interval_ms(400)
        for call in "cdef":
            await scheduler.transcribe(AUDIO, call_id=call, final=False)
        six = scheduler.partial_interval_ms(400)
        for call in "abcdef":  # their turns ended: they no longer count
            scheduler.cancel_partials(call)
        idle = scheduler.partial_interval_ms(400)
    assert one == 400 < two < six
    assert idle == 400


async def test_adaptive_partials_can_be_switched_off(settings: Settings) -> None:
    clock = FakeClock()
    engine = ClockedTranscriber(settings, clock, cost=2.0)
    async with AsrScheduler(engine, replace(settings.asr, adaptive_partials=False), clock=clock) as scheduler:
        await scheduler.transcribe(AUDIO, call_id="a", final=False)
        assert scheduler.partial_interval_ms(400) == 400


# --- real whisper-base, real German telephone speech -------------------------------------


def _phone_clips(n: int) -> list[tuple[np.ndarray, str]]:
    """The first ``n`` speech-de-more clips through the phone line, back at 16 kHz (as the server hears them)."""
    manifest = MORE / "manifest.jsonl"
    if not manifest.is_file():
        pytest.skip(f"shared German speech not found at {MORE}")
    rows = [json.loads(line) for line in manifest.read_text(encoding="utf-8").splitlines() if line.strip()][:n]
    out = []
    for row in rows:
        narrow, rate = telephone_channel(load_for_asr(MORE / row["audio"]), 16000)
        out.append((resample(narrow, rate, 16000), row["text"]))
    return out


async def test_a_final_preempts_queued_partials_of_other_calls_on_the_real_model(transcriber, settings) -> None:
    clips = _phone_clips(4)
    done: list[str] = []
    # No staleness drop here: on a busy machine a partial may wait longer than partial_max_age_ms.
    # One worker for every kind (no partial lane): the order finals-first gives is what is tested.
    async with AsrScheduler(transcriber, settings.asr, partial_max_age_s=3600, workers=1,
                            partial_lane=False) as scheduler:
        tasks = {}
        for call, (pcm, _text) in zip("abc", clips, strict=False):
            tasks[f"partial-{call}"] = asyncio.create_task(scheduler.transcribe(pcm, call_id=call, final=False))
        # Call a asks again before its first partial was served: the newer request replaces it.
        tasks["partial-a2"] = asyncio.create_task(scheduler.transcribe(clips[0][0], call_id="a", final=False))
        tasks["final-d"] = asyncio.create_task(scheduler.transcribe(clips[3][0], call_id="d", final=True))
        for name, task in tasks.items():
            task.add_done_callback(lambda _t, name=name: done.append(name))
        results = {name: await task for name, task in tasks.items()}
        stats = scheduler.stats()
    assert done[:2] == ["partial-a", "final-d"]  # the replaced partial resolves at once, then the final
    assert results["partial-a"] is None and stats["partial"]["replaced"] == 1
    assert set(done[2:]) == {"partial-a2", "partial-b", "partial-c"}
    final = results["final-d"]
    assert final is not None and final.words  # finals carry word timings, partials do not need them
    heard = set(final.text.lower().replace(".", "").replace(",", "").split())
    said = set(clips[3][1].lower().replace(".", "").replace(",", "").split())
    assert len(heard & said) >= len(said) // 2
    # A final is decoded in a final's window (whatever the beam), a partial in the short one.
    assert final.extra["window_s"] == transcriber.window_for(final.duration, final=True)
    assert results["partial-b"].extra["window_s"] == transcriber.window_for(results["partial-b"].duration)


async def test_no_partials_while_finals_wait_then_partials_resume(transcriber, settings) -> None:
    clips = _phone_clips(3)
    async with AsrScheduler(transcriber, settings.asr, workers=1) as scheduler:
        # Two other calls' finals: one decoding, one waiting for the model.
        first = asyncio.create_task(scheduler.transcribe(clips[0][0], call_id="x", final=True))
        await asyncio.sleep(0)  # the worker takes the first final
        second = asyncio.create_task(scheduler.transcribe(clips[1][0], call_id="y", final=True))
        await asyncio.sleep(0)
        assert scheduler.queued_finals >= 1
        recognizer = StreamingRecognizer(scheduler, settings, "caller", SileroVadModel().load(), narrowband=True)
        narrow, rate = telephone_channel(load_for_asr(MORE / "clips" / "cv61_17332094.flac"), 16000)
        step = rate // 50
        # push() does not yield to the event loop, so the second final stays queued meanwhile.
        for i in range(0, min(len(narrow), 3 * rate), step):
            await recognizer.push(AudioFrame(narrow[i : i + step], rate, i / rate))
        assert recognizer.in_speech
        assert not recognizer._partials  # the caller's speech asked for no partial
        assert scheduler.stats()["partials_skipped"] > 0
        await asyncio.gather(first, second)
        assert scheduler.queued_finals == 0
        for i in range(3 * rate, min(len(narrow), 4 * rate), step):
            await recognizer.push(AudioFrame(narrow[i : i + step], rate, i / rate))
        asked = len(recognizer._partials)
        await recognizer.aclose()
    assert asked >= 1  # finals done: the live transcript comes back


def test_encoder_windows_grow_in_buckets() -> None:
    from voicebot.asr.transcriber import encoder_window_s

    buckets = (10, 15, 20, 30)
    assert [encoder_window_s(d, 10, buckets) for d in (2.0, 9.4, 9.6, 12.0, 16.0, 25.0)] == [10, 10, 15, 15, 20, 30]
    assert encoder_window_s(12.0, 10) == 13  # without buckets: just long enough
    assert encoder_window_s(4.0, 30, buckets) == 30  # the least window still holds


class GatedTranscriber(FakeTranscriber):
    """The first decode waits for ``gate``; every decode logs its offset (the request's tag)."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, decode_s=0.0)
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.order: list[int] = []

    def transcribe(self, audio, beam_size=None, word_timestamps=True, initial_prompt=None, offset=0.0):  # type: ignore[override]
        self.order.append(int(offset))
        self.entered.set()
        self.gate.wait(30)
        return super().transcribe(audio, beam_size, word_timestamps, initial_prompt, offset)


async def test_confirmed_finals_go_before_speculative_ones_and_promotion_moves_them_up(settings: Settings) -> None:
    engine = GatedTranscriber(settings)
    async with AsrScheduler(engine, settings.asr, partial_max_age_s=3600) as scheduler:
        busy = asyncio.create_task(scheduler.transcribe(AUDIO, call_id="busy", final=True, offset=0))
        await asyncio.get_running_loop().run_in_executor(None, engine.entered.wait, 30)
        tasks = [
            asyncio.create_task(scheduler.transcribe(AUDIO, call_id="a", final=True, offset=1, speculative=True)),
            asyncio.create_task(scheduler.transcribe(AUDIO, call_id="b", final=True, offset=2)),
            asyncio.create_task(scheduler.transcribe(AUDIO, call_id="c", final=False, offset=3)),
            asyncio.create_task(scheduler.transcribe(AUDIO, call_id="d", final=True, offset=4, speculative=True)),
        ]
        await asyncio.sleep(0)  # one loop turn: each new task runs up to its queued request
        assert scheduler.queue_depth == 4
        assert scheduler.partial_interval_ms(400) is None  # finals wait: no partials
        scheduler.promote("d")  # d's caller stayed silent: its turn is over
        engine.gate.set()
        await asyncio.gather(busy, *tasks)
    assert engine.order == [0, 2, 4, 1, 3]


async def test_two_decode_workers_serve_two_calls_at_once_on_the_real_model(transcriber, settings) -> None:
    clips = _phone_clips(2)
    assert transcriber.concurrency == settings.asr.decode_workers == 2
    async with AsrScheduler(transcriber, settings.asr) as scheduler:
        assert scheduler.workers == 2
        tasks = [asyncio.create_task(scheduler.transcribe(pcm, call_id=f"c{i}", final=True))
                 for i, (pcm, _text) in enumerate(clips)]
        await asyncio.sleep(0)  # the requests reach the queue
        await asyncio.sleep(0)  # both workers take one
        in_flight = scheduler.stats()["in_flight"]
        results = await asyncio.gather(*tasks)
    assert in_flight == 2
    for result, (_pcm, text) in zip(results, clips, strict=True):
        said = set(text.lower().replace(".", "").replace(",", "").split())
        heard = set(result.text.lower().replace(".", "").replace(",", "").split())
        assert len(heard & said) >= len(said) // 2

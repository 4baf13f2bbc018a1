"""AsrScheduler orchestration with a scripted engine (timing only; the real model is tested elsewhere)."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from voicebot.asr.scheduler import AsrScheduler
from voicebot.asr.transcriber import TranscriptionResult
from voicebot.config import AsrSettings


class GatedEngine:
    """Decodes instantly, except that the first call blocks until ``gate`` is set; logs the order."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.order: list[tuple[str, int]] = []  # (kind by beam size, tag = offset)
        self.settings = AsrSettings()

    def transcribe(self, audio, *, beam_size=None, word_timestamps=True, initial_prompt=None, offset=0.0):
        self.order.append(("final" if beam_size == self.settings.final_beam_size else "partial", int(offset)))
        self.entered.set()
        self.gate.wait(5)
        return TranscriptionResult(f"tag {int(offset)}", (), -0.2, 0.0, len(audio) / 16000, 0.0)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


AUDIO = np.zeros(8000, dtype=np.int16)


async def _block_worker(scheduler: AsrScheduler, engine: GatedEngine) -> asyncio.Task:
    """Occupy the worker with one final so that later requests queue up."""
    first = asyncio.create_task(scheduler.transcribe(AUDIO, call_id="busy", final=True, offset=0))
    await asyncio.get_running_loop().run_in_executor(None, engine.entered.wait, 5)
    return first


async def test_finals_are_served_before_partials() -> None:
    engine = GatedEngine()
    async with AsrScheduler(engine) as scheduler:
        first = await _block_worker(scheduler, engine)
        p1 = asyncio.create_task(scheduler.transcribe(AUDIO, call_id="a", final=False, offset=1))
        p2 = asyncio.create_task(scheduler.transcribe(AUDIO, call_id="b", final=False, offset=2))
        f3 = asyncio.create_task(scheduler.transcribe(AUDIO, call_id="c", final=True, offset=3))
        await asyncio.sleep(0.01)
        assert scheduler.stats()["queue_depth"] == 3
        engine.gate.set()
        results = await asyncio.gather(first, p1, p2, f3)
    assert [r.text for r in results] == ["tag 0", "tag 1", "tag 2", "tag 3"]
    assert engine.order == [("final", 0), ("final", 3), ("partial", 1), ("partial", 2)]


async def test_one_pending_partial_per_call_newest_wins() -> None:
    engine = GatedEngine()
    async with AsrScheduler(engine) as scheduler:
        first = await _block_worker(scheduler, engine)
        old = asyncio.create_task(scheduler.transcribe(AUDIO, call_id="a", final=False, offset=1))
        other = asyncio.create_task(scheduler.transcribe(AUDIO, call_id="b", final=False, offset=2))
        await asyncio.sleep(0.01)
        new = asyncio.create_task(scheduler.transcribe(AUDIO, call_id="a", final=False, offset=3))
        await asyncio.sleep(0.01)
        assert old.done() and old.result() is None  # replaced at once, not after the queue drains
        assert scheduler.stats()["queued_partials"] == 2
        engine.gate.set()
        await first
        assert (await new).text == "tag 3" and (await other).text == "tag 2"
        stats = scheduler.stats()
    # Call a keeps its place in the queue ahead of call b.
    assert engine.order == [("final", 0), ("partial", 3), ("partial", 2)]
    assert stats["partial"]["replaced"] == 1 and stats["partial"]["served"] == 2


async def test_stale_partial_is_dropped_but_stale_final_is_not() -> None:
    engine = GatedEngine()
    clock = FakeClock()
    async with AsrScheduler(engine, partial_max_age_s=1.0, clock=clock) as scheduler:
        first = await _block_worker(scheduler, engine)
        stale = asyncio.create_task(scheduler.transcribe(AUDIO, call_id="a", final=False, offset=1))
        final = asyncio.create_task(scheduler.transcribe(AUDIO, call_id="a", final=True, offset=2))
        await asyncio.sleep(0.01)
        clock.now += 1.5  # the model was busy for 1.5 s
        fresh = asyncio.create_task(scheduler.transcribe(AUDIO, call_id="b", final=False, offset=3))
        await asyncio.sleep(0.01)
        engine.gate.set()
        await first
        assert await stale is None
        assert (await final).text == "tag 2"
        assert (await fresh).text == "tag 3"
        stats = scheduler.stats()
    assert ("partial", 1) not in engine.order
    assert stats["partial"]["dropped_stale"] == 1
    assert stats["final"]["served"] == 2 and stats["queue_depth"] == 0


async def test_stats_report_latency_and_results_carry_it() -> None:
    engine = GatedEngine()
    engine.gate.set()
    async with AsrScheduler(engine) as scheduler:
        results = [await scheduler.transcribe(AUDIO, call_id="a", final=i % 2 == 0, offset=i) for i in range(6)]
        stats = scheduler.stats()
    assert all(r is not None and r.extra["latency_seconds"] >= r.extra["queue_seconds"] >= 0 for r in results)
    for kind in ("final", "partial"):
        assert stats[kind]["served"] == 3
        assert 0 <= stats[kind]["latency_p50"] <= stats[kind]["latency_p95"] < 1.0
    assert stats["audio_seconds"] == pytest.approx(3.0)
    assert stats["batches"] == 6 and stats["mean_batch"] == 1.0


async def test_unstarted_scheduler_refuses_and_close_releases_waiters() -> None:
    engine = GatedEngine()
    scheduler = AsrScheduler(engine)
    with pytest.raises(RuntimeError):
        await scheduler.transcribe(AUDIO, call_id="a", final=True)
    await scheduler.start()
    first = await _block_worker(scheduler, engine)
    queued = asyncio.create_task(scheduler.transcribe(AUDIO, call_id="b", final=False, offset=1))
    await asyncio.sleep(0.01)
    engine.gate.set()
    await scheduler.aclose()
    assert await queued is None
    first.cancel()


class GatedBatchEngine(GatedEngine):
    """Also decodes batches; logs each batch as (kind, tags)."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[tuple[str, list[int]]] = []

    def transcribe_batch(self, audios, *, beam_size=None, word_timestamps=True, initial_prompt=None, offsets=None):
        kind = "final" if beam_size == self.settings.final_beam_size else "partial"
        self.batches.append((kind, [int(o) for o in offsets]))
        return [TranscriptionResult(f"tag {int(o)}", (), -0.2, 0.0, 0.5, 0.0) for o in offsets]


async def test_batches_group_finals_and_partials_separately() -> None:
    engine = GatedBatchEngine()
    async with AsrScheduler(engine, max_batch=4) as scheduler:
        first = await _block_worker(scheduler, engine)
        tasks = [asyncio.create_task(scheduler.transcribe(AUDIO, call_id=f"p{i}", final=False, offset=i))
                 for i in (1, 2, 3)]
        tasks += [asyncio.create_task(scheduler.transcribe(AUDIO, call_id=f"f{i}", final=True, offset=i))
                  for i in (4, 5)]
        await asyncio.sleep(0.01)
        engine.gate.set()
        results = await asyncio.gather(first, *tasks)
        stats = scheduler.stats()
    assert [r.text for r in results] == [f"tag {i}" for i in range(6)]
    assert engine.batches == [("final", [4, 5]), ("partial", [1, 2, 3])]
    assert stats["batches"] == 3 and stats["mean_batch"] == 2.0


async def test_finals_are_decoded_greedily_while_others_wait() -> None:
    engine = GatedEngine()
    async with AsrScheduler(engine) as scheduler:
        first = await _block_worker(scheduler, engine)
        waiting = [asyncio.create_task(scheduler.transcribe(AUDIO, call_id=f"c{i}", final=True, offset=i))
                   for i in (1, 2)]
        await asyncio.sleep(0.01)
        engine.gate.set()
        await asyncio.gather(first, *waiting)
        stats = scheduler.stats()
    # Final 1 had final 2 behind it: greedy ("partial" beam); final 2 was alone: full beam.
    assert engine.order == [("final", 0), ("partial", 1), ("final", 2)]
    assert stats["finals_hurried"] == 1


class CountingGatedEngine(GatedEngine):
    """``GatedEngine`` whose every decode waits for ``gate``; ``started`` counts decodes begun."""

    def __init__(self) -> None:
        super().__init__()
        self.started = threading.Semaphore(0)

    def transcribe(self, audio, *, beam_size=None, word_timestamps=True, initial_prompt=None, offset=0.0):
        self.started.release()
        return super().transcribe(audio, beam_size=beam_size, word_timestamps=word_timestamps,
                                  initial_prompt=initial_prompt, offset=offset)


async def test_partials_leave_one_worker_free_for_finals() -> None:
    engine = CountingGatedEngine()
    loop = asyncio.get_running_loop()
    async with AsrScheduler(engine, workers=2) as scheduler:
        pa = asyncio.create_task(scheduler.transcribe(AUDIO, call_id="a", final=False, offset=1))
        assert await loop.run_in_executor(None, engine.started.acquire, True, 5)
        pb = asyncio.create_task(scheduler.transcribe(AUDIO, call_id="b", final=False, offset=2))
        for _ in range(5):
            await asyncio.sleep(0)  # let an idle worker pick it up, if it would
        stats = scheduler.stats()
        assert stats["in_flight"] == 1 and stats["queued_partials"] == 1  # b's partial waits: one worker stays free
        fc = asyncio.create_task(scheduler.transcribe(AUDIO, call_id="c", final=True, offset=3))
        assert await loop.run_in_executor(None, engine.started.acquire, True, 5)  # the final starts at once
        assert scheduler.stats()["in_flight"] == 2
        engine.gate.set()
        results = await asyncio.gather(pa, pb, fc)
    assert [r.text for r in results] == ["tag 1", "tag 2", "tag 3"]
    assert engine.order == [("partial", 1), ("final", 3), ("partial", 2)]


async def test_a_chosen_window_reaches_engines_that_take_it() -> None:
    class WindowEngine(GatedEngine):
        def __init__(self) -> None:
            super().__init__()
            self.gate.set()
            self.windows: list[int | None] = []

        def transcribe(self, audio, *, beam_size=None, word_timestamps=True, initial_prompt=None, offset=0.0,
                       final=False, window_s=None):
            self.windows.append(window_s)
            return super().transcribe(audio, beam_size=beam_size, word_timestamps=word_timestamps,
                                      initial_prompt=initial_prompt, offset=offset)

    engine = WindowEngine()
    async with AsrScheduler(engine) as scheduler:
        await scheduler.transcribe(AUDIO, call_id="a", final=True, window_s=15, speculative=True)
        await scheduler.transcribe(AUDIO, call_id="a", final=True)
    assert engine.windows == [15, None]


async def test_promote_requeues_a_calls_segment_decodes_of_different_lengths() -> None:
    """Pause-segmented finals queue several speculative decodes per call (audio of different lengths):
    promoting them must not compare audio arrays (a dataclass __eq__ raised on unequal shapes)."""
    engine = GatedEngine()
    async with AsrScheduler(engine) as scheduler:
        first = await _block_worker(scheduler, engine)
        a1 = asyncio.create_task(scheduler.transcribe(AUDIO, call_id="a", final=True, offset=1, speculative=True))
        a2 = asyncio.create_task(scheduler.transcribe(np.zeros(12000, dtype=np.int16), call_id="a", final=True,
                                                      offset=2, speculative=True))
        b3 = asyncio.create_task(scheduler.transcribe(AUDIO[:4000], call_id="b", final=True, offset=3))
        while scheduler.stats()["queue_depth"] < 3:
            await asyncio.sleep(0)
        scheduler.promote("a")
        engine.gate.set()
        results = await asyncio.gather(first, a1, a2, b3)
    assert [r.text for r in results] == ["tag 0", "tag 1", "tag 2", "tag 3"]
    assert [tag for _kind, tag in engine.order] == [0, 3, 1, 2]  # b's confirmed final first, then a's in order

"""What the ASR scheduler spends under load: decode seconds by use, the hurried final's fallback (scripted
engines: orchestration only; the real model is tested in test_asr_*)."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import replace

import numpy as np

from voicebot.asr.scheduler import AsrScheduler, DecodeSpan
from voicebot.asr.transcriber import TranscriptionResult
from voicebot.config import AsrSettings

AUDIO = np.zeros(8000, dtype=np.int16)


class FallbackEngine:
    """Decodes at once, except the first decode, which waits for ``gate``; logs (beam, fallback) per decode."""

    def __init__(self, settings: AsrSettings) -> None:
        self.settings = settings
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.calls: list[tuple[int | None, bool | None]] = []

    def transcribe(self, audio, *, beam_size=None, word_timestamps=True, initial_prompt=None, offset=0.0,
                   fallback=None):
        self.calls.append((beam_size, fallback))
        self.entered.set()
        self.gate.wait(5)
        return TranscriptionResult("text", (), -0.2, 0.0, len(audio) / 16000, 0.0)


async def _hurried_calls(settings: AsrSettings) -> list[tuple[int | None, bool | None]]:
    engine = FallbackEngine(settings)
    async with AsrScheduler(engine, settings, workers=1) as scheduler:
        first = asyncio.create_task(scheduler.transcribe(AUDIO, call_id="busy", final=True))
        await asyncio.get_running_loop().run_in_executor(None, engine.entered.wait, 5)
        waiting = [asyncio.create_task(scheduler.transcribe(AUDIO, call_id=f"c{i}", final=True)) for i in (1, 2)]
        await asyncio.sleep(0.01)
        engine.gate.set()
        await asyncio.gather(first, *waiting)
    return engine.calls


async def test_a_hurried_final_goes_without_the_fallback_only_when_told() -> None:
    base = AsrSettings(final_fallback="always")
    # The first final ran alone (beam 5); the second had the third behind it (hurried, greedy); the last alone.
    assert await _hurried_calls(replace(base, hurried_fallback=True)) == [(5, None), (1, None), (5, None)]
    assert await _hurried_calls(replace(base, hurried_fallback=False)) == [(5, None), (1, False), (5, None)]


async def test_decode_seconds_say_what_became_of_each_decode() -> None:
    engine = FallbackEngine(AsrSettings())
    spans: list[DecodeSpan] = []
    async with AsrScheduler(engine, workers=1) as scheduler:
        scheduler.observers.append(spans.append)
        doomed = asyncio.create_task(scheduler.transcribe(AUDIO, call_id="a", final=True, speculative=True))
        await asyncio.get_running_loop().run_in_executor(None, engine.entered.wait, 5)
        doomed.cancel()  # the caller went on: the pause decode in flight is voided
        await asyncio.sleep(0.01)
        engine.gate.set()
        await scheduler.transcribe(AUDIO, call_id="b", final=True)
        await scheduler.transcribe(AUDIO, call_id="c", final=False)
        spent = scheduler.stats()["decode_seconds"]
    assert spent["discarded"] > 0.005  # it held the worker until the gate opened
    assert spent["final"] >= 0 and spent["partial"] >= 0 and spent["speculative"] == 0
    # The same decodes, one span each, for timelines (scripts/bench_turn_timeline.py).
    assert [(s.call_id, s.use, s.audio_s) for s in spans] == [("a", "discarded", 0.5), ("b", "final", 0.5),
                                                             ("c", "partial", 0.5)]
    assert all(s.enqueued <= s.started <= s.done for s in spans)



class PairEngine(FallbackEngine):
    """Holds every decode until two run at once (``both``), then lets them finish together."""

    def __init__(self, settings: AsrSettings) -> None:
        super().__init__(settings)
        self.both = threading.Event()

    def transcribe(self, audio, *, beam_size=None, word_timestamps=True, initial_prompt=None, offset=0.0,
                   fallback=None):
        self.calls.append((beam_size, fallback))
        if len(self.calls) >= 2:
            self.both.set()
        self.both.wait(5)
        return TranscriptionResult("text", (), -0.2, 0.0, len(audio) / 16000, 0.0)


async def _side_by_side(settings: AsrSettings) -> list[tuple[int | None, bool | None]]:
    engine = PairEngine(settings)
    async with AsrScheduler(engine, settings, workers=2) as scheduler:
        await asyncio.gather(scheduler.transcribe(AUDIO, call_id="a", final=True),
                             scheduler.transcribe(AUDIO, call_id="b", final=True, speculative=True))
    return engine.calls


async def test_which_finals_get_the_fallback_follows_final_fallback() -> None:
    base = AsrSettings()
    # Two finals at once on two workers: the first started alone, the second beside it (neither hurried: beam 5).
    assert await _side_by_side(replace(base, final_fallback="always")) == [(5, None), (5, None)]
    assert await _side_by_side(replace(base, final_fallback="alone")) == [(5, None), (5, False)]
    assert await _side_by_side(replace(base, final_fallback="never")) == [(5, False), (5, False)]

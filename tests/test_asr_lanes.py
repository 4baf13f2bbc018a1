"""The ASR engine's model objects (voicebot/asr/replicas.py) and the scheduler's partial lane.

The wide encoder (``asr.lone_encode_threads``) and the partial lane (``asr.partial_lane``) must
change where a decode runs, never what it says: checked on real whisper-base with real German
speech through the telephone channel. The lane's scheduling runs on a fake engine that subclasses
the real one. No wall-clock assertions.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from tests.fake_engines import FakeTranscriber
from voicebot.asr.scheduler import AsrScheduler
from voicebot.asr.transcriber import Transcriber, TranscriptionResult
from voicebot.audio.channel import telephone_channel
from voicebot.audio.io import load_for_asr
from voicebot.audio.resample import resample
from voicebot.config import Settings

MORE = Path(__file__).resolve().parents[2] / "shared" / "data" / "speech-de-more"
AUDIO = np.zeros(8000, dtype=np.int16)
HANG_GUARD_S = 60.0  # only so that a broken lane fails instead of hanging the suite


def _phone_turn(n: int) -> np.ndarray:
    """The first ``n`` speech-de-more sentences joined with 0.5 s pauses, through the phone line, at 16 kHz."""
    manifest = MORE / "manifest.jsonl"
    if not manifest.is_file():
        pytest.skip(f"shared German speech not found at {MORE}")
    rows = [json.loads(line) for line in manifest.read_text(encoding="utf-8").splitlines() if line.strip()][:n]
    pause = np.zeros(8000, dtype=np.int16)
    audio = np.concatenate([x for row in rows for x in (load_for_asr(MORE / row["audio"]), pause)])
    narrow, rate = telephone_channel(audio, 16000)
    return resample(narrow, rate, 16000)


@pytest.fixture(scope="module")
def engines(settings: Settings, transcriber: Transcriber) -> tuple[Transcriber, Transcriber]:
    """(one model object only, an engine with the wide encoder and the partial lane)."""
    assert transcriber.loaded  # the session's engine: fails (CI) or skips where whisper-base is not provisioned
    plain = Transcriber(replace(settings.asr, lone_encode_threads=0, partial_lane=False), settings.models).load()
    both = Transcriber(replace(settings.asr, lone_encode_threads=2, partial_lane=True), settings.models).load()
    return plain, both


def test_the_wide_encoder_and_the_partial_lane_decode_what_one_model_decodes(engines) -> None:
    plain, both = engines
    assert plain.models_set is not None and plain.models_set.wide is None and not plain.partial_lane
    assert both.models_set is not None and both.models_set.wide is not None and both.partial_lane
    turn = _phone_turn(3)
    before = both.models_set.lone_encodes
    final, final_plain = both.transcribe(turn, final=True), plain.transcribe(turn, final=True)
    assert both.models_set.lone_encodes == before + 1  # alone on the finals' model: the wide encoder took it
    assert final.text and final.text == final_plain.text
    assert [w.text for w in final.words] == [w.text for w in final_plain.words]
    assert np.allclose([w.start for w in final.words], [w.start for w in final_plain.words], atol=0.02)
    # A short turn (native 30 s window) and a tail after a cut (10 s window) alike.
    short = turn[: 3 * 16000]
    assert both.transcribe(short, final=True).text == plain.transcribe(short, final=True).text
    assert both.transcribe(turn[-48000:], final=True, window_s=10).text == \
        plain.transcribe(turn[-48000:], final=True, window_s=10).text
    partial = both.transcribe(turn, beam_size=1, word_timestamps=False, final=False)
    assert partial.text == plain.transcribe(turn, beam_size=1, word_timestamps=False, final=False).text
    assert both.models_set.lone_encodes == before + 3  # partials decode on their own object, never on the wide one


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="[optional] per-thread nice is Linux-only")
def test_the_partial_lane_runs_at_low_cpu_priority(engines, settings: Settings) -> None:
    _plain, both = engines
    assert both.models_set is not None and both.models_set.partial_tids
    for tid in both.models_set.partial_tids:
        assert os.getpriority(os.PRIO_PROCESS, tid) >= settings.asr.partial_nice


class LaneEngine(FakeTranscriber):
    """A partial lane; finals block until ``gate`` is set; logs what it decoded, in order."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, decode_s=0.0)
        self.gate = threading.Event()
        self.finals_in = threading.Semaphore(0)
        self.order: list[tuple[str, int]] = []
        self._order_lock = threading.Lock()

    @property
    def partial_lane(self) -> bool:
        return True

    def transcribe(self, audio, beam_size=None, word_timestamps=True, initial_prompt=None, offset=0.0,  # type: ignore[override]
                   final=None):
        final = bool(final)  # the pool says which kind it decodes (a hurried final is greedy, still a final)
        with self._order_lock:
            self.order.append(("final" if final else "partial", int(offset)))
        if final:
            self.finals_in.release()
            self.gate.wait(HANG_GUARD_S)
        return TranscriptionResult(f"tag {int(offset)}", (), -0.2, 0.0, len(audio) / 16000, 0.0)


async def test_partials_have_a_worker_of_their_own_and_never_take_a_finals(settings: Settings) -> None:
    engine = LaneEngine(settings)
    loop = asyncio.get_running_loop()
    async with AsrScheduler(engine, settings.asr, workers=2) as scheduler:
        assert scheduler.stats()["partial_lane"]
        finals = [asyncio.create_task(scheduler.transcribe(AUDIO, call_id=c, final=True, offset=i))
                  for i, c in ((1, "a"), (2, "b"))]
        for _ in finals:  # both finals' workers are decoding (and blocked)
            assert await loop.run_in_executor(None, engine.finals_in.acquire, True, HANG_GUARD_S)
        third = asyncio.create_task(scheduler.transcribe(AUDIO, call_id="c", final=True, offset=3))
        # Another call's partial is decoded on the lane while every finals' worker is busy...
        partial = await asyncio.wait_for(scheduler.transcribe(AUDIO, call_id="d", final=False, offset=4),
                                         HANG_GUARD_S)
        assert partial is not None and partial.text == "tag 4"
        # ...and the lane never takes the waiting final.
        assert not third.done() and scheduler.queued_finals == 1
        engine.gate.set()
        results = await asyncio.gather(*finals, third)
    assert [r.text for r in results] == ["tag 1", "tag 2", "tag 3"]
    assert engine.order.index(("partial", 4)) < engine.order.index(("final", 3))


async def test_without_a_lane_partials_share_the_workers_as_before(settings: Settings) -> None:
    engine = LaneEngine(settings)
    async with AsrScheduler(engine, settings.asr, workers=1, partial_lane=False) as scheduler:
        assert not scheduler.stats()["partial_lane"]
        first = asyncio.create_task(scheduler.transcribe(AUDIO, call_id="a", final=True, offset=1))
        assert await asyncio.get_running_loop().run_in_executor(None, engine.finals_in.acquire, True, HANG_GUARD_S)
        partial = asyncio.create_task(scheduler.transcribe(AUDIO, call_id="b", final=False, offset=2))
        await asyncio.sleep(0)
        assert not partial.done()  # its only worker decodes the final
        engine.gate.set()
        await asyncio.gather(first, partial)
    assert engine.order == [("final", 1), ("partial", 2)]

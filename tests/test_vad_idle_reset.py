"""``vad.idle_reset_ms``: a caller's next turn is heard as soon as the first one, on real German phone turns.

Silero carries the caller's last turn in its recurrent state. On the phone line, a turn that follows
another turn and five seconds of line hiss (the bot answering) was confirmed 0.7 s after its first
sample; with the state started afresh after a second without speech it is heard within a few frames,
and 60 s of hiss alone still starts no turn.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from voicebot.asr.streaming import endpointer_settings
from voicebot.audio import resample, telephone_channel
from voicebot.config import REPO_ROOT, Settings
from voicebot.eval.asr_cases import RATE, line_noise
from voicebot.frames import AudioFrame, SpeechStarted
from voicebot.vad import Endpointer, EndpointerSettings, SileroVadModel, build_detector

FRAME = 320  # 20 ms, as a telephony gateway sends
GAP_S = 5.0


@pytest.fixture(scope="module")
def two_turns(speech_dir: Path) -> tuple[np.ndarray, float]:
    """Phone turn 20, 5 s of line hiss, phone turn 19 (scripts/phone_turns.py, seed 1), through the phone line;
    and where the second turn's first sample is (s)."""
    spec = importlib.util.spec_from_file_location("phone_turns", REPO_ROOT / "scripts" / "phone_turns.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("phone_turns", module)
    spec.loader.exec_module(module)
    turns = module.build_turns(21, seed=1)
    first, second = turns[20].audio, turns[19].audio
    gap = line_noise(GAP_S, dbfs=-45.0, seed=19)
    audio = np.concatenate([first, gap, second, np.zeros(RATE, np.int16)])
    return resample(*telephone_channel(audio, RATE), RATE), (len(first) + len(gap)) / RATE


def _onsets(settings: EndpointerSettings, model: SileroVadModel, audio: np.ndarray) -> list[float]:
    ep = Endpointer(settings, build_detector(settings, model))
    return [e.t for i in range(0, len(audio) - FRAME + 1, FRAME)
            for e in ep.process(AudioFrame(audio[i : i + FRAME], RATE, i / RATE)) if isinstance(e, SpeechStarted)]


def test_next_turn_is_heard_at_once_with_a_fresh_state(vad_model, two_turns) -> None:
    audio, second_start = two_turns
    phone = endpointer_settings(Settings().vad, narrowband=True)
    assert phone.idle_reset_ms == 1000  # the default

    def delay(reset_ms: int) -> float:
        onsets = [t for t in _onsets(replace(phone, idle_reset_ms=reset_ms), vad_model, audio)
                  if t >= second_start - 0.5]
        assert onsets, f"idle_reset_ms={reset_ms}: the second turn never started"
        return onsets[0] - second_start

    assert delay(1000) < 0.15
    assert delay(0) > 0.4  # the state kept from the first turn: heard late (the reason for the setting)


def test_hiss_alone_starts_no_turn(vad_model) -> None:
    phone = endpointer_settings(Settings().vad, narrowband=True)
    hiss = resample(*telephone_channel(line_noise(60.0, dbfs=-45.0, seed=99), RATE), RATE)
    assert _onsets(phone, vad_model, hiss) == []

"""``Endpointer.voice_pending``: voice seen again but not yet a turn, on real German speech through Silero.

A caller who goes on after a pause is a candidate for ``min_speech_ms`` or more before ``SpeechStarted``;
the turn-taker can hold an answer in that window instead of cutting in. A short blip is pending for
a moment and then nothing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from voicebot.audio import read_audio, resample, telephone_channel
from voicebot.frames import AudioFrame, SpeechStarted
from voicebot.vad import Endpointer, EndpointerSettings, SileroVadModel, build_detector

RATE = 16000
FRAME = 320  # 20 ms
CLIP = "emodb_03a01Nc.flac"


@pytest.fixture(scope="module")
def speech(speech_dir: Path) -> np.ndarray:
    pcm, rate = read_audio(speech_dir / "clips" / CLIP)
    assert rate == RATE
    return pcm


def _pending_then_started(ep: Endpointer, audio: np.ndarray) -> tuple[list[bool], int | None]:
    """``voice_pending`` after each 20 ms frame, and the frame whose push returned ``SpeechStarted``."""
    pending, started = [], None
    for n, i in enumerate(range(0, len(audio), FRAME)):
        events = ep.process(AudioFrame(audio[i : i + FRAME], RATE, t=i / RATE))
        if started is None and any(isinstance(e, SpeechStarted) for e in events):
            started = n
        pending.append(ep.voice_pending)
    return pending, started


@pytest.mark.parametrize("channel", ["wideband", "telephone"])
def test_voice_is_pending_before_the_turn_starts(vad_model: SileroVadModel, speech: np.ndarray,
                                                 channel: str) -> None:
    audio = np.concatenate([np.zeros(RATE, np.int16), speech, np.zeros(RATE, np.int16)])
    if channel == "telephone":
        narrow, rate = telephone_channel(audio, RATE)
        audio = resample(narrow, rate, RATE)
    settings = EndpointerSettings(detector="silero")
    ep = Endpointer(settings, build_detector(settings, vad_model))
    pending, started = _pending_then_started(ep, audio)
    assert started is not None
    before = pending[:started]
    assert any(before), "no frame was pending before SpeechStarted"
    assert sum(before) * FRAME / RATE * 1000 >= settings.min_speech_ms - 40  # the confirmation window
    assert not pending[started]  # confirmed: from here on it is in_speech
    assert not any(pending[: RATE // FRAME // 2])  # nothing pending in the leading silence


def test_a_blip_is_pending_for_a_moment_then_gone(vad_model: SileroVadModel, speech: np.ndarray) -> None:
    n = RATE // 10  # 100 ms of the clip's loudest speech: shorter than min_speech_ms
    energy = np.convolve(speech.astype(np.float64) ** 2, np.ones(n), mode="valid")
    loudest = int(np.argmax(energy))
    audio = np.concatenate([np.zeros(RATE, np.int16), speech[loudest : loudest + n], np.zeros(RATE, np.int16)])
    settings = EndpointerSettings(detector="silero")
    ep = Endpointer(settings, build_detector(settings, vad_model))
    pending, started = _pending_then_started(ep, audio)
    assert started is None and not ep.in_speech
    assert any(pending) and not pending[-1]

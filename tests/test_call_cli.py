"""`voicebot call` end to end on real synthesized German speech: VAD → ASR → intent → policy → TTS."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from voicebot.audio.io import read_audio, write_wav


def _require_intent_model(settings) -> None:
    if not (settings.models.dir / "intent-ngram" / "calibration.json").is_file():
        pytest.skip("intent models not trained: run `voicebot train intent` (scripts/setup.sh does)")


def _say(pico, text: str, path: Path) -> Path:
    audio = pico.synthesize(text)
    lead_in = np.zeros(audio.sample_rate // 4, dtype=np.int16)  # a phone line is never cut to the first sample
    write_wav(path, np.concatenate([lead_in, audio.pcm]), audio.sample_rate)
    return path


def _call(*args: str | Path) -> dict:
    out = subprocess.run([sys.executable, "-m", "voicebot.cli.main", "call", *map(str, args), "--json"],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout)


def test_call_cancellation_collects_number_and_routes(pico, settings, tmp_path: Path) -> None:
    _require_intent_model(settings)
    turns = [
        _say(pico, "Guten Tag, ich möchte meinen Vertrag kündigen.", tmp_path / "t1.wav"),
        _say(pico, "Meine Vertragsnummer ist vier sieben eins eins null acht.", tmp_path / "t2.wav"),
        _say(pico, "Ja, das ist richtig.", tmp_path / "t3.wav"),
    ]
    bot_wav = tmp_path / "bot.wav"
    result = _call(*turns, "--out", bot_wav)
    assert result["first_intent"] == "kuendigung"
    assert result["route"] == "kundenbindung"
    assert not result["handoff"]
    assert "automatisch" in result["greeting"].lower() and "Mitarbeiter" in result["greeting"]
    # the bot really spoke: its audio is there, at the caller's rate
    pcm, rate = read_audio(bot_wav)
    assert rate == 16000 and len(pcm) / rate > 3.0


def test_call_demand_for_a_person_hands_over_at_once(pico, settings, tmp_path: Path) -> None:
    _require_intent_model(settings)
    turn = _say(pico, "Verbinden Sie mich bitte sofort mit einem Mitarbeiter.", tmp_path / "t1.wav")
    result = _call(turn, "--channel", "telephone")
    assert result["first_intent"] == "mitarbeiter"
    assert result["handoff"] is True
    context = result["context"]
    assert context["summary"] and context["transcript"]

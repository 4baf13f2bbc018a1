"""The German turn-end evaluation: sample construction on real clips, scoring, and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from voicebot.audio.io import load_for_asr
from voicebot.eval.turn_end import DEFAULT_SET, SHARED_DATA, TurnSample, cut_points, evaluate, read_set, with_silence


def _need(ok: bool, what: str) -> None:
    if not ok:
        pytest.skip(f"{what} missing")  # under CI=true the conftest hook turns this skip into a failure


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    _need(DEFAULT_SET.is_file(), f"turn-end set {DEFAULT_SET}")
    _need((SHARED_DATA / "speech-de-more" / "manifest.jsonl").is_file(), "shared German speech")
    return read_set(DEFAULT_SET)


def test_set_covers_both_shared_sets_with_interior_cuts(rows: list[dict]) -> None:
    assert {r["manifest"] for r in rows} == {"speech-de", "speech-de-more"}
    for r in rows:
        assert all(1 <= k < len(r["words"]) for k in r["cuts"])
        assert all(w[1] <= w[2] for w in r["words"])


def test_cuts_fall_between_words_and_silence_follows(rows: list[dict]) -> None:
    row = next(r for r in rows if r["manifest"] == "speech-de-more" and len(r["cuts"]) == 2)
    pcm = load_for_asr(SHARED_DATA / row["manifest"] / row["audio"])
    points = cut_points(row["words"], row["cuts"], pcm)
    (kept_all, end), *cuts = points
    assert kept_all == len(row["words"]) and end >= row["words"][-1][2] - 0.2 and end <= len(pcm) / 16000
    for kept, t in cuts:
        assert row["words"][kept - 1][2] - 0.1 <= t <= row["words"][kept][1] + 0.1
    audio = with_silence(pcm, cuts[0][1], 200, seed=1)
    assert len(audio) == int(cuts[0][1] * 16000) + 3200
    tail = audio[-3200:].astype(np.float64)
    assert np.sqrt(np.mean(tail**2)) < np.sqrt(np.mean(pcm.astype(np.float64) ** 2))  # quieter than the speech


def _sample(complete: bool, audio: float, text: float, cue: bool = False, channel: str = "wideband") -> TurnSample:
    return TurnSample("x", "m", channel, complete, "text", 1.0, audio, text, cue)


def test_scoring_semantics() -> None:
    samples = [_sample(True, 0.9, 0.9), _sample(True, 0.9, 0.2), _sample(False, 0.9, 0.1),
               _sample(False, 0.3, 0.1, cue=True)] * 10
    result = evaluate(samples, pause_ms=1000)
    rows = {r["name"]: r for r in result["rows"]}
    # silence-only: every mid-sentence pause longer than the threshold is cut off
    assert rows["silence 800 ms"]["cutoff"] == {"wideband": 1.0}
    assert rows["silence 1200 ms"]["cutoff"] == {"wideband": 0.0}
    assert rows["silence 400 ms"]["delay"] == {"p50": 400, "p90": 400, "mean": 400}
    # pipecat's rule cuts the cut sample that Smart Turn calls complete
    assert rows["smart turn > 0.5, else 3 s (pipecat)"]["cutoff"] == {"wideband": 0.5}
    combined = rows["smart turn + text + cues (tuned)"]
    assert combined["cutoff"]["wideband"] <= 0.05
    assert combined["delay"]["p50"] <= 600  # the text model separates these
    assert result["operating_point"] is not None


def test_cli_runs_on_real_clips(rows: list[dict], settings, tmp_path) -> None:
    _need((settings.models.dir / "smart-turn-v3" / "smart-turn-v3.2-cpu.onnx").is_file(), "Smart Turn model")
    out = tmp_path / "turn.json"
    done = subprocess.run([sys.executable, "-m", "voicebot.cli.main", "eval", "turn", "--limit", "2", "--channel",
                           "wideband", "--json", "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["n_clips"] == 2 and result["channels"] == ["wideband"]
    names = [r["name"] for r in result["rows"]]
    assert "silence 600 ms" in names and any(n.startswith("smart turn + text + cues") for n in names)


def test_cli_rejects_a_missing_set(tmp_path) -> None:
    done = subprocess.run([sys.executable, "-m", "voicebot.cli.main", "eval", "turn", "--set",
                           str(tmp_path / "none.jsonl")], capture_output=True, text=True)
    assert done.returncode == 1 and "scripts/make_turn_set.py" in done.stderr and "Traceback" not in done.stderr

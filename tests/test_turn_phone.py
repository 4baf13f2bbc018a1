"""End of turn on the phone line: the turn-end set with line hiss after the cut, and the replay of live
pause records (``voicebot.eval.turn_hiss``, ``voicebot.eval.turn_live``).

Real German speech and the real Smart Turn / text model where a signal is scored; the replay is pure logic
over records. No timing is asserted.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from voicebot.config import REPO_ROOT, Settings
from voicebot.eval.turn_live import AudioSignal, PauseRecord, TextSignal, end_ms

MORE = REPO_ROOT.parent / "shared" / "data" / "speech-de-more"
TURN_SET = REPO_ROOT / "eval" / "turn" / "turn_de.jsonl"


def _need(ok: bool, what: str) -> None:
    if not ok:
        pytest.skip(f"{what} missing")  # under CI=true the conftest hook turns this skip into a failure


def _dbfs(x: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(x.astype(np.float64) ** 2) / 32768.0**2 + 1e-12))


def test_a_cut_with_line_hiss_keeps_the_speech_and_never_falls_to_digital_silence() -> None:
    from voicebot.audio.io import load_for_asr
    from voicebot.eval.turn_end import read_set
    from voicebot.eval.turn_hiss import with_line_hiss

    _need((MORE / "manifest.jsonl").is_file() and TURN_SET.is_file(), f"shared German speech at {MORE}")
    row = next(r for r in read_set(TURN_SET) if r["manifest"] == "speech-de-more")
    pcm = load_for_asr(MORE / row["audio"])
    cut_s = float(row["words"][1][2])  # after the second word: mid-sentence
    audio = with_line_hiss(pcm, cut_s, 800.0, seed=3)
    rate = 16000
    assert len(audio) == int(cut_s * rate) + int(0.8 * rate)
    after, speech = audio[int(cut_s * rate):], audio[: int(cut_s * rate)]
    assert -50.0 < _dbfs(after) < -40.0  # the bench's -45 dBFS hiss, not silence
    assert _dbfs(speech) > _dbfs(after) + 10.0  # the levelled speech stands well above it
    assert np.array_equal(audio, with_line_hiss(pcm, cut_s, 800.0, seed=3))  # the same pause on every run


def test_smart_turn_hears_a_finished_sentence_through_hiss(settings: Settings) -> None:
    """A whole sentence followed by 200 ms of line hiss through the phone channel still sounds finished,
    and more so than the same sentence cut after its second word."""
    from voicebot.audio.io import load_for_asr
    from voicebot.eval.turn_end import cut_points, phone, read_set
    from voicebot.eval.turn_hiss import with_line_hiss
    from voicebot.turn.smart_turn import SmartTurnModel

    model = SmartTurnModel.from_settings(settings.models)
    _need(model.onnx_path.is_file(), f"Smart Turn model ({model.onnx_path}; run `voicebot models pull`)")
    _need((MORE / "manifest.jsonl").is_file() and TURN_SET.is_file(), f"shared German speech at {MORE}")
    smart = model.load()
    rows = [r for r in read_set(TURN_SET) if r["manifest"] == "speech-de-more"][:6]
    whole, cut = [], []
    for row in rows:
        pcm = load_for_asr(MORE / row["audio"])
        (_, end_s), *inner = cut_points(row["words"], row["cuts"], pcm)
        whole.append(smart.predict(phone(with_line_hiss(pcm, end_s, 200.0, seed=1))))
        cut += [smart.predict(phone(with_line_hiss(pcm, c, 200.0, seed=1))) for _, c in inner]
    assert cut and np.median(whole) > np.median(cut)


def _pause(texts: list[tuple[float, str, float]], audio: list[tuple[int, float, float]],
           resumed_ms: float | None = None) -> PauseRecord:
    return PauseRecord("t", 1.0, final=resumed_ms is None, resumed_ms=resumed_ms,
                       texts=[TextSignal(ms, kind, "", prob, False) for ms, kind, prob in texts],
                       audio=[AudioSignal(asked, ready, prob) for asked, ready, prob in audio])


def test_a_replayed_rule_ends_a_pause_only_once_its_signals_are_in() -> None:
    def sure(s: Any) -> bool:
        return 200 in s.audio and s.audio[200] >= 0.9 and (s.text_prob or 0.0) >= 0.5

    slow_model = _pause([(120.0, "start", 0.9)], [(200, 330.0, 0.95)])
    assert end_ms(slow_model, sure) == 340.0  # Smart Turn's answer was ready at 330 ms (20 ms grid)
    late_text = _pause([(120.0, "start", 0.2), (500.0, "partial", 0.8)], [(200, 220.0, 0.95)])
    assert end_ms(late_text, sure) == 500.0
    never = _pause([(120.0, "start", 0.2)], [(200, 220.0, 0.3)])
    assert end_ms(never, sure) == 1200.0  # the fallback
    went_on = _pause([(120.0, "start", 0.9)], [(200, 220.0, 0.95)], resumed_ms=400.0)
    assert end_ms(went_on, sure) < float(went_on.resumed_ms or 0)  # a cut-in, as the bench counts it

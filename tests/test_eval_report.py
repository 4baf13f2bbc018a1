"""HTML reports: numbers and one inline <img> per plot, for every kind; rendered in headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from test_eval_calls import CALLS  # the hand-worked calls: the report must show their numbers

from voicebot.eval.calls import aggregate, outcome_dict, outcome_from_events
from voicebot.eval.report import Figure, KeyNumbers, Report, Section, Table, render_html, write_report
from voicebot.models.registry import load_registry

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)


def calls_result() -> dict:
    outcomes = [outcome_from_events(s, ev) for s, ev in CALLS]
    return {"kind": "calls", "config": {"channel": "telephone", "end_silence_ms": 600}, **aggregate(outcomes),
            "calls": [outcome_dict(o) for o in outcomes]}


def tts_result() -> dict:
    items = [{"text": "Worum geht es?", "hypothesis": "Worum geht es?", "wer": 0.0, "audio_seconds": 1.5,
              "synth_seconds": 0.02, "first_audio_ms": 20.5},
             {"text": "Bitte die Kundennummer.", "hypothesis": "Bitte die Kundenummer.", "wer": 0.3333,
              "audio_seconds": 2.0, "synth_seconds": 0.03, "first_audio_ms": 31.0}]
    voice = {"sample_rate": 16000, "load_seconds": 0.01, "cold_first_seconds": 0.03, "audio_seconds": 3.5,
             "synth_seconds": 0.05, "rtf": 0.0143, "first_audio_ms": {"n": 2, "p50": 25.75, "p95": 30.5},
             "wer": 0.1667, "cer": 0.05, "items": items}
    return {"kind": "tts", "config": {"prompts": 2, "asr_model": "whisper-base", "channel": "wideband"},
            "voices": {"pico-de": voice}}


def load_run(n: int, p95: float) -> dict:
    s = {"n": 10, "mean": p95 / 2, "p50": p95 / 2, "p95": p95, "p99": p95 + 1, "min": 1.0, "max": p95 + 2}
    return {"concurrency": n, "completed_calls": n, "dropped_calls": 0, "errored_calls": 0, "turns": 3 * n,
            "unanswered_turns": 0, "voice_to_voice_ms": s, "final_latency_ms": s, "partial_lag_ms": s,
            "client_late_ms": s, "server": {"cpu_percent": s, "rss_mb": s}}


def load_result() -> dict:
    return {"kind": "load", "config": {"duration_s": 30}, "by_calls": {"1": load_run(1, 1234.5),
                                                                       "4": load_run(4, 2345.5)}}


def intent_result() -> dict:
    from voicebot.eval.intent import coverage_curve, expected_calibration_error

    conf = [0.95, 0.9, 0.85, 0.6, 0.55, 0.3]
    ok = [True, True, False, True, False, False]
    return {"model": "intent-e5", "n": 6, "accuracy": 0.5, "macro_f1": 0.48, "coverage": 0.5,
            "selective_accuracy": 2 / 3, "ece": expected_calibration_error(conf, ok),
            "coverage_curve": coverage_curve(conf, ok, [i / 20 for i in range(21)]),
            "labels": ["rechnung", "notfall"], "confusion": [[2, 1], [2, 1]],
            "per_intent": {"rechnung": {"precision": 0.5, "recall": 0.67, "f1": 0.57, "support": 3}},
            "safety_recall": {"notfall": 1.0}, "model_safety_recall": {"notfall": 0.5},
            "errors": [{"text": "Es brennt", "gold": "notfall", "pred": "rechnung", "confidence": 0.61}]}


def test_render_html_escapes_and_inlines() -> None:
    report = Report("T <1>", [Section("S", [KeyNumbers([("a & b", 0.123456)]),
                                            Table(["x"], [["<script>"], [None]]),
                                            Figure(b"\x89PNG fake", "fig")])])
    html = render_html(report)
    assert "T &lt;1&gt;" in html and "&lt;script&gt;" in html and "<script>" not in html
    assert "0.1235" in html and "–" in html
    assert len(re.findall(r'<img [^>]*src="data:image/png;base64,', html)) == 1


@pytest.mark.parametrize(
    ("kind", "make", "numbers", "images"),
    [
        ("calls", calls_result, ["60.0%", "66.7%", "1.75", "1100"], 2),  # confusion + latency boxes
        ("tts", tts_result, ["0.0143", "16.7%", "Kundenummer"], 2),
        ("load", load_result, ["1234", "2346", "3"], 2),
        ("intent", intent_result, ["50.0%", "Es brennt", "intent-e5"], 3),
    ],
)
def test_report_per_kind(kind: str, make, numbers: list[str], images: int, settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = make()
    json.dumps(result)  # results must be JSON-ready
    path = write_report(kind, result, settings, tmp_path)
    html = path.read_text(encoding="utf-8")
    for number in numbers:
        assert number in html, number
    assert html.count("<img ") == images
    assert settings.asr.model in html  # model ids ...
    asr_bin = next(f.sha256 for f in load_registry(settings.models).get(settings.asr.model).files
                   if f.path == "model.bin")
    assert asr_bin in html or kind == "intent"  # ... and the hashes of their files


def test_reliability_bins_from_the_coverage_curve() -> None:
    """Cross-check with the NLU owner's coverage_curve: the derived bins hold the exact counts and accuracy."""
    from voicebot.eval.intent import coverage_curve
    from voicebot.eval.renderers import reliability_from_curve

    conf = [0.95, 0.9, 0.85, 0.6, 0.55, 0.3]
    ok = [True, True, False, True, False, False]
    bins = reliability_from_curve(coverage_curve(conf, ok, [i / 10 for i in range(11)]), len(conf))
    # [0.3,0.4): 1 wrong; [0.5,0.6): 0.55 wrong; [0.6,0.7): 0.6 right; [0.8,0.9): 0.85 wrong; [0.9,1.0): 2 right
    assert [(round(b["confidence"], 2), b["count"], round(b["accuracy"], 3)) for b in bins] == [
        (0.35, 1, 0.0), (0.55, 1, 0.0), (0.65, 1, 1.0), (0.85, 1, 0.0), (0.95, 2, 1.0)]


def test_wer_by_length_cross_checks_metrics() -> None:
    """Bins sum word errors over reference words: the corpus WER of voicebot.eval.metrics per bin."""
    from voicebot.eval.metrics import wer, word_errors
    from voicebot.eval.renderers_asr import wer_by_length

    pairs = [("der lappen liegt auf dem eisschrank", "der lappen liegt auf dem eis schrank", 1.0),
             ("vier sieben eins eins", "4711", 1.2),
             ("das will sie am mittwoch abgeben", "das will sie mittwoch abgeben", 3.0)]
    items = []
    for ref, hyp, seconds in pairs:
        counts = word_errors([ref], [hyp])
        items.append({"seconds": seconds, "errors": counts.errors, "words": counts.reference_units})
    values, counts = wer_by_length(items, (0.0, 2.0, 5.0))
    assert counts == [2, 1]
    assert values[0] == pytest.approx(wer([p[0] for p in pairs[:2]], [p[1] for p in pairs[:2]]))
    assert values[0] == pytest.approx(2 / 10)  # "eisschrank" -> "eis schrank": 1 sub + 1 ins; digits match
    assert values[1] == pytest.approx(1 / 6)  # "am" deleted


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_report_renders_in_headless_chromium(settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = write_report("calls", calls_result(), settings, tmp_path)
    shot = tmp_path / "shot.png"
    run = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                          "--window-size=1200,1600", f"--screenshot={shot}", path.resolve().as_uri()],
                         capture_output=True, text=True, timeout=90)
    assert run.returncode == 0, run.stderr[-2000:]
    from PIL import Image

    with Image.open(shot) as image:
        assert image.size == (1200, 1600)
        # A rendered page with tables and plots is far from one flat colour.
        colours = image.convert("RGB").resize((120, 160)).getcolors(maxcolors=100000)
        assert colours is not None and len(colours) > 50

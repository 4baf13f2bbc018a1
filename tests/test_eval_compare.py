"""`voicebot eval compare`: which metrics are better, worse or unchanged, and baseline tolerances."""

from __future__ import annotations

import pytest

from voicebot.eval.compare import HIGHER, LOWER, NEUTRAL, compare, direction, flatten, format_compare, regressions


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("metrics.first_intent_accuracy", HIGHER),
        ("metrics.handoff_recall", HIGHER),
        ("safety_recall.notfall", HIGHER),
        ("macro_f1", HIGHER),
        ("coverage", HIGHER),
        ("false_escalation_rate", LOWER),  # "escalation" alone would read higher-better
        ("voices.pico-de.wer", LOWER),
        ("channels.telephone.cer", LOWER),
        ("latency.asr_ms.p95", LOWER),  # a percentile inherits its parent's direction
        ("latency.asr_ms.n", NEUTRAL),
        ("by_calls.8.server.rss_mb.max", LOWER),
        ("by_calls.8.dropped_calls", LOWER),
        ("metrics.mean_turns_to_route", LOWER),
        ("ece", LOWER),
        ("metrics.calls", NEUTRAL),
        ("decisions.confirm_rate", None),  # no honest direction: reported as "changed"
    ],
)
def test_direction(path: str, expected: int | None) -> None:
    assert direction(path) == expected


A = {
    "kind": "calls",
    "config": {"channel": "wideband", "end_silence_ms": 600},
    "metrics": {"calls": 42, "routing_accuracy": 0.80, "handoff_precision": 0.9, "confirm_rate": 0.1},
    "latency": {"asr_ms": {"n": 100, "p95": 800.0}},
    "calls": [{"id": "x", "route_ok": True}],
}
B = {
    "kind": "calls",
    "config": {"channel": "telephone", "end_silence_ms": 600},
    "metrics": {"calls": 42, "routing_accuracy": 0.85, "handoff_precision": 0.9, "confirm_rate": 0.2},
    "latency": {"asr_ms": {"n": 100, "p95": 950.0}},
    "extra": {"new_metric_ms": 3.0},
}


def test_flatten_skips_config_and_lists() -> None:
    paths = dict(flatten(A))
    assert "metrics.routing_accuracy" in paths and "latency.asr_ms.p95" in paths
    assert not any(p.startswith(("config", "calls")) for p in paths)


def test_compare_by_hand() -> None:
    result = compare(A, B)
    rows = {r["metric"]: r for r in result["rows"]}
    acc = rows["metrics.routing_accuracy"]
    assert acc["verdict"] == "better" and acc["delta"] == pytest.approx(0.05)
    assert acc["relative"] == pytest.approx(0.0625)
    assert rows["latency.asr_ms.p95"]["verdict"] == "worse"  # +150 ms
    assert rows["metrics.handoff_precision"]["verdict"] == "same"
    assert rows["metrics.calls"]["verdict"] == "same"
    assert rows["metrics.confirm_rate"]["verdict"] == "changed"
    assert rows["extra.new_metric_ms"]["verdict"] == "only B"
    # same: calls, handoff_precision, latency n
    # routing accuracy (quality) is better, the p95 latency (speed) worse: quality decides
    assert result["summary"] == {"better": 1, "worse": 1, "same": 3, "quality_better": 1, "quality_worse": 0,
                                 "changed": 1, "only_a": 0, "only_b": 1, "overall": "B"}
    assert result["config_changes"] == {"channel": ["wideband", "telephone"]}
    text = format_compare(result, "base", "new")
    assert "✓ better" in text and "✗ worse" in text and "channel" in text and "new (B) is better" in text
    assert "handoff_precision" not in text  # unchanged rows are hidden by default


def test_compare_refuses_different_kinds() -> None:
    with pytest.raises(ValueError, match="cannot compare"):
        compare({"kind": "asr"}, {"kind": "tts"})


def test_regressions_respect_tolerance() -> None:
    # p95 got 150 ms worse: within 200 ms tolerance, outside 100 ms
    assert regressions(A, B, {r"latency\.": 200.0}) == []
    problems = regressions(A, B, {r"latency\.": 100.0})
    assert len(problems) == 1 and problems[0].startswith("latency.asr_ms.p95")
    # a metric gone from the current result is a regression; improvements never are
    missing = regressions(B, A, {".*": 1e9})
    assert any("extra.new_metric_ms" in p for p in missing)


def test_speed_only_breaks_a_tie() -> None:
    a = {"wer": 0.20, "rtf": 0.5}
    b = {"wer": 0.20, "rtf": 0.4}
    assert compare(a, b)["summary"]["overall"] == "B"  # same quality, faster
    c = {"wer": 0.21, "rtf": 0.1}
    assert compare(a, c)["summary"]["overall"] == "A"  # five times faster, but more errors

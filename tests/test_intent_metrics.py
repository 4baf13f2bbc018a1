"""Intent metrics and calibration against tables worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from voicebot.eval.intent import (
    accuracy,
    confusion_matrix,
    coverage_curve,
    decision_metrics,
    expected_calibration_error,
    macro_f1,
    per_intent_scores,
    reliability_bins,
    safety_metrics,
)
from voicebot.nlu.calibration import Calibration, calibrate, fit_temperature, nll, softmax, threshold_for_precision


def test_ece_on_a_hand_worked_table() -> None:
    # conf  correct  bin (10 equal-width, right-closed)
    # 1.00  1        (0.9, 1.0]  acc 1.0, mean conf 1.00 -> |gap| 0.00
    # 0.95  1        (0.9, 1.0]  (same bin: acc 1.0, mean conf 0.975 -> gap 0.025 for both)
    # 0.85  0        (0.8, 0.9]  acc 0.0, conf 0.85 -> gap 0.85
    # 0.65  1        (0.6, 0.7]  acc 0.5, mean conf 0.635 -> gap 0.135
    # 0.62  0        (0.6, 0.7]
    # 0.35  0        (0.3, 0.4]  acc 0.0, conf 0.35 -> gap 0.35
    # ECE = 2/6*0.025 + 1/6*0.85 + 2/6*0.135 + 1/6*0.35 = (0.05 + 0.85 + 0.27 + 0.35) / 6 = 1.52 / 6
    conf = [1.0, 0.95, 0.85, 0.65, 0.62, 0.35]
    correct = [True, True, False, True, False, False]
    assert expected_calibration_error(conf, correct) == pytest.approx(1.52 / 6)
    assert expected_calibration_error([0.8, 0.8, 0.8, 0.8, 0.8], [1, 1, 1, 1, 0]) == pytest.approx(0.0)
    assert expected_calibration_error([], []) == 0.0
    bins = reliability_bins(conf, correct)
    assert [b["count"] for b in bins] == [1, 2, 1, 2]
    assert bins[1] == {"confidence": pytest.approx(0.635), "accuracy": 0.5, "count": 2}


def test_coverage_curve_and_decisions() -> None:
    conf = [0.9, 0.8, 0.6, 0.4]
    correct = [True, True, False, True]
    curve = coverage_curve(conf, correct, [0.0, 0.5, 0.85, 0.95])
    assert [p["coverage"] for p in curve] == [1.0, 0.75, 0.25, 0.0]
    assert [p["selective_accuracy"] for p in curve] == pytest.approx([0.75, 2 / 3, 1.0, 1.0])

    decided = decision_metrics(["act", "act", "confirm", "reask"], correct)
    assert decided["coverage"] == 0.5
    assert decided["selective_accuracy"] == 1.0
    assert decided["confirm_rate"] == 0.25 and decided["confirm_accuracy"] == 0.0
    assert decided["reask_rate"] == 0.25


def test_per_intent_scores_macro_f1_confusion() -> None:
    gold = ["a", "a", "b", "b", "c"]
    pred = ["a", "b", "b", "b", "a"]
    scores = per_intent_scores(gold, pred, ["a", "b", "c"])
    # a: tp 1, fp 1, fn 1 -> P = R = F1 = 0.5
    assert scores["a"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    # b: tp 2, fp 1, fn 0 -> P 2/3, R 1, F1 0.8
    assert scores["b"]["precision"] == pytest.approx(2 / 3) and scores["b"]["recall"] == 1.0
    assert scores["b"]["f1"] == pytest.approx(0.8)
    assert scores["c"]["f1"] == 0.0 and scores["c"]["support"] == 1
    assert macro_f1(scores) == pytest.approx((0.5 + 0.8 + 0.0) / 3)
    assert accuracy(gold, pred) == pytest.approx(3 / 5)
    assert confusion_matrix(gold, pred, ["a", "b", "c"]) == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]


def test_safety_recall_and_false_escalations() -> None:
    gold = ["notfall", "notfall", "seelsorge", "rechnung", "technik", "rechnung", "termin"]
    escalated = ["notfall", "mitarbeiter", None, "notfall", None, None, None]
    result = safety_metrics(gold, escalated, ("notfall", "seelsorge", "mitarbeiter"))
    # Any escalation of a safety item reaches a human, so notfall counts as recalled twice.
    assert result["safety_recall"] == {"notfall": 1.0, "seelsorge": 0.0, "mitarbeiter": 1.0}
    assert result["false_escalation_rate"] == pytest.approx(1 / 4)
    assert result["false_escalations"] == 1


def test_temperature_scaling_recovers_the_known_optimum() -> None:
    # Four items with logits (2, 0); three are class 0. The NLL is minimal when
    # sigmoid(2 / T) = 3/4, i.e. 2 / T = ln 3.
    logits = np.array([[2.0, 0.0]] * 4)
    labels = np.array([0, 0, 0, 1])
    temperature = fit_temperature(logits, labels)
    assert temperature == pytest.approx(2 / math.log(3), rel=1e-4)
    assert softmax(logits, temperature)[0, 0] == pytest.approx(0.75, rel=1e-4)
    assert nll(logits, labels, temperature) < nll(logits, labels, 1.0)


def test_threshold_for_precision() -> None:
    conf = [0.9, 0.8, 0.7, 0.6]
    correct = [True, True, False, True]
    # precision of conf >= t: 0.9 -> 1, 0.8 -> 1, 0.7 -> 2/3, 0.6 -> 3/4
    assert threshold_for_precision(conf, correct, 0.75) == 0.6
    assert threshold_for_precision(conf, correct, 0.8) == 0.8
    assert threshold_for_precision(conf, correct, 1.0) == 0.8
    assert threshold_for_precision([0.9], [False], 0.5) == 0.99  # never precise enough: always confirm
    assert threshold_for_precision([], [], 0.9) == 0.0


def test_calibrate_and_decide() -> None:
    rng = np.random.default_rng(0)
    labels = ["a", "b", "c"]
    gold = [labels[i % 3] for i in range(300)]
    logits = rng.normal(0, 1, (300, 3))
    for row, g in zip(logits, gold, strict=True):
        row[labels.index(g)] += 6.0  # an overconfident but mostly right model
    calibration = calibrate(logits, gold, labels, target_precision=0.97)
    assert calibration.temperature > 0
    assert set(calibration.act_thresholds) == set(labels)
    assert all(0.5 <= t <= 0.99 for t in calibration.act_thresholds.values())
    assert all(t >= calibration.default_act_threshold for t in calibration.act_thresholds.values())

    fixed = Calibration(labels=("a", "b"), act_thresholds={"a": 0.9, "b": 0.7}, confirm_threshold=0.4,
                        min_margin=0.1)
    assert fixed.decide("a", 0.95, 0.9) == "act"
    assert fixed.decide("a", 0.8, 0.6) == "confirm"  # a's threshold is stricter than b's
    assert fixed.decide("b", 0.8, 0.6) == "act"
    assert fixed.decide("b", 0.8, 0.05) == "confirm"  # too close to the runner-up
    assert fixed.decide("b", 0.3, 0.1) == "reask"
    assert Calibration.from_json(fixed.to_json()) == fixed

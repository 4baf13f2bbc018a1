"""The dedicated safety detector that scripts/compare_safety_detector.py measures (issue 14): its classes, its
points fitted on held-out scores, and what it learns from the real training lines."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from voicebot.config import REPO_ROOT
from voicebot.nlu.safety import SAFETY_LABELS
from voicebot.nlu.training_data import read_examples

sys.path.insert(0, str(REPO_ROOT / "scripts"))

from safety_detector import NONE, SafetyDetector, detector_labels, fit_detector_points  # noqa: E402

TRAIN = REPO_ROOT / "eval" / "intent" / "train.jsonl"


def test_detector_sees_every_ordinary_and_out_of_domain_line_as_none() -> None:
    assert detector_labels(["rechnung", "notfall", "sonstiges", "mitarbeiter"]).tolist() == \
        [NONE, "notfall", NONE, "mitarbeiter"]


def test_points_reach_recall_one_when_a_miss_costs_more_than_the_false_escalations() -> None:
    scores = np.array([[0.9, 0, 0], [0.3, 0, 0], [0.35, 0, 0], [0.1, 0, 0], [0, 0.8, 0], [0, 0, 0.7]])
    gold = ["notfall", "notfall", "rechnung", "sonstiges", "seelsorge", "mitarbeiter"]
    hits = np.zeros(len(gold), dtype=bool)
    assert fit_detector_points(scores, gold, hits, miss_cost=30)["notfall"] == pytest.approx(0.3)
    # cheap misses: the weak line is given up to spare the ordinary one above it
    assert fit_detector_points(scores, gold, hits, miss_cost=0.5)["notfall"] == pytest.approx(0.9)
    # a line the keyword net catches needs no score
    assert fit_detector_points(scores, gold, np.array([0, 1, 0, 0, 0, 0], bool), 30)["notfall"] == \
        pytest.approx(0.9)
    # a veto is fitted only on the lines the other rule escalates (here not the weak notfall line)
    consider = np.array([1, 0, 1, 1, 1, 1], bool)
    pooled = fit_detector_points(scores.max(axis=1, keepdims=True).repeat(3, 1), gold, hits, 30, pooled=True,
                                 consider=consider)
    assert pooled["notfall"] == pytest.approx(0.7)


def test_detector_learns_safety_from_train_lines_and_keeps_its_columns() -> None:
    examples = read_examples(TRAIN)
    texts, gold = [e.text for e in examples], [e.label for e in examples]
    x = np.zeros((len(texts), 2))  # the n-gram part alone: the test needs no encoder
    detector = SafetyDetector.fit(x, texts, gold, ngram_weight=1.0, seed=13)
    scores = detector.scores(np.zeros((3, 2)), ["Hilfe, mein Mann atmet nicht mehr!", "Ich will nicht mehr leben.",
                                                "Die Rechnung ist zu hoch."])
    assert scores.shape == (3, len(SAFETY_LABELS))
    assert scores[0].argmax() == SAFETY_LABELS.index("notfall") and scores[0, 0] > 0.5
    assert scores[1].argmax() == SAFETY_LABELS.index("seelsorge")
    assert scores[2].max() < 0.2

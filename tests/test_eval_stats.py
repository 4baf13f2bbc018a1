"""Percentiles, summaries and precision/recall against hand-worked examples."""

from __future__ import annotations

import math

import numpy as np
import pytest

from voicebot.eval.stats import mean, nearest_rank, percentile, precision_recall, ratio, summarize

DATA = [40, 15, 50, 35, 20]  # sorted: 15 20 35 40 50


@pytest.mark.parametrize(
    ("p", "expected"),
    [
        (0, 15.0),
        (40, 29.0),  # h = 4 * 0.40 = 1.6 -> 20 + 0.6 * (35 - 20)
        (50, 35.0),  # h = 2 exactly
        (95, 48.0),  # h = 3.8 -> 40 + 0.8 * (50 - 40)
        (99, 49.6),  # h = 3.96 -> 40 + 0.96 * 10
        (100, 50.0),
    ],
)
def test_percentile_linear_interpolation_by_hand(p: float, expected: float) -> None:
    assert percentile(DATA, p) == pytest.approx(expected)
    # The documented definition is numpy's default (type 7): same numbers.
    assert percentile(DATA, p) == pytest.approx(float(np.percentile(DATA, p)))


@pytest.mark.parametrize(("p", "expected"), [(0, 15), (30, 20), (40, 20), (50, 35), (95, 50), (100, 50)])
def test_nearest_rank_by_hand(p: float, expected: float) -> None:
    # rank = ceil(p/100 * 5): 30 % -> 2, 40 % -> 2, 50 % -> 3, 95 % -> 5
    assert nearest_rank(DATA, p) == expected


def test_missing_values_are_not_zeros() -> None:
    assert percentile([], 50) is None
    assert nearest_rank([None, float("nan")], 50) is None
    assert percentile([None, 10.0, float("nan"), 20.0], 50) == 15.0
    assert percentile([7.0], 99) == 7.0
    assert mean([]) is None
    assert ratio(3, 0) is None
    with pytest.raises(ValueError):
        percentile(DATA, 101)


def test_summarize() -> None:
    s = summarize([1.0, 2.0, 3.0, 4.0, None])
    assert s == {"n": 4, "mean": 2.5, "p50": 2.5, "p95": 3.85, "p99": 3.97, "min": 1.0, "max": 4.0}
    empty = summarize([])
    assert empty["n"] == 0 and empty["p95"] is None


def test_precision_recall_by_hand() -> None:
    predicted = [True, True, False, False, True]
    actual = [True, False, True, False, True]
    # tp: items 0 and 4; fp: item 1; fn: item 2
    r = precision_recall(predicted, actual)
    assert (r["tp"], r["fp"], r["fn"]) == (2, 1, 1)
    assert r["precision"] == pytest.approx(2 / 3)
    assert r["recall"] == pytest.approx(2 / 3)
    assert r["f1"] == pytest.approx(2 / 3)


def test_precision_undefined_when_nothing_predicted() -> None:
    r = precision_recall([False, False], [True, False])
    assert r["precision"] is None and r["recall"] == 0.0 and r["f1"] is None
    r = precision_recall([True], [False])
    assert r["precision"] == 0.0 and r["recall"] is None
    assert not math.isnan(r["precision"])
    with pytest.raises(ValueError):
        precision_recall([True], [True, False])

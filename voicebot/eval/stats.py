"""Small, exact statistics for evaluation reports: percentiles, summaries, ratios.

Percentiles use **linear interpolation between closest ranks** (Hyndman & Fan
type 7, numpy's default ``method="linear"``): for sorted values ``x[0..n-1]``
the p-th percentile sits at fractional rank ``h = (n - 1) * p / 100`` and is
``x[floor(h)] + (h - floor(h)) * (x[floor(h) + 1] - x[floor(h)])``. It is
continuous in p and agrees with what numpy, pandas and most dashboards show,
so numbers in our reports can be checked with one line of numpy.
``nearest_rank`` is provided too (the textbook definition: the smallest value
with at least p % of the data at or below it), because SLOs are often written
against it; the summaries do not use it.

Empty inputs give ``None`` rather than 0 or NaN: "no data" must not look like
"zero latency" in a report or a comparison.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence


def _clean(values: Iterable[float | None]) -> list[float]:
    """Drop ``None`` and NaN: a missing measurement is not a measurement of zero."""
    return sorted(float(v) for v in values if v is not None and not math.isnan(float(v)))


def percentile(values: Iterable[float | None], p: float) -> float | None:
    """The p-th percentile (0 ≤ p ≤ 100) by linear interpolation (type 7); None if empty."""
    if not 0.0 <= p <= 100.0:
        raise ValueError(f"percentile must be within 0..100, got {p}")
    xs = _clean(values)
    if not xs:
        return None
    h = (len(xs) - 1) * p / 100.0
    lo = math.floor(h)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (h - lo) * (xs[hi] - xs[lo])


def nearest_rank(values: Iterable[float | None], p: float) -> float | None:
    """The p-th percentile by the nearest-rank method: ``x[ceil(p/100 * n) - 1]``; None if empty."""
    if not 0.0 <= p <= 100.0:
        raise ValueError(f"percentile must be within 0..100, got {p}")
    xs = _clean(values)
    if not xs:
        return None
    rank = max(1, math.ceil(p / 100.0 * len(xs)))
    return xs[rank - 1]


def mean(values: Iterable[float | None]) -> float | None:
    xs = _clean(values)
    return sum(xs) / len(xs) if xs else None


def summarize(values: Iterable[float | None], digits: int = 4) -> dict[str, float | int | None]:
    """``{n, mean, p50, p95, p99, min, max}`` of the non-missing values, rounded for JSON."""
    xs = _clean(values)

    def r(x: float | None) -> float | None:
        return None if x is None else round(x, digits)

    return {
        "n": len(xs),
        "mean": r(mean(xs)),
        "p50": r(percentile(xs, 50)),
        "p95": r(percentile(xs, 95)),
        "p99": r(percentile(xs, 99)),
        "min": r(xs[0] if xs else None),
        "max": r(xs[-1] if xs else None),
    }


def ratio(numerator: int, denominator: int) -> float | None:
    """``numerator / denominator``, or None when nothing was counted (undefined, not 0)."""
    return numerator / denominator if denominator else None


def precision_recall(predicted: Sequence[bool], actual: Sequence[bool]) -> dict[str, float | int | None]:
    """Precision, recall and F1 of a binary decision (e.g. "this call was handed off").

    Precision is undefined (None) when nothing was predicted positive, recall when
    no case was actually positive; F1 is None unless both are defined.
    """
    if len(predicted) != len(actual):
        raise ValueError(f"predicted and actual differ in length: {len(predicted)} != {len(actual)}")
    tp = sum(1 for p, a in zip(predicted, actual, strict=True) if p and a)
    fp = sum(1 for p, a in zip(predicted, actual, strict=True) if p and not a)
    fn = sum(1 for p, a in zip(predicted, actual, strict=True) if not p and a)
    precision = ratio(tp, tp + fp)
    recall = ratio(tp, tp + fn)
    f1: float | None = None
    if precision is not None and recall is not None:
        f1 = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    return {"tp": tp, "fp": fp, "fn": fn, "precision": precision, "recall": recall, "f1": f1}

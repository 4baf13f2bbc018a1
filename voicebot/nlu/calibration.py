"""Calibrated intent probabilities and the thresholds the triage decision uses.

Two steps, both fitted on held-out predictions (never on the training lines):

* **Temperature scaling** (Guo et al., 2017): one scalar ``T`` divides every
  logit before the softmax. It does not change which intent wins, only how
  sure the model claims to be, which is what the act/confirm/re-ask decision
  and the agents' view rely on.
* **Per-intent act thresholds** for a target precision: the smallest
  confidence at which acting on a prediction of that intent was right at
  least ``target_precision`` of the time. Per-intent thresholds may only be
  *stricter* than the pooled one: with ~15-30 held-out predictions per intent
  a lower per-intent threshold would be chance, a higher one is a warning.

Everything here is pure numpy, so it is cheap to test by hand.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

DECISIONS = ("act", "confirm", "reask")


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of ``logits / temperature`` (numerically stable)."""
    z = np.asarray(logits, dtype=np.float64) / float(temperature)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of integer ``labels`` under ``softmax(logits / T)``."""
    z = np.asarray(logits, dtype=np.float64) / float(temperature)
    z = z - z.max(axis=-1, keepdims=True)
    log_norm = np.log(np.exp(z).sum(axis=-1))
    picked = z[np.arange(len(labels)), np.asarray(labels, dtype=int)]
    return float(np.mean(log_norm - picked))


def fit_temperature(logits: np.ndarray, labels: np.ndarray, lo: float = 0.05, hi: float = 20.0) -> float:
    """The temperature minimizing held-out NLL.

    NLL is convex in the inverse temperature ``b = 1/T`` (a log-sum-exp of
    functions linear in ``b``), so a golden-section search over ``b`` finds the
    optimum without a gradient or an optimizer dependency.
    """
    labels = np.asarray(labels, dtype=int)
    if len(labels) == 0:
        return 1.0
    a, b = 1.0 / hi, 1.0 / lo
    ratio = (np.sqrt(5.0) - 1.0) / 2.0
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    fc, fd = nll(logits, labels, 1.0 / c), nll(logits, labels, 1.0 / d)
    for _ in range(80):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - ratio * (b - a)
            fc = nll(logits, labels, 1.0 / c)
        else:
            a, c, fc = c, d, fd
            d = a + ratio * (b - a)
            fd = nll(logits, labels, 1.0 / d)
    return float(1.0 / ((a + b) / 2.0))


def threshold_for_precision(
    confidences: Sequence[float], correct: Sequence[bool], target: float, ceiling: float = 0.99
) -> float:
    """The smallest confidence ``t`` with precision(conf >= t) >= ``target``.

    Candidates are the observed confidences. Returns ``ceiling`` when no
    threshold reaches the target (the intent is then never acted on without a
    confirmation), and 0.0 for an empty group.
    """
    conf = np.asarray(confidences, dtype=np.float64)
    ok = np.asarray(correct, dtype=bool)
    if len(conf) == 0:
        return 0.0
    order = np.argsort(-conf, kind="stable")
    conf, ok = conf[order], ok[order]
    precision = np.cumsum(ok) / np.arange(1, len(ok) + 1)
    best: float | None = None
    for i in range(len(conf)):
        # Only the last index of a run of equal confidences is a real cut.
        if i + 1 < len(conf) and conf[i + 1] == conf[i]:
            continue
        if precision[i] >= target:
            best = float(conf[i])
    return ceiling if best is None else min(best, ceiling)


@dataclass(frozen=True)
class Calibration:
    """What turns raw logits into a calibrated, decided prediction.

    ``act_thresholds`` maps intent -> the confidence needed to act without
    confirmation; ``confirm_threshold`` is the confidence below which the bot
    re-asks instead of confirming; ``min_margin`` is the top-1/top-2 gap
    needed to act.
    """

    labels: tuple[str, ...]
    temperature: float = 1.0
    act_thresholds: dict[str, float] = field(default_factory=dict)
    default_act_threshold: float = 0.8
    confirm_threshold: float = 0.4
    min_margin: float = 0.1
    target_precision: float = 0.97
    extra: dict[str, Any] = field(default_factory=dict)

    def act_threshold(self, label: str) -> float:
        return self.act_thresholds.get(label, self.default_act_threshold)

    def decide(self, label: str, confidence: float, margin: float) -> str:
        """``act``, ``confirm`` or ``reask`` for one calibrated prediction."""
        if confidence >= self.act_threshold(label) and margin >= self.min_margin:
            return "act"
        if confidence >= self.confirm_threshold:
            return "confirm"
        return "reask"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["labels"] = list(self.labels)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Calibration:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known["labels"] = tuple(known.get("labels", ()))
        return cls(**known)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> Calibration:
        return cls.from_json(json.loads(path.read_text(encoding="utf-8")))


def calibrate(
    logits: np.ndarray,
    gold: Sequence[str],
    labels: Sequence[str],
    *,
    target_precision: float = 0.97,
    confirm_threshold: float = 0.4,
    min_margin: float = 0.1,
    min_support: int = 8,
    floor: float = 0.5,
    ceiling: float = 0.99,
) -> Calibration:
    """Fit the temperature and the act thresholds on held-out ``logits`` and ``gold`` labels.

    The pooled threshold is chosen over all predictions; an intent with at
    least ``min_support`` held-out predictions gets its own threshold if that
    one is stricter. ``floor`` keeps a prediction below 50 % from ever being
    acted on, whatever the held-out set happened to contain.
    """
    index = {label: i for i, label in enumerate(labels)}
    y = np.array([index[g] for g in gold], dtype=int)
    temperature = fit_temperature(logits, y)
    probs = softmax(logits, temperature)
    pred = probs.argmax(axis=1)
    conf = probs.max(axis=1)
    top2 = np.sort(probs, axis=1)[:, -2] if probs.shape[1] > 1 else np.zeros(len(conf))
    margin_ok = (conf - top2) >= min_margin
    correct = pred == y
    # Predictions that fail the margin are never acted on, so they do not count
    # towards the precision of acting.
    pooled = max(floor, threshold_for_precision(conf[margin_ok], correct[margin_ok], target_precision, ceiling))
    thresholds: dict[str, float] = {}
    for label, i in index.items():
        mask = (pred == i) & margin_ok
        own = pooled
        if mask.sum() >= min_support:
            own = max(pooled, threshold_for_precision(conf[mask], correct[mask], target_precision, ceiling))
        thresholds[label] = round(float(own), 6)
    return Calibration(
        labels=tuple(labels),
        temperature=round(temperature, 6),
        act_thresholds=thresholds,
        default_act_threshold=round(float(pooled), 6),
        confirm_threshold=confirm_threshold,
        min_margin=min_margin,
        target_precision=target_precision,
        extra={"calibration_n": int(len(y)), "nll_before": nll(logits, y), "nll_after": nll(logits, y, temperature)},
    )

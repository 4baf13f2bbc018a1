"""A dedicated safety detector: notfall / seelsorge / mitarbeiter / none (issue 14; measured, not shipped).

The 14-way intent model spreads its probability over ten ordinary concerns,
and a safety intent's share of it is what the escalation rule reads. This
model asks one question only: is the line one of the safety intents, or
none of them? Every ordinary line and every out-of-domain line is one class
("none"), so hard negatives (an ordinary call in crisis words) and nonsense
teach it directly what a safety line is not. Like the intent model it is a
linear head on the e5 sentence embedding, mixed in log-probability space
with a character-n-gram model (robust to recognition slips); its points are
fitted on out-of-fold scores of train (``fit_detector_points``).

Measured by scripts/compare_safety_detector.py against the shipped rule (every way of joining it to the
escalation decision lost out of fold; see eval/intent/DATACARD.md), so it lives beside that script,
not in the product. Pure numpy: the embeddings come from the e5 cache of scripts/compare_intent_models.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from voicebot.nlu.calibration import softmax
from voicebot.nlu.intent import mix_logits
from voicebot.nlu.ngram import NgramIntentModel
from voicebot.nlu.safety import SAFETY_LABELS

NONE = "none"


def detector_labels(gold: Sequence[str] | np.ndarray) -> np.ndarray:
    """Each training label as the detector sees it: a safety intent, or ``none``."""
    g = np.asarray(gold, dtype=object)
    return np.where(np.isin(g, SAFETY_LABELS), g, NONE).astype(str)


@dataclass
class SafetyDetector:
    """Head (weight, bias) over e5 embeddings + an n-gram model, both with classes ``labels``."""

    labels: tuple[str, ...]
    weight: np.ndarray
    bias: np.ndarray
    ngram: NgramIntentModel
    ngram_weight: float

    @classmethod
    def fit(cls, x: np.ndarray, texts: Sequence[str], gold: Sequence[str] | np.ndarray, ngram_weight: float,
            seed: int) -> SafetyDetector:
        from voicebot.nlu.train import _fit_head

        y = detector_labels(gold)
        labels = tuple(sorted(set(y.tolist())))
        if labels != tuple(sorted((*SAFETY_LABELS, NONE))):
            raise ValueError(f"safety detector: training lines lack classes (saw {labels})")
        weight, bias = _fit_head(x, y, labels, seed)
        ngram = NgramIntentModel.fit(list(texts), list(y), seed=seed)
        return cls(labels, weight, bias, ngram, ngram_weight)

    def scores(self, x: np.ndarray, texts: Sequence[str]) -> np.ndarray:
        """``(n, 3)``: each safety intent's probability, columns in ``SAFETY_LABELS`` order."""
        if not len(texts):
            return np.zeros((0, len(SAFETY_LABELS)))
        logits = mix_logits(np.asarray(x, dtype=np.float64) @ self.weight.T + self.bias, self.ngram.logits(texts),
                            self.ngram_weight)
        probs = softmax(logits)
        return probs[:, [self.labels.index(s) for s in SAFETY_LABELS]]


def fit_detector_points(scores: np.ndarray, gold: Sequence[str] | np.ndarray, keyword_hits: np.ndarray,
                        miss_cost: float, pooled: bool = False, floor: float = 0.001,
                        ceiling: float = 0.99, consider: np.ndarray | None = None) -> dict[str, float]:
    """Per safety intent, the detector score with the fewest weighted errors on held-out lines.

    Cost: ``miss_cost`` per line of that intent below the point (lines the
    keyword nets catch need no score) + one per ordinary line at or above it;
    ties go to the lower point. ``pooled``: one point for column 0 against
    every safety line (a score that already pools the three intents).
    ``consider``: only these lines count (a veto on another rule: the lines it escalates).
    """
    g = np.asarray(gold)
    keep = np.ones(len(g), dtype=bool) if consider is None else np.asarray(consider, dtype=bool)
    keyword_hits = np.asarray(keyword_hits, dtype=bool) | ~keep
    ordinary = ~np.isin(g, SAFETY_LABELS) & keep
    points = {}
    for j, label in enumerate(SAFETY_LABELS):
        col = scores[:, 0 if pooled else j]
        positive = np.isin(g, SAFETY_LABELS) if pooled else g == label
        need, against = np.sort(col[positive & ~keyword_hits]), np.sort(col[ordinary])
        candidates = np.unique(np.clip(np.concatenate([need, [floor, ceiling]]), floor, ceiling))
        missed = np.searchsorted(need, candidates, side="left")
        false = len(against) - np.searchsorted(against, candidates, side="left")
        points[label] = round(float(candidates[int(np.argmin(miss_cost * missed + false))]), 6)
    return points

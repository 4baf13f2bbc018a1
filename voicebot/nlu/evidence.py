"""Safety evidence that does not come from the intent softmax (issue 14).

On a stranger's sentence the 14-way softmax spreads out, and some safety
intent passes its low out-of-fold operating point as a runner-up. These
scores ask instead whether the line carries anything that separates safety
lines from ordinary ones in the training data:

* ``SafetyLexicon``: words and word pairs (cut to a short stem, so endings
  and ASR slips at a word's end do not matter) whose presence in train is
  mostly in lines of one safety intent; a line's evidence for that intent is
  the smoothed share of the strongest such stem it contains.

(A kNN margin on e5 embeddings was measured beside it and did not separate: scripts/compare_safety_gates.py.)

Pure numpy / text code: no models here.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from voicebot.nlu.safety import SAFETY_LABELS

LEXICON_FILE = "safety_lexicon.json"
STEM_CHARS = 5  # "bewusstlos"/"bewusstlose", "atmet"/"atmen" share a stem; a misheard ending does not matter
# A stem counts once seen in this many train lines: rarer pairs ("haben gerade") were chance, and stems of 5
# letters with pairs and 3 lines had the fewest out-of-fold false escalations of the settings tried (issue 14).
MIN_COUNT = 3
SMOOTHING = 2.0  # pseudo-lines at the prior share: a stem seen in 3 safety lines of 3 scores 0.6, not 1.0
NO_GATE = -1.0  # an evidence gate no score fails (shares are >= 0)
_WORD = re.compile(r"[^\W\d_]+|\d+")


# Politeness and greeting words are no safety evidence on their own: "bitte" alone scored 0.35 for mitarbeiter
# (train's "Mitarbeiter, bitte." lines) and backed a mitarbeiter runner-up for a caller's "Ja, bitte.". In a
# pair they still count ("mitar+bitte").
COURTESY_STEMS = frozenset({"bitte", "danke", "hallo", "guten", "gerne", "gern"})


def stems(text: str, chars: int = STEM_CHARS, pairs: bool = True) -> list[str]:
    """Word stems of ``text`` (lower case, ``chars`` letters), and adjacent pairs of them joined by '+'."""
    words = [w[:chars] for w in _WORD.findall(text.lower()) if len(w) >= 3 or w.isdigit()]
    singles = {w for w in words if w not in COURTESY_STEMS}
    return sorted(singles | ({f"{a}+{b}" for a, b in zip(words, words[1:], strict=False)} if pairs else set()))


@dataclass(frozen=True)
class SafetyLexicon:
    """Per safety intent, stems and the smoothed share of train lines containing them that are of that intent."""

    weights: dict[str, dict[str, float]] = field(default_factory=dict)  # label -> stem -> share
    prior: dict[str, float] = field(default_factory=dict)
    min_count: int = MIN_COUNT

    @classmethod
    def fit(cls, texts: Sequence[str], gold: Sequence[str], min_count: int = MIN_COUNT, smoothing: float = SMOOTHING,
            labels: Sequence[str] = SAFETY_LABELS) -> SafetyLexicon:
        """Count, per stem, the lines it occurs in (all, and per safety intent); keep those in ``min_count`` lines."""
        total: Counter[str] = Counter()
        per: dict[str, Counter[str]] = {label: Counter() for label in labels}
        for text, label in zip(texts, gold, strict=True):
            found = stems(text)
            total.update(found)
            if label in per:
                per[label].update(found)
        prior = {label: sum(g == label for g in gold) / max(1, len(gold)) for label in labels}
        weights = {
            label: {s: round((per[label][s] + smoothing * prior[label]) / (n + smoothing), 4)
                    for s, n in total.items() if n >= min_count and per[label][s] > 0}
            for label in labels
        }
        return cls(weights, prior, min_count)

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.weights)

    def scores(self, texts: Sequence[str]) -> np.ndarray:
        """``(len(texts), len(labels))``: the strongest stem's share per safety intent (the prior without one)."""
        labels = list(self.weights)
        out = np.zeros((len(texts), len(labels)))
        for i, text in enumerate(texts):
            found = stems(text)
            for j, label in enumerate(labels):
                table = self.weights[label]
                out[i, j] = max([table[s] for s in found if s in table], default=self.prior[label])
        return out

    def save(self, directory: Path) -> None:
        (directory / LEXICON_FILE).write_text(
            json.dumps({"weights": self.weights, "prior": self.prior, "min_count": self.min_count,
                        "stem_chars": STEM_CHARS}, ensure_ascii=False, sort_keys=True), encoding="utf-8")

    @classmethod
    def load(cls, directory: Path) -> SafetyLexicon:
        raw = json.loads((directory / LEXICON_FILE).read_text(encoding="utf-8"))
        if int(raw.get("stem_chars", STEM_CHARS)) != STEM_CHARS:
            raise ValueError(f"{directory / LEXICON_FILE}: stems of {raw['stem_chars']} chars, code uses {STEM_CHARS}")
        order = [label for label in SAFETY_LABELS if label in raw["weights"]]  # the file's keys are sorted
        return cls({label: raw["weights"][label] for label in order}, {label: raw["prior"][label] for label in order},
                   int(raw["min_count"]))


def lexicon_out_of_fold(texts: Sequence[str], gold: Sequence[str], folds: np.ndarray) -> np.ndarray:
    """Each line's lexicon scores from a lexicon fitted on the other folds (how the gate is calibrated)."""
    out = np.zeros((len(texts), len(SAFETY_LABELS)))
    for k in np.unique(folds):
        rest, held = np.flatnonzero(folds != k), np.flatnonzero(folds == k)
        lexicon = SafetyLexicon.fit([texts[int(i)] for i in rest], [gold[int(i)] for i in rest])
        out[held] = lexicon.scores([texts[int(i)] for i in held])
    return out


# ---- the gate on the escalation rule ----------------------------------------------------------------------


def escalated_with_evidence(probs: np.ndarray, labels: Sequence[str], thresholds: dict[str, float],
                            evidence: np.ndarray | None, gate: float, ood_gate: float = 1.01,
                            keyword_hits: Sequence[bool] | None = None, ood_label: str = "sonstiges") -> np.ndarray:
    """Which lines the escalation rule sends to a human (any safety intent), as ``safety_escalation`` decides.

    A safety top-1 passing its operating point always escalates; a safety
    runner-up passing its point escalates only below the ``sonstiges`` gate
    and with ``evidence`` (columns in ``SAFETY_LABELS`` order) at ``gate`` or
    above; the keyword nets always escalate.
    """
    index = {label: i for i, label in enumerate(labels)}
    top = probs.argmax(axis=1)
    quiet = probs[:, index[ood_label]] >= ood_gate if ood_label in index else np.zeros(len(probs), dtype=bool)
    out = np.zeros(len(probs), dtype=bool) if keyword_hits is None else np.asarray(keyword_hits, dtype=bool).copy()
    for j, label in enumerate(SAFETY_LABELS):
        passes = probs[:, index[label]] >= thresholds.get(label, 1.0)
        is_top = top == index[label]
        backed = np.ones(len(probs), dtype=bool) if evidence is None else evidence[:, j] >= gate
        out |= passes & (is_top | (~quiet & backed))
    return out


def fit_evidence_gate(probs: np.ndarray, gold: Sequence[str], labels: Sequence[str], thresholds: dict[str, float],
                      evidence: np.ndarray, miss_cost: float, ood_gate: float = 1.01,
                      keyword_hits: Sequence[bool] | None = None) -> float:
    """The evidence a safety runner-up needs, from held-out (out-of-fold) lines: fewest weighted errors.

    Cost = ``miss_cost`` per safety line the gate loses + one per ordinary
    line still escalated; ties go to the lower gate (the safer side).
    ``NO_GATE`` when no gate pays.
    """
    gold_arr = np.asarray(gold)
    safe = np.isin(gold_arr, SAFETY_LABELS)
    best, best_cost = NO_GATE, np.inf
    for gate in np.unique(np.concatenate([evidence.ravel(), [NO_GATE]])):
        escalated = escalated_with_evidence(probs, labels, thresholds, evidence, float(gate), ood_gate, keyword_hits)
        cost = miss_cost * float((~escalated[safe]).sum()) + float(escalated[~safe].sum())
        if cost < best_cost - 1e-9:
            best, best_cost = float(gate), cost
    return round(best, 6)


def escalation_rates(escalated: np.ndarray, safe: np.ndarray) -> dict[str, float]:
    """Safety recall (of the ``safe`` lines, 1.0 if none) and false-escalation rate (of the rest, 0.0 if none)."""
    return {"recall": float(escalated[safe].mean()) if safe.any() else 1.0,
            "false_escalation_rate": float(escalated[~safe].mean()) if (~safe).any() else 0.0}


# Fixed gates the curve reads at besides the fitted one; TOP1_ONLY (above every share) lets no runner-up escalate.
TOP1_ONLY = 2.0
CURVE_GATES = (NO_GATE, 0.2, 0.3, 0.4, 0.5, 0.6, TOP1_ONLY)


def evidence_gate_curve(probs: np.ndarray, gold: Sequence[str], labels: Sequence[str], thresholds: dict[str, float],
                        evidence: np.ndarray, gates: Sequence[float] = CURVE_GATES, ood_gate: float = 1.01,
                        keyword_hits: Sequence[bool] | None = None) -> list[dict[str, float]]:
    """Safety recall and false-escalation rate as the evidence a runner-up needs rises (issue 14's trade-off curve).

    Read only: the shipped gate is fitted out of fold (``fit_evidence_gate``), never from this curve on held-out data.
    """
    safe = np.isin(np.asarray(gold), SAFETY_LABELS)
    curve = []
    for gate in gates:
        escalated = escalated_with_evidence(probs, labels, thresholds, evidence, float(gate), ood_gate, keyword_hits)
        rates = escalation_rates(escalated, safe)
        curve.append({"gate": float(gate), "recall": rates["recall"],
                      "false_escalation_rate": rates["false_escalation_rate"],
                      "false_escalations": int(escalated[~safe].sum())})
    return curve


def gate_effect(probs: np.ndarray, gold: Sequence[str], labels: Sequence[str], thresholds: dict[str, float],
                evidence: np.ndarray, gate: float, ood_gate: float = 1.01,
                keyword_hits: Sequence[bool] | None = None) -> dict[str, dict[str, float]]:
    """Safety recall, false-escalation rate and lines escalated, ``without`` and ``with`` the evidence gate."""
    safe = np.isin(np.asarray(gold), SAFETY_LABELS)
    out = {}
    for name, g in (("without", NO_GATE), ("with", gate)):
        escalated = escalated_with_evidence(probs, labels, thresholds, evidence, g, ood_gate, keyword_hits)
        out[name] = {**escalation_rates(escalated, safe), "escalated": int(escalated.sum())}
    return out

#!/usr/bin/env python3
"""More safety-escalation rules side by side (issue 14), every one fitted out of fold on train only.

Reads the scored sets that ``scripts/compare_safety_gates.py --dump FILE`` writes (out-of-fold train
predictions, and dev, dev_asr, ood, ood_asr and the real out-of-domain speech scored by a model fitted
on all of train), so no embedding or model is computed here. Rules, each on top of the production
operating points and ``sonstiges`` gate (keyword nets always escalate):

* ``shipped``      : a safety runner-up needs lexicon evidence (``voicebot.nlu.evidence``), gate at the miss cost
* ``stem-lr``      : the same gate on a smooth evidence score: per safety intent, a logistic regression on the
                     lexicon's stems and stem pairs (seen in 2+ lines), out of fold
* ``lexicon-top1`` : the lexicon gate also on a safety top-1 below 0.5 (two gates, fitted jointly)
* ``stacked``      : one "safety or not" logistic regression over the calibrated log-probabilities, the lexicon
                     evidence and the safety top-1 flags (nested out of fold), its threshold at the miss cost
* ``top-1 only``   : safety runners-up never escalate (the floor any runner-up gate can reach)
* ``gate=G``       : the lexicon gate fixed at G (the curve; not fitted, for reading only)

The miss cost (a lost safety line in false escalations) is ``--miss-cost`` (default ``nlu.safety_evidence_miss_cost``).

    .venv/bin/python scripts/compare_safety_gates.py --dump /tmp/scored.pkl [--staged]
    .venv/bin/python scripts/compare_safety_rules.py /tmp/scored.pkl
"""

from __future__ import annotations

import argparse
import pickle
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from compare_safety_gates import Scored  # noqa: E402

import __main__  # noqa: E402
from voicebot.config import load_settings  # noqa: E402
from voicebot.nlu.evidence import NO_GATE, escalated_with_evidence, fit_evidence_gate, stems  # noqa: E402
from voicebot.nlu.safety import SAFETY_LABELS, fit_ood_gate, fit_operating_points  # noqa: E402

Rule = Callable[[Scored], np.ndarray]  # a scored set -> which lines escalate


def stem_lr(train_texts: Sequence[str], train_gold: Sequence[str], texts: Sequence[str], c: float = 1.0) -> np.ndarray:
    """Per safety intent, P(intent | stems) from a logistic regression on binary stem features."""
    from scipy.sparse import csr_matrix
    from sklearn.linear_model import LogisticRegression

    counts = Counter(s for t in train_texts for s in stems(t))
    vocab = {s: i for i, s in enumerate(sorted(k for k, n in counts.items() if n >= 2))}

    def matrix(rows: Sequence[str]) -> csr_matrix:
        cells = [(r, vocab[s]) for r, t in enumerate(rows) for s in stems(t) if s in vocab]
        r, k = zip(*cells, strict=True) if cells else ((), ())
        return csr_matrix((np.ones(len(r)), (r, k)), shape=(len(rows), len(vocab)))

    x, xt = matrix(train_texts), matrix(texts)
    gold = np.asarray(train_gold)
    return np.stack([LogisticRegression(C=c, max_iter=3000).fit(x, gold == s).predict_proba(xt)[:, 1]
                     for s in SAFETY_LABELS], axis=1)


def stack_features(s: Scored, labels: Sequence[str]) -> np.ndarray:
    index = [labels.index(label) for label in SAFETY_LABELS]
    top = s.probs.argmax(1)
    return np.concatenate([np.log(np.clip(s.probs, 1e-6, 1.0)), s.evidence["lexicon"],
                           np.stack([top == i for i in index], axis=1).astype(float)], axis=1)


def pick_threshold(score: np.ndarray, safe: np.ndarray, hits: np.ndarray, miss_cost: float) -> float:
    """Fewest ``miss_cost`` x lost safety lines + false escalations; ties to the lower threshold."""
    need, against = np.sort(score[safe & ~hits]), np.sort(score[~safe & ~hits])
    candidates = np.unique(np.concatenate([need, [0.0]]))
    cost = miss_cost * np.searchsorted(need, candidates, side="left") + (
        len(against) - np.searchsorted(against, candidates, side="left"))
    return float(candidates[int(np.argmin(cost))])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dump", type=Path, help="written by scripts/compare_safety_gates.py --dump")
    ap.add_argument("--miss-cost", type=float)
    args = ap.parse_args()
    __main__.Scored = Scored  # type: ignore[attr-defined]  # the dump was pickled from that script's __main__
    d = pickle.loads(args.dump.read_bytes())
    oof, sets, labels, folds = d["oof"], d["sets"], list(d["labels"]), d["folds"]
    miss_cost = load_settings().nlu.safety_evidence_miss_cost if args.miss_cost is None else args.miss_cost
    gold = oof.gold
    safe = np.isin(gold, SAFETY_LABELS)
    points = fit_operating_points(oof.probs, gold, labels, oof.hits)
    thresholds = {s: p.threshold for s, p in points.items()}
    ood_gate = fit_ood_gate(oof.probs, gold, labels, thresholds, oof.hits)
    top_col = {label: labels.index(label) for label in SAFETY_LABELS}

    # smooth evidence: out of fold on train, fitted on all of train for the held-out sets
    oof.evidence["stem-lr"] = np.zeros((len(gold), 3))
    for k in np.unique(folds):
        rest, part = np.flatnonzero(folds != k), np.flatnonzero(folds == k)
        oof.evidence["stem-lr"][part] = stem_lr([oof.texts[i] for i in rest], gold[rest],
                                                [oof.texts[i] for i in part])
    for s in sets.values():
        s.evidence["stem-lr"] = stem_lr(oof.texts, gold, s.texts)

    def gate_rule(kind: str, gate: float) -> Rule:
        return lambda s: escalated_with_evidence(s.probs, labels, thresholds, s.evidence[kind], gate, ood_gate, s.hits)

    def two_gates(top_gate: float, runner_gate: float) -> Rule:
        def rule(s: Scored) -> np.ndarray:
            out = escalated_with_evidence(s.probs, labels, thresholds, s.evidence["lexicon"], runner_gate, ood_gate,
                                          s.hits)
            top = s.probs.argmax(1)
            for j, label in enumerate(SAFETY_LABELS):  # a weak safety top-1 without evidence is let go
                p = s.probs[:, top_col[label]]
                weak = (top == top_col[label]) & (p < 0.5) & (s.evidence["lexicon"][:, j] < top_gate)
                out &= ~weak | s.hits
            return out
        return rule

    rules: dict[str, Rule] = {}
    for kind in ("lexicon", "stem-lr"):
        gate = fit_evidence_gate(oof.probs, gold, labels, thresholds, oof.evidence[kind], miss_cost, ood_gate,
                                 oof.hits)
        rules[f"{'shipped' if kind == 'lexicon' else kind} (gate {gate:.3f})"] = gate_rule(kind, gate)
    grid = np.unique(np.round(np.quantile(oof.evidence["lexicon"], np.linspace(0, 1, 40)), 4))
    best = min(((miss_cost * (~two_gates(g1, g2)(oof)[safe]).sum() + two_gates(g1, g2)(oof)[~safe].sum(), g1, g2)
                for g2 in np.concatenate([[NO_GATE], grid]) for g1 in np.concatenate([[NO_GATE], grid]) if g1 <= g2),
               key=lambda c: c[0])
    rules[f"lexicon-top1 (gates {best[1]:.3f} / {best[2]:.3f})"] = two_gates(best[1], best[2])

    from sklearn.linear_model import LogisticRegression

    features = stack_features(oof, labels)
    stacked = np.zeros(len(gold))
    for k in np.unique(folds):
        part = folds == k
        stacked[part] = LogisticRegression(max_iter=3000, class_weight="balanced").fit(
            features[~part], safe[~part]).predict_proba(features[part])[:, 1]
    model = LogisticRegression(max_iter=3000, class_weight="balanced").fit(features, safe)
    cut = pick_threshold(stacked, safe, oof.hits, miss_cost)
    oof.evidence["stacked"] = stacked[:, None]
    for s in sets.values():
        s.evidence["stacked"] = model.predict_proba(stack_features(s, labels))[:, 1][:, None]
    rules[f"stacked (threshold {cut:.3f})"] = lambda s: (s.evidence["stacked"][:, 0] >= cut) | s.hits
    rules["top-1 only"] = gate_rule("lexicon", 2.0)
    for gate in (0.3, 0.4, 0.5):
        rules[f"gate={gate} (curve)"] = gate_rule("lexicon", gate)

    print(f"operating points {thresholds}, sonstiges gate {ood_gate}; miss cost {miss_cost:g}; {args.dump}")
    names = ["oof", *sets]
    header = "| rule | " + " | ".join(names) + " |"
    print(header + "\n|" + "---|" * (len(names) + 1))
    for name, rule in rules.items():
        cells = []
        for n in names:
            s = oof if n == "oof" else sets[n]
            e = rule(s)
            is_safe = np.isin(s.gold, SAFETY_LABELS)
            rec = f"{e[is_safe].mean():.3f} / " if is_safe.any() else ""
            cells.append(f"{rec}{e[~is_safe].mean():.3f} ({int(e[~is_safe].sum())})")
        print(f"| {name} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

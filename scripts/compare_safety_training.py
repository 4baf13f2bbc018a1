#!/usr/bin/env python3
"""Training-side variants of the intent model for safety escalation (issue 14), side by side, on cached embeddings.

Each variant re-runs the production recipe (5-fold out-of-fold e5 head + n-gram mix, temperature, per-intent
operating points, ``sonstiges`` gate, lexicon evidence gate at ``--miss-cost``) on train with one change, then
scores the held-out sets with the model fitted on all of train:

* ``base``     : the production recipe
* ``drop``     : spoken train lines whose transcript kept < 50 % of the typed line (difflib ratio) and whose
                 label is not ``sonstiges`` are left out (the recognizer destroyed the meaning)
* ``relabel``  : those lines are trained as ``sonstiges`` instead
* ``safety2``, ``safety4`` : safety classes weigh 2x / 4x in the head (on top of the balanced weights)
* ``c1``       : head regularization C = 1 (production 10)
* ``ngram3``, ``ngram7`` : n-gram mix weight 0.3 / 0.7 (production 0.5)

Cells: safety recall / false-escalation rate (count); macro-F1 for dev and dev_asr. Everything is fitted on
train; the held-out sets are only reported. Input: the dump of ``scripts/compare_safety_gates.py --dump FILE``
(embeddings come from its cache, eval/reports/intent_embeddings.npz).

    .venv/bin/python scripts/compare_safety_training.py /tmp/scored.pkl [base drop ...]
"""

from __future__ import annotations

import argparse
import pickle
import re
import sys
from dataclasses import dataclass
from difflib import SequenceMatcher
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from compare_intent_models import CACHE  # noqa: E402
from compare_safety_gates import Scored  # noqa: E402

import __main__  # noqa: E402
from voicebot.config import load_settings  # noqa: E402
from voicebot.eval.intent import macro_f1, per_intent_scores  # noqa: E402
from voicebot.nlu.calibration import calibrate, softmax  # noqa: E402
from voicebot.nlu.evidence import SafetyLexicon, escalated_with_evidence, fit_evidence_gate, lexicon_out_of_fold  # noqa: E402
from voicebot.nlu.intent import mix_logits  # noqa: E402
from voicebot.nlu.safety import SAFETY_LABELS, fit_ood_gate, fit_operating_points  # noqa: E402
from voicebot.nlu.train import _fit_ngram  # noqa: E402
from voicebot.nlu.training_data import Example  # noqa: E402

GARBLED = 0.5  # a spoken line keeping less of its typed line than this lost its meaning


@dataclass(frozen=True)
class Variant:
    keep_garbled: bool = True
    relabel_garbled: bool = False
    safety_weight: float = 1.0
    c: float = 10.0
    ngram_weight: float = 0.5


VARIANTS = {"base": Variant(), "drop": Variant(keep_garbled=False), "relabel": Variant(relabel_garbled=True),
            "safety2": Variant(safety_weight=2.0), "safety4": Variant(safety_weight=4.0), "c1": Variant(c=1.0),
            "ngram3": Variant(ngram_weight=0.3), "ngram7": Variant(ngram_weight=0.7)}


def kept_share(text: str, origin: str) -> float:
    def norm(t: str) -> str:
        return " ".join(re.findall(r"\w+", t.lower()))

    return SequenceMatcher(None, norm(text), norm(origin)).ratio() if origin else 1.0


def fit_head(x: np.ndarray, y: np.ndarray, labels: list[str], v: Variant) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.linear_model import LogisticRegression

    weight = {label: len(y) / (len(labels) * max(1, int((y == label).sum())))
              * (v.safety_weight if label in SAFETY_LABELS else 1.0) for label in labels}
    model = LogisticRegression(C=v.c, max_iter=3000, random_state=13, class_weight=weight).fit(x, list(y))
    return model.coef_, model.intercept_


def run(v: Variant, train: list[Example], folds: np.ndarray, hits: np.ndarray, labels: list[str],
        sets: dict[str, Scored], vectors: dict[str, np.ndarray], miss_cost: float) -> list[str]:
    gold = np.array([e.label for e in train])
    garbled = np.array([kept_share(e.text, e.origin) < GARBLED for e in train]) & (gold != "sonstiges")
    if v.relabel_garbled:
        gold = np.where(garbled, "sonstiges", gold)
    keep = np.flatnonzero(~garbled if not v.keep_garbled else np.ones(len(train), dtype=bool))
    rows = [Example(train[i].text, str(gold[i]), train[i].origin) for i in keep]
    gold, folds, hits = gold[keep], folds[keep], hits[keep]
    x = np.stack([vectors[e.text] for e in rows])
    logits = np.zeros((len(rows), len(labels)))
    for k in range(5):
        rest, part = np.flatnonzero(folds != k), np.flatnonzero(folds == k)
        head, ngram = fit_head(x[rest], gold[rest], labels, v), _fit_ngram([rows[i] for i in rest], labels, 13)
        logits[part] = mix_logits(x[part] @ head[0].T + head[1], ngram.logits([rows[i].text for i in part]),
                                  v.ngram_weight)
    temperature = calibrate(logits, list(gold), labels).temperature
    probs = softmax(logits, temperature)
    evidence = lexicon_out_of_fold([e.text for e in rows], list(gold), folds)
    thresholds = {s: p.threshold for s, p in fit_operating_points(probs, gold, labels, hits).items()}
    ood_gate = fit_ood_gate(probs, gold, labels, thresholds, hits)
    gate = fit_evidence_gate(probs, gold, labels, thresholds, evidence, miss_cost, ood_gate, hits)
    head, ngram = fit_head(x, gold, labels, v), _fit_ngram(rows, labels, 13)
    lexicon = SafetyLexicon.fit([e.text for e in rows], list(gold))
    safe = np.isin(gold, SAFETY_LABELS)
    o = escalated_with_evidence(probs, labels, thresholds, evidence, gate, ood_gate, hits)
    cells = [", ".join(f"{t:.3f}" for t in thresholds.values()) + f"; gate {gate:.2f}",
             f"{o[safe].mean():.3f} / {o[~safe].mean():.3f}"]
    for name, s in sets.items():
        hx = np.stack([vectors[t] for t in s.texts])
        p = softmax(mix_logits(hx @ head[0].T + head[1], ngram.logits(s.texts), v.ngram_weight), temperature)
        e = escalated_with_evidence(p, labels, thresholds, lexicon.scores(s.texts), gate, ood_gate, s.hits)
        is_safe = np.isin(s.gold, SAFETY_LABELS)
        cell = (f"{e[is_safe].mean():.3f} / " if is_safe.any() else "") + \
            f"{e[~is_safe].mean():.3f} ({e[~is_safe].sum()})"
        if name in ("dev", "dev_asr"):
            cell += f", F1 {macro_f1(per_intent_scores(list(s.gold), [labels[i] for i in p.argmax(1)], labels)):.3f}"
        cells.append(cell)
    return cells


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dump", type=Path, help="written by scripts/compare_safety_gates.py --dump")
    ap.add_argument("variants", nargs="*", help=f"any of {', '.join(VARIANTS)} (default: all)")
    ap.add_argument("--miss-cost", type=float)
    args = ap.parse_args()
    __main__.Scored = Scored  # type: ignore[attr-defined]  # the dump was pickled from that script's __main__
    d = pickle.loads(args.dump.read_bytes())
    store = np.load(CACHE, allow_pickle=False)
    vectors = dict(zip(store["e5_texts"].tolist(), store["e5"], strict=True))
    miss_cost = load_settings().nlu.safety_evidence_miss_cost if args.miss_cost is None else args.miss_cost
    names = ["operating points; gate", "oof", *d["sets"]]
    print("| variant | " + " | ".join(names) + " |\n|" + "---|" * (len(names) + 1))
    unknown = sorted(set(args.variants) - set(VARIANTS))
    if unknown:
        ap.error(f"unknown variants: {', '.join(unknown)}")
    for name in args.variants or list(VARIANTS):
        cells = run(VARIANTS[name], list(d["train"]), d["folds"], d["oof"].hits, list(d["labels"]), d["sets"],
                    vectors, miss_cost)
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

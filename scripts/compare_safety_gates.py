#!/usr/bin/env python3
"""Gates on the safety runner-up rule from evidence outside the intent softmax (issue 14), side by side.

The production rule escalates a safety intent whose calibrated probability passes its out-of-fold
operating point, top-1 or runner-up. Each candidate here adds one in-domain / safety-evidence score
that a safety runner-up must also pass:

* ``shipped`` : no evidence gate (today's rule, the ``sonstiges`` gate included)
* ``knn``     : e5 cosine to the nearest train lines of the safety intent minus to the nearest
                ordinary lines (mean of the top 3 each)
* ``lexicon`` : the safety-evidence lexicon learned from train (``voicebot.nlu.evidence``)

Every gate is fitted on 5-fold out-of-fold predictions of train (the folds of `voicebot train
intent`) by ``voicebot.nlu.evidence.fit_evidence_gate``: fewest lost safety lines x ``--miss-cost``
(default ``nlu.safety_evidence_miss_cost``) + false escalations.
Dev, the spoken dev, ood, ood_asr and the real out-of-domain speech (the cache of
scripts/eval_ood_speech.py) are only reported. ``--staged`` adds eval/intent/staged_train*.jsonl to train.

    .venv/bin/python scripts/compare_safety_gates.py [--staged] [--miss-cost 10] [--show speech]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from compare_safety_scores import embed_train, held_out_sets, training_examples  # noqa: E402

from voicebot.config import load_settings  # noqa: E402
from voicebot.dialog.domain import load_domain  # noqa: E402
from voicebot.dialog.escalation import any_safety_keyword  # noqa: E402
from voicebot.eval.intent import macro_f1, per_intent_scores  # noqa: E402
from voicebot.nlu.calibration import calibrate, softmax  # noqa: E402
from voicebot.nlu.evidence import (  # noqa: E402
    SafetyLexicon,
    escalated_with_evidence,
    fit_evidence_gate,
    lexicon_out_of_fold,
)
from voicebot.nlu.intent import mix_logits  # noqa: E402
from voicebot.nlu.safety import SAFETY_LABELS, fit_ood_gate, fit_operating_points  # noqa: E402
from voicebot.nlu.train import _fit_head, _fit_ngram  # noqa: E402


@dataclass
class Scored:
    """One data set as the escalation rule sees it."""

    texts: list[str]
    gold: np.ndarray
    probs: np.ndarray
    hits: np.ndarray
    evidence: dict[str, np.ndarray]  # candidate -> (n, 3) evidence per safety label


def knn_margin(queries: np.ndarray, pool: np.ndarray, pool_gold: Sequence[str], k: int = 3,
               labels: Sequence[str] = SAFETY_LABELS) -> np.ndarray:
    """Per safety intent: mean cosine to its ``k`` nearest pool lines minus to the ``k`` nearest ordinary ones."""
    gold = np.asarray(pool_gold)
    sims = queries @ pool.T

    def top_mean(mask: np.ndarray) -> np.ndarray:
        part = sims[:, mask]
        kk = min(k, part.shape[1])
        return np.sort(np.partition(part, -kk, axis=1)[:, -kk:], axis=1).mean(axis=1)

    ordinary = top_mean(~np.isin(gold, list(labels)))
    return np.stack([top_mean(gold == label) - ordinary for label in labels], axis=1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--staged", action="store_true")
    ap.add_argument("--miss-cost", type=float, help="a lost safety line in false escalations "
                    "(default: nlu.safety_evidence_miss_cost)")
    ap.add_argument("--show", default="", help="print the escalated lines of this set")
    ap.add_argument("--dump", type=Path, help="pickle the scored sets here (for a closer look)")
    args = ap.parse_args()
    settings = load_settings()
    domain = load_domain(settings.dialog.domain)
    data = REPO / "eval" / "intent"
    train = training_examples(data, args.staged)
    held = held_out_sets(data)
    vectors, x, gold, labels, folds = embed_train(train, held, settings)
    w = settings.nlu.ngram_weight

    def hit(text: str) -> bool:
        return bool(any_safety_keyword(domain, text))

    oof_logits = np.zeros((len(train), len(labels)))
    oof_knn = np.zeros((len(train), 3))
    for k in range(5):
        rest, part = np.flatnonzero(folds != k), np.flatnonzero(folds == k)
        head = _fit_head(x[rest], gold[rest], labels, 13)
        ngram = _fit_ngram([train[i] for i in rest], labels, 13)
        oof_logits[part] = mix_logits(x[part] @ head[0].T + head[1], ngram.logits([train[i].text for i in part]), w)
        oof_knn[part] = knn_margin(x[part], x[rest], gold[rest])
    oof_lex = lexicon_out_of_fold([e.text for e in train], list(gold), folds)
    temperature = calibrate(oof_logits, list(gold), labels).temperature
    head, ngram = _fit_head(x, gold, labels, 13), _fit_ngram(train, labels, 13)
    lexicon = SafetyLexicon.fit([e.text for e in train], list(gold))
    oof = Scored([e.text for e in train], gold, softmax(oof_logits, temperature),
                 np.array([hit(e.text) for e in train]), {"knn": oof_knn, "lexicon": oof_lex})
    sets: dict[str, Scored] = {}
    for n, rows in held.items():
        hx, ht = np.stack([vectors[e.text] for e in rows]), [e.text for e in rows]
        sets[n] = Scored(ht, np.array([e.label for e in rows]),
                         softmax(mix_logits(hx @ head[0].T + head[1], ngram.logits(ht), w), temperature),
                         np.array([hit(t) for t in ht]),
                         {"knn": knn_margin(hx, x, gold), "lexicon": lexicon.scores(ht)})

    if args.dump:
        import pickle

        args.dump.write_bytes(pickle.dumps({"oof": oof, "sets": sets, "labels": labels, "x": x,
                                            "train": train, "folds": folds}))
    miss_cost = settings.nlu.safety_evidence_miss_cost if args.miss_cost is None else args.miss_cost
    points = fit_operating_points(oof.probs, gold, labels, oof.hits)
    thresholds = {s: p.threshold for s, p in points.items()}
    ood_gate = fit_ood_gate(oof.probs, gold, labels, thresholds, oof.hits)
    print(f"operating points {thresholds}, sonstiges gate {ood_gate}; train {len(train)} lines"
          f"{' (with staged)' if args.staged else ''}; evidence gates at miss cost {miss_cost:g}")
    header = "| rule | gate | " + " | ".join(f"{n} recall / false" for n in sets) + " | macro-F1 dev / dev_asr |"
    print(header + "\n|" + "---|" * (header.count("|") - 1))
    f1 = {n: macro_f1(per_intent_scores(list(sets[n].gold), [labels[i] for i in sets[n].probs.argmax(1)], labels))
          for n in ("dev", "dev_asr")}
    for name in ("shipped", "knn", "lexicon"):
        ev = None if name == "shipped" else oof.evidence[name]
        gate = -1.0 if ev is None else fit_evidence_gate(oof.probs, gold, labels, thresholds, ev, miss_cost, ood_gate,
                                                         oof.hits)
        cells = []
        for n, s in sets.items():
            e = escalated_with_evidence(s.probs, labels, thresholds, None if ev is None else s.evidence[name], gate,
                                        ood_gate, s.hits)
            safe = np.isin(s.gold, SAFETY_LABELS)
            rec = f"{e[safe].mean():.3f}" if safe.any() else "–"
            cells.append(f"{rec} / {e[~safe].mean():.3f} ({e[~safe].sum()})")
            if n == args.show:
                for t, g, flag in zip(s.texts, s.gold, e, strict=True):
                    if flag != (g in SAFETY_LABELS):
                        print(f"   {name}: {'MISS' if flag == 0 else 'FALSE'} {g}: {t}")
        o = escalated_with_evidence(oof.probs, labels, thresholds, ev, gate, ood_gate, oof.hits)
        safe = np.isin(gold, SAFETY_LABELS)
        print(f"| {name} | {gate:.4f} (oof {o[safe].mean():.3f} / {o[~safe].mean():.3f}) | " + " | ".join(cells)
              + f" | {f1['dev']:.3f} / {f1['dev_asr']:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Compare safety scores for the escalation decision (issue 14): fitted out of fold on train, reported held out.

Every variant scores "is this a safety call?" and gets its operating point
from 5-fold out-of-fold predictions on train (the folds of `voicebot train
intent`: a line and its spoken versions together), with the production rule:
fewest ``miss_cost`` x missed safety lines + false escalations, lines the
keyword nets catch need no score. Dev, the spoken dev and the out-of-domain
sets are only reported, never fitted on.

* ``production``: the 14-way model's per-intent operating points and the out-of-domain gate (what ships)
* ``sum``       : one point on P(notfall) + P(seelsorge) + P(mitarbeiter) of the 14-way model
* ``head4``     : a dedicated head (notfall / seelsorge / mitarbeiter / none) on e5 mixed with n-grams
* ``binary``    : a dedicated safety-or-not head on e5 mixed with n-grams
* ``knn+sum``   : the mean of ``sum`` and the safety share of the 10 nearest train lines (e5 cosine)

``oracle`` is what no fitted point can know: the false-escalation rate at the
lowest score of the set's own safety lines (recall 1.0 on that set).
Embeddings are cached as in scripts/compare_intent_models.py.

    .venv/bin/python scripts/compare_safety_scores.py [--staged] [--miss-cost 30]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import NamedTuple

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from compare_intent_models import cached, e5_embed  # noqa: E402

from voicebot.config import Settings, load_settings  # noqa: E402
from voicebot.dialog.domain import load_domain  # noqa: E402
from voicebot.dialog.escalation import any_safety_keyword  # noqa: E402
from voicebot.nlu.calibration import calibrate, softmax  # noqa: E402
from voicebot.nlu.intent import mix_logits  # noqa: E402
from voicebot.nlu.safety import SAFETY_LABELS, escalation_curve, fit_ood_gate, fit_operating_points  # noqa: E402
from voicebot.nlu.train import _fit_head, _fit_ngram  # noqa: E402
from voicebot.nlu.training_data import Example, fold_assignment, read_examples, training_files  # noqa: E402

HELD_OUT = ("dev", "dev_asr", "ood", "ood_asr")
SPEECH_CACHE = REPO / "eval" / "reports" / "ood-speech-asr.jsonl"


def fit_point(score: np.ndarray, safe: np.ndarray, hits: np.ndarray, miss_cost: float) -> float:
    """The production rule for one score: fewest weighted errors, keyword lines need no score."""
    need, against = np.sort(score[safe & ~hits]), np.sort(score[~safe])
    candidates = np.unique(np.clip(np.concatenate([need, [0.001, 0.99]]), 0.001, 0.99))
    missed = np.searchsorted(need, candidates, side="left")
    false = len(against) - np.searchsorted(against, candidates, side="left")
    return float(candidates[int(np.argmin(miss_cost * missed + false))])


def head_scores(x: np.ndarray, train: list[Example], y: np.ndarray, folds: np.ndarray, held: dict[str, tuple],
                weight: float) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """P(not "none") of an e5 head mixed with n-grams: out of fold on train, and fitted on all for the held-out sets."""
    labels = sorted(set(y.tolist()))
    none = labels.index("none")
    oof = np.zeros(len(y))
    for k in range(5):
        rest, part = np.flatnonzero(folds != k), np.flatnonzero(folds == k)
        head = _fit_head(x[rest], y[rest], labels, 13)
        ngram = _fit_ngram([Example(train[i].text, str(y[i])) for i in rest], labels, 13)
        mixed = mix_logits(x[part] @ head[0].T + head[1], ngram.logits([train[i].text for i in part]), weight)
        oof[part] = 1 - softmax(mixed)[:, none]
    head = _fit_head(x, y, labels, 13)
    ngram = _fit_ngram([Example(e.text, str(label)) for e, label in zip(train, y, strict=True)], labels, 13)
    out = {n: 1 - softmax(mix_logits(hx @ head[0].T + head[1], ngram.logits(texts), weight))[:, none]
           for n, (hx, texts, _gold) in held.items()}
    return oof, out


def training_examples(data: Path, staged: bool, staged5: bool = False) -> list[Example]:
    """Typed and spoken train lines (a spoken line keeps its typed origin: folds keep a line's versions together).

    ``staged`` adds the fourth round's staged lines, ``staged5`` the fifth round's (eval/intent/DATACARD.md)."""
    files = training_files(data)
    rounds = [name for name, on in (("staged", staged), ("staged5", staged5)) if on]
    clean = read_examples(files[0]) + [e for r in rounds for e in read_examples(data / f"{r}_train.jsonl")]
    spoken = [e for p in files[1:] for e in read_examples(p)]
    spoken += [e for r in rounds for e in read_examples(data / f"{r}_train_asr.jsonl")]
    return [Example(e.text, e.label) for e in clean] + [Example(e.text, e.label, e.origin or e.text) for e in spoken]


def held_out_sets(data: Path) -> dict[str, list[Example]]:
    """The held-out sets by name (dev, dev_asr, ood, ood_asr) and, as "speech", the real out-of-domain speech's
    transcripts (``scripts/eval_ood_speech.py`` writes them), every one labelled sonstiges."""
    held = {n: read_examples(data / f"{n}.jsonl") for n in HELD_OUT}
    held["speech"] = [Example(json.loads(x)["text"], "sonstiges")
                      for x in SPEECH_CACHE.read_text(encoding="utf-8").splitlines() if x.strip()]
    return held


class EmbeddedTrain(NamedTuple):
    """Train's lines for an out-of-fold comparison: every line's e5 embedding (train and held out, cached), train's
    embeddings and labels in order, the sorted labels and the folds of `voicebot train intent`."""

    vectors: dict[str, np.ndarray]
    x: np.ndarray
    gold: np.ndarray
    labels: list[str]
    folds: np.ndarray


def embed_train(train: list[Example], held: dict[str, list[Example]], settings: Settings) -> EmbeddedTrain:
    texts = [e.text for e in train] + [e.text for rows in held.values() for e in rows]
    vectors = dict(zip(texts, cached("e5", texts, lambda t: e5_embed(t, settings)), strict=True))
    gold = np.array([e.label for e in train])
    return EmbeddedTrain(vectors, np.stack([vectors[e.text] for e in train]), gold, sorted(set(gold.tolist())),
                         fold_assignment(train, 5, settings.nlu.train_seed))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--staged", action="store_true", help="add eval/intent/staged_train*.jsonl to train")
    parser.add_argument("--miss-cost", type=float, default=30.0, help="a missed safety line in false escalations")
    args = parser.parse_args()
    settings = load_settings()
    domain = load_domain(settings.dialog.domain)
    data = REPO / "eval" / "intent"
    train = training_examples(data, args.staged)
    held = {n: read_examples(data / f"{n}.jsonl") for n in HELD_OUT}
    vectors, x, gold, labels, folds = embed_train(train, held, settings)
    index = {label: i for i, label in enumerate(labels)}
    w = settings.nlu.ngram_weight

    def hit(text: str) -> bool:
        return bool(any_safety_keyword(domain, text))

    hits = np.array([hit(e.text) for e in train])
    safe = np.isin(gold, SAFETY_LABELS)
    hx = {n: (np.stack([vectors[e.text] for e in rows]), [e.text for e in rows], np.array([e.label for e in rows]))
          for n, rows in held.items()}
    hhits = {n: np.array([hit(t) for t in hx[n][1]]) for n in held}

    oof_logits = np.zeros((len(train), len(labels)))  # the production 14-way model, as `voicebot train intent`
    for k in range(5):
        rest, part = np.flatnonzero(folds != k), np.flatnonzero(folds == k)
        head = _fit_head(x[rest], gold[rest], labels, 13)
        ngram = _fit_ngram([train[i] for i in rest], labels, 13)
        oof_logits[part] = mix_logits(x[part] @ head[0].T + head[1], ngram.logits([train[i].text for i in part]), w)
    temperature = calibrate(oof_logits, list(gold), labels).temperature
    head, ngram = _fit_head(x, gold, labels, 13), _fit_ngram(train, labels, 13)
    probs = softmax(oof_logits, temperature)
    hprobs = {n: softmax(mix_logits(v[0] @ head[0].T + head[1], ngram.logits(v[1]), w), temperature)
              for n, v in hx.items()}
    safety_cols = [index[s] for s in SAFETY_LABELS]

    rows: list[str] = []
    points = fit_operating_points(probs, gold, labels, hits, miss_cost=args.miss_cost)
    thresholds = {s: p.threshold for s, p in points.items()}
    gate = fit_ood_gate(probs, gold, labels, thresholds, hits)
    line = f"{'production':10}"
    for n, (_x, _t, g) in hx.items():
        point = escalation_curve(hprobs[n], g, labels, hhits[n], scales=(1.0,), thresholds=thresholds,
                                 ood_gate=gate)[0]
        line += f" | {n} {point['recall']:.3f} / {point['false_escalation_rate']:.3f}      "
    rows.append(line)

    def knn_share(q: np.ndarray, pool: np.ndarray, pool_safe: np.ndarray, k: int = 10) -> np.ndarray:
        nearest = np.argpartition(-(q @ pool.T), k, axis=1)[:, :k]
        return pool_safe[nearest].mean(axis=1)

    s_sum = probs[:, safety_cols].sum(axis=1)
    h_sum = {n: hprobs[n][:, safety_cols].sum(axis=1) for n in hx}
    knn = np.zeros(len(train))
    for k in range(5):
        knn[folds == k] = knn_share(x[folds == k], x[folds != k], safe[folds != k])
    variants: dict[str, tuple[np.ndarray, dict[str, np.ndarray]]] = {"sum": (s_sum, h_sum)}
    variants["head4"] = head_scores(x, train, np.where(safe, gold, "none"), folds, hx, w)
    variants["binary"] = head_scores(x, train, np.where(safe, "safety", "none"), folds, hx, w)
    variants["knn+sum"] = ((knn + s_sum) / 2, {n: (knn_share(v[0], x, safe) + h_sum[n]) / 2 for n, v in hx.items()})
    for name, (oof, scores) in variants.items():
        t = fit_point(oof, safe, hits, args.miss_cost)
        line = f"{name:10}"
        for n, (_x, _t, g) in hx.items():
            sf = np.isin(g, SAFETY_LABELS)
            escalated = (scores[n] >= t) | hhits[n]
            lowest = scores[n][sf & ~hhits[n]].min() if (sf & ~hhits[n]).any() else 1.0
            oracle = ((scores[n] >= lowest) | hhits[n])[~sf].mean()
            line += (f" | {n} {escalated[sf].mean() if sf.any() else 1.0:.3f} / {escalated[~sf].mean():.3f}"
                     f" ({oracle:.3f})")
        rows.append(line)
    print(f"\nsafety recall / false escalations (oracle) per set; points fitted out of fold on {len(train)} train lines"
          f" (miss cost {args.miss_cost:g}{', with the staged lines' if args.staged else ''})")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())

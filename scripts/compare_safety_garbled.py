#!/usr/bin/env python3
"""Safety operating points fitted without the spoken training lines the recognizer garbled (issue 14).

Every out-of-fold safety score tried so far was pinned by a few spoken train lines whose
transcript lost the meaning ("Moda, Zschneivitte." for "not arzt schnell bitte"): to keep recall
1.0 on them the operating points sink to the floor. Here the shipped recipe (14-way e5 + n-gram
head, per-intent operating points, ``sonstiges`` gate, lexicon evidence gate; the folds and fits of
`voicebot train intent`) is refitted with the garbled spoken lines left out of everything fitted on
out-of-fold predictions (operating points, ``sonstiges`` gate, evidence gate). "Garbled" uses train
only (every spoken line keeps its typed ``origin``):

* ``wer>T``      : a spoken line whose word error rate against its own typed text is above T
                   (T = 0.35, 0.5, 0.7, declared before the first run)
* ``kw-lost``    : a spoken safety line whose typed text the keyword nets catch and whose transcript
                   they do not (``voicebot.dialog.escalation.any_safety_keyword``)
* ``...+train``  : the same lines also left out of training (model, n-grams, lexicon, temperature)

Cells: safety recall / false-escalation rate (count); out-of-domain sets count escalations only.
"train OOF" is every train line (garbled ones included: what the exclusion gives up), "kept OOF"
the lines the fit saw. Dev, dev_asr, ood, ood_asr and speech (real out-of-domain sentences through
the phone ASR) are only reported.

The choice (declared before the first run, never by held-out size): a variant qualifies when it
keeps dev recall 1.0, dev_asr recall at least the shipped refit's, lowers false escalations on dev
AND dev_asr and raises none on ood, ood_asr, speech; of those, the one that leaves out the fewest
training lines (the most conservative) is named.

    flock /tmp/voicebot-cpu.lock nice -n 10 .venv/bin/python scripts/compare_safety_garbled.py [--show dev]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
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
from voicebot.eval.metrics import wer  # noqa: E402
from voicebot.nlu.calibration import calibrate, softmax  # noqa: E402
from voicebot.nlu.evidence import SafetyLexicon, escalated_with_evidence, fit_evidence_gate, lexicon_out_of_fold  # noqa: E402
from voicebot.nlu.intent import mix_logits  # noqa: E402
from voicebot.nlu.safety import SAFETY_LABELS, fit_ood_gate, fit_operating_points  # noqa: E402
from voicebot.nlu.train import _fit_head, _fit_ngram  # noqa: E402
from voicebot.nlu.training_data import Example  # noqa: E402

WER_THRESHOLDS = (0.35, 0.5, 0.7)


def spoken_wer(example: Example) -> float:
    """The word error rate of a spoken line against its typed origin (German-normalized); 0.0 for a typed line."""
    return wer([example.origin], [example.text]) if example.origin else 0.0


def keyword_lost(example: Example, has_keyword: Callable[[str], bool]) -> bool:
    """A spoken safety line whose typed text the keyword nets catch and whose transcript they do not."""
    return (bool(example.origin) and example.label in SAFETY_LABELS and has_keyword(example.origin)
            and not has_keyword(example.text))


@dataclass
class Model:
    """A refit of the shipped recipe: out-of-fold probabilities and evidence on train, the final fit's parts."""

    probs: np.ndarray
    evidence: np.ndarray
    temperature: float
    head: tuple[np.ndarray, np.ndarray]
    ngram: object
    lexicon: SafetyLexicon


def refit(x: np.ndarray, train: list[Example], gold: np.ndarray, labels: list[str], folds: np.ndarray,
          trained: np.ndarray, weight: float, seed: int) -> Model:
    """The recipe trained on the ``trained`` lines; every train line scored by the fold model that never saw it."""
    logits = np.zeros((len(train), len(labels)))
    for k in range(5):
        rest, part = np.flatnonzero((folds != k) & trained), np.flatnonzero(folds == k)
        head = _fit_head(x[rest], gold[rest], labels, seed)
        ngram = _fit_ngram([train[i] for i in rest], labels, seed)
        logits[part] = mix_logits(x[part] @ head[0].T + head[1], ngram.logits([train[i].text for i in part]), weight)
        print(f"  fold {k + 1}/5", flush=True)
    temperature = calibrate(logits[trained], list(gold[trained]), labels).temperature
    texts = [e.text for e in train]
    evidence = np.zeros((len(train), len(SAFETY_LABELS)))
    for k in range(5):  # as lexicon_out_of_fold, with the left-out lines out of every fold's lexicon
        rest, part = np.flatnonzero((folds != k) & trained), np.flatnonzero(folds == k)
        evidence[part] = SafetyLexicon.fit([texts[i] for i in rest], list(gold[rest])).scores(
            [texts[i] for i in part])
    if trained.all():  # the shipped path exactly
        evidence = lexicon_out_of_fold(texts, list(gold), folds)
    kept = np.flatnonzero(trained)
    return Model(softmax(logits, temperature), evidence, temperature, _fit_head(x[kept], gold[kept], labels, seed),
                 _fit_ngram([train[i] for i in kept], labels, seed),
                 SafetyLexicon.fit([texts[i] for i in kept], list(gold[kept])))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--miss-cost", type=float, default=30.0, help="a missed safety line in false escalations")
    ap.add_argument("--show", default="dev", help="print the chosen variant's false escalations on this set")
    ap.add_argument("--show-variant", default="", help="... of this variant instead (the shipped refit if none wins)")
    ap.add_argument("--no-train-variants", action="store_true", help="skip the variants that also retrain")
    ap.add_argument("--pins", type=int, default=0,
                    help="print the N lowest-scoring kept safety lines per intent of each fit-only variant "
                         "(the lines that hold its operating points; train only)")
    args = ap.parse_args()
    settings = load_settings()
    domain = load_domain(settings.dialog.domain)
    data = REPO / "eval" / "intent"
    train = training_examples(data, False)
    held = held_out_sets(data)
    vectors, x, gold, labels, folds = embed_train(train, held, settings)
    w, seed, ev_cost = settings.nlu.ngram_weight, settings.nlu.train_seed, settings.nlu.safety_evidence_miss_cost

    def hit(text: str) -> bool:
        return bool(any_safety_keyword(domain, text))

    def escalated_as(text: str, row: np.ndarray, ev: np.ndarray, thresholds: dict[str, float], ood_gate: float,
                     gate: float) -> str:
        """The safety intent and trigger `voicebot.dialog.escalation.safety_escalation` would name (most severe)."""
        top = labels[int(row.argmax())]
        quiet = row[labels.index("sonstiges")] >= ood_gate
        kw = any_safety_keyword(domain, text)
        for j, s in enumerate(SAFETY_LABELS):
            if row[labels.index(s)] >= thresholds[s] and (top == s or (not quiet and ev[j] >= gate)):
                return f"{s} ({'intent' if top == s else 'score'} {row[labels.index(s)]:.2f})"
            if kw and kw[0] == s:
                return f"{s} (keyword '{kw[1]}')"
        return "?"

    def print_pins(name: str, probs: np.ndarray, keep: np.ndarray, thresholds: dict[str, float], n: int) -> None:
        """The kept safety lines without a keyword hit that score lowest out of fold: what holds each point down."""
        print(f"{name}: lowest out-of-fold scores of kept safety lines without a keyword (score, WER, text)")
        for s in SAFETY_LABELS:
            rows = np.flatnonzero(keep & (gold == s) & ~hits)
            rows = rows[np.argsort(probs[rows, labels.index(s)])][:n]
            print(f"  {s} (point {thresholds[s]:.3f}):")
            for i in rows:
                kind = f"spoken, WER {wers[i]:.2f}" if train[i].origin else "typed"
                print(f"    {probs[i, labels.index(s)]:.3f} ({kind}) {train[i].text}"
                      + (f"  <- {train[i].origin}" if train[i].origin else ""))

    hits = np.array([hit(e.text) for e in train])
    wers = np.array([spoken_wer(e) for e in train])
    lost = np.array([keyword_lost(e, hit) for e in train])
    rules: dict[str, np.ndarray] = {"shipped": np.zeros(len(train), dtype=bool)}
    rules.update({f"wer>{t:g}": wers > t for t in WER_THRESHOLDS})
    rules["kw-lost"] = lost
    safe = np.isin(gold, SAFETY_LABELS)
    for name, out in rules.items():
        print(f"{name}: leaves out {int(out.sum())} spoken lines ({int((out & safe).sum())} safety)")
    variants = [(name, out, False) for name, out in rules.items()]
    if not args.no_train_variants:
        variants += [("wer>0.5+train", rules["wer>0.5"], True), ("kw-lost+train", lost, True)]

    print("refit: all lines trained (shipped)", flush=True)
    base = refit(x, train, gold, labels, folds, np.ones(len(train), dtype=bool), w, seed)
    models = {"": base}
    hx = {n: (np.stack([vectors[e.text] for e in rows]), [e.text for e in rows], np.array([e.label for e in rows]),
              np.array([hit(e.text) for e in rows])) for n, rows in held.items()}
    header = ("| variant | left out (safety) | points n / s / m, sonstiges gate, evidence gate | train OOF | kept OOF"
              " | "
              + " | ".join(hx) + " | macro-F1 dev / dev_asr |")
    lines, escalations, left_out = [], {}, {}
    for name, out, retrain in variants:
        if retrain and name not in models:
            print(f"refit: {name} left out of training", flush=True)
            models[name] = refit(x, train, gold, labels, folds, ~out, w, seed)
        m = models[name] if retrain else base
        keep = ~out
        points = fit_operating_points(m.probs[keep], gold[keep], labels, hits[keep], miss_cost=args.miss_cost)
        thresholds = {s: p.threshold for s, p in points.items()}
        ood_gate = fit_ood_gate(m.probs[keep], gold[keep], labels, thresholds, hits[keep])
        gate = fit_evidence_gate(m.probs[keep], gold[keep], labels, thresholds, m.evidence[keep], ev_cost, ood_gate,
                                 hits[keep]) if ev_cost > 0 else -1.0
        oof = escalated_with_evidence(m.probs, labels, thresholds, m.evidence, gate, ood_gate, hits)
        if args.pins and not retrain:
            print_pins(name, m.probs, keep, thresholds, args.pins)
        cells = [f"{oof[safe].mean():.3f} / {oof[~safe].mean():.3f} ({int(oof[~safe].sum())})",
                 f"{oof[safe & keep].mean():.3f} / {oof[~safe & keep].mean():.3f} ({int(oof[~safe & keep].sum())})"]
        f1 = []
        for n, (vx, vt, vg, vh) in hx.items():
            p = softmax(mix_logits(vx @ m.head[0].T + m.head[1], m.ngram.logits(vt), w), m.temperature)
            ev = m.lexicon.scores(vt)
            e = escalated_with_evidence(p, labels, thresholds, ev, gate, ood_gate, vh)
            sf = np.isin(vg, SAFETY_LABELS)
            escalations[(name, n)] = (float(e[sf].mean()) if sf.any() else 1.0, int(e[~sf].sum()), e, p,
                                      (thresholds, ood_gate, gate, ev))
            cells.append((f"{e[sf].mean():.3f} / " if sf.any() else "") + f"{e[~sf].mean():.3f} ({int(e[~sf].sum())})")
            if n in ("dev", "dev_asr"):
                f1.append(f"{macro_f1(per_intent_scores(list(vg), [labels[i] for i in p.argmax(axis=1)], labels)):.3f}")
        pts = " / ".join(f"{thresholds[s]:.3f}" for s in SAFETY_LABELS)
        left_out[name] = int(out.sum())
        lines.append(f"| {name} | {int(out.sum())} ({int((out & safe).sum())}) | {pts}, {ood_gate:.3f}, {gate:.3f} | "
                     + " | ".join(cells) + f" | {' / '.join(f1)} |")
    print("\n" + header + "\n|" + "---|" * (header.count("|") - 1))
    print("\n".join(lines))

    # The declared choice: held-out sets as a pass/fail screen only, then the fewest lines left out.
    def qualifies(name: str) -> bool:
        ref = {n: escalations[("shipped", n)] for n in hx}
        mine = {n: escalations[(name, n)] for n in hx}
        return (mine["dev"][0] == 1.0 and mine["dev_asr"][0] >= ref["dev_asr"][0]
                and mine["dev"][1] < ref["dev"][1] and mine["dev_asr"][1] < ref["dev_asr"][1]
                and all(mine[n][1] <= ref[n][1] for n in ("ood", "ood_asr", "speech")))

    passing = [name for name, _out, _r in variants if name != "shipped" and qualifies(name)]
    choice = min(passing, key=lambda n: (left_out[n], n.endswith("+train"))) if passing else ""
    print(f"\nqualifying: {', '.join(passing) or 'none'}; chosen: {choice or 'none (the shipped recipe stays)'}")
    shown = args.show_variant or choice or "shipped"
    if args.show in hx:
        _r, _n, e, p, (thresholds, ood_gate, gate, ev) = escalations[(shown, args.show)]
        print(f"\n{shown}: false escalations on {args.show} (text | true intent | escalated as (trigger) | top-1)")
        for t, g, flag, row, evr in zip(hx[args.show][1], hx[args.show][2], e, p, ev, strict=True):
            if flag and g not in SAFETY_LABELS:
                print(f"- {t} | {g} | {escalated_as(t, row, evr, thresholds, ood_gate, gate)} | "
                      f"{labels[int(row.argmax())]} {row.max():.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

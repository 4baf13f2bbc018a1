#!/usr/bin/env python3
"""A dedicated safety detector beside the 14-way intent model (issue 14), side by side with the shipped rule.

Every rule is fitted on 5-fold out-of-fold predictions of train only (the folds of `voicebot train
intent`: a line and its spoken versions together); dev, dev_asr, ood, ood_asr and the real
out-of-domain speech (the transcript cache of scripts/eval_ood_speech.py) are only reported.

* ``shipped``   : the 14-way model's per-intent operating points, the ``sonstiges`` gate and the
                  lexicon evidence gate on runners-up (``voicebot.dialog.escalation``), keyword nets
* ``top-1``     : the same without any runner-up (the floor of every runner-up gate)
* ``detector``  : a dedicated notfall / seelsorge / mitarbeiter / none model (scripts/safety_detector.py:
                  e5 head mixed with char n-grams, like the intent model but with one "none" class for
                  every ordinary line) alone decides safety, one point per safety intent, plus the nets
* ``veto``      : the shipped rule, and the detector must agree (its best safety score at its own
                  point fitted on the lines the shipped rule escalates); nets always escalate
* ``either``    : the 14-way's safety top-1 at its point, or the detector at its point; nets

Cells: safety recall / false-escalation rate (count); for the out-of-domain sets also the lines
given a confident ordinary intent (the 14-way's act decision). The rule with the fewest weighted
out-of-fold errors on train (``--miss-cost`` x missed safety lines + false escalations) is named at
the end; ``top-1`` is a floor for reading, not a candidate. ``--extra`` adds typed training
files (their spoken versions are found as ``<name>_asr.jsonl`` beside them); ``--staged`` adds
eval/intent/staged_train*.jsonl.

    .venv/bin/python scripts/compare_safety_detector.py [--staged] [--extra F.jsonl ...]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from compare_safety_scores import embed_train, held_out_sets, training_examples  # noqa: E402
from safety_detector import SafetyDetector, fit_detector_points  # noqa: E402

from voicebot.config import load_settings  # noqa: E402
from voicebot.dialog.domain import load_domain  # noqa: E402
from voicebot.dialog.escalation import any_safety_keyword  # noqa: E402
from voicebot.eval.intent import macro_f1, per_intent_scores  # noqa: E402
from voicebot.nlu.calibration import calibrate, softmax  # noqa: E402
from voicebot.nlu.evidence import SafetyLexicon, escalated_with_evidence, fit_evidence_gate, lexicon_out_of_fold  # noqa: E402
from voicebot.nlu.intent import mix_logits  # noqa: E402
from voicebot.nlu.safety import SAFETY_LABELS, fit_ood_gate, fit_operating_points  # noqa: E402
from voicebot.nlu.train import _fit_head, _fit_ngram  # noqa: E402
from voicebot.nlu.training_data import Example, read_examples  # noqa: E402


def extra_examples(paths: list[Path]) -> list[Example]:
    out: list[Example] = []
    for path in paths:
        out += [Example(e.text, e.label) for e in read_examples(path)]
        spoken = path.with_name(path.stem + "_asr.jsonl")
        if spoken.is_file():
            out += [Example(e.text, e.label, e.origin or e.text) for e in read_examples(spoken)]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--staged", action="store_true")
    ap.add_argument("--extra", type=Path, nargs="*", default=[])
    ap.add_argument("--miss-cost", type=float, default=30.0, help="a missed safety line in false escalations")
    ap.add_argument("--show", default="", help="print the wrongly escalated / missed lines of this set")
    ap.add_argument("--choice", type=Path, help="write the name of the rule chosen out of fold here")
    args = ap.parse_args()
    settings = load_settings()
    domain = load_domain(settings.dialog.domain)
    data = REPO / "eval" / "intent"
    train = training_examples(data, args.staged) + extra_examples(args.extra)
    held = held_out_sets(data)
    vectors, x, gold, labels, folds = embed_train(train, held, settings)
    w = settings.nlu.ngram_weight
    seed = settings.nlu.train_seed

    def hit(text: str) -> bool:
        return bool(any_safety_keyword(domain, text))

    oof_logits = np.zeros((len(train), len(labels)))
    oof_det = np.zeros((len(train), len(SAFETY_LABELS)))
    for k in range(5):
        rest, part = np.flatnonzero(folds != k), np.flatnonzero(folds == k)
        head = _fit_head(x[rest], gold[rest], labels, seed)
        ngram = _fit_ngram([train[i] for i in rest], labels, seed)
        oof_logits[part] = mix_logits(x[part] @ head[0].T + head[1], ngram.logits([train[i].text for i in part]), w)
        det = SafetyDetector.fit(x[rest], [train[i].text for i in rest], gold[rest], w, seed)
        oof_det[part] = det.scores(x[part], [train[i].text for i in part])
        print(f"fold {k + 1}/5", flush=True)
    calibration = calibrate(oof_logits, list(gold), labels)
    probs = softmax(oof_logits, calibration.temperature)
    hits = np.array([hit(e.text) for e in train])
    lex_oof = lexicon_out_of_fold([e.text for e in train], list(gold), folds)
    points = fit_operating_points(probs, gold, labels, hits, miss_cost=args.miss_cost)
    thresholds = {s: p.threshold for s, p in points.items()}
    ood_gate = fit_ood_gate(probs, gold, labels, thresholds, hits)
    gate = fit_evidence_gate(probs, gold, labels, thresholds, lex_oof, settings.nlu.safety_evidence_miss_cost,
                             ood_gate, hits)
    det_points = fit_detector_points(oof_det, gold, hits, args.miss_cost)
    shipped_oof = escalated_with_evidence(probs, labels, thresholds, lex_oof, gate, ood_gate, hits)
    # The veto's point: the detector's best safety score on lines the shipped rule escalates by score.
    veto_point = fit_detector_points(oof_det.max(axis=1, keepdims=True).repeat(3, axis=1), gold, hits,
                                     args.miss_cost, pooled=True, consider=shipped_oof)
    print(f"14-way points {thresholds}, sonstiges gate {ood_gate}, evidence gate {gate}; detector points "
          f"{det_points}, veto point {veto_point['notfall']:.4f}; {len(train)} train lines")

    head, ngram = _fit_head(x, gold, labels, seed), _fit_ngram(train, labels, seed)
    lexicon = SafetyLexicon.fit([e.text for e in train], list(gold))
    detector = SafetyDetector.fit(x, [e.text for e in train], gold, w, seed)
    index = {label: i for i, label in enumerate(labels)}
    rules = ("shipped", "top-1", "detector", "veto", "either")
    table: dict[str, list[str]] = {r: [] for r in rules}
    f1: dict[str, list[str]] = {r: [] for r in rules}

    def apply(rule: str, p: np.ndarray, ev: np.ndarray, det: np.ndarray, h: np.ndarray) -> np.ndarray:
        top = p.argmax(axis=1)
        det_pass = np.stack([det[:, j] >= det_points[s] for j, s in enumerate(SAFETY_LABELS)], axis=1).any(axis=1)
        if rule == "shipped":
            return escalated_with_evidence(p, labels, thresholds, ev, gate, ood_gate, h)
        if rule == "top-1":
            return escalated_with_evidence(p, labels, thresholds, ev, 2.0, ood_gate, h)
        if rule == "detector":
            return det_pass | h
        if rule == "veto":
            shipped = escalated_with_evidence(p, labels, thresholds, ev, gate, ood_gate, np.zeros(len(p), bool))
            return (shipped & (det.max(axis=1) >= veto_point["notfall"])) | h
        safety_top = np.zeros(len(p), dtype=bool)
        for s in SAFETY_LABELS:
            safety_top |= (top == index[s]) & (p[:, index[s]] >= thresholds[s])
        return safety_top | det_pass | h

    for n, rows in held.items():
        hx, ht = np.stack([vectors[e.text] for e in rows]), [e.text for e in rows]
        g = np.array([e.label for e in rows])
        p = softmax(mix_logits(hx @ head[0].T + head[1], ngram.logits(ht), w), calibration.temperature)
        ev, det, h = lexicon.scores(ht), detector.scores(hx, ht), np.array([hit(t) for t in ht])
        safe = np.isin(g, SAFETY_LABELS)
        top = [labels[i] for i in p.argmax(axis=1)]
        confident = sum(1 for i, t in enumerate(top) if t != "sonstiges" and t not in SAFETY_LABELS
                        and calibration.decide(t, float(p[i].max()), float(np.sort(p[i])[-1] - np.sort(p[i])[-2]))
                        == "act")
        for rule in rules:
            e = apply(rule, p, ev, det, h)
            rec = f"{e[safe].mean():.3f}" if safe.any() else "–"
            cell = f"{rec} / {e[~safe].mean():.3f} ({int(e[~safe].sum())})"
            if not safe.any():
                cell += f", conf {confident}"
            table[rule].append(cell)
            if n == args.show:
                for t, gg, flag in zip(ht, g, e, strict=True):
                    if flag != (gg in SAFETY_LABELS):
                        print(f"   {rule}: {'MISS' if not flag else 'FALSE'} {gg}: {t}")
        if n in ("dev", "dev_asr"):
            score = macro_f1(per_intent_scores(list(g), top, labels))
            for rule in rules:
                f1[rule].append(f"{score:.3f}")
    oof_cells, cost = {}, {}
    safe = np.isin(gold, SAFETY_LABELS)
    for rule in rules:
        e = apply(rule, probs, lex_oof, oof_det, hits)
        oof_cells[rule] = f"{e[safe].mean():.3f} / {e[~safe].mean():.3f}"
        cost[rule] = args.miss_cost * float((~e[safe]).sum()) + float(e[~safe].sum())
    header = "| rule | train out of fold | " + " | ".join(f"{n} recall / false (n)" for n in held) + \
        " | macro-F1 dev / dev_asr |"
    print(header + "\n|" + "---|" * (header.count("|") - 1))
    for rule in rules:
        print(f"| {rule} | {oof_cells[rule]} | " + " | ".join(table[rule]) + f" | {' / '.join(f1[rule])} |")
    # The choice is made on train out of fold only: fewest missed safety lines x miss cost + false escalations.
    choice = min((r for r in rules if r != "top-1"), key=lambda r: cost[r])
    print("out-of-fold cost (miss cost x missed + false): " + ", ".join(f"{r} {cost[r]:.0f}" for r in rules)
          + f"; chosen: {choice}")
    if args.choice:
        args.choice.write_text(choice + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

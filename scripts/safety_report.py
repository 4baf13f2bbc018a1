#!/usr/bin/env python3
"""Where the safety decision errs, line by line (issue 14): false escalations, misses and the hardest safety lines.

For each labelled intent file the trained classifier and the policy's escalation
rule (``voicebot.dialog.escalation.safety_escalation``: operating points, the
out-of-domain gate, the exact and the fuzzy keyword nets) are run as in a call,
and the script prints

* every ordinary line that is escalated, with the rule that fired (``intent``: a
  safety top-1, ``score``: a safety runner-up, ``keyword``) and the safety scores;
* every safety line that is not escalated;
* per safety intent, the hardest lines the keyword net does not catch (lowest
  score of their own intent) and how many ordinary lines score at least as high:
  the false escalations a recall-1.0 operating point on this set would cost.

It only reads: nothing is fitted here (operating points are fitted out of fold
on train by `voicebot train intent`; dev is the report, never the tuning set).

    .venv/bin/python scripts/safety_report.py                          # dev typed and through the phone ASR
    .venv/bin/python scripts/safety_report.py --data eval/intent/ood_asr.jsonl --hardest 3
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from voicebot.config import load_settings  # noqa: E402
from voicebot.dialog.domain import Domain, load_domain  # noqa: E402
from voicebot.dialog.escalation import any_safety_keyword, safety_escalation  # noqa: E402
from voicebot.nlu.intent import IntentClassifier, IntentPrediction, load_intent_classifier  # noqa: E402
from voicebot.nlu.training_data import read_examples  # noqa: E402

DEFAULT_SETS = ("eval/intent/dev.jsonl", "eval/intent/dev_asr.jsonl")


@dataclass(frozen=True)
class Verdict:
    """One line as the policy sees it on the first turn."""

    text: str
    gold: str
    prediction: IntentPrediction
    escalated: str | None
    trigger: str
    phrase: str
    keyword: bool  # the exact or fuzzy net fires (the line needs no score)

    def scores(self, labels: tuple[str, ...]) -> str:
        return " ".join(f"{label[:4]}={self.prediction.probability(label):.3f}" for label in labels)


def verdicts(classifier: IntentClassifier, domain: Domain, path: Path) -> list[Verdict]:
    examples = read_examples(path)
    predictions = classifier.predict_batch([e.text for e in examples])
    out = []
    for e, p in zip(examples, predictions, strict=True):
        label, trigger, phrase = safety_escalation(domain, e.text, p)
        hit = bool(any_safety_keyword(domain, e.text))
        out.append(Verdict(e.text, e.label, p, label, trigger, phrase, hit))
    return out


def report(name: str, rows: list[Verdict], safety: tuple[str, ...], hardest: int, width: int) -> list[str]:
    ordinary = [r for r in rows if r.gold not in safety]
    false = [r for r in ordinary if r.escalated is not None]
    missed = [r for r in rows if r.gold in safety and r.escalated is None]
    lines = [f"== {name}: {len(rows)} lines; false escalations {len(false)}/{len(ordinary)} "
             f"({len(false) / max(1, len(ordinary)):.3f}); missed safety lines {len(missed)}"]
    for r in sorted(false, key=lambda r: (r.trigger, r.escalated or "", r.gold)):
        lines.append(f"  FALSE {r.gold:>15} -> {r.escalated:<11} {r.trigger:<7} {r.phrase!r:14} {r.scores(safety)} "
                     f"top={r.prediction.label} {r.prediction.confidence:.2f} | {r.text[:width]}")
    for r in missed:
        lines.append(f"  MISSED {r.gold:>14} {r.scores(safety)} top={r.prediction.label} "
                     f"{r.prediction.confidence:.2f} | {r.text[:width]}")
    for label in safety:
        own = sorted((r for r in rows if r.gold == label and not r.keyword),
                     key=lambda r: r.prediction.probability(label))
        caught = sum(r.keyword for r in rows if r.gold == label)
        lines.append(f"  hardest {label} lines ({caught} of {caught + len(own)} caught by the keyword nets):")
        for r in own[:hardest]:
            p = r.prediction.probability(label)
            above = sum(o.prediction.probability(label) >= p for o in ordinary)
            lines.append(f"    {label[:4]}={p:.3f} ordinary lines at or above: {above:3d}  escalated: "
                         f"{r.escalated or '-':<11} top={r.prediction.label} | {r.text[:width]}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", action="append", help="labelled JSONL (repeatable; default: dev and dev_asr)")
    parser.add_argument("--model", default="e5", help="trained intent artefact (default e5)")
    parser.add_argument("--hardest", type=int, default=6, help="hardest lines shown per safety intent")
    parser.add_argument("--width", type=int, default=100, help="characters of each line's text shown")
    args = parser.parse_args(argv)
    paths = [Path(name) if Path(name).is_file() else REPO / name for name in args.data or DEFAULT_SETS]
    absent = [str(p) for p in paths if not p.is_file()]
    if absent:
        print(f"error: not found: {', '.join(absent)}", file=sys.stderr)
        return 2
    settings = load_settings()
    domain = load_domain(settings.dialog.domain)
    try:
        classifier = load_intent_classifier(settings, args.model)
    except (FileNotFoundError, RuntimeError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    thresholds = classifier.calibration.extra.get("safety_thresholds", {})
    print(f"model {classifier.name}: safety operating points {thresholds}, out-of-domain gate "
          f"{classifier.calibration.extra.get('safety_ood_gate', 1.01)}")
    for path in paths:
        rows = verdicts(classifier, domain, path)
        print("\n".join(report(path.name, rows, tuple(domain.safety_labels), args.hardest, args.width)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`voicebot train intent` and `voicebot classify TEXT`: the understanding side from the command line."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from voicebot.config import Settings


def register(sub: argparse._SubParsersAction) -> None:
    train = sub.add_parser("train", help="train models that are produced here rather than pulled")
    tsub = train.add_subparsers(dest="train_command", metavar="MODEL", required=True)
    p = tsub.add_parser(
        "intent",
        help="train the intent classifiers (n-gram baseline, e5 fine-tune) into the models dir",
        description=(
            "Trains on eval/intent/train.jsonl (+ every train_asr*.jsonl present), fits temperature scaling, "
            "per-intent act thresholds and each safety intent's operating point on held-out predictions "
            "from train (5-fold out-of-fold; a held-out share "
            "when fine-tuning), and reports dev.jsonl. Writes models/store/intent-ngram/ and "
            "models/store/intent-e5/ (settings.models.dir). The e5 model is a linear head on mean-pooled e5 "
            "embeddings mixed with the n-gram model; --freeze-layers below 12 fine-tunes the upper layers."
        ),
    )
    p.add_argument("--model", choices=("all", "e5", "ngram"), default="all", help="which model(s) to train")
    p.add_argument("--data-dir", type=Path, help="folder with train.jsonl / train_asr.jsonl / dev.jsonl")
    p.add_argument("--epochs", type=int, help="e5 epochs (default: nlu.train_epochs)")
    p.add_argument("--freeze-layers", type=int, help="e5 lower layers to freeze (default: nlu.train_freeze_layers)")
    p.add_argument("--refit-safety", action="store_true",
                   help="only re-fit the safety operating points of the trained models from their saved held-out "
                        "predictions (oof.npz), without retraining")
    p.add_argument("--if-stale", action="store_true",
                   help="train only models that are missing or stale (trained on other data, per the train_sha256 "
                        "in calibration.json, or without safety operating points); for setup scripts")
    p.set_defaults(handler=cmd_train_intent)

    p = sub.add_parser("classify", help="classify German text with the trained intent model and show the decision")
    p.add_argument("text", nargs="+", help="one or more utterances (quote each)")
    p.add_argument("--model", help="e5, ngram, an artefact name or a path (default: configured, with fallback)")
    p.add_argument("--json", action="store_true", help="one JSON object per utterance")
    p.set_defaults(handler=cmd_classify)


def cmd_train_intent(args: argparse.Namespace, settings: Settings) -> int:
    from voicebot.nlu.train import train_intent_models

    nlu = settings.nlu
    if args.epochs is not None:
        nlu = dataclasses.replace(nlu, train_epochs=args.epochs)
    if args.freeze_layers is not None:
        nlu = dataclasses.replace(nlu, train_freeze_layers=args.freeze_layers)
    settings = dataclasses.replace(settings, nlu=nlu)
    kinds = ("ngram", "e5") if args.model == "all" else (args.model,)
    if args.refit_safety:
        from voicebot.nlu.intent import intent_model_dir
        from voicebot.nlu.train import refit_safety

        for kind in kinds:
            calibration = refit_safety(intent_model_dir(kind, settings))
            points = calibration.extra["safety_operating_points"]
            print(f"{kind}: " + ", ".join(f"{k} {v['threshold']:.3f} (out-of-fold recall {v['recall']:.3f}, "
                                          f"false escalations {v['false_escalation_rate']:.3f})"
                                          for k, v in points.items()))
        return 0
    if args.if_stale:
        from voicebot.dialog.domain import load_domain
        from voicebot.dialog.escalation import keyword_net_digest
        from voicebot.nlu.intent import intent_model_dir
        from voicebot.nlu.train import stale_reason

        try:
            keyword_net: str | None = keyword_net_digest(load_domain(settings.dialog.domain))
        except (OSError, ValueError):
            keyword_net = None  # training says why the domain did not load
        reasons = {kind: stale_reason(intent_model_dir(kind, settings), args.data_dir, keyword_net) for kind in kinds}
        for kind, reason in reasons.items():
            print(f"{kind}: {reason or 'up to date'}")
        kinds = tuple(kind for kind, reason in reasons.items() if reason)
        if not kinds:
            return 0
    reports = train_intent_models(settings, kinds, args.data_dir, progress=lambda line: print(line, flush=True))
    for report in reports:
        print(f"{report.kind:6} {report.directory}  {report.seconds:6.1f} s  "
              f"T={report.calibration.temperature:.3f}  thresholds: "
              + ", ".join(f"{k} {v:.2f}" for k, v in report.calibration.act_thresholds.items()))
    return 0


def cmd_classify(args: argparse.Namespace, settings: Settings) -> int:
    from voicebot.dialog.domain import load_domain
    from voicebot.dialog.policy import safety_escalation
    from voicebot.nlu.intent import load_intent_classifier

    classifier = load_intent_classifier(settings, args.model)
    domain = load_domain(settings.dialog.domain)
    for text in args.text:
        prediction = classifier.predict(text)
        escalation, trigger, phrase = safety_escalation(domain, text, prediction)
        if args.json:
            print(json.dumps({
                "text": text, "model": classifier.name, "label": prediction.label,
                "confidence": round(prediction.confidence, 4), "margin": round(prediction.margin, 4),
                "decision": prediction.decision, "escalation": escalation, "trigger": trigger or None,
                "ranking": [[label, round(p, 4)] for label, p in prediction.ranking[:5]],
            }, ensure_ascii=False))
            continue
        runners = ", ".join(f"{label} {p:.2f}" for label, p in prediction.runners_up(3))
        safety = f"  ESCALATE {escalation} ({trigger}{': ' + phrase if phrase else ''})" if escalation else ""
        print(f"{prediction.label:16} {prediction.confidence:.3f} {prediction.decision:8} [{runners}]{safety}  {text}")
    return 0

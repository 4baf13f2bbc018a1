"""`voicebot eval ...`: offline evaluations. Each subcommand is one ``_add_<name>`` function.

To add one (``intent``, ``calls``, ``tts``, ``compare``, ...): write
``_add_<name>(esub)`` that adds its parser and sets ``handler``, and list it in
``SUBCOMMANDS``. Shared flags (``--json``, ``--out``, ``--report``) come from
``add_output_flags``; ``emit_result`` prints and stores a result uniformly.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from voicebot.config import REPO_ROOT, Settings
from voicebot.cli.turn_eval_cmd import add_turn  # `eval turn` lives in its own module

DEFAULT_ASR_MANIFEST = REPO_ROOT.parent / "shared" / "data" / "speech-de" / "manifest.jsonl"


def add_output_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the summary")
    p.add_argument("--out", type=Path, help="also write the JSON result to this file")
    p.add_argument("--report", type=Path, metavar="DIR", help="write a self-contained HTML report into DIR")


def emit_result(kind: str, result: dict[str, Any], args: argparse.Namespace, settings: Settings,
                summary: Callable[[dict[str, Any]], str]) -> None:
    """Print (JSON or summary), and write ``--out`` / ``--report`` if asked; the JSON names its libraries."""
    from voicebot.eval.provenance import library_versions

    result = {**result, "libraries": library_versions()}
    text = json.dumps(result, ensure_ascii=False, indent=None if args.json else 2)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n", encoding="utf-8")
    print(text if args.json else summary(result))
    if args.report:
        from voicebot.eval.report import write_report

        path = write_report(kind, result, settings, args.report)
        print(f"report: {path}", file=sys.stderr)


# --- asr -----------------------------------------------------------------------------------


def _add_asr(esub: argparse._SubParsersAction) -> None:
    p = esub.add_parser(
        "asr",
        help="WER/CER of the streaming ASR pipeline (or plain faster-whisper) on a JSONL manifest",
        description="Every file goes through what a call uses (optional telephone channel, VAD, streaming "
        "ASR with partials and hallucination guards; turn finals joined). Texts are compared after German "
        "normalization (case, punctuation, numbers as digits: see voicebot/eval/metrics.py).",
    )
    p.add_argument("--manifest", type=Path, default=DEFAULT_ASR_MANIFEST,
                   help='JSONL, one {"audio": path relative to the manifest, "text": reference} per line '
                        "(default: the shared German speech set)")
    p.add_argument("--channel", choices=("wideband", "telephone", "both"), default="wideband",
                   help="telephone: 8 kHz µ-law phone band first, then back to 16 kHz; both: one block per channel")
    p.add_argument("--compare", action="store_true",
                   help="decode every file both ways (streaming and raw) and compare per clip, worst first: "
                        "error difference, lost first/last words, duplicated text")
    p.add_argument("--raw-result", type=Path, action="append", metavar="RAW.json",
                   help="with --compare: a stored --raw result of the same manifest (per channel; repeatable) "
                        "instead of decoding again")
    p.add_argument("--raw", action="store_true",
                   help="plain faster-whisper transcribe on each whole file (beam 5, no VAD, no guards)")
    p.add_argument("--limit", type=int, help="only the first N files")
    p.add_argument("--no-partials", action="store_true",
                   help="skip partial decodes (finals are unchanged; about 2x faster)")
    p.add_argument("--show", action="store_true", help="print every reference and hypothesis")
    add_output_flags(p)
    p.set_defaults(handler=cmd_eval_asr)


def cmd_eval_asr(args: argparse.Namespace, settings: Settings) -> int:
    from voicebot.eval.asr import evaluate_asr, format_asr

    def progress(i: int, n: int, item: dict[str, Any]) -> None:
        if not args.json:
            print(f"[{i}/{n}] {Path(item['audio']).name}: {item['hypothesis']}", file=sys.stderr)

    raw_results = {}
    for path in args.raw_result or ():
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            print(f"voicebot: error: cannot read --raw-result {path}: {exc}", file=sys.stderr)
            return 2
        if stored.get("mode") != "raw" or "channel" not in stored:
            print(f"voicebot: error: {path} is not a `voicebot eval asr --raw` result", file=sys.stderr)
            return 2
        raw_results[stored["channel"]] = stored
    try:
        result = evaluate_asr(
            settings, args.manifest, channel=args.channel, raw=args.raw, limit=args.limit,
            partials=not args.no_partials, progress=progress, compare=args.compare, raw_results=raw_results,
        )
    except (FileNotFoundError, ValueError) as exc:
        print(f"voicebot: error: {exc}", file=sys.stderr)
        return 2
    emit_result("asr", result, args, settings, lambda r: format_asr(r, show_items=args.show))
    return 0


# --- calls ---------------------------------------------------------------------------------


def _add_calls(esub: argparse._SubParsersAction) -> None:
    p = esub.add_parser(
        "calls",
        help="end-to-end call scenarios through CallSession: intent, routing, handoff, latency per turn",
        description="Each scenario's caller turns (audio files) are played, each after the bot has finished "
        "speaking, through VAD, streaming ASR, intent, policy and TTS (realtime=False). Reports first-intent "
        "and routing accuracy, handoff precision/recall, safety-escalation recall, turns to route and the "
        "per-turn latency breakdown. Synthesize the default scenarios first: scripts/make_scenario_audio.py.",
    )
    p.add_argument("--manifest", type=Path, default=REPO_ROOT / "eval" / "audio" / "calls.jsonl",
                   help="calls manifest (JSONL; default: eval/audio/calls.jsonl from make_scenario_audio.py)")
    p.add_argument("--channel", choices=("wideband", "telephone"), default="wideband",
                   help="telephone: caller audio through the 8 kHz µ-law phone band")
    p.add_argument("--limit", type=int, help="only the first N scenarios")
    p.add_argument("--only", help="only these scenario ids (comma-separated)")
    add_output_flags(p)
    p.set_defaults(handler=cmd_eval_calls)


def cmd_eval_calls(args: argparse.Namespace, settings: Settings) -> int:
    from voicebot.eval.calls import evaluate_calls, format_calls

    only = [x.strip() for x in (args.only or "").split(",") if x.strip()]
    result = evaluate_calls(settings, args.manifest, channel=None if args.channel == "wideband" else args.channel,
                            limit=args.limit, only=only)
    emit_result("calls", result, args, settings, format_calls)
    return 0


# --- tts -----------------------------------------------------------------------------------


def _add_tts(esub: argparse._SubParsersAction) -> None:
    p = esub.add_parser(
        "tts",
        help="per voice: real-time factor, time to first audio, intelligibility by ASR round trip (WER)",
        description="Synthesizes German prompts with each voice, measures speed, transcribes the audio with "
        "the project's ASR and scores WER/CER. piper-joe-en is English: it reads German with English phonetics.",
    )
    p.add_argument("--voices", default="pico-de,piper-joe-en", help="comma-separated voices (default: both)")
    p.add_argument("--sentences", type=Path, help="prompts, one per line (default: eval/tts/sentences.txt)")
    p.add_argument("--channel", choices=("wideband", "telephone"), default="wideband",
                   help="telephone: hear the bot through the phone band before transcribing")
    p.add_argument("--limit", type=int, help="only the first N prompts")
    add_output_flags(p)
    p.set_defaults(handler=cmd_eval_tts)


def cmd_eval_tts(args: argparse.Namespace, settings: Settings) -> int:
    from voicebot.eval.tts import DEFAULT_SENTENCES, evaluate_tts, format_tts

    voices = [v.strip() for v in args.voices.split(",") if v.strip()]
    result = evaluate_tts(settings, voices, args.sentences or DEFAULT_SENTENCES,
                          channel=None if args.channel == "wideband" else args.channel, limit=args.limit)
    emit_result("tts", result, args, settings, format_tts)
    return 0


# --- compare -------------------------------------------------------------------------------


def _add_compare(esub: argparse._SubParsersAction) -> None:
    p = esub.add_parser(
        "compare",
        help="two results of one evaluation side by side: differences, and which is better",
        description="Compares every metric of RESULT_B against RESULT_A (JSON from any eval command's --json/--out, "
        "or a baseline under eval/baselines/). Lower-better (WER, latency, errors) and higher-better (accuracy, "
        "recall) metrics are told apart by name; unchanged rows are hidden unless --all.",
    )
    p.add_argument("result_a", type=Path, metavar="RESULT_A.json")
    p.add_argument("result_b", type=Path, metavar="RESULT_B.json")
    p.add_argument("--all", action="store_true", help="also list unchanged metrics")
    p.add_argument("--json", action="store_true", help="print the comparison as JSON")
    p.set_defaults(handler=cmd_eval_compare)


def cmd_eval_compare(args: argparse.Namespace, settings: Settings) -> int:
    from voicebot.eval.compare import compare, format_compare

    a = json.loads(args.result_a.read_text(encoding="utf-8"))
    b = json.loads(args.result_b.read_text(encoding="utf-8"))
    try:
        result = compare(a, b)
    except ValueError as exc:
        print(f"voicebot: error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, ensure_ascii=False, indent=2) if args.json
          else format_compare(result, args.result_a.name, args.result_b.name, show_same=args.all))
    return 0


# --- intent --------------------------------------------------------------------------------


def _add_intent(esub: argparse._SubParsersAction) -> None:
    p = esub.add_parser(
        "intent",
        help="intent classifier on a labelled JSONL file: accuracy, macro-F1, ECE, coverage, safety recall, latency",
        description="Classifies every line ({\"text\", \"intent\"} per line) and "
        "reports accuracy, macro-F1, per-intent precision/recall/F1, the confusion matrix, ECE, the act/confirm/"
        "re-ask decision's coverage and selective accuracy at the trained thresholds, safety recall and the "
        "false-escalation rate of the policy's escalation rule (each safety intent's calibrated operating point, "
        "the exact and the fuzzy keyword net), the safety coverage/false-escalation curve around the operating "
        "points, how many lines got a confident ordinary intent (for out-of-domain sets such as "
        "eval/intent/ood.jsonl), and milliseconds per utterance (one at a time, as in a call, on the first "
        "--latency-sample lines). Spoken versions: eval/intent/dev_asr.jsonl, ood_asr.jsonl (telephone ASR). "
        "Train the models first: voicebot train intent.",
    )
    p.add_argument("--data", type=Path, default=REPO_ROOT / "eval" / "intent" / "dev.jsonl",
                   help="labelled JSONL (default: eval/intent/dev.jsonl)")
    p.add_argument("--model", choices=("e5", "ngram", "both"),
                   help="which trained model (default: the configured one, n-gram fallback); both: compare")
    p.add_argument("--latency-sample", type=int, default=40,
                   help="lines timed one at a time for the latency figure (0: all; default 40)")
    add_output_flags(p)

    def handler(args: argparse.Namespace, settings: Settings) -> int:
        from voicebot.dialog.domain import load_domain
        from voicebot.eval.intent import evaluate_intent, format_report
        from voicebot.nlu.intent import load_intent_classifier
        from voicebot.nlu.train import read_examples

        items = [(e.text, e.label) for e in read_examples(args.data)]
        domain = load_domain(settings.dialog.domain)
        names = ("e5", "ngram") if args.model == "both" else (args.model,)
        results = {}
        for name in names:
            result = evaluate_intent(load_intent_classifier(settings, name), items, domain,
                                     latency_sample=args.latency_sample)
            results[result["model"]] = {**result, "data": str(args.data)}
        if len(results) == 1:
            emit_result("intent", next(iter(results.values())), args, settings, format_report)
        else:
            emit_result("intent", {"models": results, "data": str(args.data)}, args, settings,
                        lambda r: "\n\n".join(format_report(m) for m in r["models"].values()))
        return 0

    p.set_defaults(handler=handler)


# --- registration ------------------------------------------------------------------------

SUBCOMMANDS: tuple[Callable[[argparse._SubParsersAction], None], ...] = (_add_asr, _add_calls, _add_tts, _add_compare,
                                                                       _add_intent, add_turn)


def register(sub: argparse._SubParsersAction) -> None:
    ev = sub.add_parser("eval", help="offline evaluations (asr, ...) with JSON output and HTML reports")
    esub = ev.add_subparsers(dest="eval_command", metavar="EVALUATION", required=True)
    for add in SUBCOMMANDS:
        add(esub)

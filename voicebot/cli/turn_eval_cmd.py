"""`voicebot eval turn`: the German turn-end evaluation (registered by voicebot/cli/eval_cmd.py)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from voicebot.config import Settings


def add_turn(esub: argparse._SubParsersAction) -> None:
    from voicebot.cli.eval_cmd import add_output_flags
    from voicebot.eval.turn_end import DEFAULT_SET

    p = esub.add_parser(
        "turn",
        help="end-of-turn detection on real German speech: false cut-offs and delay per strategy",
        description="Complete utterances and the same utterances cut mid-sentence at a word gap, followed by "
        "silence, wideband and telephone. Compares silence-only endpointing (200-1200 ms), Smart Turn v3.2, "
        "the German text end-of-utterance model, text cues and their combination; picks the combination's "
        "thresholds with false cut-offs <= 5%% and the smallest mean delay. Build the set first: "
        "scripts/make_turn_set.py; provision Smart Turn: voicebot models pull smart-turn-v3.",
    )
    p.add_argument("--set", type=Path, default=DEFAULT_SET, help="the turn-end set (default: eval/turn/turn_de.jsonl)")
    p.add_argument("--channel", choices=("both", "wideband", "telephone"), default="both")
    p.add_argument("--pause-ms", type=float, default=1000.0,
                   help="how long the caller pauses mid-sentence before going on (default 1000)")
    p.add_argument("--limit", type=int, help="only the first N clips")
    p.add_argument("--manifests", help="only clips of these shared sets (comma-separated: speech-de,speech-de-more)")
    p.add_argument("--samples-out", type=Path, help="write every pause's model scores as JSONL")
    p.add_argument("--from-samples", type=Path, help="score a --samples-out file again instead of running the models")
    p.add_argument("--rescore-text", action="store_true",
                   help="with --from-samples: recompute the text model's probabilities and the cues "
                        "(Smart Turn's are kept)")
    add_output_flags(p)
    p.set_defaults(handler=cmd_eval_turn)


def cmd_eval_turn(args: argparse.Namespace, settings: Settings) -> int:
    from voicebot.cli.eval_cmd import emit_result
    from voicebot.eval.turn_end import TurnSample, evaluate, format_turn, run_turn_eval

    if args.pause_ms <= 0:
        print("voicebot: error: --pause-ms must be positive", file=sys.stderr)
        return 2
    if args.from_samples:
        if not args.from_samples.is_file():
            raise FileNotFoundError(f"samples file {args.from_samples} not found")
        lines = args.from_samples.read_text(encoding="utf-8").splitlines()
        samples = [TurnSample(**json.loads(line)) for line in lines if line.strip()]
        if args.rescore_text:
            from dataclasses import replace

            from voicebot.turn.text_eou import TextTurnModel

            text_model = TextTurnModel.load(settings.models.dir)
            from voicebot.turn.cues import incomplete_cue

            samples = [replace(s, text_prob=text_model.predict(s.text), cue=incomplete_cue(s.text) is not None)
                       for s in samples]
        result = {**evaluate(samples, args.pause_ms), "set": str(args.from_samples)}
    else:
        channels = ("wideband", "telephone") if args.channel == "both" else (args.channel,)

        def progress(i: int, n: int) -> None:
            if not args.json:
                print(f"\r[{i}/{n}] clips", end="" if i < n else "\n", file=sys.stderr, flush=True)

        manifests = tuple(m.strip() for m in (args.manifests or "").split(",") if m.strip())
        result = run_turn_eval(settings, args.set, channels, args.pause_ms, args.limit, args.samples_out, progress,
                               manifests)
    emit_result("turn", result, args, settings, format_turn)
    return 0

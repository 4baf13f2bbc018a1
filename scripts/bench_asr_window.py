#!/usr/bin/env python
"""Final transcripts on the phone line: WER and CPU per encoder window and beam.

Decodes real German caller turns through the telephone channel (8 kHz, 300-3400 Hz,
µ-law, back to 16 kHz as the server hears them) the way a final is decoded, once per
(window, beam, word timings) configuration, and prints WER and CPU-seconds per turn
by turn length. Turns: single sentences of speech-de-more and the multi-sentence
3-20 s turns of ``scripts/phone_turns.py`` (with line hiss).

    python scripts/bench_asr_window.py [--windows 10,15,20,30] [--beams 1,5] [--single 30] [--multi 20] [--pad]
    python scripts/bench_asr_window.py --windows 6,8,10 --beams 1,5 --words 0,1 --multi 0 --pad --short-turn-s 0
    python scripts/bench_asr_window.py --windows 10 --beams 1 --fallback 1,0 --single 20 --multi 8 --pad

A window shorter than a turn grows to the turn (the next ``asr.window_buckets`` step).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from phone_turns import PhoneTurn, build_turns, through_phone  # noqa: E402

from voicebot.config import load_settings  # noqa: E402
from voicebot.eval.asr_cases import RATE, load_sources, trimmed  # noqa: E402
from voicebot.eval.metrics import word_errors  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--windows", default="10,15,20,30")
    ap.add_argument("--beams", default="1,5")
    ap.add_argument("--words", default="1", help="word timings: 1, 0 or 0,1")
    ap.add_argument("--fallback", default="1", help="the temperature fallback on failed decodes: 1, 0 or 1,0 (a "
                                                   "hurried final without it: asr.hurried_fallback)")
    ap.add_argument("--single", type=int, default=30, help="single-sentence clips (speech-de-more, in order)")
    ap.add_argument("--multi", type=int, default=20, help="multi-sentence 3-20 s turns")
    ap.add_argument("--pad", action="store_true",
                    help="surround each turn as the recognizer does: 1 s of line hiss before (pre-roll), 0.4 s after")
    ap.add_argument("--short-turn-s", type=float, default=None,
                    help="asr.final_short_turn_s (default: the setting); 0 sizes every window as a segment after a "
                         "cut is sized (the tail of a segmented final never takes the short turn's 30 s window)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    from voicebot.asr.transcriber import Transcriber

    settings = load_settings()
    sources = load_sources(sets=("speech-de-more",))
    single = [PhoneTurn(c.path.stem, c.text, trimmed(c, margin_s=0.0)) for c in sorted(sources, key=lambda c: c.path)]
    turns = [("single", t) for t in single[: args.single]]
    turns += [("multi", t) for t in build_turns(args.multi, seed=7, sources=sources)]
    if args.pad:
        from voicebot.eval.asr_cases import line_noise

        turns = [(g, PhoneTurn(t.name, t.text, np.concatenate([line_noise(1.0, seed=i), t.audio,
                                                               line_noise(0.4, seed=i + 1)])))
                 for i, (g, t) in enumerate(turns)]
    audio = [through_phone(t.audio) for _, t in turns]
    asr = Transcriber(settings.asr, settings.models).load()
    asr.transcribe(np.zeros(RATE, np.float32), beam_size=1)  # warm-up

    rows = []
    def ints(text: str) -> list[int]:
        return [int(x) for x in text.split(",")]

    configs = [(bool(words), bool(fallback), beam, window) for words in ints(args.words)
               for fallback in ints(args.fallback) for beam in ints(args.beams) for window in ints(args.windows)]
    for words, fallback, beam, window in configs:
        # Long turns grow to the next bucket of the configured steps.
        # A window below the smallest bucket joins the steps (else it would round up to that bucket).
        asr.settings = replace(settings.asr, final_chunk_length=window, chunk_length=min(window, 10),
                               window_buckets=tuple(sorted({window, *settings.asr.window_buckets})))
        if args.short_turn_s is not None:
            asr.settings = replace(asr.settings, final_short_turn_s=args.short_turn_s)
        by: dict[str, dict[str, list]] = {}
        fallbacks = asr.fallback_decodes
        for (group, turn), pcm in zip(turns, audio, strict=True):
            cpu0 = time.process_time()
            result = asr.transcribe(pcm, beam_size=beam, word_timestamps=words, final=True, fallback=fallback)
            cpu = time.process_time() - cpu0
            for key in (group, "all"):
                g = by.setdefault(key, {"refs": [], "hyps": [], "cpu": [], "secs": [], "win": []})
                g["refs"].append(turn.text)
                g["hyps"].append(result.text)
                g["cpu"].append(cpu)
                g["secs"].append(turn.seconds)
                g["win"].append(result.extra.get("window_s", 0.0))
        for key, g in by.items():
            err = word_errors(g["refs"], g["hyps"])
            rows.append({"group": key, "window": window, "beam": beam, "words": words, "fallback": fallback,
                         "fallbacks": asr.fallback_decodes - fallbacks if key == "all" else None,
                         "n": len(g["refs"]),
                         "wer": round(err.rate, 3), "cpu_per_turn": round(float(np.mean(g["cpu"])), 3),
                         "cpu_per_audio_s": round(sum(g["cpu"]) / sum(g["secs"]), 4),
                         "mean_window": round(float(np.mean(g["win"])), 1),
                         "mean_turn_s": round(float(np.mean(g["secs"])), 1)})
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    print("| turns | n | mean s | min window | mean window | beam | word timings | fallback (turns that took it) "
          "| WER | CPU s / turn | CPU s / audio s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in sorted(rows, key=lambda r: (r["group"], r["words"], not r["fallback"], r["beam"], r["window"])):
        took = "" if r["fallbacks"] is None else f" ({r['fallbacks']})"
        print(f"| {r['group']} | {r['n']} | {r['mean_turn_s']} | {r['window']} | {r['mean_window']} | {r['beam']} | "
              f"{'yes' if r['words'] else 'no'} | {'yes' if r['fallback'] else 'no'}{took} | {r['wer']:.3f} | "
              f"{r['cpu_per_turn']:.3f} | {r['cpu_per_audio_s']:.4f} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

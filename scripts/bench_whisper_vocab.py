#!/usr/bin/env python
"""whisper-base against its German-vocabulary copy (whisper-base-de), side by side on phone turns.

Both models are loaded in one process and decode every turn one after the other (the order
alternating turn by turn), the way the server decodes a final (beam 5, word timings, the final's
window), through the telephone channel. Prints WER, the wall time of each decode and the turns
whose text differs, so the two are compared on the same audio under the same load.

    flock /tmp/voicebot-cpu.lock nice -n 10 .venv/bin/python scripts/bench_whisper_vocab.py [--single 77] [--multi 20]
        [--emodb 0] [--models whisper-base,whisper-base-de] [--partial] [--show] [--json out.json]
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
from voicebot.eval.asr_cases import RATE, line_noise, load_sources, trimmed  # noqa: E402
from voicebot.eval.metrics import word_errors  # noqa: E402


def turns_for(args: argparse.Namespace) -> list[tuple[str, PhoneTurn]]:
    more = load_sources(sets=("speech-de-more",))
    single = [PhoneTurn(c.path.stem, c.text, trimmed(c, margin_s=0.0)) for c in sorted(more, key=lambda c: c.path)]
    turns = [("single", t) for t in single[: args.single]]
    turns += [("multi", t) for t in build_turns(args.multi, seed=7, sources=more)]
    if args.emodb:
        emodb = sorted(load_sources(sets=("speech-de",)), key=lambda c: c.path)[: args.emodb]
        turns += [("emodb", PhoneTurn(c.path.stem, c.text, trimmed(c, margin_s=0.0))) for c in emodb]
    # As the recognizer hears a turn: line hiss before (pre-roll) and after.
    return [(g, PhoneTurn(t.name, t.text, np.concatenate([line_noise(1.0, seed=i), t.audio,
                                                          line_noise(0.4, seed=i + 1)])))
            for i, (g, t) in enumerate(turns)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--single", type=int, default=77, help="single-sentence clips of speech-de-more (in order)")
    ap.add_argument("--multi", type=int, default=20, help="multi-sentence 3-20 s turns (seed 7)")
    ap.add_argument("--emodb", type=int, default=0, help="short EmoDB clips of speech-de (in order)")
    ap.add_argument("--models", default="whisper-base,whisper-base-de")
    ap.add_argument("--partial", action="store_true",
                    help="decode as partials are (greedy, no word timings, the partial's window), not as finals")
    ap.add_argument("--show", action="store_true", help="print every turn whose text differs")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    from voicebot.asr.transcriber import Transcriber

    settings = load_settings()
    names = args.models.split(",")
    engines = [Transcriber(replace(settings.asr, model=n), settings.models).load() for n in names]
    for asr in engines:
        asr.transcribe(np.zeros(RATE, np.float32), beam_size=1)  # warm-up
    turns = turns_for(args)
    hyps: list[list[str]] = [[] for _ in names]
    walls: list[list[float]] = [[] for _ in names]
    for i, (_, turn) in enumerate(turns):
        pcm = through_phone(turn.audio)
        order = range(len(names)) if i % 2 == 0 else reversed(range(len(names)))
        for k in order:
            started = time.perf_counter()
            result = (engines[k].transcribe(pcm, beam_size=1, word_timestamps=False, final=False) if args.partial
                      else engines[k].transcribe(pcm, beam_size=settings.asr.final_beam_size, final=True))
            walls[k].append(time.perf_counter() - started)
            hyps[k].append(result.text)
    groups = sorted({g for g, _ in turns}) + ["all"]
    how = "as partials (greedy, no word timings)" if args.partial else \
        f"as finals (beam {settings.asr.final_beam_size}, word timings)"
    print(f"{len(turns)} phone turns, decoded by each model in turn, {how}")
    print()
    print("| model | turns | WER " + "".join(f"| WER {g} " for g in groups[:-1])
          + "| decode wall p50 / mean ms | vs first |")
    print("|---|---|---" + "|---" * (len(groups) - 1) + "|---|---|")
    refs = [t.text for _, t in turns]
    rows = []
    for k, name in enumerate(names):
        per = []
        for g in groups:
            idx = [i for i, (gg, _) in enumerate(turns) if g in ("all", gg)]
            per.append(word_errors([refs[i] for i in idx], [hyps[k][i] for i in idx]).rate)
        wall = np.array(walls[k]) * 1000
        ratio = float(np.mean(walls[k]) / np.mean(walls[0]))
        print(f"| {name} | {len(turns)} | {per[-1]:.3f} " + "".join(f"| {w:.3f} " for w in per[:-1])
              + f"| {np.median(wall):.0f} / {wall.mean():.0f} | {ratio:.2f}x |")
        rows.append({"model": name, "wer": dict(zip(groups, per, strict=True)), "wall_ms": wall.round(1).tolist()})
    for k in range(1, len(names)):
        differ = [i for i in range(len(turns)) if hyps[k][i] != hyps[0][i]]
        print(f"\n{names[k]}: {len(differ)} of {len(turns)} turns read differently from {names[0]}")
        if args.show:
            for i in differ:
                print(f"  ref  {refs[i]}\n  {names[0]:<16} {hyps[0][i]}\n  {names[k]:<16} {hyps[k][i]}\n")
    if args.json:
        args.json.write_text(json.dumps({"turns": [t.name for _, t in turns], "refs": refs, "hyps": hyps,
                                         "models": rows}, ensure_ascii=False, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

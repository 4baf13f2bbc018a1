#!/usr/bin/env python
"""Ask the end-of-turn models sooner? False cut-offs and delay when Smart Turn hears less of the pause.

The turn-taker asks Smart Turn once per pause and decides at ``turn.min_silence_ms``; the model's
~60 ms run comes on top, so a confident turn ends ~260 ms into the silence. Asking it at ``ask`` ms
(``turn.model_silence_ms``) and deciding at ``decide`` ms hides the run when ``ask + run <= decide``,
but the model then hears ``ask`` ms of silence instead of 200 ms. This scores the German turn-end
set (``voicebot eval turn``'s samples, both channels) for each pair: the operating point's false
cut-offs at a 1 s (and 500 ms) mid-sentence pause, worst over the source sets, and the silence a
complete turn waits. Nothing is asserted; a table is printed.

    nice -n 10 .venv/bin/python scripts/bench_turn_early.py --pairs 200:200,140:200,100:150 [--limit 120]
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from voicebot.config import load_settings  # noqa: E402
from voicebot.eval.turn_end import DEFAULT_SET, _arrays, build_samples, read_set, score  # noqa: E402
from voicebot.turn.decision import TurnEndConfig, end_silence_batch  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", default="200:200,140:200,100:150,150:150",
                    help="ASK:DECIDE ms pairs (Smart Turn hears ASK ms of silence; the decision waits DECIDE ms)")
    ap.add_argument("--limit", type=int, default=None, help="first N clips of the set (default: all)")
    args = ap.parse_args()
    from voicebot.turn.smart_turn import SmartTurnModel
    from voicebot.turn.text_eou import TextTurnModel

    settings = load_settings()
    rows = [{**r, "line": n} for n, r in enumerate(read_set(DEFAULT_SET))][: args.limit]
    smart = SmartTurnModel.from_settings(settings.models).load()
    text_model = TextTurnModel.load(settings.models.dir)
    pairs = [tuple(float(x) for x in p.split(":")) for p in args.pairs.split(",")]
    samples = {ask: build_samples(rows, smart, text_model, ("wideband", "telephone"), ask)
               for ask in sorted({a for a, _ in pairs})}
    base = replace(TurnEndConfig(), min_silence_ms=settings.turn.min_silence_ms)
    print(f"{len(rows)} clips; operating point: fast {base.fast_threshold}, audio weight {base.audio_weight}, "
          f"slow {base.slow_silence_ms:.0f} ms, max {base.max_silence_ms:.0f} ms, cues {base.use_cues}\n")
    print("| Smart Turn asked at ms | decided at ms | false cut-offs @1 s tel / wide | worst source set @1 s | "
          "@500 ms tel / wide | confident (of complete) | delay p50 / p90 / mean ms |")
    print("|---|---|---|---|---|---|---|")
    for ask, decide in pairs:
        config = replace(base, min_silence_ms=decide, slow_silence_ms=max(decide, base.slow_silence_ms))
        s_all = samples[ask]
        a = _arrays(s_all)
        end = end_silence_batch(config, a["audio"], a["text"], a["cue"])
        s = score("", end, a, 1000.0)
        worst = 0.0
        for m in sorted({x.manifest for x in s_all}):
            g = _arrays([x for x in s_all if x.manifest == m])
            cut = score("", end_silence_batch(config, g["audio"], g["text"], g["cue"]), g, 1000.0).cutoff
            worst = max([worst] + [v for v in cut.values() if v is not None])
        confident = float(np.mean(end[a["complete"]] <= decide))

        def pct(d: dict[str, float | None], ch: str) -> str:
            v = d.get(ch)
            return "–" if v is None else f"{100 * v:.1f}%"

        print(f"| {ask:.0f} | {decide:.0f} | {pct(s.cutoff, 'telephone')} / {pct(s.cutoff, 'wideband')} | "
              f"{100 * worst:.1f}% | {pct(s.cutoff_500, 'telephone')} / {pct(s.cutoff_500, 'wideband')} | "
              f"{100 * confident:.0f}% | {s.delay['p50']} / {s.delay['p90']} / {s.delay['mean']} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

#!/usr/bin/env python
"""A graded end-of-turn wait, with Smart Turn asked again as the silence grows: fitted on the train half of
the German turn-end set, scored on its eval half (``voicebot.eval.turn_graded``). Nothing is asserted.

Every pause of ``eval/turn/turn_de.jsonl`` (wideband and telephone) is scored once by Smart Turn at
200, 400, 600 and 800 ms of silence and by the text model (minutes; ``--samples-out`` keeps them,
``--from-samples`` scores them again in seconds). Rows: silence-only endpointing, the shipped decision
(the defaults of ``voicebot.turn.decision.TurnEndConfig``), and graded waits fitted on the train half
(false cut-offs <= 5 % at a 1 s mid-sentence pause on every source set and channel, smallest mean delay).

    flock /tmp/voicebot-cpu.lock nice -n 10 .venv/bin/python scripts/bench_turn_graded.py \
        --samples-out /tmp/graded.jsonl
    .venv/bin/python scripts/bench_turn_graded.py --from-samples /tmp/graded.jsonl
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from voicebot.eval.turn_graded import (  # noqa: E402
    SILENCES_MS,
    GradedArrays,
    build_graded,
    fit_graded,
    fit_logistic,
    format_rows,
    read_samples,
    score_row,
    subset,
    write_samples,
)
from voicebot.turn.decision import TurnEndConfig, end_silence_batch  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--from-samples", type=Path, help="score a --samples-out file instead of running the models")
    ap.add_argument("--samples-out", type=Path, help="keep every pause's model scores as JSONL")
    ap.add_argument("--limit", type=int, default=None, help="first N clips of the set (default: all)")
    ap.add_argument("--line", choices=("floor", "hiss"), default="floor",
                    help="after the cut on the telephone channel: the clip's noise floor, or the phone bench's "
                         "line hiss under the levelled speech and after it (voicebot.eval.turn_hiss)")
    ap.add_argument("--channels", default="wideband,telephone")
    args = ap.parse_args()
    if args.from_samples:
        samples = read_samples(args.from_samples)
    else:
        from voicebot.config import load_settings
        from voicebot.eval.turn_end import DEFAULT_SET, read_set
        from voicebot.turn.smart_turn import SmartTurnModel
        from voicebot.turn.text_eou import TextTurnModel

        settings = load_settings()
        clips = [{**r, "line": n} for n, r in enumerate(read_set(DEFAULT_SET))][: args.limit]
        samples = build_graded(clips, SmartTurnModel.from_settings(settings.models).load(),
                               TextTurnModel.load(settings.models.dir), tuple(args.channels.split(",")),
                               line=args.line)
        if args.samples_out:
            write_samples(samples, args.samples_out)
    everything = GradedArrays.of(samples)
    split = np.array([s.split for s in samples])
    train, held = subset(everything, split == "train"), subset(everything, split == "eval")
    print(f"{len(samples)} pauses ({int((split == 'train').sum())} train / {int((split == 'eval').sum())} eval), "
          f"Smart Turn at {', '.join(map(str, SILENCES_MS))} ms of silence; rows scored on the eval half\n")
    print(auc_table(everything))
    shipped = TurnEndConfig()
    lr = fit_logistic(train)
    fitted = {
        "one check at 200 ms, weight and threshold refitted": fit_graded(train, reask=False, checks=1),
        "text model + cues alone, refitted": fit_graded(train, reask=False, checks=1, weights=(0.0,)),
        "logistic combination, one check at 200 ms": fit_graded(train, reask=False, checks=1, logistic=lr),
        "graded wait on the 200 ms answer (200-800 ms tiers)": fit_graded(train, reask=False),
        "Smart Turn re-asked at 400 / 600 / 800 ms": fit_graded(train, reask=True),
        "logistic combination, re-asked": fit_graded(train, reask=True, logistic=lr),
        "graded wait, chosen for a 500 ms pause": fit_graded(train, reask=False, pause_ms=500.0),
        "re-asked, chosen for a 500 ms pause": fit_graded(train, reask=True, pause_ms=500.0),
    }
    rows = [score_row(f"silence {ms} ms", np.full(len(held.text), float(ms)), held)
            for ms in (200, 400, 600, 800, 1000, 1200)]
    shipped_end = end_silence_batch(shipped, held.audio[:, 0], held.text, held.cue)
    rows.append(score_row(f"shipped (fast {shipped.fast_threshold}, weight {shipped.audio_weight}; chosen on the "
                          "whole set)", shipped_end, held))
    for fast in (0.75, 0.7):  # a lower fast threshold for the phone line, weight unchanged
        phone = replace(shipped, fast_threshold=fast, slow_threshold=fast)
        rows.append(score_row(f"shipped weight, fast threshold {fast}", end_silence_batch(
            phone, held.audio[:, 0], held.text, held.cue), held))
    rows += [score_row(f"{name} (fitted on train)", g.end_ms(held), held) for name, g in fitted.items()]
    print(format_rows(rows))
    print()
    for name, g in fitted.items():
        how = f"logistic {tuple(round(x, 3) for x in g.logistic)}" if g.logistic else f"audio weight {g.audio_weight}"
        print(f"- {name}: {how}, thresholds at "
              + ", ".join(f"{ms} ms {t}" for ms, t in zip(SILENCES_MS, g.thresholds, strict=True)))
    return 0


def auc_table(a: GradedArrays) -> str:
    """How well each signal tells a complete pause from a cut one (ROC AUC), by the silence Smart Turn heard."""
    from sklearn.metrics import roc_auc_score

    lines = ["| channel | text model | " + " | ".join(f"Smart Turn @{ms} ms" for ms in SILENCES_MS)
             + " | " + " | ".join(f"0.6 audio + 0.4 text @{ms} ms" for ms in SILENCES_MS) + " |",
             "|" + "---|" * (2 + 2 * len(SILENCES_MS))]
    for ch in sorted(set(a.channel.tolist())):
        sel = a.channel == ch
        y = a.complete[sel]
        audio = [roc_auc_score(y, a.audio[sel, k]) for k in range(len(SILENCES_MS))]
        both = [roc_auc_score(y, 0.6 * a.audio[sel, k] + 0.4 * a.text[sel]) for k in range(len(SILENCES_MS))]
        lines.append(f"| {ch} | {roc_auc_score(y, a.text[sel]):.3f} | " + " | ".join(f"{x:.3f}" for x in audio)
                     + " | " + " | ".join(f"{x:.3f}" for x in both) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())

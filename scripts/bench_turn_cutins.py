#!/usr/bin/env python
"""Where each "bot cut in" of a phone load run fell: in the caller's pause, or after the caller went on.

Reads the JSON of ``scripts/bench_load.py --phone --trace --out FILE`` (one or more servers side by
side) and the phone turns it played (``eval/audio/phone-turns-s1-n40``, 16 kHz wav). For every bot
utterance begun while the caller was inside a turn, the caller's audio at that moment says whether
they were voiced (the turns' own definition: a 20 ms frame at -35 dBFS or more), how long the pause
before it was, and how long ago they had spoken again. An answer released in the pause can only be
avoided by waiting longer than the pause; one released after the caller went on can be held back
by the turn-taker once the VAD has heard the new voice. Nothing is asserted; a table is printed.

    .venv/bin/python scripts/bench_turn_cutins.py /tmp/load.json [--turns eval/audio/phone-turns-s1-n40]
"""

from __future__ import annotations

import argparse
import json
import sys
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
FRAME_S = 0.02
VOICED_DBFS = -35.0  # scripts/phone_turns.py VOICED_DBFS
MIN_PAUSE_FRAMES = 10  # 200 ms unvoiced: a pause, not a gap inside a word


@dataclass(frozen=True)
class CutIn:
    voiced: bool  # the caller's frame at the bot utterance was voiced
    pause_s: float | None  # the latest pause before that moment
    since_resume_s: float | None  # how long the caller had been speaking again (None: still in the pause)


def voiced_frames(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        x = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float64)
        frame = int(w.getframerate() * FRAME_S)
    n = len(x) // frame
    level = 10 * np.log10(np.mean((x[: n * frame] / 32768.0).reshape(n, frame) ** 2, axis=1) + 1e-12)
    return level >= VOICED_DBFS


def classify(v: np.ndarray, i: int) -> CutIn:
    """The moment ``i`` (frame) of a turn with voiced frames ``v``."""
    k, run = i, 0
    while k > 0:  # back to the latest pause of MIN_PAUSE_FRAMES or more
        run = run + 1 if not v[k] else 0
        if run >= MIN_PAUSE_FRAMES:
            break
        k -= 1
    if k <= 0:
        return CutIn(bool(v[i]), None, None)
    start = k
    while start > 0 and not v[start - 1]:
        start -= 1
    end = k
    while end < len(v) and not v[end]:
        end += 1
    resumed = end <= i
    return CutIn(bool(v[i]), round((end - start) * FRAME_S, 2), round((i - end) * FRAME_S, 2) if resumed else None)


def cut_ins(trace: list[dict[str, Any]], turns: Path) -> list[CutIn]:
    out: list[CutIn] = []
    for call in sorted({e["call"] for e in trace}):
        start: float | None = None
        v = np.zeros(0, dtype=bool)
        for e in (e for e in trace if e["call"] == call):
            if e["kind"] == "caller.speech.start":
                start, v = e["t"], voiced_frames(turns / e["text"].split()[-1])
            elif e["kind"] == "caller.speech.end":
                start = None
            elif e["kind"] == "bot.utterance" and start is not None:
                i = int((e["t"] - start) / FRAME_S)
                if 0 <= i < len(v):
                    out.append(classify(v, i))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path, help="bench_load.py --phone --trace --out JSON")
    ap.add_argument("--turns", type=Path, default=REPO / "eval" / "audio" / "phone-turns-s1-n40")
    args = ap.parse_args()
    if not args.run.is_file():
        print(f"bench_turn_cutins: no such file: {args.run}", file=sys.stderr)
        return 2
    result = json.loads(args.run.read_text(encoding="utf-8"))
    print("| server | turns | bot cut in | in the pause | after the caller went on (s since) | pause before (s) |")
    print("|---|---|---|---|---|---|")
    for label, level in result.get("by_calls", {}).items():
        found = cut_ins(level.get("trace") or [], args.turns)
        if not level.get("trace"):
            print(f"| {label} | {level.get('turns')} | {level.get('cut_ins')} | (no --trace) | | |")
            continue
        in_pause = [c for c in found if c.since_resume_s is None]
        went_on = sorted(c.since_resume_s for c in found if c.since_resume_s is not None)
        pauses = sorted(c.pause_s for c in found if c.pause_s is not None)
        print(f"| {label} | {level.get('turns')} | {level.get('cut_ins')} | {len(in_pause)} | "
              f"{len(went_on)} ({', '.join(f'{s:.2f}' for s in went_on)}) | {', '.join(f'{p:.2f}' for p in pauses)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

#!/usr/bin/env python3
"""VAD onsets of a caller's *next* turn: after an earlier turn and a pause (the bot speaking), not on a fresh line.

Each case is a phone turn (``scripts/phone_turns.py``, seed 1), then ``--gap`` seconds of line hiss
or of digital silence (the bot's answer; the caller is quiet), then another turn; all through the
telephone channel (8 kHz µ-law) and the call's endpointer (narrowband settings, as a phone call
gets). Reported per ``vad.idle_reset_ms``: how late the second turn's ``SpeechStarted`` comes
after its first sample (p50 / p90 / max), how many turns lose their onset (the turn's audio,
pre-roll included, starts after the first sample), and false turns started on 60 s of hiss alone.

    nice -n 10 .venv/bin/python scripts/bench_onset_followup.py [--cases 30] [--gap 5] [--resets 0,1000,2000]
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from phone_turns import build_turns  # noqa: E402

from voicebot.asr.streaming import endpointer_settings  # noqa: E402
from voicebot.audio.channel import telephone_channel  # noqa: E402
from voicebot.audio.resample import resample  # noqa: E402
from voicebot.config import Settings  # noqa: E402
from voicebot.eval.asr_cases import RATE, line_noise  # noqa: E402
from voicebot.frames import AudioFrame, SpeechStarted  # noqa: E402
from voicebot.vad import Endpointer, EndpointerSettings, SileroVadModel, build_detector  # noqa: E402

FRAME = 320  # 20 ms, as a telephony gateway sends


def phone(audio: np.ndarray) -> np.ndarray:
    return resample(*telephone_channel(audio, RATE), RATE)


def second_onset(settings: EndpointerSettings, model: SileroVadModel, audio: np.ndarray,
                 onset_s: float) -> tuple[float, bool] | None:
    """(delay of the first SpeechStarted at or after the second turn, whether its turn audio misses the onset)."""
    ep = Endpointer(settings, build_detector(settings, model))
    for i in range(0, len(audio) - FRAME + 1, FRAME):
        for event in ep.process(AudioFrame(audio[i : i + FRAME], RATE, i / RATE)):
            if isinstance(event, SpeechStarted) and event.t >= onset_s - 0.5:
                return event.t - onset_s, ep.turn_audio_start > onset_s + 0.005
    return None


def false_starts(settings: EndpointerSettings, model: SileroVadModel, seconds: float = 60.0) -> int:
    ep = Endpointer(settings, build_detector(settings, model))
    hiss = phone(line_noise(seconds, dbfs=-45.0, seed=99))
    return sum(isinstance(e, SpeechStarted) for i in range(0, len(hiss) - FRAME + 1, FRAME)
               for e in ep.process(AudioFrame(hiss[i : i + FRAME], RATE, i / RATE)))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=30)
    ap.add_argument("--gap", type=float, default=5.0, help="seconds between the two turns")
    ap.add_argument("--resets", default="0,1000,2000", help="vad.idle_reset_ms values to compare")
    args = ap.parse_args()
    model = SileroVadModel().load()
    base = endpointer_settings(Settings().vad, narrowband=True)
    turns = build_turns(40, seed=1)
    print(f"{args.cases} pairs of phone turns, {args.gap:g} s apart; pre-roll {base.pre_roll_ms} ms\n")
    print("| idle_reset_ms | between the turns | onset delay p50 / p90 / max ms | onsets lost "
          "| false turns on 60 s hiss |")
    print("|---|---|---|---|---|")
    for reset in (int(x) for x in args.resets.split(",")):
        settings = replace(base, idle_reset_ms=reset)
        hiss_false = false_starts(settings, model)
        for gap_kind in ("line hiss", "digital silence"):
            delays, lost = [], 0
            for k in range(args.cases):
                first, second = turns[(k + 1) % len(turns)].audio, turns[k].audio
                gap = (line_noise(args.gap, dbfs=-45.0, seed=k) if gap_kind == "line hiss"
                       else np.zeros(int(args.gap * RATE), np.int16))
                tail = np.zeros(RATE, np.int16)
                found = second_onset(settings, model, phone(np.concatenate([first, gap, second, tail])),
                                     (len(first) + len(gap)) / RATE)
                if found is None:
                    lost += 1
                    continue
                delays.append(found[0] * 1000)
                lost += found[1]
            d = np.array(delays) if delays else np.zeros(1)
            print(f"| {reset} | {gap_kind} | {np.median(d):.0f} / {np.percentile(d, 90):.0f} / {d.max():.0f} | "
                  f"{lost} of {args.cases} | {hiss_false} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

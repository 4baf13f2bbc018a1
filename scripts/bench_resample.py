#!/usr/bin/env python
"""Phone audio into the recognizer: how late each 8 kHz frame reaches 16 kHz, and what it costs in WER.

Real German caller turns go through the telephone channel (8 kHz µ-law, line hiss) and back up to
16 kHz three ways, 20 ms frame by frame as a call delivers them (one-shot for the reference):

- ``soxr one-shot``: the whole turn at once (what offline evaluations do; the reference);
- ``soxr stream``: ``StreamResampler(8000, 16000)``, soxr "HQ" in blocks (before);
- ``FIR stream``: ``StreamResampler(8000, 16000, low_latency=True)``, the polyphase FIR (after).

For each it prints the audio held back after a frame (ms of input not yet out, mean / max), the CPU
per frame, the SNR against the reference (after the FIR's 3 ms delay) and whisper-base's WER on the
turns (beam 5, word timings, as finals are decoded).

    python scripts/bench_resample.py [--single 20] [--multi 8]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from phone_turns import PhoneTurn, build_turns  # noqa: E402

from voicebot.audio.channel import telephone_channel  # noqa: E402
from voicebot.audio.resample import StreamResampler, resample  # noqa: E402
from voicebot.config import load_settings  # noqa: E402
from voicebot.eval.asr_cases import RATE, line_noise, load_sources, trimmed  # noqa: E402
from voicebot.eval.metrics import word_errors  # noqa: E402

PHONE_RATE = 8000
FRAME = 160  # 20 ms at 8 kHz


def streamed(narrow: np.ndarray, low_latency: bool) -> tuple[np.ndarray, list[float], float]:
    """The turn upsampled frame by frame: (audio, ms held back after each frame, CPU s)."""
    stream = StreamResampler(PHONE_RATE, RATE, low_latency=low_latency)
    parts, held, fed, out = [], [], 0, 0
    cpu0 = time.process_time()
    for i in range(0, len(narrow), FRAME):
        chunk = stream.process(narrow[i : i + FRAME])
        parts.append(chunk)
        fed, out = fed + len(narrow[i : i + FRAME]), out + len(chunk)
        held.append(1000.0 * (fed / PHONE_RATE - out / RATE))
    cpu = time.process_time() - cpu0
    parts.append(stream.process(np.zeros(0, np.int16), last=True))
    return np.concatenate(parts), held, cpu


def snr_db(reference: np.ndarray, other: np.ndarray) -> float:
    n = min(len(reference), len(other))
    a, b = reference[:n].astype(np.float64), other[:n].astype(np.float64)
    return float(10 * np.log10((a * a).sum() / max(((a - b) ** 2).sum(), 1e-9)))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--single", type=int, default=20, help="single-sentence clips (speech-de-more, in order)")
    ap.add_argument("--multi", type=int, default=8, help="multi-sentence 3-20 s turns")
    args = ap.parse_args()

    from voicebot.asr.transcriber import Transcriber

    sources = load_sources(sets=("speech-de-more",))
    single = [PhoneTurn(c.path.stem, c.text, trimmed(c, margin_s=0.0)) for c in sorted(sources, key=lambda c: c.path)]
    turns = single[: args.single] + build_turns(args.multi, seed=7, sources=sources)
    # Speech from the first sample, 0.4 s of line hiss after the last word, as a call delivers a turn.
    narrow = [telephone_channel(np.concatenate([t.audio, line_noise(0.4, seed=i)]), RATE)[0]
              for i, t in enumerate(turns)]
    frames = sum(-(-len(x) // FRAME) for x in narrow)

    delay = 48  # the FIR's group delay in 16 kHz samples (voicebot.audio.resample)
    rows: dict[str, dict[str, object]] = {}
    reference = [resample(x, PHONE_RATE, RATE) for x in narrow]
    for name, low in (("soxr stream (HQ, before)", False), ("FIR stream (low_latency, after)", True)):
        runs = [streamed(x, low) for x in narrow]
        held = np.concatenate([r[1] for r in runs])
        shift = delay if low else 0
        snr = np.median([snr_db(ref, r[0][shift:]) for ref, r in zip(reference, runs, strict=True)])
        rows[name] = {"audio": [r[0][shift:] for r in runs], "held_mean": float(held.mean()),
                      "held_max": float(held.max()), "us_frame": 1e6 * sum(r[2] for r in runs) / frames,
                      "snr": float(snr)}
    rows["soxr one-shot (reference)"] = {"audio": reference, "held_mean": float("nan"), "held_max": float("nan"),
                                         "us_frame": float("nan"), "snr": float("inf")}

    settings = load_settings()
    asr = Transcriber(settings.asr, settings.models).load()
    asr.transcribe(np.zeros(RATE, np.float32), beam_size=1)  # warm-up
    refs = [t.text for t in turns]
    print(f"{len(turns)} phone turns ({args.single} single sentences, {args.multi} multi-sentence), "
          f"{frames} frames of 20 ms", file=sys.stderr)
    print("| upsampling 8 -> 16 kHz | held back after a frame, mean / max ms | CPU µs / frame | SNR vs one-shot dB "
          "| WER (beam 5) |")
    print("|---|---|---|---|---|")
    for name, row in rows.items():
        hyps = [asr.transcribe(pcm, beam_size=5, word_timestamps=True, final=True).text for pcm in row["audio"]]
        wer = word_errors(refs, hyps).rate
        print(f"| {name} | {row['held_mean']:.1f} / {row['held_max']:.1f} | {row['us_frame']:.0f} | "
              f"{row['snr']:.1f} | {wer:.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

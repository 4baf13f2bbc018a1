#!/usr/bin/env python
"""How a caller turn's confidence separates right from wrong transcripts on the phone line (`turn_confidence`).

The policy re-asks a turn whose transcript confidence is under ``asr_min_confidence`` (0.35). Each turn is
decoded once as a phone call's final (telephone channel, the call's window, beam 5, no fallback) and the
confidence is computed from that one decode in four ways: the geometric mean of all word probabilities
(``TranscriptionResult.confidence``, the rule before), the same without the first word
(``turn_confidence``, shipped: faster-whisper's alignment pass scores the first word without the prompt
the beam search had), the arithmetic mean, and ``exp(avg_logprob)``. "Right" = WER <= 0.2, "wrong" =
WER >= 0.5. Printed per group: right turns under the threshold (re-asked), wrong ones at or over it (let
through), and the AUC of right against wrong.

Groups: ``scenarios`` (the call scenarios' caller turns, Pico; run scripts/make_scenario_audio.py first),
``shared`` (the 193 clips of eval/speech-de.jsonl, line hiss around), ``answers`` (short caller answers,
both Pico voices, line hiss around: scripts/bench_short_turns.py's).

    flock /tmp/voicebot-cpu.lock nice -n 10 .venv/bin/python scripts/bench_turn_confidence.py [--groups ...] [--limit N]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from voicebot.asr.transcriber import Transcriber, TranscriptionResult  # noqa: E402
from voicebot.audio.io import load_for_asr  # noqa: E402
from voicebot.config import load_settings  # noqa: E402
from voicebot.eval.asr_cases import RATE  # noqa: E402
from voicebot.eval.metrics import wer  # noqa: E402
from voicebot.eval.short_turns import levelled, on_the_line  # noqa: E402
from voicebot.eval.turn_end import phone  # noqa: E402

THRESHOLD = 0.35  # pipelines/default/domain.toml asr_min_confidence
VARIANTS: dict[str, Callable[[TranscriptionResult], float]] = {
    "all words (before)": lambda r: r.confidence,
    "first word left out (shipped)": lambda r: r.turn_confidence,
    "arithmetic mean": lambda r: (float(np.mean([w.probability for w in r.words])) * (1 - 0.5 * r.no_speech_prob)
                                  if r.words else r.confidence),
    "exp(avg_logprob)": lambda r: math.exp(min(0.0, r.avg_logprob)) * (1 - 0.5 * r.no_speech_prob),
}


def turns(group: str, settings, limit: int) -> list[tuple[str, np.ndarray]]:  # type: ignore[no-untyped-def]
    """(reference text, 16 kHz phone-line audio) of one group."""
    out: list[tuple[str, np.ndarray]] = []
    if group == "scenarios":
        manifest = REPO / "eval" / "audio" / "calls.jsonl"
        if not manifest.is_file():
            raise SystemExit(f"{manifest} not found: run scripts/make_scenario_audio.py first")
        for row in manifest.read_text(encoding="utf-8").splitlines():
            for t in json.loads(row)["turns"]:
                out.append((t["text"], phone(load_for_asr(manifest.parent / t["audio"], RATE))))
    elif group == "shared":
        manifest = REPO / "eval" / "speech-de.jsonl"
        for i, row in enumerate(manifest.read_text(encoding="utf-8").splitlines()):
            item = json.loads(row)
            pcm = load_for_asr((manifest.parent / item["audio"]).resolve(), RATE)
            out.append((item["text"], on_the_line(levelled(pcm), seed=i)))
    else:
        from bench_short_turns import answer_turns

        out = [(text, on_the_line(speech, seed=1000 + i)) for i, (_, text, speech) in
               enumerate(answer_turns(settings, 3.5))]
    return out[:limit] if limit else out


def auc(right: list[float], wrong: list[float]) -> float:
    if not right or not wrong:
        return float("nan")
    return float(np.mean([(a > b) + 0.5 * (a == b) for a in right for b in wrong]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--groups", default="scenarios,shared,answers")
    ap.add_argument("--limit", type=int, default=0, help="at most this many turns per group (0: all)")
    args = ap.parse_args()
    settings = load_settings()
    asr = Transcriber(settings.asr, settings.models).load()
    print(f"| turns | n (right / wrong) | {' | '.join(VARIANTS)} |")
    print(f"|---|---|{'---|' * len(VARIANTS)}")
    for group in args.groups.split(","):
        scored: list[tuple[float, TranscriptionResult]] = []
        for text, audio in turns(group, settings, args.limit):
            short = len(audio) / RATE < settings.asr.final_short_turn_s
            result = asr.transcribe(audio, beam_size=settings.asr.final_beam_size, final=True, fallback=False,
                                    window_s=settings.asr.final_short_window_s if short else None)
            scored.append((wer([text], [result.text]), result))
        right = [r for w, r in scored if w <= 0.2]
        wrong = [r for w, r in scored if w >= 0.5]
        cells = []
        for f in VARIANTS.values():
            a, b = [f(r) for r in right], [f(r) for r in wrong]
            cells.append(f"{sum(x < THRESHOLD for x in a)} / {sum(x >= THRESHOLD for x in b)} / {auc(a, b):.3f}")
        print(f"| {group} | {len(scored)} ({len(right)} / {len(wrong)}) | {' | '.join(cells)} |", flush=True)
    print(f"\ncells: right turns under {THRESHOLD} (re-asked) / wrong turns at or over it (let through) / AUC")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

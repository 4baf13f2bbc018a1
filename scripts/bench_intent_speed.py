#!/usr/bin/env python3
"""The intent classifier's cost per turn with the encoder float vs int8-quantized (`nlu.quantize`), side by side.

Both classifiers are loaded in one process, then every line of ``--data`` is classified one at a time
(``IntentClassifier.predict``: e5 + n-gram + safety lexicon, what a call's intent stage runs) by each,
alternating which goes first, on ``--threads`` torch threads (a server's ``nlu.serve_threads``, 1).
Printed: ms per classification (p50 / p95 / mean), the ratio, how many top-1 labels differ and the
largest probability difference. ``--memory`` also loads each variant alone in a child process and
reports load seconds and resident memory after the load (and the peak during it).

    flock /tmp/voicebot-cpu.lock nice -n 10 .venv/bin/python scripts/bench_intent_speed.py --lines 0 --memory
    .venv/bin/python scripts/bench_intent_speed.py --data eval/intent/dev_asr.jsonl --threads 2
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from voicebot.config import Settings, load_settings  # noqa: E402 - after the path set-up for a plain checkout
from voicebot.nlu.intent import IntentClassifier, load_intent_classifier  # noqa: E402
from voicebot.nlu.train import read_examples  # noqa: E402


@dataclass(frozen=True)
class LoadStats:
    """One variant loaded alone in a fresh process."""

    quantize: bool
    load_s: float
    rss_mb: float  # resident after the load (what the server keeps)
    peak_mb: float  # the process's peak (the float encoder is built before it is quantized)


def rss_mb() -> float:
    # /proc is Linux-only, as is the server; VmRSS is in kB.
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def with_quantize(settings: Settings, quantize: bool) -> Settings:
    return replace(settings, nlu=replace(settings.nlu, quantize=quantize))


def child_load(quantize: bool) -> LoadStats:
    import torch  # noqa: F401 - imported before the clock: the import costs the same for both variants

    settings = with_quantize(load_settings(), quantize)
    started = time.perf_counter()
    classifier = load_intent_classifier(settings, "e5")
    classifier.predict("warm-up")
    load_s = time.perf_counter() - started
    return LoadStats(quantize, load_s, rss_mb(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0)


def load_stats(quantize: bool) -> LoadStats:
    out = subprocess.run([sys.executable, __file__, "--child", "1" if quantize else "0"], check=True,
                         capture_output=True, text=True).stdout
    return LoadStats(**json.loads(out.strip().splitlines()[-1]))


def percentiles(ms: list[float]) -> tuple[float, float, float]:
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 95)), float(np.mean(ms))


def run(data: Path, lines: int, threads: int, warmup: int) -> None:
    import torch

    texts = [e.text for e in read_examples(data)][: lines or None]
    settings = load_settings()
    classifiers: dict[bool, IntentClassifier] = {
        q: load_intent_classifier(with_quantize(settings, q), "e5") for q in (False, True)
    }
    torch.set_num_threads(threads)  # loading sets nlu.threads; a server then sets serve_threads
    for text in texts[:warmup]:
        for c in classifiers.values():
            c.predict(text)
    times: dict[bool, list[float]] = {False: [], True: []}
    probs: dict[bool, list[np.ndarray]] = {False: [], True: []}
    labels: dict[bool, list[str]] = {False: [], True: []}
    for i, text in enumerate(texts):
        for q in ((False, True) if i % 2 == 0 else (True, False)):  # alternate: neither always runs warm
            started = time.perf_counter()
            p = classifiers[q].predict(text)
            times[q].append((time.perf_counter() - started) * 1000.0)
            labels[q].append(p.label)
            probs[q].append(np.array([p.probability(name) for name in classifiers[q].labels]))
    differ = sum(a != b for a, b in zip(labels[False], labels[True], strict=True))
    dp = float(np.max(np.abs(np.array(probs[False]) - np.array(probs[True]))))
    f50, f95, fmean = percentiles(times[False])
    q50, q95, qmean = percentiles(times[True])
    print(f"{len(texts)} lines of {data.relative_to(REPO) if data.is_relative_to(REPO) else data}, "
          f"{threads} torch thread(s), one classification at a time\n")
    print("| encoder | p50 ms | p95 ms | mean ms |")
    print("|---|---:|---:|---:|")
    print(f"| float (quantize off) | {f50:.1f} | {f95:.1f} | {fmean:.1f} |")
    print(f"| int8 dynamic (quantize on) | {q50:.1f} | {q95:.1f} | {qmean:.1f} |")
    print(f"| ratio on/off | {q50 / f50:.2f} | {q95 / f95:.2f} | {qmean / fmean:.2f} |")
    print(f"\ntop-1 labels differing: {differ} of {len(texts)}; largest probability difference {dp:.4f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=REPO / "eval" / "intent" / "dev.jsonl",
                    help="labelled JSONL; only the texts are used (default: eval/intent/dev.jsonl)")
    ap.add_argument("--lines", type=int, default=200, help="first N lines (0: all; default 200)")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1, as served)")
    ap.add_argument("--warmup", type=int, default=10, help="lines classified untimed first (default 10)")
    ap.add_argument("--memory", action="store_true", help="also load each variant alone: seconds and RSS")
    ap.add_argument("--child", choices=("0", "1"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        print(json.dumps(child_load(args.child == "1").__dict__))
        return 0
    run(args.data.resolve(), args.lines, args.threads, args.warmup)
    if args.memory:
        print("\n| encoder | load s | RSS after load MB | peak RSS MB |")
        print("|---|---:|---:|---:|")
        for q in (False, True):
            s = load_stats(q)
            print(f"| {'int8 dynamic' if q else 'float'} | {s.load_s:.2f} | {s.rss_mb:.0f} | {s.peak_mb:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

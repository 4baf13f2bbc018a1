#!/usr/bin/env python
"""End-of-turn engines: CPU and wall time per inference, one at a time, on real German speech.

Smart Turn v3.2 (one onnxruntime thread) is split into the numpy log-mel front end and the
ONNX run; the text end-of-utterance model, the text cues and one decision are timed on
whisper transcripts of the same set. CPU time is this process's (``time.process_time``), so it
stays honest on a busy machine where wall time does not. Nothing is asserted; a table is printed.

    nice -n 10 .venv/bin/python scripts/bench_turn.py --n 30
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

from voicebot.audio.io import load_for_asr
from voicebot.config import REPO_ROOT, load_settings
from voicebot.eval.stats import percentile
from voicebot.turn.cues import incomplete_cue
from voicebot.turn.decision import TurnEndDecider
from voicebot.turn.features import last_window, log_mel
from voicebot.turn.smart_turn import SmartTurnModel
from voicebot.turn.text_eou import TextTurnModel

MORE = REPO_ROOT.parent / "shared" / "data" / "speech-de-more"


def timed(fn: Callable[[], object], n: int) -> tuple[list[float], list[float]]:
    cpu, wall = [], []
    for _ in range(n):
        c0, w0 = time.process_time(), time.perf_counter()
        fn()
        cpu.append((time.process_time() - c0) * 1000)
        wall.append((time.perf_counter() - w0) * 1000)
    return cpu, wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=30, help="inferences per engine (default 30)")
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime threads for Smart Turn (default 1)")
    args = parser.parse_args()
    settings = load_settings()
    items = [json.loads(line) for line in (MORE / "manifest.jsonl").read_text(encoding="utf-8").splitlines()]
    clips = [load_for_asr(MORE / it["audio"]) for it in items[: args.n]]
    texts = [it["text"] for it in items]
    smart = SmartTurnModel.from_settings(settings.models, threads=args.threads).load()
    w0 = time.perf_counter()
    text_model = TextTurnModel.load(settings.models.dir)
    text_load = time.perf_counter() - w0
    decider = TurnEndDecider()
    smart.predict(clips[0])  # warm-up: onnxruntime's first run allocates
    it = iter(range(10**9))

    def clip() -> object:
        return clips[next(it) % len(clips)]

    rows = {
        "smart turn: features (numpy)": timed(lambda: log_mel(last_window(clip())), args.n),  # type: ignore[arg-type]
        "smart turn: total (features + onnx)": timed(lambda: smart.predict(clip()), args.n),  # type: ignore[arg-type]
        "text model: predict": timed(lambda: text_model.predict(texts[next(it) % len(texts)]), args.n * 10),
        "text cues": timed(lambda: incomplete_cue(texts[next(it) % len(texts)]), args.n * 10),
        "decide()": timed(lambda: decider.decide(300.0, 0.8, 0.7, texts[next(it) % len(texts)]), args.n * 10),
    }
    print(f"end-of-turn engines, one call at a time (Smart Turn: {args.threads} onnxruntime thread(s); "
          f"text model loaded in {text_load:.2f} s)")
    print(f"{'engine':38} {'n':>5} {'cpu p50':>9} {'cpu p90':>9} {'wall p50':>9} {'wall p90':>9}  (ms)")
    for name, (cpu, wall) in rows.items():
        print(f"{name:38} {len(cpu):5d} {percentile(cpu, 50):9.2f} {percentile(cpu, 90):9.2f} "
              f"{percentile(wall, 50):9.2f} {percentile(wall, 90):9.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

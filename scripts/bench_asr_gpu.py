#!/usr/bin/env python
"""Many concurrent calls through one batched Whisper: throughput and end-of-turn → final latency.

Each of N simulated calls speaks real German turns (1–5 s clips): a turn ends, its
audio is submitted; when its final transcript is back the bot "answers" for a
random 1–3 s, then the caller's next turn plays for its own duration and ends.
One worker decodes everything that has arrived, up to ``--max-batch`` utterances,
in one ``transcribe_batch`` call (the torch backend's one encoder batch per window
size and one greedy loop), exactly what the ASR scheduler does with finals.
Wall-clock driven: latency includes queueing behind the batch in flight.

    .venv/bin/python scripts/bench_asr_gpu.py --device cpu --calls 2,4,8 --turns 3
    python3 scripts/bench_asr_gpu.py --device cuda --calls 8,32,128,512 \
        --model models/store/whisper-base-hf --clips clips.npz      # on a GPU host, see docs/GPU.md

``--write-clips clips.npz`` saves the clips as int16 arrays so a host without
soundfile/libsndfile (or without the shared data) can run the benchmark.
Prints one markdown table (and ``--json`` writes the raw numbers).
"""

from __future__ import annotations

import argparse
import heapq
import json
import random
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SPEECH_DIR = REPO.parent / "shared" / "data" / "speech-de"


def load_clips(args: argparse.Namespace) -> list[np.ndarray]:
    """Real German clips of 1–5 s as 16 kHz int16 arrays (from the shared data or an npz cache)."""
    if args.clips and Path(args.clips).is_file():
        with np.load(args.clips) as data:
            return [data[k] for k in sorted(data.files)]
    import soundfile as sf

    manifest = Path(args.speech_dir) / "manifest.jsonl"
    if not manifest.is_file():
        sys.exit(f"no clips: {manifest} missing and no --clips npz given")
    clips = []
    for line in manifest.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if 1.0 <= float(row["seconds"]) <= 5.0:
            pcm, rate = sf.read(str(Path(args.speech_dir) / row["audio"]), dtype="int16")
            if rate == 16000 and pcm.ndim == 1:
                clips.append(pcm)
    return clips


def simulate(engine, clips: list[np.ndarray], calls: int, turns: int, max_batch: int, seed: int) -> dict:
    """Run ``calls`` callers for ``turns`` turns each; returns throughput and latency figures."""
    rng = random.Random(seed)
    start = time.perf_counter()
    events: list[tuple[float, int, int]] = []  # (end-of-turn time, call, turn)
    for call in range(calls):
        first = rng.choice(clips)
        # staggered starts: calls don't all end their first turn in the same instant
        heapq.heappush(events, (start + rng.uniform(0, 3.0) + len(first) / 16000, call, 0))
    audio_of: dict[tuple[int, int], np.ndarray] = {(c, 0): rng.choice(clips) for c in range(calls)}
    ready: list[tuple[float, int, int]] = []
    latencies: list[float] = []
    batches: list[int] = []
    audio_seconds = 0.0
    while events or ready:
        now = time.perf_counter()
        while events and events[0][0] <= now:
            ready.append(heapq.heappop(events))
        if not ready:
            time.sleep(max(0.0, min(0.05, events[0][0] - now)))
            continue
        batch, ready = ready[:max_batch], ready[max_batch:]
        audios = [audio_of.pop((c, t)) for _, c, t in batch]
        engine.transcribe_batch(audios, word_timestamps=True)
        done = time.perf_counter()
        batches.append(len(batch))
        audio_seconds += sum(len(a) for a in audios) / 16000
        for ended, call, turn in batch:
            latencies.append(done - ended)
            if turn + 1 < turns:
                nxt = rng.choice(clips)
                audio_of[(call, turn + 1)] = nxt
                heapq.heappush(events, (done + rng.uniform(1.0, 3.0) + len(nxt) / 16000, call, turn + 1))
    wall = time.perf_counter() - start
    lat = np.array(latencies) * 1000
    return {
        "calls": calls, "utterances": len(latencies), "wall_s": wall,
        "throughput_utt_s": len(latencies) / wall, "audio_s_per_s": audio_seconds / wall,
        "mean_batch": float(np.mean(batches)), "max_batch": int(max(batches)),
        "p50_ms": float(np.percentile(lat, 50)), "p95_ms": float(np.percentile(lat, 95)),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    parser.add_argument("--calls", default="8,32,128,512", help="comma-separated numbers of concurrent calls")
    parser.add_argument("--turns", type=int, default=4, help="turns per call")
    parser.add_argument("--max-batch", type=int, default=256, help="most utterances per transcribe_batch")
    parser.add_argument("--model", default="", help="registry name or path (HF checkpoint or CTranslate2 dir)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for torch")
    parser.add_argument("--speech-dir", default=str(SPEECH_DIR))
    parser.add_argument("--clips", default="", help="npz of int16 clips (written by --write-clips)")
    parser.add_argument("--write-clips", default="", help="save the clips to this npz and exit")
    parser.add_argument("--json", default="", help="also write the results here")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    clips = load_clips(args)
    if args.write_clips:
        arrays: dict[str, np.ndarray] = {f"clip{i:04d}": c for i, c in enumerate(clips)}
        np.savez_compressed(args.write_clips, **arrays)  # type: ignore[arg-type]
        print(f"wrote {len(clips)} clips to {args.write_clips}")
        return 0

    import torch

    from voicebot.asr.torch_backend import TorchTranscriber
    from voicebot.config import load_settings

    torch.set_num_threads(args.threads)
    settings = load_settings()
    asr = replace(settings.asr, device=args.device, cpu_threads=args.threads, model=args.model or settings.asr.model)
    started = time.perf_counter()
    engine = TorchTranscriber(asr, settings.models).load()
    load_s = time.perf_counter() - started
    warm = [clips[i % len(clips)] for i in range(min(args.max_batch, 64 if args.device == "cuda" else 4))]
    engine.transcribe_batch(warm)  # kernels, allocator, caches
    one = engine.transcribe(clips[0])
    t0 = time.perf_counter()
    for clip in clips[:3]:
        engine.transcribe(clip)
    single_ms = (time.perf_counter() - t0) / 3 * 1000

    rows = [simulate(engine, clips, n, args.turns, args.max_batch, args.seed)
            for n in (int(x) for x in args.calls.split(","))]
    device = torch.cuda.get_device_name(0) if args.device == "cuda" else f"CPU, {args.threads} threads"
    dtype = str(engine.dtype).removeprefix("torch.")
    print(f"\nTorch Whisper ({Path(engine.model_dir or '').name}, {dtype}) on {device}; "
          f"load {load_s:.1f} s; one utterance alone {single_ms:.0f} ms (e.g. {one.text!r}); "
          f"{args.turns} turns per call, clips 1–5 s, max batch {args.max_batch}\n")
    print("| calls | utterances | utt/s | audio s/s | mean batch | p50 ms | p95 ms |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['calls']} | {r['utterances']} | {r['throughput_utt_s']:.1f} | {r['audio_s_per_s']:.1f} | "
              f"{r['mean_batch']:.1f} | {r['p50_ms']:.0f} | {r['p95_ms']:.0f} |")
    if args.device == "cuda":
        print(f"\npeak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")
    if args.json:
        Path(args.json).write_text(json.dumps({"device": device, "single_ms": single_ms, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

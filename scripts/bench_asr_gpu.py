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
``--telephone`` takes the 4–10 s read sentences of speech-de-more through the phone
line (8 kHz µ-law, band-passed, back to 16 kHz as the server hands it to ASR), and
``--join 3`` makes each turn 1–3 of them back to back (turns of ~4–20 s, as callers
speak on the phone line), so windows and batches are sized like real calls.
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
PHONE_SPEECH_DIR = REPO.parent / "shared" / "data" / "speech-de-more"
MAX_TURN_S = 20.0


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
    low, high = (3.0, 12.0) if args.telephone else (1.0, 5.0)
    for line in manifest.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if low <= float(row["seconds"]) <= high:
            pcm, rate = sf.read(str(Path(args.speech_dir) / row["audio"]), dtype="int16")
            if pcm.ndim != 1:
                continue
            if args.telephone:
                from voicebot.audio.channel import telephone_channel
                from voicebot.audio.resample import resample

                pcm = resample(*telephone_channel(pcm, rate), 16000)
            elif rate != 16000:
                continue
            clips.append(pcm)
    return clips


def turn_audio(rng: random.Random, clips: list[np.ndarray], join: int) -> np.ndarray:
    """One caller turn: 1..join clips back to back, at most MAX_TURN_S long."""
    parts = [rng.choice(clips) for _ in range(rng.randint(1, max(1, join)))]
    return np.concatenate(parts)[: int(MAX_TURN_S * 16000)]


def simulate(engine, clips: list[np.ndarray], calls: int, turns: int, max_batch: int, seed: int,
             join: int = 1) -> dict:
    """Run ``calls`` callers for ``turns`` turns each; returns throughput and latency figures."""
    rng = random.Random(seed)
    start = time.perf_counter()
    events: list[tuple[float, int, int]] = []  # (end-of-turn time, call, turn)
    audio_of: dict[tuple[int, int], np.ndarray] = {}
    for call in range(calls):
        first = audio_of[(call, 0)] = turn_audio(rng, clips, join)
        # staggered starts: calls don't all end their first turn in the same instant
        heapq.heappush(events, (start + rng.uniform(0, 3.0) + len(first) / 16000, call, 0))
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
                nxt = turn_audio(rng, clips, join)
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


def _sizes(spec: str) -> list[int]:
    """'1-4,8' → [1, 2, 3, 4, 8]."""
    sizes: list[int] = []
    for part in filter(None, spec.split(",")):
        low, _, high = part.partition("-")
        sizes.extend(range(int(low), int(high or low) + 1))
    return sizes


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
    parser.add_argument("--telephone", action="store_true", help="speech-de-more through the phone line (with --write-clips)")
    parser.add_argument("--join", type=int, default=1, help="each turn is 1..JOIN clips back to back (max 20 s)")
    parser.add_argument("--endpoint-ms", type=float, default=200.0,
                        help="end-of-turn decision after the last voiced frame, for the voice-to-voice estimate")
    parser.add_argument("--answer-ms", type=float, default=100.0,
                        help="intent + first synthesized audio after the final, for the voice-to-voice estimate")
    parser.add_argument("--min-window", type=int, default=0, help="shortest encoder window in s (0: asr.chunk_length)")
    parser.add_argument("--warm-batches", default="", help="batch sizes to warm up at the shortest window, e.g. 1-32,64")
    args = parser.parse_args()
    if args.telephone and args.speech_dir == str(SPEECH_DIR):
        args.speech_dir = str(PHONE_SPEECH_DIR)

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
    engine = TorchTranscriber(asr, settings.models, min_window_s=args.min_window or None).load()
    load_s = time.perf_counter() - started
    warm = [clips[i % len(clips)] for i in range(min(args.max_batch, 64 if args.device == "cuda" else 4))]
    engine.transcribe_batch(warm)  # kernels, allocator, caches
    for size in _sizes(args.warm_batches):  # every new batch shape pays a first-call cost on CUDA
        engine.transcribe_batch([clips[i % len(clips)] for i in range(size)])
    one = engine.transcribe(clips[0])
    t0 = time.perf_counter()
    for clip in clips[:3]:
        engine.transcribe(clip)
    single_ms = (time.perf_counter() - t0) / 3 * 1000

    rows = [simulate(engine, clips, n, args.turns, args.max_batch, args.seed, args.join)
            for n in (int(x) for x in args.calls.split(","))]
    for r in rows:
        r["v2v_p95_est_ms"] = args.endpoint_ms + r["p95_ms"] + args.answer_ms
        r["fits"] = r["p95_ms"] <= 500 and r["v2v_p95_est_ms"] <= 1000
    device = torch.cuda.get_device_name(0) if args.device == "cuda" else f"CPU, {args.threads} threads"
    dtype = str(engine.dtype).removeprefix("torch.")
    print(f"\nTorch Whisper ({Path(engine.model_dir or '').name}, {dtype}) on {device}; "
          f"load {load_s:.1f} s; one utterance alone {single_ms:.0f} ms (e.g. {one.text!r}); "
          f"{args.turns} turns per call, {len(clips)} clips, 1–{args.join} per turn, max batch {args.max_batch}; "
          f"voice→voice estimate = {args.endpoint_ms:.0f} ms end of turn + final p95 + {args.answer_ms:.0f} ms answer\n")
    print("| calls | utterances | utt/s | audio s/s | mean batch | final p50 ms | final p95 ms "
          "| v2v p95 est. ms | fits (final ≤ 500, v2v ≤ 1000) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        print(f"| {r['calls']} | {r['utterances']} | {r['throughput_utt_s']:.1f} | {r['audio_s_per_s']:.1f} | "
              f"{r['mean_batch']:.1f} | {r['p50_ms']:.0f} | {r['p95_ms']:.0f} | {r['v2v_p95_est_ms']:.0f} | "
              f"{'yes' if r['fits'] else 'no'} |")
    fitting = [r["calls"] for r in rows if r["fits"]]
    print(f"\ncalls per GPU (largest N that fits): {max(fitting) if fitting else 'none of the rows'}")
    if args.device == "cuda":
        print(f"\npeak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")
    if args.json:
        Path(args.json).write_text(json.dumps({"device": device, "single_ms": single_ms, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

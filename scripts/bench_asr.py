#!/usr/bin/env python
"""Streaming-ASR benchmark: N concurrent simulated calls through StreamingRecognizer + one AsrScheduler.

Each call streams real German speech (clips from the shared set with 0.6-1.8 s
pauses between them, like a caller answering questions) in real time, 20 ms
frames, through the real VAD and streaming recognizer; all calls share one
model through one scheduler. Reported per configuration and number of calls:

* partial lag: how far behind the live audio a partial is when it arrives
  (arrival time minus the stream time of the last audio it covers), p50/p95;
* partials per turn, and partial requests the scheduler dropped (stale or replaced);
* end of turn -> final: from the moment the endpointer ended the turn (speech end
  + ``vad.end_silence_ms``, on the stream clock) to the final transcript, p50/p95;
* CPU: process CPU seconds per wall second (cores busy; the machine has ``os.cpu_count()``);
* RTF: ASR worker busy time over the call audio streamed (all calls together).

Configurations: ``--configs`` picks from ``priority`` (the default scheduler),
``fifo`` (no final priority, no dropping), ``batch4`` (priority + CTranslate2
batches of up to 4) and ``window30`` (priority, 30 s encoder window). Usage:

    .venv/bin/python scripts/bench_asr.py --calls 1,4 --duration 20
    .venv/bin/python scripts/bench_asr.py --batching 1,2,4,8   # engine only: does batching pay here?
    .venv/bin/python scripts/bench_asr.py --workers 1,2 --phone --clips 6   # concurrent decode workers
    .venv/bin/python scripts/bench_asr.py --lone --phone --clips 8   # threads of a lone final (asr.lone_encode_threads)
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import random
import resource
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from voicebot.asr.scheduler import AsrScheduler  # noqa: E402
from voicebot.asr.streaming import StreamingRecognizer  # noqa: E402
from voicebot.asr.transcriber import ASR_SAMPLE_RATE, Transcriber  # noqa: E402
from voicebot.audio.io import load_for_asr  # noqa: E402
from voicebot.config import Settings, load_settings  # noqa: E402
from voicebot.eval.asr import load_vad_model  # noqa: E402
from voicebot.frames import AudioFrame, SpeechEnded, Transcript  # noqa: E402

SPEECH_DIR = REPO.parent / "shared" / "data" / "speech-de"
CONFIGS = {
    "priority": {},
    "fifo": {"prioritize": False},
    "batch4": {"max_batch": 4},
    "window30": {"chunk_length": 30},
}
FRAME = ASR_SAMPLE_RATE // 50  # 20 ms


def load_clips(speech_dir: Path, limit: int) -> list[np.ndarray]:
    rows = [json.loads(line) for line in (speech_dir / "manifest.jsonl").read_text(encoding="utf-8").splitlines()]
    rows = [r for r in rows if r["seconds"] >= 1.5][:limit]
    return [load_for_asr(speech_dir / r["audio"]) for r in rows]


def call_audio(clips: list[np.ndarray], seconds: float, rng: random.Random) -> np.ndarray:
    parts: list[np.ndarray] = []
    total = 0
    while total < seconds * ASR_SAMPLE_RATE:
        pause = np.zeros(int(rng.uniform(0.6, 1.8) * ASR_SAMPLE_RATE), dtype=np.int16)
        parts += [pause, rng.choice(clips)]
        total += len(parts[-2]) + len(parts[-1])
    # Trailing silence so the last turn ends inside the run.
    parts.append(np.zeros(ASR_SAMPLE_RATE, dtype=np.int16))
    return np.concatenate(parts)


async def one_call(rec: StreamingRecognizer, audio: np.ndarray, delay: float, m: dict[str, list[float]]) -> None:
    loop = asyncio.get_running_loop()
    await asyncio.sleep(delay)
    t0 = loop.time()
    end_silence = rec.endpointer.settings.end_silence_ms / 1000.0
    decided_at: float | None = None  # stream time at which the endpointer ended the turn

    def handle(frames: list[Any]) -> None:
        nonlocal decided_at
        now = loop.time() - t0  # on the stream's clock (audio is pushed in real time)
        for f in frames:
            if isinstance(f, SpeechEnded):
                # The endpointer decides end_silence after the speech end (ev.t). Measured from
                # there, not from when the event came out (a backlog delays both).
                decided_at = f.t + end_silence
                m["turns"].append(1)
            elif isinstance(f, Transcript) and f.is_final:
                if decided_at is not None:
                    m["final"].append(max(0.0, now - decided_at))
            elif isinstance(f, Transcript):
                m["lag"].append(now - f.end)

    for i in range(0, len(audio), FRAME):
        wait = t0 + i / ASR_SAMPLE_RATE - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        handle(await rec.push(AudioFrame(audio[i : i + FRAME], ASR_SAMPLE_RATE, i / ASR_SAMPLE_RATE)))
    handle(await rec.flush())
    await rec.aclose()


async def run_level(transcriber: Transcriber, settings: Settings, vad_model: Any, clips: list[np.ndarray],
                    n_calls: int, seconds: float, config: dict[str, Any], seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    sched_kwargs = {k: v for k, v in config.items() if k in ("prioritize", "max_batch")}
    scheduler = AsrScheduler(transcriber, settings.asr, **sched_kwargs)
    metrics: dict[str, list[float]] = {"lag": [], "final": [], "turns": []}
    async with scheduler:
        calls = [StreamingRecognizer(scheduler, settings, f"call-{i}", vad_model) for i in range(n_calls)]
        audios = [call_audio(clips, seconds, rng) for _ in calls]
        cpu0, wall0 = _cpu(), time.perf_counter()
        await asyncio.gather(*(one_call(rec, audio, rng.uniform(0, 1.0), metrics)
                               for rec, audio in zip(calls, audios, strict=True)))
        cpu, wall = _cpu() - cpu0, time.perf_counter() - wall0
        stats = scheduler.stats()
    streamed = sum(len(a) for a in audios) / ASR_SAMPLE_RATE
    turns = len(metrics["turns"])
    return {
        "calls": n_calls,
        "turns": turns,
        "partials_per_turn": len(metrics["lag"]) / turns if turns else 0.0,
        "partial_lag_p50": _pct(metrics["lag"], 50),
        "partial_lag_p95": _pct(metrics["lag"], 95),
        "partials_dropped": stats["partial"]["dropped_stale"] + stats["partial"]["replaced"],
        "partials_served": stats["partial"]["served"],
        "final_p50": _pct(metrics["final"], 50),
        "final_p95": _pct(metrics["final"], 95),
        "finals": len(metrics["final"]),
        "cpu_cores": cpu / wall,
        "rtf": stats["busy_seconds"] / streamed if streamed else 0.0,
        "mean_batch": stats["mean_batch"],
    }


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _pct(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value * 1000:.0f}"


def table(rows: list[dict[str, Any]]) -> str:
    head = ("| config | calls | turns | partial lag p50 / p95 (ms) | partials/turn | partials dropped | "
            "end of turn → final p50 / p95 (ms) | CPU (cores) | RTF |")
    lines = [head, "|" + "---|" * 9]
    for r in rows:
        lines.append(
            f"| {r['config']} | {r['calls']} | {r['turns']} | {_ms(r['partial_lag_p50'])} / {_ms(r['partial_lag_p95'])}"
            f" | {r['partials_per_turn']:.1f} | {r['partials_dropped']} | {_ms(r['final_p50'])} / {_ms(r['final_p95'])}"
            f" | {r['cpu_cores']:.2f} | {r['rtf']:.3f} |"
        )
    return "\n".join(lines)


def batching_table(transcriber: Transcriber, clips: list[np.ndarray], sizes: list[int], repeats: int = 3,
                   beams: tuple[int, ...] = (1, 5)) -> str:
    """Engine only: B turns decoded as one CTranslate2 batch vs one after another (wall and CPU per turn).

    Decoded as finals are (the final's window, word timings); a batch shares the window of its longest turn."""
    lines = ["| beam | batch | batched wall / turn (ms) | sequential wall / turn (ms) | batched CPU / turn (ms) | "
             "sequential CPU / turn (ms) |", "|" + "---|" * 6]
    transcriber.transcribe(clips[0])  # warm-up
    for beam in beams:
        for b in sizes:
            turns = [clips[i % len(clips)] for i in range(b)]
            timing: dict[str, tuple[float, float]] = {}
            for mode in ("batched", "sequential"):
                wall = cpu = 0.0
                for _ in range(repeats):
                    c0, w0 = _cpu(), time.perf_counter()
                    if mode == "batched":
                        transcriber.transcribe_batch(turns, beam_size=beam, word_timestamps=True, final=True)
                    else:
                        for t in turns:
                            transcriber.transcribe(t, beam_size=beam, word_timestamps=True, final=True)
                    wall += time.perf_counter() - w0
                    cpu += _cpu() - c0
                timing[mode] = (wall / repeats / b, cpu / repeats / b)
            lines.append(f"| {beam} | {b} | {timing['batched'][0] * 1000:.0f} | {timing['sequential'][0] * 1000:.0f} | "
                         f"{timing['batched'][1] * 1000:.0f} | {timing['sequential'][1] * 1000:.0f} |")
    return "\n".join(lines)


def workers_table(settings: Settings, clips: list[np.ndarray], workers: list[int]) -> str:
    """Engine only: the clips decoded as finals by W concurrent decode workers (``asr.decode_workers``,
    ``asr.cpu_threads`` split between them): wall for all, and one final alone."""

    lines = [f"| decode workers | threads each | {len(clips)} finals at once, wall s | one final alone, wall s |",
             "|---|---|---|---|"]
    for w in workers:
        asr = Transcriber(replace(settings.asr, decode_workers=w), settings.models).load()
        asr.transcribe(clips[0], final=True)  # warm-up
        started = time.perf_counter()
        with ThreadPoolExecutor(w) as pool:
            list(pool.map(functools.partial(asr.transcribe, final=True), clips))
        together = time.perf_counter() - started
        started = time.perf_counter()
        asr.transcribe(clips[1 % len(clips)], final=True)
        alone = time.perf_counter() - started
        lines.append(f"| {w} | {max(1, settings.asr.cpu_threads // w)} | {together:.2f} | {alone:.2f} |")
    return "\n".join(lines)


LONE_CONFIGS = {  # label: (decode_workers, cpu_threads, lone_encode_threads)
    "2 x 1 thread": (2, 2, 0),
    "2 x 1 + 2-thread lone encoder": (2, 2, 2),
    "2 x 2 threads": (2, 4, 0),
}


def lone_table(settings: Settings, clips: list[np.ndarray], rounds: int = 2) -> str:
    """Engine only: finals decoded alone (whole turns; 3 s tails after a cut in a 10 s window; the first 3 s of a
    turn as a short turn, native 30 s window) and two streams of finals at once, per thread layout. The layouts
    take turns round by round, so a shared machine's load falls on each alike."""
    engines = {label: Transcriber(replace(settings.asr, decode_workers=w, cpu_threads=t, lone_encode_threads=e,
                                          partial_lane=False), settings.models).load()
               for label, (w, t, e) in LONE_CONFIGS.items()}
    tail = 3 * ASR_SAMPLE_RATE
    cases = {"whole": [(c, None) for c in clips], "tail": [(c[-tail:], 10) for c in clips],
             "short": [(c[:tail], None) for c in clips]}
    walls: dict[tuple[str, str], list[float]] = {}
    cpus: dict[tuple[str, str], list[float]] = {}
    for asr in engines.values():
        asr.transcribe(clips[0], final=True)  # warm-up (and the wide encoder's OpenMP team)
    for _ in range(rounds):
        for label, asr in engines.items():
            for case, items in cases.items():
                for audio, window in items:
                    c0, w0 = _cpu(), time.perf_counter()
                    asr.transcribe(audio, final=True, window_s=window)
                    walls.setdefault((label, case), []).append(time.perf_counter() - w0)
                    cpus.setdefault((label, case), []).append(_cpu() - c0)
            c0, w0 = _cpu(), time.perf_counter()
            half = len(clips) // 2
            with ThreadPoolExecutor(2) as pool:
                list(pool.map(lambda part, a=asr: [a.transcribe(x, final=True) for x in part],
                              [clips[:half], clips[half:]]))
            walls.setdefault((label, "both"), []).append(time.perf_counter() - w0)
            cpus.setdefault((label, "both"), []).append(_cpu() - c0)
    audio_s = sum(len(c) for c in clips) / ASR_SAMPLE_RATE
    lines = ["| layout | lone whole turn p50 ms (CPU) | lone 3 s tail, 10 s window p50 ms (CPU) | "
             "lone 3 s short turn, 30 s window p50 ms (CPU) | two streams at once: wall s, CPU-s per audio-s |",
             "|---|---|---|---|---|"]
    for label in engines:
        cells = [f"{np.median(walls[label, c]) * 1000:.0f} ({np.mean(cpus[label, c]) * 1000:.0f})"
                 for c in ("whole", "tail", "short")]
        both = f"{np.mean(walls[label, 'both']):.2f}, {np.mean(cpus[label, 'both']) / audio_s:.4f}"
        lines.append(f"| {label} | {' | '.join(cells)} | {both} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", default="1,4", help="comma list of concurrent calls (default 1,4)")
    ap.add_argument("--duration", type=float, default=20.0, help="seconds of audio per call and level")
    ap.add_argument("--configs", default="priority,fifo", help=f"comma list of {', '.join(CONFIGS)}")
    ap.add_argument("--speech-dir", type=Path, default=SPEECH_DIR)
    ap.add_argument("--clips", type=int, default=60, help="clips to draw from (>= 1.5 s each)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", action="store_true", help="print JSON rows instead of the markdown table")
    ap.add_argument("--batching", default="", metavar="SIZES",
                    help="instead: engine-only batched vs sequential decoding for these batch sizes (e.g. 1,2,4,8)")
    ap.add_argument("--phone", action="store_true",
                    help="with --batching: multi-sentence 3-20 s turns through the telephone channel (phone_turns.py)")
    ap.add_argument("--beams", default="1,5", help="with --batching: beam sizes (default 1,5)")
    ap.add_argument("--workers", default="", metavar="W",
                    help="instead: finals decoded by W concurrent decode workers (e.g. 1,2), engine only")
    ap.add_argument("--lone", action="store_true",
                    help="instead: finals alone and two at once per thread layout (asr.lone_encode_threads)")
    args = ap.parse_args(argv)
    settings = load_settings()
    if args.phone:
        sys.path.insert(0, str(REPO / "scripts"))
        from phone_turns import build_turns

        from voicebot.audio.channel import telephone_channel
        from voicebot.audio.resample import resample

        clips = []
        for turn in build_turns(args.clips, seed=args.seed):
            narrow, rate = telephone_channel(turn.audio, ASR_SAMPLE_RATE)
            clips.append(resample(narrow, rate, ASR_SAMPLE_RATE))
    else:
        clips = load_clips(args.speech_dir, args.clips)
    if args.lone:
        print(lone_table(settings, clips))
        print(f"\nload average at the end {os.getloadavg()[0]:.1f}", file=sys.stderr)
        return 0
    transcriber = Transcriber(settings.asr, settings.models).load()
    vad_model = load_vad_model(settings)
    if args.workers:
        print(workers_table(settings, clips, [int(x) for x in args.workers.split(",")]))
        return 0
    if args.batching:
        print(batching_table(transcriber, clips, [int(x) for x in args.batching.split(",")],
                             beams=tuple(int(b) for b in args.beams.split(","))))
        return 0
    base_chunk = settings.asr.chunk_length
    rows = []
    for name in args.configs.split(","):
        config = CONFIGS[name]
        transcriber.settings = replace(settings.asr, chunk_length=config.get("chunk_length", base_chunk))
        for n in (int(x) for x in args.calls.split(",")):
            row = asyncio.run(run_level(transcriber, settings, vad_model, clips, n, args.duration, config, args.seed))
            row["config"] = name
            rows.append(row)
            print(f"{name} calls={n}: {json.dumps({k: v for k, v in row.items() if k != 'config'})}",
                  file=sys.stderr, flush=True)
    print(json.dumps(rows, indent=2) if args.json else table(rows))
    print(f"\nmachine: {os.cpu_count()} CPUs; load average at the end {os.getloadavg()[0]:.1f}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

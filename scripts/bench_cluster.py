#!/usr/bin/env python3
"""The load benchmark over the cluster of scripts/cluster.sh: N callers on one worker, next to
the same N spread over both workers, in one run on one cluster (PostgreSQL store, engines on
Ray Serve), printing a markdown table.

Callers are the load benchmark's (``voicebot.eval.load``): telephone mode when
scripts/phone_turns.py is there (8 kHz µ-law, multi-sentence German turns), else the
speech-de-more clips through the telephone channel. Brings its own cluster up on ports of its
own and takes it down at the end (``--keep`` leaves it), or uses a running one (``--running``).

    .venv/bin/python scripts/bench_cluster.py --calls 4 --duration 60
    .venv/bin/python scripts/bench_cluster.py --calls 4,8 --duration 90 --json eval/reports/bench-cluster.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from voicebot.eval import load as load_mod  # noqa: E402 - after the path set-up for a plain checkout
from voicebot.eval.stats import summarize  # noqa: E402

SPEECH_MORE = REPO.parent / "shared" / "data" / "speech-de-more"


def caller_clips(turns: int, seed: int) -> tuple[list[Any], str]:
    """Telephone callers' turns (phone mode if it exists here, else speech-de-more via the channel)."""
    try:
        from phone_turns import provision_turns
    except ImportError:
        return (load_mod.load_clips(SPEECH_MORE, encoding="mulaw", sample_rate=8000),
                "speech-de-more clips, telephone channel")
    turn_dir = provision_turns(turns, seed=seed)
    return load_mod.load_clips(turn_dir, encoding="mulaw", sample_rate=8000), "phone turns (scripts/phone_turns.py)"


def cluster_processes(run_dir: Path) -> list[psutil.Process]:
    """The workers, the Ray head with everything under it (replicas), and PostgreSQL."""
    roots = [int(f.read_text()) for f in run_dir.glob("*.pid")]
    pg = run_dir / "postgres" / "postmaster.pid"
    if pg.is_file():
        roots.append(int(pg.read_text().split()[0]))
    procs: list[psutil.Process] = []
    for pid in roots:
        try:
            root = psutil.Process(pid)
            procs += [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
    return procs


async def sample_cpu(run_dir: Path, stop: asyncio.Event, interval: float = 1.0) -> list[float]:
    """The whole cluster's CPU (100 % = one core), sampled while the callers run."""
    procs = cluster_processes(run_dir)
    for p in procs:
        try:
            p.cpu_percent(None)
        except psutil.NoSuchProcess:
            pass
    samples: list[float] = []
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), interval)
        except TimeoutError:
            pass
        total = 0.0
        for p in procs:
            try:
                total += p.cpu_percent(None)
            except psutil.NoSuchProcess:
                pass
        samples.append(total)
    return samples


async def run_spread(urls: list[str], calls: int, duration: float, clips: list[Any], first_index: int,
                     run_dir: Path, seed: int) -> dict[str, Any]:
    """``calls`` callers dealt round-robin over ``urls``; caller indices from ``first_index`` (call ids
    are unique for ever in the shared store, so every run uses new ones)."""
    stop = asyncio.Event()
    sampler = asyncio.create_task(sample_cpu(run_dir, stop))
    ramp = min(2.0, duration / 10)
    deadline = time.perf_counter() + duration
    results = await asyncio.gather(*(
        load_mod._caller(first_index + i, urls[i % len(urls)], clips, deadline, ramp * i / max(1, calls),
                         "mulaw", 8000, load_mod.FRAME_MS, seed)
        for i in range(calls)))
    stop.set()
    cpu = await sampler
    merged = load_mod.CallerStats()
    for s in results:
        for name in ("calls_started", "calls_completed", "calls_dropped", "calls_errored", "turns",
                     "unanswered_turns"):
            setattr(merged, name, getattr(merged, name) + getattr(s, name))
        for name in ("voice_to_voice", "final_latency", "partial_lag", "problems"):
            getattr(merged, name).extend(getattr(s, name))
    return {"workers": len(urls), "calls": calls, "completed": merged.calls_completed - merged.calls_errored,
            "dropped": merged.calls_dropped, "errored": merged.calls_errored, "turns": merged.turns,
            "unanswered": merged.unanswered_turns, "voice_to_voice_ms": summarize(merged.voice_to_voice, 1),
            "final_latency_ms": summarize(merged.final_latency, 1),
            "partial_lag_ms": summarize(merged.partial_lag, 1), "cluster_cpu_percent": summarize(cpu, 1),
            "problems": sorted(set(merged.problems))[:5]}


def table(rows: list[dict[str, Any]], note: str) -> str:
    def f(x: float | None) -> str:
        return "–" if x is None else f"{x:.0f}"

    head = ("| workers | calls | done | dropped | errored | turns (unanswered) | voice→voice p50 / p95 ms | "
            "final p50 / p95 ms | partial lag p50 ms | cluster CPU % mean | load avg 1m |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        v, fin = r["voice_to_voice_ms"], r["final_latency_ms"]
        lines.append(f"| {r['workers']} | {r['calls']} | {r['completed']} | {r['dropped']} | {r['errored']} | "
                     f"{r['turns']} ({r['unanswered']}) | {f(v['p50'])} / {f(v['p95'])} | {f(fin['p50'])} / "
                     f"{f(fin['p95'])} | {f(r['partial_lag_ms']['p50'])} | {f(r['cluster_cpu_percent']['mean'])} | "
                     f"{r['load_avg_1m'][0]} → {r['load_avg_1m'][1]} |")
    return "\n".join(lines) + "\n\n" + note


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", default="4", help="concurrent callers per comparison, comma-separated (default 4)")
    ap.add_argument("--duration", type=float, default=60.0, help="seconds per run (default 60)")
    ap.add_argument("--turns", type=int, default=40)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--ports", default="38765,38766", help="the two workers' ports (default 38765,38766)")
    ap.add_argument("--ray-port", default="36379")
    ap.add_argument("--running", metavar="RUN_DIR", help="use the cluster already up in RUN_DIR (same --ports)")
    ap.add_argument("--keep", action="store_true", help="leave the cluster running")
    ap.add_argument("--json", type=Path, help="also write the numbers here")
    args = ap.parse_args()
    ports = args.ports.split(",")
    urls = [f"ws://127.0.0.1:{p}/v1/call" for p in ports]
    clips, source = caller_clips(args.turns, args.seed)
    if args.running:
        run_dir, env = Path(args.running).resolve(), None
    else:
        base = Path(tempfile.mkdtemp(prefix="voicebot-bench-cluster-"))
        base.chmod(0o755)  # as root, PostgreSQL runs as `postgres` and must reach its data dir
        run_dir = base / "run"
        env = {**os.environ, "CLUSTER_DIR": str(run_dir), "CLUSTER_PORTS": " ".join(ports),
               "CLUSTER_RAY_PORT": args.ray_port}
        print("bench cluster: scripts/cluster.sh up ...", file=sys.stderr, flush=True)
        up = subprocess.run(["bash", str(REPO / "scripts" / "cluster.sh"), "up"], env=env, text=True)
        if up.returncode != 0:
            return 1
    rows: list[dict[str, Any]] = []
    try:
        index = int(time.time()) % 100_000 * 100  # fresh call ids on a reused cluster too
        for n in [int(x) for x in args.calls.split(",")]:
            for targets in (urls[:1], urls):
                before = os.getloadavg()[0]
                print(f"bench cluster: {n} calls on {len(targets)} worker(s) for {args.duration:.0f} s "
                      f"(load avg {before:.1f})", file=sys.stderr, flush=True)
                row = asyncio.run(run_spread(targets, n, args.duration, clips, index, run_dir, args.seed))
                row["load_avg_1m"] = [round(before, 1), round(os.getloadavg()[0], 1)]
                rows.append(row)
                index += n
    finally:
        if env is not None and not args.keep:
            subprocess.run(["bash", str(REPO / "scripts" / "cluster.sh"), "down"], env=env, text=True)
            shutil.rmtree(run_dir.parent, ignore_errors=True)
            shutil.rmtree(f"/tmp/vbray-{os.getuid()}-{args.ray_port}", ignore_errors=True)  # Ray's session logs
    note = (f"Telephone callers (8 kHz µ-law; {source}, {len(clips)} turns), {args.duration:.0f} s per run, "
            f"{os.cpu_count()} cores shared by the workers, Ray (ASR, intent, TTS replicas) and PostgreSQL; "
            "cluster CPU = all of them (100 % = one core).")
    print(table(rows, note))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"kind": "bench-cluster", "runs": rows, "note": note}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

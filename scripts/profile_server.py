#!/usr/bin/env python3
"""Where a loaded server's time goes: N phone callers against `voicebot serve`, profiled.

Starts a server (``ServerProcess``), plays the phone-mode load (``bench_load.py --phone``'s
callers: 8 kHz µ-law, multi-sentence turns) and prints, as markdown tables:

* each turn's breakdown from the server's own ``latency`` events (endpoint, ASR, intent,
  first TTS audio) beside the caller-side voice→voice;
* the ASR scheduler: queue wait vs decode per kind (finals, partials), hurried finals,
  partials skipped;
* the engine thread pools: per kind of job (Smart Turn, intent, TTS) the wait for a thread,
  the run time and the pool thread's CPU;
* the event loop's lag (``voicebot_loop_lag_seconds``);
* CPU per OS thread, sampled from ``/proc/<pid>/task/*/stat`` (threads are named by pool;
  the main thread runs the event loop);
* with ``--spy S`` (py-spy in the dev extra): S seconds of ``py-spy record --gil``: which
  code holds the GIL, grouped by the innermost voicebot frame.

    nice -n 5 .venv/bin/python scripts/profile_server.py --calls 16 --max-calls 16 --duration 45 --spy 15
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
import threading
import time
import urllib.request
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

OUT = REPO / "eval" / "reports"
TICK = os.sysconf("SC_CLK_TCK")


class ThreadCpu:
    """CPU seconds per OS thread name of one process, sampled from /proc (threads come and go)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.last: dict[int, tuple[str, int]] = {}
        self.by_name: Counter[str] = Counter()
        self.started = time.monotonic()
        self.elapsed = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="thread-cpu", daemon=True)

    def _read(self) -> dict[int, tuple[str, int]]:
        out: dict[int, tuple[str, int]] = {}
        for task in Path(f"/proc/{self.pid}/task").iterdir():
            try:
                stat = (task / "stat").read_text()
            except OSError:
                continue
            name = stat[stat.index("(") + 1: stat.rindex(")")]
            fields = stat[stat.rindex(")") + 2:].split()
            tid = int(task.name)
            label = "event loop (main)" if tid == self.pid else name
            out[tid] = (label, int(fields[11]) + int(fields[12]))  # utime + stime, in ticks
        return out

    def _sample(self) -> None:
        now = self._read()
        for tid, (label, ticks) in now.items():
            before = self.last.get(tid, (label, ticks))[1]
            self.by_name[label] += ticks - before
        self.last = now

    def _loop(self) -> None:
        while not self._stop.wait(1.0):
            self._sample()

    def start(self) -> None:
        self.last = self._read()
        self.started = time.monotonic()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()
        self.elapsed = time.monotonic() - self.started

    def table(self) -> list[tuple[str, float]]:
        """(thread name, % of one core) over the sampled time, busiest first."""
        rows = [(name, 100.0 * ticks / TICK / max(self.elapsed, 1e-9)) for name, ticks in self.by_name.items()]
        return sorted((r for r in rows if r[1] >= 0.5), key=lambda r: -r[1])


def scrape(base: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    from prometheus_client.parser import text_string_to_metric_families

    text = urllib.request.urlopen(f"{base}/metrics", timeout=10).read().decode()
    out: dict[str, list[tuple[dict[str, str], float]]] = defaultdict(list)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[sample.name].append((dict(sample.labels), float(sample.value)))
    return out


def lag_summary(metrics: dict[str, list[tuple[dict[str, str], float]]]) -> dict[str, float]:
    buckets = sorted((float(lab["le"]), v) for lab, v in metrics.get("voicebot_loop_lag_seconds_bucket", []))
    count = sum(v for _, v in metrics.get("voicebot_loop_lag_seconds_count", []))
    total = sum(v for _, v in metrics.get("voicebot_loop_lag_seconds_sum", []))
    out = {"ticks": count, "mean_ms": 1000.0 * total / count if count else 0.0}
    for q in (0.5, 0.95, 0.99):
        le = next((b for b, v in buckets if count and v >= q * count), float("inf"))
        out[f"p{int(q * 100)}_le_ms"] = le * 1000.0
    over = {b: count - v for b, v in buckets}
    out["share_over_50ms"] = over.get(0.05, 0.0) / count if count else 0.0
    return out


def spy(pid: int, seconds: int) -> Counter[str] | None:
    """``py-spy record --gil``: samples of the thread holding the GIL, by innermost voicebot frame."""
    exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(exe).exists():
        print("profile: py-spy not installed (pip install -e '.[dev]'); skipping the GIL profile", file=sys.stderr)
        return None
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "gil.txt"
        cmd = [exe, "record", "--pid", str(pid), "--duration", str(seconds), "--rate", "100", "--gil",
               "--nonblocking", "--format", "raw", "--output", str(raw)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0 or not raw.exists():
            print(f"profile: py-spy failed: {proc.stderr.strip()[-300:]}", file=sys.stderr)
            return None
        groups: Counter[str] = Counter()
        for line in raw.read_text().splitlines():
            stack, _, n = line.rpartition(" ")
            if not n.isdigit():
                continue
            frames = stack.split(";")
            own = [f for f in frames if "voicebot/" in f]
            key = _frame_label(own[-1]) if own else _frame_label(frames[-1]) + " (library)"
            groups[f"{_role(stack)} | {key}"] += int(n)
        groups["__samples_possible__"] = 100 * seconds
        return groups


def _role(stack: str) -> str:
    """Which thread a stack ran on, from what it contains."""
    if "decode_pool.py" in stack:
        return "asr decode"
    if "voicebot/call/pools.py" in stack:
        return "engine pool"
    if "concurrent/futures/thread.py" in stack:
        return "default executor"
    if "threading.py" in stack:
        return "other thread"
    return "event loop"  # uvloop runs the loop in C: its callbacks show no loop frame


def _frame_label(frame: str) -> str:
    # "function (path/to/voicebot/x/y.py:123)" -> "x/y.py:function"
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    short = path.split("voicebot/", 1)[-1] if "voicebot/" in path else Path(path).name
    return f"{short}:{name.strip()}"


def main(argv: list[str]) -> int:
    from phone_turns import provision_turns

    from voicebot.eval.load import load_clips, run_load
    from voicebot.eval.serverproc import ServerProcess

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=16)
    ap.add_argument("--max-calls", type=int, default=None, help="server.max_calls (default: the server's)")
    ap.add_argument("--duration", type=float, default=45.0)
    ap.add_argument("--spy", type=int, default=0, help="seconds of py-spy --gil sampling, mid-run (0: none)")
    ap.add_argument("--turns", type=int, default=40)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--env", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--out", type=Path, default=OUT / "profile-server.json")
    args = ap.parse_args(argv)

    clips = load_clips(provision_turns(args.turns, seed=args.seed), encoding="mulaw", sample_rate=8000)
    env = dict(kv.split("=", 1) for kv in args.env)
    if args.max_calls is not None:
        env["VOICEBOT_SERVER__MAX_CALLS"] = str(args.max_calls)
    with ServerProcess(env=env) as server:
        base = f"http://{server.host}:{server.port}"
        load_before = os.getloadavg()[0]
        cpu = ThreadCpu(server.pid)
        cpu.start()
        gil: dict[str, Any] = {}

        def spy_later() -> None:
            time.sleep(max(0.0, (args.duration - args.spy) / 2))
            gil["groups"] = spy(server.pid, args.spy)

        spier = threading.Thread(target=spy_later, daemon=True) if args.spy else None
        if spier is not None:
            spier.start()
        load = asyncio.run(run_load(server.url, args.calls, args.duration, clips, server_pid=server.pid,
                                    encoding="mulaw", sample_rate=8000, seed=args.seed))
        cpu.stop()
        if spier is not None:
            spier.join()
        metrics = scrape(base)
        load_after = os.getloadavg()[0]
    result = report(args, load, metrics, cpu, gil.get("groups"), (load_before, load_after))
    OUT.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return 0


def report(args: argparse.Namespace, load: dict[str, Any], metrics: dict[str, Any], cpu: ThreadCpu,
           gil: Counter[str] | None, loadavg: tuple[float, float]) -> dict[str, Any]:
    def f(x: Any) -> str:
        return "–" if x is None else f"{x:.0f}"

    print(f"\n## {args.calls} phone callers, {args.duration:.0f} s, max_calls {args.max_calls or 'default'}, "
          f"load avg {loadavg[0]:.1f} → {loadavg[1]:.1f}\n")
    print(f"calls done {load['completed_calls']}, refused {load.get('refused_calls', 0)}, dropped "
          f"{load['dropped_calls']}, errored {load['errored_calls']}, turns {load['turns']} "
          f"({load['unanswered_turns']} unanswered), server CPU mean {f(load['server']['cpu_percent']['mean'])} %\n")
    print("| per turn (ms) | n | p50 | p95 | max |\n|---|---|---|---|---|")
    spans = {"caller: voice→voice": load["voice_to_voice_ms"], "caller: final": load["final_latency_ms"],
             **{f"server: {k}": v for k, v in load.get("server_spans_ms", {}).items()}}
    for name, s in spans.items():
        print(f"| {name} | {s.get('n', 0)} | {f(s.get('p50'))} | {f(s.get('p95'))} | {f(s.get('max'))} |")

    asr = {lab["name"]: v for lab, v in metrics.get("voicebot_asr_scheduler", [])}
    req = {(lab["kind"], lab["stat"]): v for lab, v in metrics.get("voicebot_asr_request_seconds", [])}
    print("\n| ASR scheduler | served | queue wait p50 / p95 ms | decode p50 / p95 ms | latency p95 ms |")
    print("|---|---|---|---|---|")
    for kind in ("final", "partial"):
        def g(stat: str, k: str = kind) -> str:
            v = req.get((k, stat))
            return "–" if v is None else f"{v * 1000:.0f}"

        print(f"| {kind} | {f(req.get((kind, 'served')))} | {g('wait_p50')} / {g('wait_p95')} | "
              f"{g('decode_p50')} / {g('decode_p95')} | {g('latency_p95')} |")
    print(f"\nASR busy {asr.get('busy_seconds', 0):.0f} s (utilization {asr.get('utilization', 0):.2f} of one worker-"
          f"second per second), finals hurried {f(asr.get('finals_hurried'))}, partials skipped "
          f"{f(asr.get('partials_skipped'))}, partial decode {asr.get('partial_decode_s') or 0:.2f} s, "
          f"final decode {asr.get('final_decode_s') or 0:.2f} s")

    spent = {lab["use"]: v for lab, v in metrics.get("voicebot_asr_decode_seconds", [])}
    if spent:
        total = sum(spent.values()) or 1.0
        print("\n| ASR decode seconds by use | s | share % |\n|---|---|---|\n" + "\n".join(
            f"| {use} | {v:.1f} | {100 * v / total:.0f} |" for use, v in spent.items()))
    tts = {lab["stat"]: v for lab, v in metrics.get("voicebot_tts_cache", [])}
    print(f"\ntemperature fallbacks {f(asr.get('fallback_decodes'))} ({f(asr.get('fallback_rounds'))} rounds); "
          f"TTS sentence cache hits {f(tts.get('hits'))}, misses {f(tts.get('misses'))}")
    print(f"\nCPU % of one core, mean: load client (same box) {f(load.get('client_cpu_percent', {}).get('mean'))}, "
          f"whole machine {f(load.get('machine_cpu_percent', {}).get('mean'))} of {100 * (os.cpu_count() or 1)}")

    pools: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
    for metric, key in (("voicebot_pool_jobs_total", "jobs"), ("voicebot_pool_busy_seconds_total", "busy"),
                        ("voicebot_pool_cpu_seconds_total", "cpu")):
        for lab, v in metrics.get(metric, []):
            pools[(lab["pool"], lab["kind"])][key] = v
    for metric, key in (("voicebot_pool_wait_ms", "wait"), ("voicebot_pool_run_ms", "run")):
        for lab, v in metrics.get(metric, []):
            pools[(lab["pool"], lab["kind"])][f"{key}{lab['quantile']}"] = v
    print("\n| pool / job | jobs | wait p50 / p95 ms | run p50 / p95 ms | busy s | thread CPU s |")
    print("|---|---|---|---|---|---|")
    for (pool, kind), v in sorted(pools.items()):
        print(f"| {pool} / {kind} | {f(v.get('jobs'))} | {f(v.get('wait0.5'))} / {f(v.get('wait0.95'))} | "
              f"{f(v.get('run0.5'))} / {f(v.get('run0.95'))} | {v.get('busy', 0):.1f} | {v.get('cpu', 0):.1f} |")

    lag = lag_summary(metrics)
    print(f"\nevent loop lag (50 ms ticks): mean {lag['mean_ms']:.1f} ms, p50 ≤ {lag['p50_le_ms']:.0f} ms, "
          f"p95 ≤ {lag['p95_le_ms']:.0f} ms, p99 ≤ {lag['p99_le_ms']:.0f} ms, {100 * lag['share_over_50ms']:.1f} % "
          f"of ticks over 50 ms late")
    threads = cpu.table()
    print("\n| OS thread | CPU % of one core |\n|---|---|\n" + "\n".join(f"| {n} | {p:.1f} |" for n, p in threads)
          + f"\n| **total** | {sum(p for _, p in threads):.1f} |")
    if gil:
        possible = gil.pop("__samples_possible__", 0)
        total = sum(gil.values())
        roles: Counter[str] = Counter()
        for name, n in gil.items():
            roles[name.split(" | ")[0]] += n
        print(f"\nGIL held {100.0 * total / max(possible, 1):.0f} % of the sampled time (py-spy --gil samples / "
              f"samples possible); by thread: " + ", ".join(f"{r} {100.0 * n / total:.0f} %" for r, n in
                                                          roles.most_common()))
        print("\n| holds the GIL: thread | innermost voicebot frame | share % |\n|---|---|---|")
        for name, n in gil.most_common(25):
            role, _, frame = name.partition(" | ")
            print(f"| {role} | {frame} | {100.0 * n / total:.1f} |")
    return {"calls": args.calls, "max_calls": args.max_calls, "duration_s": args.duration, "load_avg": loadavg,
            "load": load, "asr": asr, "asr_requests": {f"{k}.{s}": v for (k, s), v in req.items()},
            "pools": {f"{p}/{k}": v for (p, k), v in pools.items()}, "loop_lag": lag, "threads": threads,
            "asr_decode_seconds": spent,
            "gil": dict(gil.most_common(40)) if gil else None}


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

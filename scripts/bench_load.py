#!/usr/bin/env python3
"""Load benchmark at 1, 4, 8, 16 and 32 concurrent calls (a thin wrapper of `voicebot bench load`).

Starts `voicebot serve` as a child process unless --url is given, runs each
concurrency level for --duration seconds, prints a markdown table and writes
eval/reports/bench-load.{json,png} (git-ignored). Extra arguments go to
`voicebot bench load`, e.g.:

    .venv/bin/python scripts/bench_load.py --duration 60
    .venv/bin/python scripts/bench_load.py --calls 1,4 --duration 30 --channel telephone
    .venv/bin/python scripts/bench_load.py --url ws://127.0.0.1:8765/v1/call --server-pid 1234

Phone mode (``--phone``): 8 kHz µ-law callers speaking multi-sentence turns of 3-20 s
(real speech-de-more sentences joined with short pauses, speech from the first sample
to the last, line hiss under the turn: ``scripts/phone_turns.py``), so voice→voice is
measured from the caller's last voiced frame. Each level runs against a fresh server,
in one process, with the machine's load average per level (the machine is shared) and
calls the server refused as full (HTTP 503, ``server.max_calls``) counted apart from
dropped ones:

    .venv/bin/python scripts/bench_load.py --phone --calls 1,16,32 --duration 90 [--max-calls 16]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from voicebot.cli.main import main  # noqa: E402 - after the path set-up for a plain checkout

OUT = REPO / "eval" / "reports"


def run(argv: list[str]) -> int:
    if "--phone" in argv:
        return run_phone(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    defaults = {"--calls": "1,4,8,16,32", "--duration": "60", "--plot": str(OUT / "bench-load.png"),
                "--out": str(OUT / "bench-load.json")}
    args = list(argv)
    for flag, value in defaults.items():
        if flag not in args:
            args += [flag, value]
    return main(["bench", "load", *args])


def _refused(problems: dict[str, int]) -> int:
    """Connection attempts the server turned away as full (HTTP 503 on the upgrade)."""
    return sum(n for text, n in problems.items() if "503" in text)


def run_phone(argv: list[str]) -> int:
    from phone_turns import provision_turns

    from voicebot.eval.load import load_clips, run_load
    from voicebot.eval.serverproc import ServerProcess

    ap = argparse.ArgumentParser(description="phone-mode load benchmark")
    ap.add_argument("--phone", action="store_true")
    ap.add_argument("--calls", default="1,16,32")
    ap.add_argument("--duration", type=float, default=90.0)
    ap.add_argument("--turns", type=int, default=40, help="distinct caller turns to build")
    ap.add_argument("--noise-dbfs", type=float, default=-45.0, help="line hiss under each turn")
    ap.add_argument("--max-calls", type=int, default=None, help="server.max_calls for the child server")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                    help="extra VOICEBOT_* settings for the server (repeatable)")
    ap.add_argument("--out", type=Path, default=OUT / "bench-load-phone.json")
    args = ap.parse_args(argv)

    turn_dir = provision_turns(args.turns, seed=args.seed, noise_dbfs=args.noise_dbfs)
    clips = load_clips(turn_dir, encoding="mulaw", sample_rate=8000)
    env = dict(kv.split("=", 1) for kv in args.env)
    if args.max_calls is not None:
        env["VOICEBOT_SERVER__MAX_CALLS"] = str(args.max_calls)
    levels = [int(x) for x in args.calls.split(",")]
    runs: dict[str, Any] = {}
    for n in levels:
        # A fresh server (and store) per level: the load client's call ids repeat from level to level,
        # and a store never takes a call id twice.
        print(f"bench load --phone: starting `voicebot serve` for {n} calls ...", file=sys.stderr, flush=True)
        with ServerProcess(env=env) as server:
            before = os.getloadavg()
            print(f"bench load --phone: {n} calls for {args.duration:.0f} s (load avg {before[0]:.1f})",
                  file=sys.stderr, flush=True)
            r = asyncio.run(run_load(server.url, n, args.duration, clips, server_pid=server.pid, encoding="mulaw",
                                     sample_rate=8000, seed=args.seed))
            r["load_avg_1m"] = [round(before[0], 2), round(os.getloadavg()[0], 2)]
            r["refused"] = _refused(r["problem_counts"])
            runs[str(n)] = r
    secs = [c.seconds for c in clips]
    config = {"channel": "telephone", "encoding": "mulaw", "sample_rate": 8000, "duration_s": args.duration,
              "turns": len(clips),
              "turn_s": [round(min(secs), 1), round(sum(secs) / len(secs), 1), round(max(secs), 1)],
              "noise_dbfs": args.noise_dbfs, "server_env": env, "cores": os.cpu_count()}
    result = {"kind": "load", "config": config, "by_calls": runs}
    OUT.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(phone_table(result))
    return 0


def phone_table(result: dict[str, Any]) -> str:
    def f(x: float | None) -> str:
        return "–" if x is None else f"{x:.0f}"

    head = ("| offered calls | calls done | refused (503) | dropped | errored | turns (unanswered) | "
            "voice→voice p50 / p95 / p99 ms | final p50 / p95 ms | partial lag p50 / p95 ms | "
            "server CPU % mean | client late p95 ms | load avg 1m before → after |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for n, r in result["by_calls"].items():
        v, fin, lag = r["voice_to_voice_ms"], r["final_latency_ms"], r["partial_lag_ms"]
        dropped = r["dropped_calls"] - r["refused"]
        lines.append(
            f"| {n} | {r['completed_calls']} | {r['refused']} | {dropped} | {r['errored_calls']} | "
            f"{r['turns']} ({r['unanswered_turns']}) | {f(v['p50'])} / {f(v['p95'])} / {f(v['p99'])} | "
            f"{f(fin['p50'])} / {f(fin['p95'])} | {f(lag['p50'])} / {f(lag['p95'])} | "
            f"{f(r['server']['cpu_percent']['mean'])} | {f(r['client_late_ms']['p95'])} | "
            f"{r['load_avg_1m'][0]} → {r['load_avg_1m'][1]} |")
    c = result["config"]
    lines.append(f"\n{c['turns']} turns of {c['turn_s'][0]}–{c['turn_s'][2]} s (mean {c['turn_s'][1]} s), "
                 f"line hiss {c['noise_dbfs']} dBFS, {c['cores']} cores, server env {c['server_env']}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))

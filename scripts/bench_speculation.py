#!/usr/bin/env python3
"""Speculative answers on the phone line: voice→voice with speculation on and off, silence-only beside.

One telephone caller (8 kHz µ-law, the multi-sentence 3-20 s turns of ``scripts/phone_turns.py``
with line hiss; voice→voice from the caller's last voiced frame, ``voicebot.eval.load``'s caller)
against one ``voicebot serve`` per mode, all started at once; the caller visits them in turn
(``--rounds`` x ``--slice`` seconds each), so a shared machine's load falls on every mode alike:

* ``speculate``: end-of-turn models + speculative answers (``turn.speculate = true``)
* ``no-speculate``: end-of-turn models, the final decoded after the post-roll (``turn.speculate = false``)
* ``silence``: the endpointer's silence alone (``turn.detector = "silence"``), no speculation
* ``silence+speculate``, ``speculate+window`` (finals on a window sized to the turn): with ``--modes``
* ``default`` (this tree's defaults), ``round5`` (no speculation, the tail's decode from ``asr.segment_pause_ms``,
  the end-of-turn models asked and deciding at 200 ms), ``silence-default``, ``late-models``: with ``--modes``

Waste comes from the server's one line per call (``voicebot.dialog.session``): speculative answers
started / committed / discarded, the wall seconds spent on discarded answers, and the speculative
final decodes used / thrown away.

    .venv/bin/python scripts/bench_speculation.py [--slice 60] [--rounds 2] [--turns 40] [--modes a,b] [--env K=V]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from phone_turns import provision_turns  # noqa: E402

from voicebot.eval.load import load_clips  # noqa: E402
from voicebot.eval.serverproc import ServerProcess  # noqa: E402

MODES: dict[str, dict[str, str]] = {
    "speculate": {"VOICEBOT_TURN__SPECULATE": "true"},
    "no-speculate": {"VOICEBOT_TURN__SPECULATE": "false"},
    "silence": {"VOICEBOT_TURN__DETECTOR": "silence", "VOICEBOT_TURN__SPECULATE": "false"},
    "silence+speculate": {"VOICEBOT_TURN__DETECTOR": "silence", "VOICEBOT_TURN__SPECULATE": "true"},
    # finals (and so speculations) on an encoder window sized to the turn (10/15/20/30 s), beam 5 kept
    "speculate+window": {"VOICEBOT_TURN__SPECULATE": "true", "VOICEBOT_ASR__FINAL_CHUNK_LENGTH": "10"},
    # this tree's defaults as they are; the fifth round's (no speculation, the tail decoded from segment_pause_ms);
    # this tree's defaults with the endpointer's silence alone
    "default": {},
    "round5": {"VOICEBOT_TURN__SPECULATE": "false", "VOICEBOT_ASR__PAUSE_DECODE_MS": "0",
               "VOICEBOT_TURN__MIN_SILENCE_MS": "200", "VOICEBOT_TURN__MODEL_SILENCE_MS": "0"},
    "silence-default": {"VOICEBOT_TURN__DETECTOR": "silence"},
    # this tree's defaults, but the end-of-turn models asked and deciding at 200 ms (the fifth round's)
    "late-models": {"VOICEBOT_TURN__MIN_SILENCE_MS": "200", "VOICEBOT_TURN__MODEL_SILENCE_MS": "0"},
}
_LINE = re.compile(r"speculation turns=(\d+) answered=(\d+) committed=(\d+) discarded=(\d+) discarded_s=([\d.]+) "
                   r"asr_used=(\d+) asr_wasted=(\d+) asr_wasted_s=([\d.]+)")
_KEYS = ("turns", "answered", "committed", "discarded", "discarded_s", "asr_used", "asr_wasted", "asr_wasted_s")


def waste(output: list[str]) -> dict[str, float]:
    """Sum the per-call speculation lines of one server's output."""
    total = dict.fromkeys(_KEYS, 0.0)
    for line in output:
        if m := _LINE.search(line):
            for key, value in zip(_KEYS, m.groups(), strict=True):
                total[key] += float(value)
    return total


def _cpu_seconds(pid: int) -> float:
    import psutil

    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def run_modes(modes: dict[str, dict[str, str]], clips: list[Any], slice_s: float, rounds: int,
              seed: int) -> dict[str, dict[str, Any]]:
    """Every mode's server up at once; one caller visits them in turn, ``rounds`` slices of ``slice_s`` each,
    so every mode sees the same share of whatever else the machine is doing."""
    from voicebot.eval.load import FRAME_MS, CallerStats, _caller
    from voicebot.eval.stats import summarize

    with contextlib.ExitStack() as stack:
        servers = {}
        for name, env in modes.items():
            print(f"bench speculation: starting {name} ({env})", file=sys.stderr, flush=True)
            servers[name] = stack.enter_context(ServerProcess(env=env))
        stats = {name: CallerStats() for name in modes}
        cpu = dict.fromkeys(modes, 0.0)
        load: list[float] = []
        for r in range(rounds):
            for name, server in servers.items():
                load.append(os.getloadavg()[0])
                print(f"bench speculation: round {r + 1}/{rounds} {name} (load avg {load[-1]:.1f})",
                      file=sys.stderr, flush=True)
                before = _cpu_seconds(server.pid)
                got = asyncio.run(_caller(0, server.url, clips, time.perf_counter() + slice_s, 0.0, "mulaw", 8000,
                                          FRAME_MS, seed + r))
                cpu[name] += _cpu_seconds(server.pid) - before
                merged = stats[name]
                for key in ("turns", "unanswered_turns", "handoffs", "calls_completed"):
                    setattr(merged, key, getattr(merged, key) + getattr(got, key))
                for key in ("voice_to_voice", "final_latency"):
                    getattr(merged, key).extend(getattr(got, key))
                for key, values in got.spans.items():  # the server's own measured spans (latency events)
                    merged.spans[key].extend(values)
        out = {}
        for name, server in servers.items():
            server.stop()  # the calls are over: their speculation lines are in the output
            st = stats[name]
            out[name] = {"turns": st.turns, "unanswered_turns": st.unanswered_turns, "handoffs": st.handoffs,
                         "voice_to_voice_ms": summarize(st.voice_to_voice, 1),
                         "final_latency_ms": summarize(st.final_latency, 1), "server_cpu_s": round(cpu[name], 1),
                         "server_spans_ms": {k: summarize(v, 1) for k, v in st.spans.items()},
                         "speculation": waste(server.output), "env": modes[name]}
        out["_load_avg_1m"] = {"min": min(load), "max": max(load)}  # type: ignore[assignment]
    return out


def _spans(r: dict[str, Any]) -> str:
    sp = r.get("server_spans_ms", {})

    def p(name: str, q: str) -> str:
        x = (sp.get(name) or {}).get(q)
        return "–" if x is None else f"{x:.0f}"

    v2v = sp.get("voice_to_voice_ms") or {}
    return (" / ".join(p(k, "p50") for k in ("endpoint_ms", "asr_ms", "intent_ms", "tts_first_audio_ms"))
            + f" | {p('voice_to_voice_ms', 'p50')} / {p('voice_to_voice_ms', 'p95')} ({v2v.get('n', 0)})")


def table(runs: dict[str, dict[str, Any]]) -> str:
    def f(x: float | None) -> str:
        return "–" if x is None else f"{x:.0f}"

    head = ("| mode | turns (unanswered) | voice→voice p50 / p95 / p99 ms | final p50 / p95 ms | "
            "server CPU s per turn | "
            "speculations answered / committed / discarded per turn | discarded answer s per turn | "
            "speculative decodes used / wasted per turn | server: endpoint / asr / intent / tts p50 ms | "
            "server voice→voice p50 / p95 ms (n) |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for name, r in runs.items():
        if name.startswith("_"):
            continue
        v, fin, w = r["voice_to_voice_ms"], r["final_latency_ms"], r["speculation"]
        n = max(1, r["turns"])
        spec = (f"{w['answered'] / n:.2f} / {w['committed'] / n:.2f} / {w['discarded'] / n:.2f}"
                if "speculate" in name.split("+") or name == "default" else "–")
        lines.append(
            f"| {name} | {r['turns']} ({r['unanswered_turns']}) | {f(v['p50'])} / {f(v['p95'])} / {f(v['p99'])} | "
            f"{f(fin['p50'])} / {f(fin['p95'])} | {r['server_cpu_s'] / n:.2f} | {spec} | {w['discarded_s'] / n:.2f} | "
            f"{w['asr_used'] / n:.2f} / {w['asr_wasted'] / n:.2f} | {_spans(r)} |")
    lo = runs.get("_load_avg_1m")
    if lo:
        lines.append(f"\nmachine load average (1 min) during the run: {lo['min']:.1f}-{lo['max']:.1f}, "
                     f"{os.cpu_count()} cores")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--slice", type=float, default=60.0, help="seconds per mode and round")
    ap.add_argument("--rounds", type=int, default=2, help="rounds over the modes")
    ap.add_argument("--turns", type=int, default=40, help="distinct caller turns to build")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--noise-dbfs", type=float, default=-45.0)
    ap.add_argument("--modes", default="speculate,no-speculate,silence", help=f"comma list of {', '.join(MODES)}")
    ap.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="extra server settings, all modes")
    ap.add_argument("--out", type=Path, default=REPO / "eval" / "reports" / "bench-speculation.json")
    args = ap.parse_args(argv)
    turn_dir = provision_turns(args.turns, seed=args.seed, noise_dbfs=args.noise_dbfs)
    clips = load_clips(turn_dir, encoding="mulaw", sample_rate=8000)
    extra = dict(kv.split("=", 1) for kv in args.env)
    modes = {name: {**MODES[name], **extra} for name in args.modes.split(",")}
    runs = run_modes(modes, clips, args.slice, args.rounds, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"by_mode": runs, "env": extra}, indent=2, ensure_ascii=False) + "\n")
    print(table(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

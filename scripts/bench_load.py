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
to the last, line hiss under the turn: ``scripts/phone_turns.py``; the same hiss between turns,
``--quiet-line silence`` for digital silence as in earlier rounds), so voice→voice is
measured from the caller's last voiced frame. Each level runs against a fresh server,
in one process, with the machine's load average per level (the machine is shared) and
calls the server refused as full (HTTP 503, ``server.max_calls``) counted apart from
dropped ones:

    .venv/bin/python scripts/bench_load.py --phone --calls 1,16,32 --duration 90 [--max-calls 16]

Voice→voice counts from the turn's last voiced frame (``voiced_end_s`` in the turns' manifest: a
sentence may end in its recording's room noise). "bot cut in" counts answers begun while the caller
was still speaking a turn (a pause between two sentences taken for its end). ``--trace`` keeps each
call's timeline (caller speech, finals, bot replies, barge-ins) in the --out JSON.

Side by side in one run (levels interleaved, so the machine's load falls on every server alike):
``--before-tree DIR`` also runs the server of another checkout (e.g. ``git archive HEAD | tar -x -C DIR``)
with this venv and models; ``--variant LABEL:KEY=VALUE[,KEY=VALUE]`` (repeatable) this checkout's
server with other VOICEBOT_* settings:

    nice -n 5 .venv/bin/python scripts/bench_load.py --phone --calls 1,16 --duration 60 \
        --before-tree /tmp/before --variant nice0:VOICEBOT_ASR__DECODE_NICE=0
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from voicebot.cli.main import main  # noqa: E402 - after the path set-up for a plain checkout

OUT = REPO / "eval" / "reports"


def quiet_line(noise_dbfs: float, seed: int, seconds: float = 10.0) -> bytes:
    """The line's hiss between turns (the same level as under the turns), 8 kHz µ-law, to loop."""
    from voicebot.audio.channel import telephone_channel
    from voicebot.audio.codecs import mulaw_encode
    from voicebot.audio.resample import resample
    from voicebot.eval.asr_cases import RATE, line_noise

    pcm, rate = telephone_channel(line_noise(seconds, dbfs=noise_dbfs, seed=seed + 7919), RATE)
    return mulaw_encode(resample(pcm, rate, 8000))


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


@contextlib.contextmanager
def _cwd(path: Path | None) -> Iterator[None]:
    """Start the child server from ``path``: ``python -m`` imports the package of its working directory."""
    if path is None:
        yield
        return
    before = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


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
    ap.add_argument("--quiet-line", choices=("hiss", "silence"), default="hiss",
                    help="what the line carries while the caller is quiet: the turns' line hiss (default) or "
                         "digital silence (earlier rounds)")
    ap.add_argument("--max-calls", type=int, default=None, help="server.max_calls for the child server")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                    help="extra VOICEBOT_* settings for the server (repeatable)")
    ap.add_argument("--out", type=Path, default=OUT / "bench-load-phone.json")
    ap.add_argument("--trace", action="store_true",
                    help="keep every call's event timeline (caller speech, finals, bot replies) in the --out JSON")
    ap.add_argument("--honor-retry-after", action="store_true",
                    help="a refused caller dials again after the server's Retry-After (a gateway's retry policy), "
                         "not every 0.5 s")
    ap.add_argument("--before-tree", type=Path, default=None,
                    help="also run the server of this checkout (same venv and models), side by side")
    ap.add_argument("--variant", action="append", default=[], metavar="LABEL:KEY=VALUE[,KEY=VALUE]",
                    help="also run this checkout's server with these settings (repeatable)")
    args = ap.parse_args(argv)

    turn_dir = provision_turns(args.turns, seed=args.seed, noise_dbfs=args.noise_dbfs)
    clips = load_clips(turn_dir, encoding="mulaw", sample_rate=8000)
    idle_line = quiet_line(args.noise_dbfs, args.seed) if args.quiet_line == "hiss" else None
    env = dict(kv.split("=", 1) for kv in args.env)
    if args.max_calls is not None:
        env["VOICEBOT_SERVER__MAX_CALLS"] = str(args.max_calls)
    servers: list[tuple[str, Path | None, dict[str, str]]] = []
    if args.before_tree is not None:
        models = os.environ.get("VOICEBOT_MODELS_DIR", str(REPO / "models" / "store"))
        servers.append(("before", args.before_tree.resolve(), {**env, "VOICEBOT_MODELS_DIR": models}))
    servers.append(("this", None, env))
    for spec in args.variant:
        label, _, settings = spec.partition(":")
        servers.append((label, None, {**env, **dict(kv.split("=", 1) for kv in settings.split(",") if kv)}))
    levels = [int(x) for x in args.calls.split(",")]
    runs: dict[str, Any] = {}
    for n in levels:
        for label, tree, server_env in servers:
            # A fresh server (and store) per level and server: the machine's load falls on all alike.
            key = str(n) if len(servers) == 1 else f"{n} {label}"
            print(f"bench load --phone: starting `voicebot serve` ({label}) for {n} calls ...", file=sys.stderr,
                  flush=True)
            with _cwd(tree), ServerProcess(env=server_env) as server:
                before = os.getloadavg()
                print(f"bench load --phone: {n} calls for {args.duration:.0f} s (load avg {before[0]:.1f})",
                      file=sys.stderr, flush=True)
                r = asyncio.run(run_load(server.url, n, args.duration, clips, server_pid=server.pid,
                                         encoding="mulaw", sample_rate=8000, seed=args.seed,
                                         trace=args.trace, idle_line=idle_line,
                                         honor_retry_after=args.honor_retry_after))
                r["load_avg_1m"] = [round(before[0], 2), round(os.getloadavg()[0], 2)]
                r["asr_decode_seconds"] = decode_split(f"http://{server.host}:{server.port}/metrics")
                r["server_label"] = label
                runs[key] = r
    secs = [c.seconds for c in clips]
    config = {"channel": "telephone", "encoding": "mulaw", "sample_rate": 8000, "duration_s": args.duration,
              "turns": len(clips),
              "turn_s": [round(min(secs), 1), round(sum(secs) / len(secs), 1), round(max(secs), 1)],
              "noise_dbfs": args.noise_dbfs, "quiet_line": args.quiet_line, "server_env": env,
              "honor_retry_after": args.honor_retry_after,
              "cores": os.cpu_count(),
              "servers": {label: {"tree": str(tree or REPO), "env": e} for label, tree, e in servers}}
    result = {"kind": "load", "config": config, "by_calls": runs}
    OUT.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(phone_table(result))
    return 0


SCHEDULER_COUNTS = ("finals_hurried", "fallback_decodes", "fallback_rounds", "partials_skipped")


def decode_split(metrics_url: str) -> dict[str, float]:
    """The server's ASR decode seconds by use (final, speculative, partial, discarded) and the scheduler's
    counts (hurried finals, temperature fallbacks); empty for a server without them (an older tree)."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    try:
        with urllib.request.urlopen(metrics_url, timeout=10) as resp:
            text = resp.read().decode("utf-8")
    except OSError:
        return {}
    out: dict[str, float] = {}
    for fam in text_string_to_metric_families(text):
        for sample in fam.samples:
            if fam.name == "voicebot_asr_decode_seconds":
                out[sample.labels["use"]] = round(sample.value, 1)
            elif fam.name == "voicebot_asr_scheduler" and sample.labels.get("name") in SCHEDULER_COUNTS:
                out[sample.labels["name"]] = sample.value
    return out


def phone_table(result: dict[str, Any]) -> str:
    def f(x: float | None) -> str:
        return "–" if x is None else f"{x:.0f}"

    head = ("| offered calls | calls done | refused (full) | dropped | errored | turns (unanswered, bot cut in) | "
            "voice→voice p50 / p95 / p99 ms | final p50 / p95 ms | partial lag p50 / p95 ms | "
            "server: endpoint / asr / intent / tts p50 ms | server / client / machine CPU % mean | "
            "client late p95 ms | "
            "ASR decode s: final / speculative / partial / discarded | finals hurried / fallbacks (rounds) | "
            "load avg 1m before → after |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    uses = ("final", "speculative", "partial", "discarded")
    for n, r in result["by_calls"].items():
        v, fin, lag = r["voice_to_voice_ms"], r["final_latency_ms"], r["partial_lag_ms"]
        d = r.get("asr_decode_seconds") or {}
        sp = r.get("server_spans_ms", {})
        spans = " / ".join(f((sp.get(k) or {}).get("p50")) for k in ("endpoint_ms", "asr_ms", "intent_ms",
                                                                     "tts_first_audio_ms"))
        lines.append(
            f"| {n} | {r['completed_calls']} | {r.get('refused_calls', 0)} | {r['dropped_calls']} | "
            f"{r['errored_calls']} | "
            f"{r['turns']} ({r['unanswered_turns']}, {r.get('cut_ins', '–')}) | "
            f"{f(v['p50'])} / {f(v['p95'])} / {f(v['p99'])} | "
            f"{f(fin['p50'])} / {f(fin['p95'])} | {f(lag['p50'])} / {f(lag['p95'])} | {spans} | "
            f"{f(r['server']['cpu_percent']['mean'])} / {f(r.get('client_cpu_percent', {}).get('mean'))} / "
            f"{f(r.get('machine_cpu_percent', {}).get('mean'))} | {f(r['client_late_ms']['p95'])} | "
            f"{' / '.join(f(d.get(k)) for k in uses)} | "
            f"{f(d.get('finals_hurried'))} / {f(d.get('fallback_decodes'))} ({f(d.get('fallback_rounds'))}) | "
            f"{r['load_avg_1m'][0]} → {r['load_avg_1m'][1]} |")
    c = result["config"]
    lines.append(f"\n{c['turns']} turns of {c['turn_s'][0]}–{c['turn_s'][2]} s (mean {c['turn_s'][1]} s), "
                 f"line hiss {c['noise_dbfs']} dBFS ({c.get('quiet_line', 'silence')} between turns), "
                 f"{c['cores']} cores, server env {c['server_env']}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))

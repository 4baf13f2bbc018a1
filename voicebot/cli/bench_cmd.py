"""`voicebot bench load`: concurrent simulated callers against the call server."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from voicebot.config import REPO_ROOT, Settings

DEFAULT_SPEECH_DIR = REPO_ROOT.parent / "shared" / "data" / "speech-de"


def register(sub: argparse._SubParsersAction) -> None:
    bench = sub.add_parser("bench", help="benchmarks (load)")
    bsub = bench.add_subparsers(dest="bench_command", metavar="BENCHMARK", required=True)
    p = bsub.add_parser(
        "load",
        help="N simulated callers speaking real German over websockets; latency, drops, server CPU/memory",
        description="Each caller streams audio in real time (silence between turns, like a phone line), waits "
        "for the bot, pauses, speaks a real German clip, and redials when the server ends a call. Without "
        "--url a `voicebot serve` child process is started on a free port and stopped afterwards.",
    )
    p.add_argument("--calls", default="1", help="concurrent calls: N, or a comma list run in turn (e.g. 1,4,8)")
    p.add_argument("--duration", type=float, default=60.0, help="seconds per concurrency level (default 60)")
    p.add_argument("--url", help="a running server's native websocket, e.g. ws://127.0.0.1:8765/v1/call")
    p.add_argument("--server-pid", type=int, help="that server's pid, for CPU and memory (psutil)")
    p.add_argument("--channel", choices=("wideband", "telephone"), default="wideband",
                   help="wideband: 16 kHz PCM; telephone: 8 kHz µ-law through the phone-band channel")
    p.add_argument("--speech-dir", type=Path, default=DEFAULT_SPEECH_DIR, help="the shared German speech")
    p.add_argument("--frame-ms", type=int, default=20, choices=(10, 20, 40, 60),
                   help="audio per websocket message (default 20, as telephony gateways send)")
    p.add_argument("--seed", type=int, default=1, help="callers' choice of clips and pauses (default 1)")
    p.add_argument("--plot", type=Path, help="write a PNG of latency and CPU against the number of calls")
    p.add_argument("--json", action="store_true", help="print the result as JSON instead of a markdown table")
    p.add_argument("--out", type=Path, help="also write the JSON result to this file")
    p.add_argument("--report", type=Path, metavar="DIR", help="write a self-contained HTML report into DIR")
    p.set_defaults(handler=cmd_load)


def _levels(text: str) -> list[int]:
    try:
        levels = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise SystemExit(f"voicebot: error: --calls takes N or a comma list of N, got {text!r}") from None
    if not levels or any(n < 1 for n in levels):
        raise SystemExit("voicebot: error: --calls must be at least 1")
    return levels


def run_levels(url: str, levels: list[int], duration: float, clips: list[Any], server_pid: int | None,
               encoding: str, rate: int, frame_ms: int, seed: int) -> dict[int, dict[str, Any]]:
    from voicebot.eval.load import run_load

    runs: dict[int, dict[str, Any]] = {}
    for i, n in enumerate(levels):
        if i:
            time.sleep(2.0)  # let the previous level's calls close before the next one starts
        print(f"bench load: {n} concurrent calls for {duration:.0f} s ...", file=sys.stderr, flush=True)
        runs[n] = asyncio.run(run_load(url, n, duration, clips, server_pid=server_pid, encoding=encoding,
                                       sample_rate=rate, frame_ms=frame_ms, seed=seed))
    return runs


def cmd_load(args: argparse.Namespace, settings: Settings) -> int:
    from voicebot.eval.load import load_clips, load_result, markdown_table
    from voicebot.eval.serverproc import ServerProcess

    levels = _levels(args.calls)
    if not (args.speech_dir / "manifest.jsonl").is_file():
        print(f"voicebot: error: no speech manifest in {args.speech_dir} (see --speech-dir)", file=sys.stderr)
        return 1
    encoding, rate = ("mulaw", 8000) if args.channel == "telephone" else ("pcm_s16le", 16000)
    clips = load_clips(args.speech_dir, encoding=encoding, sample_rate=rate)
    config: dict[str, Any] = {"duration_s": args.duration, "channel": args.channel, "encoding": encoding,
                              "sample_rate": rate, "frame_ms": args.frame_ms, "clips": len(clips), "seed": args.seed,
                              "asr_model": settings.asr.model, "voice": settings.tts.voice}
    if args.url:
        config["url"] = args.url
        runs = run_levels(args.url, levels, args.duration, clips, args.server_pid, encoding, rate, args.frame_ms,
                          args.seed)
    else:
        print("bench load: starting `voicebot serve` (loading models) ...", file=sys.stderr, flush=True)
        with ServerProcess(extra_args=["--config", args.config] if args.config else []) as server:
            config["url"] = server.url + " (child process)"
            runs = run_levels(server.url, levels, args.duration, clips, server.pid, encoding, rate, args.frame_ms,
                              args.seed)
    result = load_result(runs, config)
    if args.out:
        args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    if args.plot:
        write_plot(result, args.plot)
    if args.report:
        from voicebot.eval.report import write_report

        print(f"report: {write_report('load', result, settings, args.report)}", file=sys.stderr)
    print(json.dumps(result, indent=2, ensure_ascii=False) if args.json else markdown_table(result))
    return 0


def write_plot(result: dict[str, Any], path: Path) -> None:
    """Voice-to-voice percentiles against the number of calls, as one PNG."""
    from voicebot.eval.plots import lines_png

    runs = result["by_calls"]
    ns = sorted(runs, key=int)
    series = {f"voice→voice {p}": [runs[n]["voice_to_voice_ms"][p] for n in ns] for p in ("p50", "p95", "p99")}
    series["final transcript p95"] = [runs[n]["final_latency_ms"]["p95"] for n in ns]
    path.write_bytes(lines_png([int(n) for n in ns], series, "concurrent calls", "milliseconds",
                               "voicebot load benchmark", logx=True))

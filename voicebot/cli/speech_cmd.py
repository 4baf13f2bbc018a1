"""`voicebot transcribe AUDIO`: a recording through the call's streaming ASR pipeline."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from voicebot.config import Settings


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "transcribe",
        help="stream a WAV/FLAC/OGG file through VAD and streaming ASR; print partials and finals",
        description="The file goes through what a call uses: (optional telephone channel), 16 kHz, VAD + "
        "endpointing, partial transcripts with LocalAgreement commits, a final per turn with word timings "
        "and confidence, hallucination guards. By default as fast as possible (every partial awaited, as on "
        "a machine that keeps up); --realtime paces the audio like a live caller.",
    )
    p.add_argument("audio", type=Path, help="an audio file (WAV, FLAC, OGG, anything libsndfile reads)")
    p.add_argument("--channel", choices=("wideband", "telephone"), default="wideband",
                   help="telephone: pass the audio through the 8 kHz µ-law phone channel first")
    p.add_argument("--realtime", action="store_true", help="feed audio at the speed of speech")
    p.add_argument("--no-partials", action="store_true", help="finals only (faster)")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object: finals (text, start, end, confidence, words), partials, timings")
    p.set_defaults(handler=cmd_transcribe)


def cmd_transcribe(args: argparse.Namespace, settings: Settings) -> int:
    from voicebot.asr.factory import make_transcriber
    from voicebot.asr.transcriber import ASR_SAMPLE_RATE
    from voicebot.audio.errors import AudioError
    from voicebot.eval.asr import load_vad_model, prepare_audio

    try:
        pcm = prepare_audio(args.audio, args.channel)
    except AudioError as exc:
        print(f"voicebot: error: {exc}", file=sys.stderr)
        return 1
    started = time.perf_counter()
    transcriber = make_transcriber(settings).load()  # asr.backend: ctranslate2 | torch | auto
    vad_model = load_vad_model(settings)
    load_seconds = time.perf_counter() - started
    printer = None if args.json else _print_event
    out = asyncio.run(_run(transcriber, settings, vad_model, pcm, args, printer))
    audio_seconds = len(pcm) / ASR_SAMPLE_RATE
    result: dict[str, Any] = {
        "audio": str(args.audio),
        "audio_seconds": round(audio_seconds, 3),
        "channel": args.channel,
        "realtime": args.realtime,
        "finals": out["finals"],
        "partials": out["partials"],
        "turns": out["turns"],
        "timings": {
            "load_seconds": round(load_seconds, 3),
            "wall_seconds": round(out["wall_seconds"], 3),
            "rtf": round(out["wall_seconds"] / audio_seconds, 4) if audio_seconds else None,
            "final_latency": [f["latency"] for f in out["finals"]],
            "asr": out["stats"],
        },
    }
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        t = result["timings"]
        print(f"{len(out['finals'])} final(s) in {out['turns']} turn(s); {audio_seconds:.1f} s audio in "
              f"{t['wall_seconds']:.2f} s (RTF {t['rtf']}), model load {t['load_seconds']:.1f} s")
    return 0


async def _run(transcriber: Any, settings: Settings, vad_model: Any, pcm: Any, args: argparse.Namespace,
               printer: Any) -> dict[str, Any]:
    from voicebot.asr.scheduler import AsrScheduler
    from voicebot.eval.asr import stream_transcribe

    # As fast as possible means "as on a machine that keeps up": no greedy fallback for queued finals.
    async with AsrScheduler(transcriber, settings.asr, adaptive_beam=args.realtime) as scheduler:
        started = time.perf_counter()
        out = await stream_transcribe(scheduler, settings, vad_model, pcm, "cli", realtime=args.realtime,
                                      partials=not args.no_partials, on_event=printer,
                                      narrowband=args.channel == "telephone")
        out["wall_seconds"] = time.perf_counter() - started
        stats = scheduler.stats()
    out["stats"] = {k: v for k, v in stats.items() if k in ("final", "partial", "rtf", "batches")}
    return out


def _print_event(kind: str, e: dict[str, Any]) -> None:
    if kind == "partial":
        tentative = e["text"][len(e["committed"]):].strip()
        print(f"[{e['wall']:7.2f}s] partial @{e['end']:6.2f}  {e['committed']} \033[2m{tentative}\033[0m"
              if sys.stdout.isatty() else
              f"[{e['wall']:7.2f}s] partial @{e['end']:6.2f}  {e['committed']} | {tentative}")
    else:
        latency = f", {e['latency'] * 1000:.0f} ms after end of turn" if e.get("latency") is not None else ""
        print(f"[{e['wall']:7.2f}s] FINAL   {e['start']:6.2f}-{e['end']:6.2f}  {e['text']}  "
              f"(confidence {e['confidence']:.2f}{latency})")

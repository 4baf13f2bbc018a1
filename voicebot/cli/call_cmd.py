"""`voicebot call AUDIO [AUDIO ...]`: simulate one inbound call through the whole pipeline."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

import numpy as np

from voicebot.config import Settings


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "call",
        help="simulate one inbound call: each AUDIO file is the caller's next turn",
        description="Plays each AUDIO file as the caller's next turn, after the bot has spoken, through "
        "VAD → ASR → intent → policy → TTS, and prints the dialogue.",
    )
    p.add_argument("audio", nargs="+", type=Path, help="WAV/FLAC/OGG files, one per caller turn")
    p.add_argument("--channel", choices=["telephone"], help="pass caller audio through an 8 kHz µ-law channel")
    p.add_argument("--realtime", action="store_true", help="play audio in real time (default: as fast as possible)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--out", type=Path, help="write the bot's audio to this WAV file")
    p.set_defaults(handler=cmd_call)


def cmd_call(args: argparse.Namespace, settings: Settings) -> int:
    from voicebot.audio.io import write_wav
    from voicebot.dialog.simulate import simulate_call
    from voicebot.engines import Engines

    for path in args.audio:
        if not path.is_file():
            raise FileNotFoundError(f"audio file not found: {path}")
    engines = Engines.load(settings, with_encoder=False)

    async def run():  # type: ignore[no-untyped-def]
        clients = engines.clients()
        await clients.start()
        try:
            return await simulate_call(clients, settings, list(args.audio), channel=args.channel,
                                       realtime=args.realtime)
        finally:
            await clients.aclose()

    result = asyncio.run(run())
    summary = result.summary()
    if args.out:
        audio = np.concatenate(result.bot_audio) if result.bot_audio else np.zeros(0, dtype=np.int16)
        write_wav(args.out, audio, result.out_rate)
    if args.json:
        print(json.dumps(summary, ensure_ascii=False, indent=2))
        return 0
    print(f"BOT:    {summary['greeting']}")
    for turn in summary["turns"]:
        print(f"CALLER: {turn['caller']}   [asr {turn['asr_confidence']:.2f}]")
        print(f"        intent={turn['intent']} ({turn['confidence']:.2f}) action={turn['action']}")
        print(f"BOT:    {turn['bot']}")
    print(f"-- first intent: {summary['first_intent']}, route: {summary['route']}, "
          f"handoff: {summary['handoff_reason'] or 'no'}")
    return 0

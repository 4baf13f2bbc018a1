#!/usr/bin/env python3
"""Bot audio pacing with the real Pico voice: does the caller's buffer run dry between frames?

``TtsPlayer`` speaks a multi-sentence answer with real Pico (synthesis in an executor thread, the
next sentence while the current one is sent; Pico holds the GIL while it synthesizes) at 8 kHz in
real time, once per ``--leads`` value. The caller is modelled by the player itself: it plays what it
received in real time from the first frame, so audio later than its playout point is an underrun
(``PlaybackResult.underruns``). Also reported: the send gaps the loop produced (time between two
frames minus the 20 ms frame), which is what a caller with no buffer at all would hear.

    .venv/bin/python scripts/bench_playback.py [--leads 0,100,200,300] [--pico inline,process] [--repeat 3]
        [--busy 0]

``--pico``: Pico in this process (``tts.pico_process = false``: its synthesis holds the GIL) or in
its worker process (the default).

``--busy N`` runs N threads of pure-Python work beside the player (other calls' Python code, the
GIL's other users), for a loaded-process figure.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import threading
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from voicebot.config import load_settings  # noqa: E402
from voicebot.frames import BotAudio  # noqa: E402
from voicebot.tts import make_synthesizer  # noqa: E402
from voicebot.tts.playback import PlaybackResult, TtsPlayer  # noqa: E402

TEXT = ("Ich habe Ihren Schaden aufgenommen. Ein Mitarbeiter meldet sich heute noch bei Ihnen. "
        "Bitte halten Sie Ihre Versicherungsnummer bereit. Gibt es sonst noch etwas, das ich für Sie tun kann?")


async def speak_once(synth: object, lead_ms: int) -> tuple[PlaybackResult, list[float]]:
    loop = asyncio.get_running_loop()
    sent: list[float] = []

    async def send(audio: BotAudio) -> None:
        sent.append(loop.time())

    player = TtsPlayer(synth, 8000, send, frame_ms=20, realtime=True, lead_ms=lead_ms)  # type: ignore[arg-type]
    result = await player.speak(TEXT)
    burst = int(lead_ms / 20) + 1  # the lead leaves at once: not a gap
    gaps = [(b - a - 0.02) * 1000 for a, b in zip(sent[burst:], sent[burst + 1 :], strict=False)]
    return result, gaps


def row(mode: str, lead: int, runs: list[tuple[PlaybackResult, list[float]]]) -> str:
    results = [r for r, _ in runs]
    gaps = sorted(g for _, gs in runs for g in gs)
    dry = [r.underrun_seconds * 1000 for r in results]
    first = [r.first_audio_latency * 1000 for r in results if r.first_audio_latency is not None]
    return (f"| {mode} | {lead} | {sum(r.underruns for r in results)} | {sum(dry):.0f} / {max(dry):.0f} | "
            f"{statistics.median(gaps):.1f} / {gaps[int(0.99 * (len(gaps) - 1))]:.1f} / {gaps[-1]:.1f} | "
            f"{statistics.median(first):.0f} |")


def busy(stop: threading.Event) -> None:
    while not stop.is_set():
        sum(i * i for i in range(20000))


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--leads", default="0,100,200,300")
    ap.add_argument("--pico", default="inline,process", help="inline (in-process) and/or process (worker)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--busy", type=int, default=0, help="pure-Python threads beside the player")
    args = ap.parse_args(argv)
    settings = load_settings()
    stop = threading.Event()
    workers = [threading.Thread(target=busy, args=(stop,), daemon=True) for _ in range(args.busy)]
    for w in workers:
        w.start()
    print(f"{args.repeat} × {len(TEXT.split('. '))} sentences of Pico per lead; {args.busy} busy Python threads")
    print("| Pico | lead ms | underruns | ran dry ms total / max-utterance | send gap p50 / p99 / max ms | "
          "first audio ms p50 |")
    print("|---|---|---|---|---|---|")
    try:
        for mode in args.pico.split(","):
            synth = make_synthesizer(replace(settings.tts, pico_process=mode == "process"), settings.models).load()
            synth.synthesize("Guten Tag.")  # the worker's first call loads the voice
            for lead in (int(x) for x in args.leads.split(",")):
                print(row(mode, lead, [asyncio.run(speak_once(synth, lead)) for _ in range(args.repeat)]))
    finally:
        stop.set()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

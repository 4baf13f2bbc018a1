#!/usr/bin/env python
"""Where each phone turn's answer time goes: one turn at a time through a real call, every step on one clock.

Each phone turn of the load benchmark (``scripts/phone_turns.py``: multi-sentence turns with line hiss, 8 kHz
µ-law in 20 ms frames, paced in real time, the same hiss before and after as ``bench_load --phone``) goes
through a real ``CallSession`` with the configured models and settings (environment variables apply). Written
down on the caller's clock, in ms from the caller's last voiced frame: every final-quality ASR decode (pause
decodes, speculations, finals; what became of each, its audio, queue wait and decode time), the end of the turn,
the final, the turn handed to the dialog, its decision and the bot's first audio; then one line per turn and the
engine pools' waits. A turn's answer is late for a reason this shows (a decode that started late, queued, or ran
long; the end of turn waiting for the fallback; intent waiting for a light-pool thread).

    flock /tmp/voicebot-cpu.lock nice -n 5 .venv/bin/python scripts/bench_turn_timeline.py --turns 8 [--first 0]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from voicebot.asr.scheduler import DecodeSpan
    from voicebot.call.pools import KindTimes

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

TAIL_S = 2.5  # line hiss after the turn (the 1.2 s fallback and the answer fit in it); before it: LEAD_S
WAIT_S = 2.0  # after the tail, how much longer an answer is waited for


@dataclass(frozen=True)
class Mark:
    t: float  # perf_counter
    what: str


@dataclass
class TurnLine:
    name: str
    seconds: float
    ended_ms: float | None = None
    final_ms: float | None = None
    decided_ms: float | None = None
    first_audio_ms: float | None = None
    cut_ins: int = 0  # bot answers begun inside the turn (before the caller's last voiced frame)


async def run(turns: int, first: int, show: bool) -> list[TurnLine]:
    from bench_load import quiet_line
    from bench_turn_live import LEAD_S, on_the_line, play_realtime, quiet_session
    from phone_turns import provision_turns

    from voicebot.audio.codecs import mulaw_decode
    from voicebot.config import load_settings
    from voicebot.dialog.domain import load_domain
    from voicebot.engines import Engines, serve_threads
    from voicebot.eval.load import load_clips
    from voicebot.frames import (
        BotFirstAudio,
        SessionStarted,
        SpeculationDropped,
        SpeculativeFinal,
        SpeechEnded,
        SpeechStarted,
        Transcript,
        TurnDecided,
        UserTurn,
    )

    settings = load_settings()
    engines = Engines.load(settings)
    serve_threads(settings)  # as a server does once its models are loaded
    clips = load_clips(provision_turns(40, seed=1), encoding="mulaw", sample_rate=8000)[first: first + turns]
    hiss = np.asarray(mulaw_decode(quiet_line(-45.0, 1)))
    domain = load_domain(settings.dialog.domain)
    clients = engines.clients()
    await clients.start()
    marks: list[Mark] = []
    answered = asyncio.Event()  # the bot's first audio after the caller's last voiced frame
    answer_after = [float("inf")]

    def on_decode(span: DecodeSpan) -> None:
        if span.use != "partial":  # partials: the live transcript, not the answer
            done = time.perf_counter()
            queued, ran = (span.started - span.enqueued) * 1000, (span.done - span.started) * 1000
            marks.append(Mark(done - (span.done - span.enqueued),
                              f"decode {span.use} of {span.audio_s:.1f} s queued {queued:.0f} ms, ran {ran:.0f} ms"))
            marks.append(Mark(done, f"  ... {span.use} decode done"))

    if hasattr(clients.asr, "observers"):  # (a tree from before DecodeSpan: no decode lines)
        clients.asr.observers.append(on_decode)

    async def on_frame(frame: object) -> None:
        what = type(frame).__name__
        if isinstance(frame, Transcript):
            if not frame.is_final:
                return
            what = f"final '{frame.text[:48]}'"
        elif isinstance(frame, UserTurn):
            what = f"turn to the dialog '…{frame.transcript.text[-40:]}'"
        elif isinstance(frame, TurnDecided):
            what = f"decided: {frame.intent} {frame.confidence:.2f} / {frame.action}"
        now = time.perf_counter()
        marks.append(Mark(now, what))
        if isinstance(frame, BotFirstAudio) and now > answer_after[0]:
            answered.set()

    lines: list[TurnLine] = []
    try:
        for k, clip in enumerate(clips):
            audio = on_the_line(np.asarray(mulaw_decode(clip.payload)), hiss, TAIL_S)
            session = quiet_session(clients, settings, f"timeline-{k}-{time.time_ns()}", domain)
            session.bus.subscribe(on_frame, SpeechStarted, SpeechEnded, SpeculativeFinal, SpeculationDropped,
                                  Transcript, UserTurn, TurnDecided, BotFirstAudio)
            await session.bus.publish(SessionStarted(metadata={}, realtime=True))
            session.recognizer_stage.start()
            session.dialog.start()
            marks.clear()
            started = time.perf_counter()
            voiced_end = started + LEAD_S + (clip.voiced_s or clip.seconds)
            answer_after[0] = voiced_end
            answered.clear()
            await play_realtime(session, audio, started)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(answered.wait(), WAIT_S)
            line = TurnLine(clip.name, clip.seconds)
            for mark in sorted(marks, key=lambda m: m.t):
                ms = (mark.t - voiced_end) * 1000.0
                if ms < 0 and mark.what == "BotFirstAudio":
                    line.cut_ins += 1
                if ms < -200:
                    continue  # a pause inside the turn: the last one's decode starts around the end
                if show:
                    print(f"  {ms:7.0f} ms  {mark.what}")
                if mark.what == "SpeechEnded" and line.ended_ms is None:
                    line.ended_ms = ms
                elif mark.what.startswith("final") and line.final_ms is None and line.ended_ms is not None:
                    line.final_ms = ms
                elif mark.what.startswith("decided") and line.decided_ms is None and line.final_ms is not None:
                    line.decided_ms = ms
                elif mark.what == "BotFirstAudio" and line.first_audio_ms is None and ms >= 0:
                    line.first_audio_ms = ms
            if show:
                print(f"== {clip.name} ({clip.seconds:.1f} s) above, from the caller's last voiced frame\n")
            lines.append(line)
            await session.end("completed")
        profile = clients.profile()
    finally:
        await clients.aclose()
    print_tables(lines, profile)
    return lines


def print_tables(lines: list[TurnLine], profile: list[KindTimes]) -> None:
    """One line per turn, the first audio's percentiles and the cut-ins, and the engine pools' waits."""
    print("| turn | s | turn ended ms | final ms | decided ms | first bot audio ms | bot cut in |\n"
          "|---|---|---|---|---|---|---|")
    for t in lines:
        cells = [("–" if v is None else f"{v:.0f}") for v in (t.ended_ms, t.final_ms, t.decided_ms, t.first_audio_ms)]
        print(f"| {t.name} | {t.seconds:.1f} | " + " | ".join(cells) + f" | {t.cut_ins} |")
    audio = [t.first_audio_ms for t in lines if t.first_audio_ms is not None]
    if audio:
        print(f"\nfirst bot audio after the caller's last voiced frame: p50 {np.percentile(audio, 50):.0f} / p90 "
              f"{np.percentile(audio, 90):.0f} ms ({len(audio)} of {len(lines)} turns); bot cut in: "
              f"{sum(t.cut_ins for t in lines)} times in {sum(t.cut_ins > 0 for t in lines)} turns")
    print("\n| pool | job | jobs | wait p50 / p95 ms | run p50 / p95 ms |\n|---|---|---|---|---|")
    for p in profile:
        print(f"| {p.pool} | {p.kind} | {p.jobs} | {p.wait_p50_ms:.0f} / {p.wait_p95_ms:.0f} | "
              f"{p.run_p50_ms:.0f} / {p.run_p95_ms:.0f} |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--turns", type=int, default=8, help="how many of the phone bench's 40 turns")
    ap.add_argument("--first", type=int, default=0, help="start at this turn")
    ap.add_argument("--quiet", action="store_true", help="only the per-turn and pool tables")
    args = ap.parse_args()
    asyncio.run(run(args.turns, args.first, not args.quiet))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

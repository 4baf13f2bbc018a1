#!/usr/bin/env python
"""End-of-turn signals on live phone turns, recorded in real time, then every rule replayed on them.

Each phone turn of the load benchmark (``scripts/phone_turns.py``: multi-sentence turns, line hiss
under them) goes through a real ``CallSession`` as the server runs it (8 kHz µ-law frames of 20 ms,
paced in real time, the same line hiss before and after the turn as ``bench_load --phone``). The
session ends turns on silence alone (1200 ms) so that every pause runs its course, while
``voicebot.eval.turn_live.PauseRecorder`` writes down what the end-of-turn stage could know at each
moment: the partials and the speculative final (and the text model's P(complete) on each) and Smart
Turn at 200 / 300 / 400 / 600 ms of silence, with when each answer was ready. Then each rule below
is replayed on every pause: for a turn's last pause the silence after which it ends (the end-of-turn
delay), for pauses inside a turn whether it ended before the caller went on (a cut-in).

    flock /tmp/voicebot-cpu.lock nice -n 10 .venv/bin/python scripts/bench_turn_live.py --turns 20 \
        --out /tmp/live_pauses.jsonl
    .venv/bin/python scripts/bench_turn_live.py --from-records /tmp/live_pauses.jsonl
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from voicebot.eval.turn_live import PauseRecord, PauseRecorder, Rule, Seen, end_ms  # noqa: E402
from voicebot.turn.decision import TurnEndConfig, TurnEndDecider  # noqa: E402

if TYPE_CHECKING:
    from voicebot.call.clients import EngineClients
    from voicebot.config import Settings
    from voicebot.dialog.domain import Domain
    from voicebot.dialog.session import CallSession

LEAD_S = 1.0
SHIPPED = TurnEndDecider(TurnEndConfig())


def shipped(s: Seen, decider: TurnEndDecider = SHIPPED) -> bool:
    """voicebot.call.eot as shipped: Smart Turn and the text model asked at 200 ms, the text re-asked on the
    speculative final; nothing decided before Smart Turn's answer is in."""
    if s.ms < decider.config.min_silence_ms or 200 not in s.audio:
        return False
    d = decider.decide(s.ms, s.audio[200], s.text_at_ask, "und" if s.cue else "")
    return d.end and d.reason != "max_silence"


def text_led(threshold: float, veto: float, need_spec: bool = True, at: float = 200.0) -> Rule:
    """End once the text (the speculative final's, if ``need_spec``) says complete with ``threshold``, unless
    Smart Turn (asked at 200 ms, once ready) is below ``veto`` or a cue holds."""
    def rule(s: Seen) -> bool:
        if s.ms < at or s.cue or (need_spec and not s.speculative) or s.text_prob is None:
            return False
        if s.text_prob < threshold:
            return False
        return not (200 in s.audio and s.audio[200] < veto)
    return rule


def newest_text(threshold: float, weight: float = 0.6) -> Rule:
    """The shipped combination on the newest text (each partial that lands in the pause re-asks the text
    model, not only the speculative final) at another fast threshold."""
    decider = TurnEndDecider(replace(TurnEndConfig(), audio_weight=weight, fast_threshold=threshold,
                                     slow_threshold=threshold))

    def rule(s: Seen) -> bool:
        if s.ms < decider.config.min_silence_ms or 200 not in s.audio:
            return False
        d = decider.decide(s.ms, s.audio[200], s.text_prob, "und" if s.cue else "")
        return d.end and d.reason != "max_silence"
    return rule


LIVE_RULES: dict[str, Rule] = {
    "shipped (0.6 audio + 0.4 text >= 0.8 at 200 ms)": shipped,
    "newest text, >= 0.8": newest_text(0.8),
    "newest text, >= 0.75": newest_text(0.75),
    "silence 600 ms": lambda s: s.ms >= 600,
    "text on the speculative final >= 0.8": text_led(0.8, 0.0),
    "text on the speculative final >= 0.8, Smart Turn veto < 0.3": text_led(0.8, 0.3),
    "text on the speculative final >= 0.9, Smart Turn veto < 0.3": text_led(0.9, 0.3),
    "text (any) >= 0.8, Smart Turn veto < 0.3": text_led(0.8, 0.3, need_spec=False),
}
TAIL_S = 2.0
FRAME_S = 0.02


def on_the_line(pcm: np.ndarray, hiss: np.ndarray, tail_s: float = TAIL_S) -> np.ndarray:
    """A phone turn (8 kHz) as the line carries it: ``LEAD_S`` of the line's hiss before it, ``tail_s`` after it."""
    lead, tail = hiss[: int(LEAD_S * 8000)], hiss[int(LEAD_S * 8000): int((LEAD_S + tail_s) * 8000)]
    return np.concatenate([lead, pcm, tail])


def quiet_session(clients: EngineClients, settings: Settings, call_id: str, domain: Domain) -> CallSession:
    """A real ``CallSession`` whose events and bot audio go nowhere: the bench listens on its bus."""
    from voicebot.dialog.session import CallSession

    async def nothing(_: object) -> None:
        return None

    return CallSession(clients, settings, call_id, domain=domain, emit=nothing, send_audio=nothing, out_rate=8000,
                       realtime=True)


async def play_realtime(session: CallSession, audio: np.ndarray, started: float) -> None:
    """Push 8 kHz ``audio`` into the call in 20 ms frames, paced in real time from ``started`` (perf_counter)."""
    from voicebot.frames import AudioFrame

    step = int(FRAME_S * 8000)
    for i in range(0, len(audio), step):
        await session.push_audio(AudioFrame(audio[i: i + step].copy(), 8000, i / 8000))
        delay = started + (i + step) / 8000 - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)


async def record(turns: int, seed: int, shipped_stage: bool = False) -> list[PauseRecord]:
    from bench_load import quiet_line
    from phone_turns import provision_turns

    from voicebot.audio.codecs import mulaw_decode
    from voicebot.config import load_settings
    from voicebot.dialog.domain import load_domain
    from voicebot.engines import Engines
    from voicebot.eval.load import load_clips
    from voicebot.frames import SessionStarted
    from voicebot.turn.smart_turn import SmartTurnModel
    from voicebot.turn.text_eou import TextTurnModel

    base = load_settings()
    # Silence alone ends turns, at the fallback: every pause runs its course while the signals are recorded.
    settings = replace(base, turn=replace(base.turn, detector="silence"),
                       vad=replace(base.vad, end_silence_ms=int(base.turn.max_silence_ms)))
    if shipped_stage:  # the end-of-turn stage as configured decides (its turn ends are printed per turn)
        settings = base
    engines = Engines.load(settings)
    text_model = TextTurnModel.load(settings.models.dir)
    smart = SmartTurnModel.from_settings(settings.models).load()
    clips = load_clips(provision_turns(40, seed=1), encoding="mulaw", sample_rate=8000)[:turns]
    hiss = np.asarray(mulaw_decode(quiet_line(-45.0, seed)))
    domain = load_domain(settings.dialog.domain)
    clients = engines.clients()
    await clients.start()
    out: list[PauseRecord] = []

    try:
        for k, clip in enumerate(clips):
            audio = on_the_line(np.asarray(mulaw_decode(clip.payload)), hiss)
            session = quiet_session(clients, settings, f"live-{k}-{time.time_ns()}", domain)
            recorder = PauseRecorder(session, text_model, smart, turn=clip.name)
            await session.bus.publish(SessionStarted(metadata={}, realtime=True))
            session.recognizer_stage.start()
            session.dialog.start()
            await play_realtime(session, audio, time.perf_counter())
            await recorder.drain()
            voiced_end = LEAD_S + (clip.voiced_s or clip.seconds)
            last = [p for p in recorder.pauses if p.resumed_ms is None and p.start_t >= voiced_end - 0.6]
            if last:
                last[-1].final = True
                last[-1].true_gap_ms = round((last[-1].start_t - voiced_end) * 1000.0, 1)
            out += [p for p in recorder.pauses if p.final or p.resumed_ms is not None]
            await session.end("completed")
            ends = [round((t - voiced_end) * 1000.0) for t in recorder.ends if t > voiced_end - 0.3]
            decisions = session.end_of_turn.decisions if session.end_of_turn is not None else []
            print(f"{clip.name}: {len(recorder.pauses)} pauses, final={bool(last)}, turn ended {ends} ms after the "
                  f"caller's last voiced frame, early ends {decisions}", file=sys.stderr, flush=True)
    finally:
        await clients.aclose()
    return out


def table(pauses: list[PauseRecord]) -> str:
    finals = [p for p in pauses if p.final]
    inner = [p for p in pauses if not p.final and p.resumed_ms is not None]
    spec = [next((t.ms for t in p.texts if t.kind == "speculative"), None) for p in finals]
    spec_ms = [s for s in spec if s is not None]
    gaps = [p.true_gap_ms for p in finals if p.true_gap_ms is not None]
    lines = [f"{len(finals)} turn ends, {len(inner)} pauses inside turns "
             f"(caller went on after {np.percentile([p.resumed_ms for p in inner], 50):.0f} ms p50, "
             f"max {max(float(p.resumed_ms or 0.0) for p in inner):.0f} ms)" if inner else f"{len(finals)} turn ends",
             f"speculative final landed at {np.percentile(spec_ms, 50):.0f} / {np.percentile(spec_ms, 90):.0f} ms "
             f"of silence (p50 / p90; {len(spec_ms)} of {len(finals)}); the VAD's last voiced frame came "
             f"{np.percentile(gaps, 50):.0f} ms (p50) after the caller's", "",
             "| rule | turn end: silence p50 / p90 / max ms | ended by the fallback | cut-ins (pauses inside turns "
             "ended before the caller went on) |", "|---|---|---|---|"]
    for name, rule in LIVE_RULES.items():
        ends = np.array([end_ms(p, rule) for p in finals])
        cut = sum(end_ms(p, rule) < float(p.resumed_ms) for p in inner)  # type: ignore[arg-type]
        lines.append(f"| {name} | {np.percentile(ends, 50):.0f} / {np.percentile(ends, 90):.0f} / {ends.max():.0f} | "
                     f"{int((ends >= 1200).sum())} of {len(ends)} | {cut} of {len(inner)} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--turns", type=int, default=20, help="the first N of the phone bench's 40 turns")
    ap.add_argument("--seed", type=int, default=1, help="the line hiss's seed (bench_load's --seed)")
    ap.add_argument("--out", type=Path, help="keep the pause records as JSONL")
    ap.add_argument("--shipped-stage", action="store_true",
                    help="let the configured end-of-turn stage end turns (a check that the replay matches it)")
    ap.add_argument("--from-records", type=Path, action="append", help="replay the rules on kept records")
    args = ap.parse_args()
    if args.from_records:
        pauses = [PauseRecord.from_json(json.loads(line)) for path in args.from_records
                  for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    else:
        pauses = asyncio.run(record(args.turns, args.seed, args.shipped_stage))
        if args.out:
            args.out.write_text("".join(json.dumps(p.to_json(), ensure_ascii=False) + "\n" for p in pauses),
                                encoding="utf-8")
    print(table(pauses))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

#!/usr/bin/env python3
"""Barge-in on the phone line, measured at the caller: how fast the bot falls silent, and backchannels.

A telephone caller (8 kHz µ-law over the native websocket, against ``voicebot serve`` with the real
models) waits until the greeting has played for ``--after`` seconds, then speaks over it:

* ``speech``: a real German caller turn (``scripts/phone_turns.py``, speech from the first sample).
  Measured from the first frame of speech sent: the ``bargein`` ``paused`` event, and the moment the
  bot's audio stops *playing* at the caller (the caller plays frames as they arrive, so with
  ``tts.playback_lead_ms`` audio already sent keeps playing);
* ``backchannel``: "Mhm." / "Ja." / "Genau." (Pico, through the same phone channel). Expected:
  paused, then resumed, never stopped; bot audio goes on; no turn answered.

    .venv/bin/python scripts/bench_bargein.py [--trials 5] [--after 1.0] [--env KEY=VALUE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from phone_turns import provision_turns  # noqa: E402

from voicebot.eval.load import load_clips  # noqa: E402
from voicebot.eval.serverproc import ServerProcess  # noqa: E402

RATE, FRAME_S = 8000, 0.02
FRAME_BYTES = int(RATE * FRAME_S)
SILENCE = b"\xff" * FRAME_BYTES
BACKCHANNELS = ("Mhm.", "Ja.", "Genau.")


@dataclass
class Trial:
    kind: str
    onset: float = 0.0
    audio: list[float] = field(default_factory=list)  # arrival of each bot audio message
    audio_bytes: list[int] = field(default_factory=list)
    events: list[tuple[float, dict[str, Any]]] = field(default_factory=list)

    def playout_stop(self) -> float | None:
        """When the bot's audio stopped playing at the caller after the onset (None: it never did)."""
        until = 0.0
        for at, n in zip(self.audio, self.audio_bytes, strict=True):
            if at > self.onset and until > self.onset and at - until > 0.1:
                return until  # a gap: the audio playing at the caller ran out here
            until = max(until, at) + n / RATE
        return until if until > self.onset else None  # the audio ran out and nothing came after

    def first(self, kind: str, **match: Any) -> float | None:
        return next((t for t, e in self.events if e.get("type") == kind
                     and all(e.get(k) == v for k, v in match.items()) and t >= self.onset), None)


async def run_trial(url: str, kind: str, payload: bytes, after: float, listen: float) -> Trial:
    import websockets

    trial = Trial(kind)
    async with websockets.connect(url, max_size=None, open_timeout=20, ping_interval=None) as ws:
        await ws.send(json.dumps({"type": "start", "encoding": "mulaw", "sample_rate": RATE,
                                  "call_id": f"bargein-{kind}-{time.time_ns()}", "caller": {"load_test": True}}))

        async def receive() -> None:
            async for message in ws:
                now = time.perf_counter()
                if isinstance(message, bytes):
                    trial.audio.append(now)
                    trial.audio_bytes.append(len(message))
                else:
                    trial.events.append((now, json.loads(message)))

        receiver = asyncio.create_task(receive())
        queue: list[bytes] = []
        tick = time.perf_counter()
        end_at: float | None = None
        while end_at is None or time.perf_counter() < end_at:
            if not queue and not trial.onset and trial.audio and time.perf_counter() - trial.audio[0] >= after:
                queue = [payload[i : i + FRAME_BYTES] for i in range(0, len(payload), FRAME_BYTES)]
                trial.onset = time.perf_counter()
                end_at = trial.onset + len(queue) * FRAME_S + listen
            await ws.send(queue.pop(0) if queue else SILENCE)
            tick += FRAME_S
            await asyncio.sleep(max(0.0, tick - time.perf_counter()))
            if end_at is None and time.perf_counter() - tick > 30:
                break
        await ws.send(json.dumps({"type": "stop"}))
        receiver.cancel()
        await asyncio.gather(receiver, return_exceptions=True)
    return trial


def backchannel_payloads() -> list[bytes]:
    from voicebot.audio.channel import telephone_channel
    from voicebot.audio.codecs import mulaw_encode
    from voicebot.audio.resample import resample
    from voicebot.config import load_settings
    from voicebot.tts import make_synthesizer

    settings = load_settings()
    synth = make_synthesizer(settings.tts, settings.models).load()
    out = []
    for text in BACKCHANNELS:
        audio = synth.synthesize(text)
        pcm, rate = telephone_channel(audio.pcm, audio.sample_rate)
        out.append(mulaw_encode(resample(pcm, rate, RATE)))
    return out


def ms(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round((a - b) * 1000.0, 1)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trials", type=int, default=5, help="speech trials (each backchannel once more)")
    ap.add_argument("--after", type=float, default=1.0, help="seconds of greeting before the caller speaks")
    ap.add_argument("--env", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args(argv)
    turn_dir = provision_turns(40, seed=1)
    speech = [c.payload[: int(RATE * 2.0)] for c in load_clips(turn_dir, encoding="mulaw", sample_rate=RATE)]
    plan = [("speech", speech[i % len(speech)]) for i in range(args.trials)]
    plan += [(f"backchannel:{t}", p) for t, p in zip(BACKCHANNELS, backchannel_payloads(), strict=True)]
    rows = []
    with ServerProcess(env=dict(kv.split("=", 1) for kv in args.env)) as server:
        for kind, payload in plan:
            t = asyncio.run(run_trial(server.url, kind, payload, args.after, listen=4.0))
            actions = [e["action"] for at, e in t.events if e.get("type") == "bargein" and at >= t.onset]
            rows.append({
                "kind": kind, "paused_ms": ms(t.first("bargein", action="paused"), t.onset),
                "stopped_ms": ms(t.first("bargein", action="stopped"), t.onset),
                "audio_stops_ms": ms(t.playout_stop(), t.onset), "actions": actions,
                "audio_after_resume": sum(1 for a in t.audio if (r := t.first("bargein", action="resumed")) and a > r),
                "answered": any(e.get("type") == "intent" for at, e in t.events if at >= t.onset),
            })
            print(json.dumps(rows[-1], ensure_ascii=False), file=sys.stderr, flush=True)
    print("| caller | trials | bargein paused p50 / max ms | bot audio stops at caller p50 / max ms | "
          "actions | bot audio after resume (frames) | answered as a turn |")
    print("|---|---|---|---|---|---|---|")
    for kind in dict.fromkeys(r["kind"].split(":")[0] for r in rows):
        group = [r for r in rows if r["kind"].split(":")[0] == kind]

        def stat(key: str, group: list[dict[str, Any]] = group) -> str:
            vals = [r[key] for r in group if r[key] is not None]
            return f"{statistics.median(vals):.0f} / {max(vals):.0f}" if vals else "–"

        actions = "; ".join(sorted({" → ".join(r["actions"]) or "none" for r in group}))
        print(f"| {kind} | {len(group)} | {stat('paused_ms')} | {stat('audio_stops_ms')} | {actions} | "
              f"{min(r['audio_after_resume'] for r in group)}+ | {sum(r['answered'] for r in group)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

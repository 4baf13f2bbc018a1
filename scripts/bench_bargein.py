#!/usr/bin/env python3
"""Barge-in on the phone line, measured at the caller: how fast the bot falls silent, and backchannels.

A telephone caller (8 kHz µ-law, native websocket and Twilio media stream, against ``voicebot serve``
with the real models) hears line hiss between its words, waits until the greeting has played for
``--after`` seconds, then speaks over it:

* ``speech``: a real German caller turn (``scripts/phone_turns.py``). Measured from the audible onset
  of its speech (the first 10 ms at -40 dBFS, the hiss is ~-50; a phone turn's first sentence often
  starts with 0.1-1 s of room noise, which earlier versions of this script counted as speech): the
  ``bargein`` ``paused`` event, and the moment the bot's audio stops *playing* at the caller. The
  caller is a jitter buffer: it plays bot audio as it arrives and drops what it holds on a native
  ``paused``/``stopped`` event (docs/PROTOCOL.md) or a Twilio ``clear``;
* ``backchannel``: "Mhm." / "Ja." / "Genau." (Pico) and "richtig" / "eben" cut from real recordings,
  through the same phone channel. Expected: paused, then resumed, never stopped; the caller hears
  the whole greeting once (what it dropped at the pause is sent again); no turn answered.

Also counted: how often the caller's buffer ran dry while the greeting played (gaps >= 20 ms).

    .venv/bin/python scripts/bench_bargein.py [--trials 5] [--after 1.0] [--protocols native,twilio]
        [--env KEY=VALUE]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from phone_turns import provision_turns  # noqa: E402

from voicebot.eval.load import load_clips  # noqa: E402
from voicebot.eval.serverproc import ServerProcess  # noqa: E402

RATE, FRAME_S = 8000, 0.02
FRAME_BYTES = int(RATE * FRAME_S)
BACKCHANNELS = ("Mhm.", "Ja.", "Genau.")
# Real voices: a backchannel word cut out of a real sentence (speech-de-more / speech-de, word timings
# from eval/turn/turn_de.jsonl).
REAL_BACKCHANNELS = (("richtig", "speech-de-more", "clips/cv61_17345166.flac", 1.26, 1.72),
                     ("eben", "speech-de", "clips/emodb_03b09La.flac", 0.5, 0.78))
ONSET_DBFS = -40.0  # audible speech: a 10 ms frame this loud, and 3 of the 5 from it (the line hiss is ~-50)
PRE_ONSET_S = 0.1  # the payload starts this long before the audible onset (the word's soft attack)


def audible_onset(pcm8k: np.ndarray) -> float:
    """Seconds into ``pcm8k`` where speech becomes audible above the line hiss (not the clip's first
    sample: a phone turn's first sentence often starts with 0.1-1 s of room noise)."""
    import numpy as np

    n = len(pcm8k) // 80
    x = pcm8k[: n * 80].astype(np.float64).reshape(n, 80)
    loud = 10 * np.log10(np.mean(x * x, axis=1) + 1e-9) - 20 * np.log10(32768) >= ONSET_DBFS
    return next((i * 0.01 for i in range(n) if loud[i] and loud[i : i + 5].sum() >= 3), 0.0)


@dataclass
class Playout:
    """The caller's jitter buffer: bot audio plays in arrival order; a barge-in (native ``paused`` /
    ``stopped``, Twilio ``clear``) drops what it holds."""

    play_t: float | None = None  # wall time at which the buffered audio starts playing
    held: float = 0.0  # seconds buffered
    ran_out: list[float] = field(default_factory=list)  # times the playout ran out (dry or dropped)
    dry_gaps: list[tuple[float, float]] = field(default_factory=list)  # (at, seconds) of silence mid-speech
    heard: float = 0.0
    _dropped: bool = False

    def advance(self, t: float) -> None:
        if self.play_t is None:
            return
        played = min(self.held, max(0.0, t - self.play_t))
        if played >= self.held and self.held > 0:
            self.ran_out.append(self.play_t + self.held)
        self.heard += played
        self.held -= played
        self.play_t += played

    def audio(self, t: float, seconds: float) -> None:
        self.advance(t)
        if self.play_t is not None and self.held <= 0 and t > self.play_t:
            if not self._dropped:
                self.dry_gaps.append((t, t - self.play_t))
            self.play_t = t
        if self.play_t is None:
            self.play_t = t
        self._dropped = False
        self.held += seconds

    def drop(self, t: float) -> None:
        self.advance(t)
        if self.held > 0:
            self.ran_out.append(t)
        self.held, self._dropped = 0.0, True

    def stopped_after(self, t: float) -> float | None:
        return next((x for x in self.ran_out if x > t), None)


@dataclass
class Trial:
    kind: str
    onset: float = 0.0  # wall time the caller's payload started
    speech_at: float = 0.0  # wall time its speech became audible
    playout: Playout = field(default_factory=Playout)
    first_audio: float | None = None
    events: list[tuple[float, dict[str, Any]]] = field(default_factory=list)

    def first(self, kind: str, **match: Any) -> float | None:
        return next((t for t, e in self.events if e.get("type") == kind
                     and all(e.get(k) == v for k, v in match.items()) and t >= self.onset), None)


async def run_trial(server: ServerProcess, protocol: str, kind: str, payload: bytes, speech_offset: float,
                    hiss: bytes, after: float, listen: float) -> Trial:
    import websockets

    trial = Trial(kind)
    url = server.url if protocol == "native" else server.url.replace("/v1/call", "/v1/twilio")
    sid = "bargein-" + "".join(c if c.isalnum() else "-" for c in kind) + f"-{time.time_ns()}"
    async with websockets.connect(url, max_size=None, open_timeout=20, ping_interval=None) as ws:
        if protocol == "native":
            await ws.send(json.dumps({"type": "start", "encoding": "mulaw", "sample_rate": RATE,
                                      "call_id": sid, "caller": {"load_test": True}}))
        else:
            await ws.send(json.dumps({"event": "start", "streamSid": sid, "start": {
                "streamSid": sid, "callSid": sid, "accountSid": "AC0", "tracks": ["inbound"], "customParameters": {},
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": RATE, "channels": 1}}}))

        def on_audio(now: float, n_bytes: int) -> None:
            trial.first_audio = trial.first_audio or now
            trial.playout.audio(now, n_bytes / RATE)

        async def receive() -> None:
            async for message in ws:
                now = time.perf_counter()
                if isinstance(message, bytes):
                    on_audio(now, len(message))
                    continue
                data = json.loads(message)
                if protocol == "twilio":
                    if data.get("event") == "media":
                        on_audio(now, len(base64.b64decode(data["media"]["payload"])))
                    elif data.get("event") == "clear":
                        trial.playout.drop(now)
                    continue
                trial.events.append((now, data))
                if data.get("type") == "bargein" and data.get("action") in ("paused", "stopped"):
                    trial.playout.drop(now)  # docs/PROTOCOL.md: drop any bot audio buffered

        receiver = asyncio.create_task(receive())
        queue: list[bytes] = []
        tick = time.perf_counter()
        end_at: float | None = None
        k = 0
        while end_at is None or time.perf_counter() < end_at:
            now = time.perf_counter()
            if not queue and not trial.onset and trial.first_audio and now - trial.first_audio >= after:
                queue = [payload[i : i + FRAME_BYTES] for i in range(0, len(payload), FRAME_BYTES)]
                trial.onset = now
                trial.speech_at = now + speech_offset
                end_at = trial.onset + len(queue) * FRAME_S + listen
            if queue:
                frame = queue.pop(0)
            else:  # line hiss, not digital silence, between the caller's words
                frame = hiss[(k * FRAME_BYTES) % (len(hiss) - FRAME_BYTES):][:FRAME_BYTES]
            k += 1
            if protocol == "native":
                await ws.send(frame)
            else:
                await ws.send(json.dumps({"event": "media", "streamSid": sid, "media": {
                    "track": "inbound", "chunk": str(k), "payload": base64.b64encode(frame).decode()}}))
            tick += FRAME_S
            await asyncio.sleep(max(0.0, tick - time.perf_counter()))
            if end_at is None and time.perf_counter() - tick > 30:
                break
        await ws.send(json.dumps({"type": "stop"} if protocol == "native" else {"event": "stop", "streamSid": sid}))
        receiver.cancel()
        await asyncio.gather(receiver, return_exceptions=True)
    if protocol == "twilio":  # Twilio gets no voicebot events: read the call's from the store
        trial.events = []
    return trial


def phone_line(pcm: np.ndarray, rate: int) -> bytes:
    from voicebot.audio.channel import telephone_channel
    from voicebot.audio.codecs import mulaw_encode
    from voicebot.audio.resample import resample

    line, line_rate = telephone_channel(pcm, rate)
    return mulaw_encode(resample(line, line_rate, RATE))


def backchannel_payloads() -> list[tuple[str, bytes]]:
    from voicebot.audio.io import load_for_asr
    from voicebot.config import load_settings
    from voicebot.eval.asr_cases import SHARED, line_noise
    from voicebot.tts import make_synthesizer

    settings = load_settings()
    synth = make_synthesizer(settings.tts, settings.models).load()
    out = []
    for text in BACKCHANNELS:
        audio = synth.synthesize(text)
        out.append((f"pico {text}", phone_line(audio.pcm, audio.sample_rate)))
    for word, corpus, path, a, b in REAL_BACKCHANNELS:
        pcm = load_for_asr(SHARED / corpus / path, 16000)[int(a * 16000) : int(b * 16000)]
        pcm = (pcm + line_noise(len(pcm) / 16000, seed=3)[: len(pcm)]).astype("int16")
        out.append((f"real {word}", phone_line(pcm, 16000)))
    return out


def ms(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round((a - b) * 1000.0, 1)


def greeting_seconds() -> float:
    from voicebot.config import load_settings
    from voicebot.dialog.domain import load_domain
    from voicebot.tts import make_synthesizer
    from voicebot.tts.base import split_sentences, trim_trailing_silence
    from voicebot.tts.playback import LAST_SILENCE_S

    settings = load_settings()
    synth = make_synthesizer(settings.tts, settings.models).load()
    audio = [synth.synthesize(x) for x in split_sentences(load_domain(settings.dialog.domain).prompt("greeting"))]
    last = trim_trailing_silence(audio[-1].pcm, audio[-1].sample_rate, LAST_SILENCE_S)  # as the player sends it
    return sum(a.duration for a in audio[:-1]) + len(last) / audio[-1].sample_rate


def main(argv: list[str]) -> int:
    from voicebot.audio.codecs import mulaw_decode
    from voicebot.eval.asr_cases import line_noise

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trials", type=int, default=5, help="speech trials (each backchannel once more)")
    ap.add_argument("--after", type=float, default=1.0, help="seconds of greeting before the caller speaks")
    ap.add_argument("--protocols", default="native,twilio", help="comma-separated: native, twilio")
    ap.add_argument("--env", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args(argv)
    turn_dir = provision_turns(40, seed=1)
    plan: list[tuple[str, bytes, float]] = []
    for clip in load_clips(turn_dir, encoding="mulaw", sample_rate=RATE)[: args.trials]:
        at = audible_onset(mulaw_decode(clip.payload))
        cut = max(0.0, at - PRE_ONSET_S)
        plan.append(("speech", clip.payload[int(cut * RATE) : int((cut + 2.0) * RATE)], at - cut))
    for name, payload in backchannel_payloads():
        plan.append((f"backchannel:{name}", payload, audible_onset(mulaw_decode(payload))))
    hiss = phone_line(line_noise(10.0, seed=11), 16000)
    greeting_s = greeting_seconds()
    rows = []
    with ServerProcess(env=dict(kv.split("=", 1) for kv in args.env)) as server:
        for protocol in args.protocols.split(","):
            for kind, payload, offset in plan:
                listen = 4.0 if kind == "speech" else 7.0  # a backchannel: until the greeting has played out
                t = asyncio.run(run_trial(server, protocol, kind, payload, offset, hiss, args.after, listen))
                actions = [e["action"] for at, e in t.events if e.get("type") == "bargein" and at >= t.onset]
                before = [g for at, g in t.playout.dry_gaps if at < t.onset and g >= 0.02]
                rows.append({
                    "protocol": protocol, "kind": kind,
                    "paused_ms": ms(t.first("bargein", action="paused"), t.speech_at),
                    "stopped_ms": ms(t.first("bargein", action="stopped"), t.speech_at),
                    "audio_stops_ms": ms(t.playout.stopped_after(t.speech_at), t.speech_at),
                    "actions": actions, "heard_s": round(t.playout.heard, 2),
                    "greeting_gaps": len(before), "greeting_gap_max_ms": round(max(before, default=0.0) * 1000),
                    "answered": any(e.get("type") == "intent" for at, e in t.events if at >= t.onset),
                    "trace": [f"{round((at - t.speech_at) * 1000)}:{e.get('type')}:"
                              f"{e.get('action') or e.get('text', '')}"
                              for at, e in t.events if at >= t.onset and e.get("type") != "latency"],
                })
                print(json.dumps(rows[-1], ensure_ascii=False), file=sys.stderr, flush=True)
    print(f"Measured from the audible speech onset ({ONSET_DBFS:g} dBFS); the greeting is {greeting_s:.2f} s.")
    print("| protocol | caller | trials | bargein paused p50 / max ms | bot audio stops at caller p50 / max ms | "
          "actions | greeting heard s (min–max) | caller ran dry before barge-in (gaps ≥ 20 ms, max ms) | "
          "answered as a turn |")
    print("|---|---|---|---|---|---|---|---|---|")
    for protocol in args.protocols.split(","):
        for kind in dict.fromkeys(r["kind"].split(":")[0] for r in rows):
            group = [r for r in rows if r["kind"].split(":")[0] == kind and r["protocol"] == protocol]

            def stat(key: str, group: list[dict[str, Any]] = group) -> str:
                vals = [r[key] for r in group if r[key] is not None]
                return f"{statistics.median(vals):.0f} / {max(vals):.0f}" if vals else "–"

            actions = "; ".join(sorted({" → ".join(r["actions"]) or "none" for r in group})) \
                if protocol == "native" else "(no events on Twilio)"
            heard = [r["heard_s"] for r in group]
            print(f"| {protocol} | {kind} | {len(group)} | {stat('paused_ms')} | {stat('audio_stops_ms')} | "
                  f"{actions} | {min(heard):.2f}–{max(heard):.2f} | {sum(r['greeting_gaps'] for r in group)}, "
                  f"{max(r['greeting_gap_max_ms'] for r in group)} | "
                  f"{sum(r['answered'] for r in group) if protocol == 'native' else '–'} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

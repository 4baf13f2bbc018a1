#!/usr/bin/env python
"""Cost model: CPU-seconds per call-second for each stage of a phone call, and the calls a box can hold.

Replays the work one call does on real German speech through the telephone channel
(8 kHz µ-law): caller audio decoded and resampled, Silero VAD, the partial decodes the
streaming recognizer makes (every ``asr.partial_interval_ms`` of speech, on the growing
turn, greedy, no word timings), one final per turn (``asr.final_beam_size``, word
timings), one intent per turn, Smart Turn at each pause of a turn, the agents'
knowledge-base suggestions (two e5 queries per turn, for the calls an agent watches:
``--watched-share``), the bot's answer synthesized and encoded back to µ-law. VAD is the
endpointer on the whole line: the caller's turns, and between them the quiet line
(comfort noise at ``--idle-dbfs``, under the energy gate: the endpointer skips Silero there,
"before" runs it on every frame). The call core's other per-frame work on the
event loop (frame bus, outbox, websocket framing) is not replayed: ``--call-core`` adds it as
``scripts/profile_server.py`` measured it on a live server (the event loop thread's CPU per call).
Each stage is timed alone with the process's CPU clock (all threads), so the table
reads directly as cores per concurrent call.

    python scripts/bench_cost.py [--turns 12] [--source clips|phone] [--speech-share 0.5] [--bot-share 0.4]
                                 [--watched-share 1] [--idle-dbfs -65] [--json]

``--speech-share``: the part of a call the caller speaks; ``--bot-share``: the part the
bot speaks. "calls per box" = cores / (CPU-s per call-second), with the ASR stages
scaled by the speech share, TTS/encode by the bot share, and the line's decoding and
VAD by 1 (they run on every frame of an open call, speech or not).

Two profiles side by side: **before** (issue 11's settings: a partial every 400 ms,
finals with beam 5 in a 30 s window, e5 with torch at ``nlu.threads``) and **now** (the settings in force:
e5 at ``nlu.serve_threads``, finals with
``asr.final_beam_size`` in ``asr.final_chunk_length`` / ``asr.window_buckets``
windows; partials at the rate the adaptive scheduler gives ``server.max_calls`` calls in speech
(``voicebot.asr.partial_rate``, from the partial decode time measured here; capped at
``asr.partial_max_interval_ms`` if set); partials are elastic, they take what is left).

``server.max_calls`` is sized from the "now" column: the calls whose essential work
(everything but partials) keeps the cores at most ``--target-utilization`` busy (0.6:
headroom for bursts of finals, so the answer's queueing stays short):
max_calls = floor(cores x target / CPU-s per call-s without partials).
That is the CPU bound only: the answer's latency bounds it sooner (a single slow decode is a late answer
long before the cores are full), so ``server.max_calls`` is the smaller of this and the load benchmark's
knee (``scripts/bench_load.py --phone --calls 1,2,4,...``: the most calls with voice->voice p95 within
target; docs/capacity/cost-and-load.md "Eighth round").
``--source phone``: the multi-sentence 3-20 s phone turns of ``scripts/phone_turns.py``
instead of single sentences.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from voicebot.asr.partial_rate import adaptive_interval_ms  # noqa: E402
from voicebot.audio.channel import telephone_channel  # noqa: E402
from voicebot.audio.codecs import AudioFormat, Decoder, Encoder, mulaw_encode  # noqa: E402
from voicebot.audio.io import load_for_asr  # noqa: E402
from voicebot.audio.resample import StreamResampler  # noqa: E402
from voicebot.config import load_settings  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "speech-de-more"
ANSWER = "Es geht also um Ihre Rechnung. Ich verbinde Sie jetzt mit der Buchhaltung."


def cpu(fn: Callable[[], object]) -> float:
    started = time.process_time()
    fn()
    return time.process_time() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=12, help="caller turns (real clips) to replay")
    parser.add_argument("--speech-share", type=float, default=0.5)
    parser.add_argument("--bot-share", type=float, default=0.4)
    parser.add_argument("--source", choices=("clips", "phone"), default="clips")
    parser.add_argument("--target-utilization", type=float, default=0.6)
    parser.add_argument("--watched-share", type=float, default=1.0,
                        help="share of calls an agent watches (suggestions are searched for these only); "
                             "1 = an agent console subscribed to all calls")
    parser.add_argument("--idle-dbfs", type=float, default=-65.0,
                        help="level of the line between the caller's turns (comfort noise)")
    parser.add_argument("--call-core", type=float, default=0.021,
                        help="CPU-s per call-s of the call core's per-frame work on the event loop (websocket "
                             "framing, frame bus, endpointer, outbox), which no stage here replays: the event loop "
                             "thread's CPU over the calls of a live run (scripts/profile_server.py: 33.7 %% of a "
                             "core at 16 phone calls = 0.021); 0 leaves it out as earlier rounds did")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from voicebot.asr.factory import make_transcriber
    from voicebot.assist.kb import KnowledgeBase
    from voicebot.dialog.domain import load_domain
    from voicebot.nlu.encoder import TextEncoder
    from voicebot.nlu.intent import load_intent_classifier
    from voicebot.tts import make_synthesizer
    from voicebot.turn.smart_turn import SmartTurnModel
    from voicebot.vad.silero import SileroVadModel

    settings = load_settings()
    if args.source == "phone":
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from phone_turns import build_turns

        sources = [(t.audio, t.text) for t in build_turns(args.turns, seed=1)]
    else:
        manifest = [json.loads(line) for line in (SHARED / "manifest.jsonl").read_text().splitlines() if line.strip()]
        items = sorted(manifest, key=lambda m: m["audio"])[: args.turns]
        sources = [(load_for_asr(SHARED / item["audio"]), item["text"]) for item in items]
    turns = []
    for audio, text in sources:  # the phone line: band-limited 8 kHz µ-law, as a gateway sends it
        pcm, _ = telephone_channel(audio, 16000)
        turns.append((mulaw_encode(pcm), text))
    speech_s = sum(len(data) / 8000 for data, _ in turns)

    transcriber = make_transcriber(settings).load()
    vad_model = SileroVadModel(settings.models.dir / "silero-vad" / "silero_vad_v6.onnx").load()
    intent = load_intent_classifier(settings)
    synth = make_synthesizer(settings.tts, settings.models).load()
    transcriber.transcribe(np.zeros(16000, np.float32))  # warm-up: first-call allocations are not per-call cost
    intent.predict("Hallo")
    synth.synthesize("Hallo.")

    audio16 = []
    def decode_resample() -> None:
        for data, _ in turns:
            decoder, resampler = Decoder(AudioFormat("mulaw", 8000)), StreamResampler(8000, 16000)
            out = [resampler.process(decoder.decode(data[i : i + 160]).pcm) for i in range(0, len(data), 160)]
            audio16.append(np.concatenate(out))

    # The whole line through the endpointer, a 20 ms frame at a time: each turn, then the quiet line
    # while the bot answers and the caller listens, so that turns are --speech-share of it.
    from voicebot.asr.streaming import endpointer_settings
    from voicebot.eval.asr_cases import line_noise
    from voicebot.frames import AudioFrame
    from voicebot.vad import Endpointer, build_detector

    share = max(args.speech_share, 1e-3)
    line_audio: list[np.ndarray] = []
    for k, data_text in enumerate(turns):
        idle = len(data_text[0]) / 8000 * (1 - share) / share
        line_audio.append(line_noise(idle + 0.01, dbfs=args.idle_dbfs, seed=k)[: int(idle * 16000)])
    line_s = speech_s + sum(len(p) for p in line_audio) / 16000

    def vad(profile: str) -> Callable[[], None]:
        def run() -> None:
            ep_settings = replace(endpointer_settings(settings.vad, narrowband=True),
                                  defer_gated_frames=profile == "now")
            endpointer = Endpointer(ep_settings, build_detector(ep_settings, vad_model))
            t = 0.0
            for turn, idle in zip(audio16, line_audio, strict=True):
                for pcm in (turn, idle):
                    for i in range(0, len(pcm), 320):
                        endpointer.process(AudioFrame(pcm[i : i + 320], 16000, t))
                        t += len(pcm[i : i + 320]) / 16000
        return run

    first = settings.asr.min_partial_audio_ms * 16
    window = settings.asr.chunk_length * 16000  # partials decode at most the last window of the turn
    asr_now = settings.asr
    asr_before = replace(settings.asr, final_beam_size=5, final_chunk_length=30, window_buckets=())
    profiles = {"before": (asr_before, 400), "now": (asr_now, 0)}  # now: set once "before" measured a partial

    def full_box_interval_ms(decode_s: float) -> int:
        """The adaptive scheduler's partial interval with ``server.max_calls`` calls in speech, each partial
        taking ``decode_s`` (voicebot.asr.partial_rate; capped at asr.partial_max_interval_ms, if set)."""
        return adaptive_interval_ms(asr_now.partial_interval_ms, settings.server.max_calls, decode_s,
                                    asr_now.partial_cpu_share, asr_now.partial_max_interval_ms,
                                    workers=asr_now.decode_workers)

    def partials(profile: str) -> Callable[[], None]:
        def run() -> None:
            asr, interval_ms = profiles[profile]
            transcriber.settings = asr
            decodes, started = 0, time.process_time()
            for pcm in audio16:
                for end in range(first, len(pcm), interval_ms * 16):
                    transcriber.transcribe(pcm[max(0, end - window) : end], beam_size=asr.beam_size,
                                           word_timestamps=False, final=False)
                    decodes += 1
            if profile == "before":  # CPU-s per partial, as the scheduler measures it (wall s on a free core)
                profiles["now"] = (asr_now, full_box_interval_ms((time.process_time() - started) / max(1, decodes)))
        return run

    texts: list[str] = []
    def finals(profile: str) -> Callable[[], None]:
        def run() -> None:
            asr, _ = profiles[profile]
            transcriber.settings = asr
            for pcm in audio16:
                texts.append(transcriber.transcribe(pcm, beam_size=asr.final_beam_size, final=True).text)
        return run

    def torch_threads(profile: str) -> None:
        """e5 (intent, suggestions) before: torch at ``nlu.threads``; now: ``nlu.serve_threads`` (engines.py)."""
        import torch

        torch.set_num_threads(settings.nlu.threads if profile == "before" else settings.nlu.serve_threads)

    def intents(profile: str) -> Callable[[], None]:
        def run() -> None:
            torch_threads(profile)
            for text in texts:
                intent.predict(text)
        return run

    # Smart Turn at every pause of a turn (the sentence gaps) and at its end; on the last 8 s of the turn so far.
    smart = (SmartTurnModel.from_settings(settings.models, settings.turn.smart_turn_threads).load()
             if settings.turn.detector == "smart+text" else None)

    def end_of_turn() -> None:
        if smart is None:
            return
        for (_, text), pcm in zip(turns, audio16, strict=True):
            pauses = max(1, sum(text.count(c) for c in ".?!"))
            for k in range(1, pauses + 1):
                smart.predict(pcm[: len(pcm) * k // pauses])

    # The agents' knowledge-base suggestions: an e5 query per final and again per intent (server/hub.py),
    # whether or not an agent watches the call.
    kb = KnowledgeBase.from_domain(load_domain(settings.dialog.domain),
                                   TextEncoder(settings.nlu, settings.models).load())

    kb.suggest("Hallo")  # warm-up, as for the other models

    def suggestions(profile: str) -> Callable[[], None]:
        def run() -> None:
            torch_threads(profile)
            # Now: only for the calls an agent watches (server/hub.py); scaled by --watched-share below.
            for text in texts:
                kb.suggest(text)
                kb.suggest(text, "rechnung")
        return run

    bot: list[np.ndarray] = []
    def tts() -> None:
        for _ in turns:
            bot.append(np.concatenate([synth.synthesize(s).pcm for s in ANSWER.split(". ")]))

    def encode() -> None:
        for pcm in bot:
            encoder = Encoder(AudioFormat("mulaw", 8000))
            for i in range(0, len(pcm), 320):
                encoder.encode(pcm[i : i + 320], synth.sample_rate)

    stages = [("decode+resample", decode_resample, "line", None),
              ("vad", vad("before"), "line", "before"), ("vad", vad("now"), "line", "now"),
              ("partials", partials("before"), "speech", "before"), ("partials", partials("now"), "speech", "now"),
              ("finals", finals("before"), "speech", "before"), ("intent", intents("before"), "speech", "before"),
              ("finals", finals("now"), "speech", "now"), ("intent", intents("now"), "speech", "now"),
              ("end of turn", end_of_turn, "speech", None), ("suggestions", suggestions("before"), "speech", "before"),
              ("suggestions", suggestions("now"), "speech", "now"),
              ("tts", tts, "bot", None), ("encode", encode, "bot", None)]
    rows: dict[str, dict[str, Any]] = {}
    for name, fn, side, profile in stages:
        seconds = cpu(fn)
        audio_s = speech_s if side != "bot" else sum(len(p) for p in bot) / synth.sample_rate
        if name == "vad":
            audio_s = line_s  # the whole line, quiet stretches included
        per_second = seconds / audio_s  # CPU-s per second of the audio this stage handles
        share = {"line": 1.0, "speech": args.speech_share, "bot": args.bot_share}[side]
        if name == "suggestions" and profile == "now":
            share *= args.watched_share
        row = rows.setdefault(name, {"stage": name})
        for column in ([profile] if profile else ["before", "now"]):
            row[column] = {"cpu_s": round(seconds, 3), "per_audio_s": round(per_second, 4),
                           "per_call_s": round(per_second * share, 4)}
    if args.call_core > 0:  # measured live, not replayed: the same figure in both columns
        live = {"cpu_s": None, "per_audio_s": round(args.call_core, 4), "per_call_s": round(args.call_core, 4)}
        rows["call core (loop, live)"] = {"stage": "call core (loop, live)", "before": live, "now": live}
    cores = os.cpu_count() or 1
    totals = {p: sum(r[p]["per_call_s"] for r in rows.values()) for p in ("before", "now")}
    essential = {p: totals[p] - rows["partials"][p]["per_call_s"] for p in ("before", "now")}
    max_calls = int(cores * args.target_utilization / essential["now"])
    result = {"turns": len(turns), "source": args.source, "speech_s": round(speech_s, 1), "cores": cores,
              "asr": settings.asr.model,
              "profiles": {p: {"final_beam": a.final_beam_size, "final_window": a.final_chunk_length,
                               "window_buckets": list(a.window_buckets), "partial_interval_ms": ms}
                           for p, (a, ms) in profiles.items()},
              "stages": list(rows.values()), "cpu_s_per_call_s": {p: round(v, 4) for p, v in totals.items()},
              "calls_per_box": {p: round(cores / v, 1) for p, v in totals.items()},
              "calls_per_box_without_partials": {p: round(cores / v, 1) for p, v in essential.items()},
              "target_utilization": args.target_utilization, "max_calls": max_calls,
              "watched_share": args.watched_share, "idle_dbfs": args.idle_dbfs}
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{len(turns)} turns ({args.source}), {speech_s:.1f} s of phone-line speech; {cores} cores; "
          f"speech share {args.speech_share}, bot share {args.bot_share}; agents watch {args.watched_share:g} "
          f"of the calls (suggestions, now); the quiet line at {args.idle_dbfs:g} dBFS")
    for p, (a, ms) in profiles.items():
        print(f"  {p}: partial every {ms} ms, finals beam {a.final_beam_size}, window >= {a.final_chunk_length} s, "
              f"buckets {list(a.window_buckets) or 'none'}")
    print("\n| stage | before: CPU-s per audio-s | before: CPU-s per call-s | now: CPU-s per audio-s "
          "| now: CPU-s per call-s |")
    print("|---|---|---|---|---|")
    for r in rows.values():
        print(f"| {r['stage']} | {r['before']['per_audio_s']} | {r['before']['per_call_s']} | "
              f"{r['now']['per_audio_s']} | {r['now']['per_call_s']} |")
    print(f"| **total** | | **{totals['before']:.4f}** | | **{totals['now']:.4f}** |")
    print(f"| total without partials | | {essential['before']:.4f} | | {essential['now']:.4f} |")
    print(f"\ncalls a box of {cores} cores can hold (CPU bound): before {cores / totals['before']:.1f}, "
          f"now {cores / totals['now']:.1f} (without partials: {cores / essential['before']:.1f} / "
          f"{cores / essential['now']:.1f})")
    print(f"calls this box's CPU bounds: floor({cores} x {args.target_utilization} / {essential['now']:.4f}) "
          f"= {max_calls}; server.max_calls is the smaller of this and the latency knee of "
          f"`scripts/bench_load.py --phone` (docs/capacity/cost-and-load.md)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

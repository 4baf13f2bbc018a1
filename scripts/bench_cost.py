#!/usr/bin/env python
"""Cost model: CPU-seconds per call-second for each stage of a phone call, and the calls a box can hold.

Replays the work one call does on real German speech through the telephone channel
(8 kHz µ-law): caller audio decoded and resampled, Silero VAD, the partial decodes the
streaming recognizer makes (every ``asr.partial_interval_ms`` of speech, on the growing
turn, greedy, no word timings), one final per turn (``asr.final_beam_size``, word
timings), one intent per turn, the bot's answer synthesized and encoded back to µ-law.
Each stage is timed alone with the process's CPU clock (all threads), so the table
reads directly as cores per concurrent call.

    python scripts/bench_cost.py [--turns 12] [--speech-share 0.5] [--bot-share 0.4] [--json]

``--speech-share``: the part of a call the caller speaks; ``--bot-share``: the part the
bot speaks. "calls per box" = cores / (CPU-s per call-second), with the ASR stages
scaled by the speech share and TTS/encode by the bot share.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

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
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from voicebot.asr.factory import make_transcriber
    from voicebot.nlu.intent import load_intent_classifier
    from voicebot.tts import make_synthesizer
    from voicebot.vad.silero import SileroVadModel

    settings = load_settings()
    manifest = [json.loads(line) for line in (SHARED / "manifest.jsonl").read_text().splitlines() if line.strip()]
    items = sorted(manifest, key=lambda m: m["audio"])[: args.turns]
    turns = []
    for item in items:  # the phone line: band-limited 8 kHz µ-law, as a gateway sends it
        pcm, _ = telephone_channel(load_for_asr(SHARED / item["audio"]), 16000)
        turns.append((mulaw_encode(pcm), item["text"]))
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

    def vad() -> None:
        for pcm in audio16:
            detector = vad_model.detector()
            for i in range(0, len(pcm) - 512 + 1, 512):
                detector.is_speech(pcm[i : i + 512])

    step = settings.asr.partial_interval_ms * 16
    first = settings.asr.min_partial_audio_ms * 16
    window = settings.asr.chunk_length * 16000  # partials decode at most the last window of the turn

    def partials() -> None:
        for pcm in audio16:
            for end in range(first, len(pcm), step):
                transcriber.transcribe(pcm[max(0, end - window) : end], beam_size=settings.asr.beam_size, word_timestamps=False)

    texts: list[str] = []
    def finals() -> None:
        for pcm in audio16:
            texts.append(transcriber.transcribe(pcm, beam_size=settings.asr.final_beam_size).text)

    def intents() -> None:
        for text in texts:
            intent.predict(text)

    bot: list[np.ndarray] = []
    def tts() -> None:
        for _ in turns:
            bot.append(np.concatenate([synth.synthesize(s).pcm for s in ANSWER.split(". ")]))

    def encode() -> None:
        for pcm in bot:
            encoder = Encoder(AudioFormat("mulaw", 8000))
            for i in range(0, len(pcm), 320):
                encoder.encode(pcm[i : i + 320], synth.sample_rate)

    stages = [("decode+resample", decode_resample, "speech"), ("vad", vad, "speech"), ("partials", partials, "speech"),
              ("finals", finals, "speech"), ("intent", intents, "speech"), ("tts", tts, "bot"), ("encode", encode, "bot")]
    rows = []
    for name, fn, side in stages:
        seconds = cpu(fn)
        audio_s = speech_s if side == "speech" else sum(len(p) for p in bot) / synth.sample_rate
        per_second = seconds / audio_s  # CPU-s per second of the audio this stage handles
        share = args.speech_share if side == "speech" else args.bot_share
        rows.append({"stage": name, "cpu_s": round(seconds, 3), "per_audio_s": round(per_second, 4),
                     "per_call_s": round(per_second * share, 4)})
    total = sum(r["per_call_s"] for r in rows)
    cores = os.cpu_count() or 1
    result = {"turns": len(turns), "speech_s": round(speech_s, 1), "cores": cores,
              "asr": settings.asr.model, "beam": [settings.asr.beam_size, settings.asr.final_beam_size],
              "stages": rows, "cpu_s_per_call_s": round(total, 4), "calls_per_box": round(cores / total, 1)}
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{len(turns)} turns, {speech_s:.1f} s of phone-line speech; {cores} cores; "
          f"speech share {args.speech_share}, bot share {args.bot_share}\n")
    print("| stage | CPU s | CPU-s per audio-s | CPU-s per call-s |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['stage']} | {r['cpu_s']} | {r['per_audio_s']} | {r['per_call_s']} |")
    print(f"| **total** | | | **{total:.4f}** |")
    print(f"\ncalls a box of {cores} cores can hold (CPU bound): {cores / total:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

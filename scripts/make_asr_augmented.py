#!/usr/bin/env python3
"""Make ``eval/intent/train_asr.jsonl``: the training lines as the classifier hears them in a call.

Callers reach the intent model through ASR, so each typed training line is
spoken by the German Pico voice, sent through the telephone channel (8 kHz,
300-3400 Hz, G.711 µ-law), resampled back to 16 kHz, transcribed by
the configured recognizer (greedy, German, the production prompt; ``asr.model``,
whisper-base-de by default since the thirteenth round, whisper-base for the files
made before) and cleaned by the
production hallucination guards. The transcript, with
its recognition errors, becomes an extra training example whose ``origin`` is
the clean line (the trainer keeps a line and its ASR version on the same side
of the calibration split).

Deterministic: Pico and greedy Whisper decoding have no randomness, so the
same models and input give the same file. About 0.5-1 s per line on 2 cores;
``--resume`` continues an interrupted run.

    .venv/bin/python scripts/make_asr_augmented.py            # train.jsonl -> train_asr.jsonl
    .venv/bin/python scripts/make_asr_augmented.py --input eval/intent/dev.jsonl --output eval/intent/dev_asr.jsonl
    # a second voice (Pico slowed and pitched up, as in the call scenarios) with line noise at 15 dB SNR:
    .venv/bin/python scripts/make_asr_augmented.py --voice pico-de-variant --snr 15 \
        --output eval/intent/train_asr_variant.jsonl

``--snr`` adds pink-ish line noise (seeded by the line's text, so still
deterministic) before the channel; the Pico voices are those the call scenarios use.

``--voice espeak:VARIANT`` speaks with Debian's espeak-ng German voice and one of its
variants (``espeak:m3``, ``espeak:f2``, ``espeak:klatt2``; ``apt-get install espeak-ng``;
``--rate`` words per minute). A formant voice, unlike Pico's diphones: other
callers' timbre and rhythm for the classifier and the recognizer. Dev-time only,
like Pico here: the product does not speak with it.

    .venv/bin/python scripts/make_asr_augmented.py --voice espeak:m3 --input eval/intent/dev.jsonl \
        --output eval/intent/dev_asr_espeak.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from voicebot.asr.guards import clean_for  # noqa: E402
from voicebot.asr.transcriber import ASR_SAMPLE_RATE, Transcriber  # noqa: E402
from voicebot.audio.channel import telephone_channel  # noqa: E402
from voicebot.audio.resample import resample  # noqa: E402
from voicebot.config import load_settings  # noqa: E402
from voicebot.tts import Synthesizer, make_synthesizer, split_sentences  # noqa: E402

VARIANT_PITCH = 1.12  # as scripts/make_scenario_audio.py: Pico resampled to a higher, faster voice
ESPEAK_RATE = 155  # words per minute: espeak-ng's default 175 is faster than a caller reading out a concern


def add_line_noise(pcm: np.ndarray, text: str, snr_db: float) -> np.ndarray:
    """Low-passed (pink-ish) noise at ``snr_db`` below the speech power, seeded by ``text``."""
    import hashlib

    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    signal = pcm.astype(np.float64)
    power = float(np.mean(signal**2)) or 1.0
    white = np.random.default_rng(seed).standard_normal(len(signal))
    noise = np.convolve(white, np.ones(4) / 4, mode="same")  # tilt the spectrum towards hum and hiss
    noise *= np.sqrt(power / 10 ** (snr_db / 10) / max(float(np.mean(noise**2)), 1e-12))
    return np.clip(signal + noise, -32768, 32767).astype(np.int16)


def speak(synth: Synthesizer, text: str) -> tuple[np.ndarray, int]:
    """The whole line as one PCM signal, sentence by sentence with a short pause between."""
    chunks, rate = [], synth.sample_rate
    for sentence in split_sentences(text) or [text]:
        audio = synth.synthesize(sentence)
        rate = audio.sample_rate
        chunks += [audio.pcm, np.zeros(int(0.15 * rate), dtype=np.int16)]
    return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16), rate


def speak_espeak(variant: str, text: str, rate_wpm: int) -> tuple[np.ndarray, int]:
    """``text`` spoken by espeak-ng's German voice with ``variant`` (m1-m8, f1-f5, klatt...): 16-bit PCM, rate."""
    import io
    import subprocess
    import wave

    voice = "de" if variant in ("", "de") else f"de+{variant}"
    wav = subprocess.run(["espeak-ng", "-v", voice, "-s", str(rate_wpm), "--stdout", text],
                         check=True, capture_output=True).stdout
    with wave.open(io.BytesIO(wav)) as w:
        # espeak-ng streams to stdout with a placeholder length in the header: read what is there
        frames = w.readframes(w.getnframes())
        return np.frombuffer(frames[: len(frames) // 2 * 2], dtype=np.int16).copy(), w.getframerate()


def score(path: Path) -> int:
    """Print a spoken file's word error rate against the typed lines it was made from (``origin``)."""
    from voicebot.eval.metrics import wer

    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    rate = wer([r["origin"] for r in rows], [r["text"] for r in rows])
    print(f"{path.name}: {len(rows)} lines, word error rate {rate:.3f} against their typed lines")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", type=Path, default=REPO / "eval" / "intent" / "train.jsonl")
    parser.add_argument("--output", type=Path, default=REPO / "eval" / "intent" / "train_asr.jsonl")
    parser.add_argument("--channel", choices=("telephone", "wideband"), default="telephone")
    parser.add_argument("--limit", type=int, help="only the first N lines (for a quick look)")
    parser.add_argument("--resume", action="store_true", help="keep lines already in --output and continue")
    parser.add_argument("--config", help="a TOML settings file")
    parser.add_argument("--voice", default="pico-de",
                        help="pico-de, pico-de-variant, or espeak:VARIANT (espeak-ng's German voice, e.g. espeak:m3)")
    parser.add_argument("--rate", type=int, default=ESPEAK_RATE, help="espeak-ng's speed in words per minute")
    parser.add_argument("--snr", type=float, help="add line noise at this SNR in dB (default: none)")
    parser.add_argument("--score", action="store_true",
                        help="make nothing: print --output's word error rate against its typed lines")
    args = parser.parse_args(argv)
    if args.score:
        return score(args.output)

    settings = load_settings(args.config)
    rows = [json.loads(line) for line in args.input.read_text(encoding="utf-8").splitlines() if line.strip()]
    rows = rows[: args.limit] if args.limit else rows
    done: set[str] = set()
    if args.resume and args.output.is_file():
        done = {json.loads(line)["origin"] for line in args.output.read_text(encoding="utf-8").splitlines() if line}
    if args.voice not in ("pico-de", "pico-de-variant") and not args.voice.startswith("espeak:"):
        parser.error(f"unknown voice {args.voice!r}")
    espeak = args.voice.startswith("espeak:")
    synth = None if espeak else make_synthesizer(settings.tts, settings.models, "pico-de").load()
    asr = Transcriber(settings.asr, settings.models).load()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    started, changed, empty = time.perf_counter(), 0, 0
    with args.output.open("a" if args.resume else "w", encoding="utf-8") as out:
        for number, row in enumerate(rows, 1):
            text, label = row["text"], row.get("intent") or row["label"]
            if text in done:
                continue
            if synth is None:
                pcm, rate = speak_espeak(args.voice.split(":", 1)[1], text, args.rate)
            else:
                pcm, rate = speak(synth, text)
            if args.voice == "pico-de-variant":
                pcm = resample(pcm, rate, round(rate / VARIANT_PITCH))
            if args.snr is not None:
                pcm = add_line_noise(pcm, text, args.snr)
            if args.channel == "telephone":
                pcm, rate = telephone_channel(pcm, rate)
            audio = resample(pcm, rate, ASR_SAMPLE_RATE)
            # The production guards, as in a call: Whisper's repetition loops on short
            # words ("Panne, Panne, Panne, ...") and phantom phrases never reach the classifier.
            result = clean_for(settings.asr, asr.transcribe(audio, beam_size=1, word_timestamps=False))
            heard = result.text.strip()
            if not heard:
                empty += 1  # nothing recognized: no training signal, and an empty turn never reaches NLU
                continue
            changed += heard.lower() != text.lower()
            out.write(json.dumps({"text": heard, "intent": label, "origin": text}, ensure_ascii=False) + "\n")
            out.flush()
            if number % 50 == 0:
                rate_s = (time.perf_counter() - started) / number
                print(f"{number}/{len(rows)}  {rate_s:.2f} s/line  e.g. {text!r} -> {heard!r}", flush=True)
    print(f"wrote {args.output} ({len(rows) - empty} lines, {changed} differ from the typed text, {empty} empty) "
          f"in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Synthesize the call scenarios' caller turns into eval/audio/ (git-ignored), deterministically.

Reads eval/scenarios/scenarios.jsonl and writes one 16 kHz WAV per caller turn
(eval/audio/calls/<scenario>/turnN.wav) plus eval/audio/calls.jsonl, the
manifest `voicebot eval calls` reads (turn paths relative to it, the expected
outcome, and each file's sha256 so a rerun can be checked for identity).

Voices: only SVOX Pico speaks German here (piper has no German voice in any
package), so callers get two: ``pico-de`` as is, and ``pico-de-variant``, the
same engine 5 % slower and then played 12 % faster by resampling, which raises
the pitch by about two semitones and makes the net tempo about 7 % faster: a
different-sounding, quicker speaker. Both are synthetic; the real-speech
evaluation is the ASR one on ../shared/data/speech-de. The telephone channel is
applied at evaluation time (`voicebot eval calls --channel telephone`), so the
files stay wideband.

Usage: .venv/bin/python scripts/make_scenario_audio.py [--scenarios FILE] [--out DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from voicebot.audio.io import write_wav  # noqa: E402 - after the path set-up for a plain checkout
from voicebot.audio.resample import resample  # noqa: E402
from voicebot.config import load_settings  # noqa: E402
from voicebot.tts import make_synthesizer  # noqa: E402
from voicebot.tts.pico import pin_mmap_threshold  # noqa: E402

RATE = 16000
LEAD_IN_S = 0.25  # a caller draws breath before speaking; the VAD's pre-roll needs some audio before speech
VARIANT_LENGTH_SCALE = 1.05
VARIANT_PITCH = 1.12


def _variant(pcm: np.ndarray, rate: int) -> np.ndarray:
    """Raise pitch and tempo by VARIANT_PITCH: resample to fewer samples, keep the nominal rate."""
    return resample(pcm, rate, round(rate / VARIANT_PITCH))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenarios", type=Path, default=REPO / "eval" / "scenarios" / "scenarios.jsonl")
    parser.add_argument("--out", type=Path, default=REPO / "eval" / "audio")
    parser.add_argument("--config", help="a voicebot TOML settings file")
    args = parser.parse_args(argv)

    pin_mmap_threshold()  # SVOX Pico reads uninitialized memory: see the helper's docstring
    settings = load_settings(args.config)
    plain = make_synthesizer(settings.tts, settings.models, "pico-de").load()
    slower = make_synthesizer(replace(settings.tts, length_scale=VARIANT_LENGTH_SCALE), settings.models,
                              "pico-de").load()
    scenarios = [json.loads(line) for line in args.scenarios.read_text(encoding="utf-8").splitlines() if line.strip()]
    out_dir: Path = args.out
    (out_dir / "calls").mkdir(parents=True, exist_ok=True)
    lead_in = np.zeros(int(RATE * LEAD_IN_S), dtype=np.int16)
    records = []
    seconds = 0.0
    for scenario in scenarios:
        voice = scenario.get("voice", "pico-de")
        if voice not in ("pico-de", "pico-de-variant"):
            raise SystemExit(f"{scenario['id']}: unknown caller voice {voice!r}")
        folder = out_dir / "calls" / scenario["id"]
        folder.mkdir(parents=True, exist_ok=True)
        turns = []
        for i, text in enumerate(scenario["turns"], 1):
            synth = slower if voice == "pico-de-variant" else plain
            audio = synth.synthesize(text)
            pcm = resample(audio.pcm, audio.sample_rate, RATE)
            if voice == "pico-de-variant":
                pcm = _variant(pcm, RATE)
            pcm = np.concatenate([lead_in, pcm])
            path = folder / f"turn{i}.wav"
            write_wav(path, pcm, RATE)
            seconds += len(pcm) / RATE
            turns.append({
                "audio": path.relative_to(out_dir).as_posix(),
                "text": text,
                "seconds": round(len(pcm) / RATE, 3),
                "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            })
        records.append({
            "id": scenario["id"],
            "voice": voice,
            "turns": turns,
            "first_intent": scenario["first_intent"],
            "route": scenario["route"],
            "handoff": scenario["handoff"],
        })
    manifest = out_dir / "calls.jsonl"
    with manifest.open("w", encoding="utf-8") as fh:
        for record in records:
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
    n_turns = sum(len(r["turns"]) for r in records)
    print(f"wrote {len(records)} scenarios, {n_turns} turns, {seconds:.1f} s of audio; manifest {manifest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

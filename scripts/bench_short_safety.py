#!/usr/bin/env python
"""Short spoken safety requests on the phone line: does the safety net still fire at each final window?

16 short requests ("Mitarbeiter, bitte.", "Notarzt, schnell!", "Ich will nicht mehr leben.", ...) in both
Pico scenario voices, line hiss around the speech and under it, two hiss draws each (128 phone turns), and
the short ordinary answers of scripts/bench_short_turns.py (hiss around): each decoded as a phone call's
short final (beam 5, no fallback) in each ``--windows`` encoder window and judged by the policy's
``safety_escalation`` (classifier operating points and keyword nets). Printed per window: safety turns
escalated (to the right label), ordinary answers escalated; then every turn whose outcome differs.

    flock /tmp/voicebot-cpu.lock nice -n 10 .venv/bin/python scripts/bench_short_safety.py [--windows 20,30]
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from bench_short_turns import ANSWERS  # noqa: E402
from make_scenario_audio import VARIANT_LENGTH_SCALE, _variant  # noqa: E402

from voicebot.asr.transcriber import Transcriber  # noqa: E402
from voicebot.audio.resample import resample  # noqa: E402
from voicebot.config import load_settings  # noqa: E402
from voicebot.dialog.domain import load_domain  # noqa: E402
from voicebot.dialog.policy import safety_escalation  # noqa: E402
from voicebot.eval.asr_cases import RATE  # noqa: E402
from voicebot.eval.short_turns import levelled, on_the_line  # noqa: E402
from voicebot.nlu.intent import load_intent_classifier  # noqa: E402
from voicebot.tts import make_synthesizer  # noqa: E402
from voicebot.tts.pico import pin_mmap_threshold  # noqa: E402

SAFETY = (
    ("Mitarbeiter, bitte.", "mitarbeiter"), ("Einen Mitarbeiter, bitte.", "mitarbeiter"),
    ("Mitarbeiter.", "mitarbeiter"), ("Ich will einen Mitarbeiter.", "mitarbeiter"),
    ("Bitte einen Menschen.", "mitarbeiter"), ("Ich will mit einem Menschen reden.", "mitarbeiter"),
    ("Verbinden Sie mich mit einem Mitarbeiter.", "mitarbeiter"), ("Einen echten Menschen, bitte.", "mitarbeiter"),
    ("Notarzt, schnell!", "notfall"), ("Hilfe, es brennt!", "notfall"),
    ("Ich brauche einen Krankenwagen.", "notfall"), ("Hilfe, ein Unfall!", "notfall"),
    ("Ich will nicht mehr leben.", "seelsorge"), ("Ich kann nicht mehr.", "seelsorge"),
    ("Ich will mich umbringen.", "seelsorge"), ("Ich brauche jemanden zum Reden.", "seelsorge"),
)


def pico_voices(settings) -> dict[str, object]:  # type: ignore[no-untyped-def]
    """The scenarios' two Pico voices, loaded: ``pico-de`` and ``pico-de-variant`` (pitched and sped up)."""
    pin_mmap_threshold()
    return {"pico-de": make_synthesizer(settings.tts, settings.models, "pico-de").load(),
            "pico-de-variant": make_synthesizer(replace(settings.tts, length_scale=VARIANT_LENGTH_SCALE),
                                                settings.models, "pico-de").load()}


def spoken(voices: dict, voice: str, text: str) -> np.ndarray:  # type: ignore[type-arg]
    """``text`` spoken by ``voice`` of ``pico_voices``: only the speech, levelled, 16 kHz int16."""
    audio = voices[voice].synthesize(text)
    pcm = resample(audio.pcm, audio.sample_rate, RATE)
    return levelled(_variant(pcm, RATE) if voice == "pico-de-variant" else pcm)


def safety_turns(voices: dict) -> list[tuple[str, str, str, np.ndarray]]:  # type: ignore[type-arg]
    """``SAFETY`` spoken by each of ``voices``, hiss around and under, two hiss draws: (text, label, how, audio)."""
    turns = []
    for text, label in SAFETY:
        for voice in voices:
            speech = spoken(voices, voice, text)
            for under in (False, True):
                for seed in (0, 1):
                    how = f"{voice}/{'under' if under else 'around'}/{seed}"
                    turns.append((text, label, how, on_the_line(speech, 100 + seed, under)))
    return turns


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--windows", default="20,30")
    ap.add_argument("--limit", type=int, default=0, help="at most this many safety and ordinary turns (0: all)")
    args = ap.parse_args()
    windows = [int(w) for w in args.windows.split(",")]
    s = load_settings()
    voices = pico_voices(s)
    turns: list[tuple[str, str | None, str, np.ndarray]] = list(safety_turns(voices))  # text, label, how, audio
    for text in (t for t in ANSWERS if "Mitarbeiter" not in t):
        for voice in voices:
            turns.append((text, None, f"{voice}/around/0", on_the_line(spoken(voices, voice, text), 200, False)))
    if args.limit:
        turns = [t for t in turns if t[1]][: args.limit] + [t for t in turns if not t[1]][: args.limit]
    asr = Transcriber(s.asr, s.models).load()
    classifier, domain = load_intent_classifier(s), load_domain(s.dialog.domain)
    outcome: dict[int, list[tuple[str, str | None, str]]] = {w: [] for w in windows}
    for _text, _label, _how, audio in turns:
        for w in windows:
            heard = asr.transcribe(audio, beam_size=5, final=True, fallback=False, window_s=w).text
            label, trigger, _ = safety_escalation(domain, heard, classifier.predict(heard))
            outcome[w].append((heard, label, trigger))
    safety = [i for i, t in enumerate(turns) if t[1]]
    ordinary = [i for i, t in enumerate(turns) if not t[1]]
    print("| window s | safety escalated (right label) | ordinary escalated |\n|---|---|---|")
    for w in windows:
        hit = sum(outcome[w][i][1] is not None for i in safety)
        right = sum(outcome[w][i][1] == turns[i][1] for i in safety)
        false = sum(outcome[w][i][1] is not None for i in ordinary)
        print(f"| {w} | {hit} of {len(safety)} ({right}) | {false} of {len(ordinary)} |")
    for i, (text, _label, how, _) in enumerate(turns):
        if len({outcome[w][i][1] is None for w in windows}) > 1:
            print(f"  {text!r} [{how}] " + " | ".join(f"{w} s: {outcome[w][i][0]!r} -> {outcome[w][i][1]}"
                                                      for w in windows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

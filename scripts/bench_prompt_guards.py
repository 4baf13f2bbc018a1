#!/usr/bin/env python
"""The recognizer's prompt (``asr.initial_prompt``) and hallucination guards on short phone turns, side by side.

Whisper is decoded after a prompt; ours lists the domain's words ("Kundennummer, Rechnung, Bestellung, ...").
On short noisy phone turns whisper-base echoes that list ("Kündigung, Bestellung, Router, Mitarbeiter.") or
bends speech towards it ("Notarzt, schnell!" -> "Router, Pläne."). Each prompt is measured here on the same
turns, each decoded as a phone call's short final (beam 5, no fallback, ``asr.final_short_window_s``) and
cleaned by the hallucination guards with that prompt, then put to the policy's escalation rule as a caller's
first turn:

* ``safety``: the short spoken safety requests of scripts/bench_short_safety.py (both Pico voices, hiss around
  and under, two hiss draws): escalated (to the right label);
* ``answers``: the short caller answers and scenario lines of scripts/bench_short_turns.py (hiss around):
  escalated (these are ordinary; mid-call the classifier needs ``policy.safety_midcall``, so read as a ceiling);
* ``emodb``: the EmoDB clips of at most 3.5 s (real speakers, ordinary sentences, hiss under the speech);
* ``noise``: line hiss (-45 to -30 dBFS) and hold music of 0.8-3 s through the phone channel, no speech.

Each decode is cleaned once per ``--unsure`` threshold (``asr.unsure_no_speech_threshold``: the no-speech
probability above which an unsure decode is blanked). Per group, prompt and threshold: WER, turns escalated,
turns the prompt-echo guard cut, turns left empty, and right decodes (WER <= 0.2 before the guards) blanked.

    flock /tmp/voicebot-cpu.lock nice -n 10 .venv/bin/python scripts/bench_prompt_guards.py \\
        --prompt default --prompt "Kundenservice-Telefonat auf Deutsch." [--unsure 0.6,0.8] [--limit 20]
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from bench_short_safety import pico_voices, safety_turns  # noqa: E402
from bench_short_turns import answer_turns  # noqa: E402

from voicebot.asr.guards import clean_for  # noqa: E402
from voicebot.asr.transcriber import Transcriber  # noqa: E402
from voicebot.config import load_settings  # noqa: E402
from voicebot.dialog.domain import load_domain  # noqa: E402
from voicebot.dialog.policy import safety_escalation  # noqa: E402
from voicebot.eval.asr_cases import hold_music, line_noise  # noqa: E402
from voicebot.eval.metrics import word_errors  # noqa: E402
from voicebot.eval.short_turns import emodb_turns, on_the_line  # noqa: E402
from voicebot.eval.turn_end import phone  # noqa: E402
from voicebot.nlu.intent import load_intent_classifier  # noqa: E402

GROUPS = ("safety", "answers", "emodb", "noise")


@dataclass(frozen=True)
class Turn:
    group: str
    text: str
    label: str | None  # the safety intent a safety request should reach
    audio: np.ndarray


def build_turns(settings, limit: int) -> list[Turn]:  # type: ignore[no-untyped-def]
    turns = [Turn("safety", text, label, audio) for text, label, _how, audio in safety_turns(pico_voices(settings))]
    turns += [Turn("answers", text, None, on_the_line(speech, 200, False))
              for _name, text, speech in answer_turns(settings, 3.5)]
    turns += [Turn("emodb", t.text, None, t.audio) for t in emodb_turns(3.5, hiss_under=True)]
    rng = np.random.default_rng(5)
    turns += [Turn("noise", "", None, phone(line_noise(float(rng.uniform(0.8, 3.0)),
                                                       dbfs=float(rng.choice([-45, -38, -30])), seed=300 + i)))
              for i in range(24)]
    turns += [Turn("noise", "", None, phone(hold_music(float(rng.uniform(0.8, 3.0)), seed=i) // 4)) for i in range(16)]
    if limit:
        turns = [t for g in GROUPS for t in [t for t in turns if t.group == g][:limit]]
    return turns


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--prompt", action="append", default=[], help='a prompt to measure ("default": the setting)')
    ap.add_argument("--unsure", default="", help="comma list of asr.unsure_no_speech_threshold (default: the setting)")
    ap.add_argument("--limit", type=int, default=0, help="at most this many turns per group (0: all)")
    ap.add_argument("--json", type=Path, help="write every decode here")
    args = ap.parse_args()
    s = load_settings()
    prompts = [s.asr.initial_prompt if p == "default" else p for p in (args.prompt or ["default"])]
    floors = [float(t) for t in args.unsure.split(",")] if args.unsure else [s.asr.unsure_no_speech_threshold]
    turns = build_turns(s, args.limit)
    asr = Transcriber(s.asr, s.models).load()
    classifier, domain = load_intent_classifier(s), load_domain(s.dialog.domain)
    rows = []
    for turn in turns:
        for k, prompt in enumerate(prompts):
            raw = asr.transcribe(turn.audio, beam_size=s.asr.final_beam_size, final=True, fallback=False,
                                 window_s=s.asr.final_short_window_s, initial_prompt=prompt)
            raw_right = bool(turn.text) and word_errors([turn.text], [raw.text]).rate <= 0.2
            for floor in floors:
                heard = clean_for(replace(s.asr, unsure_no_speech_threshold=floor), raw, prompt)
                label = safety_escalation(domain, heard.text, classifier.predict(heard.text))[0] if heard.text else None
                rows.append({"group": turn.group, "text": turn.text, "label": turn.label, "prompt": k, "unsure": floor,
                             "raw": raw.text, "raw_right": raw_right, "no_speech": raw.no_speech_prob,
                             "heard": heard.text, "guard": list(heard.guard), "escalated": label})
    if args.json:
        args.json.write_text(json.dumps({"prompts": prompts, "rows": rows}, ensure_ascii=False, indent=1))
    report(prompts, floors, rows)
    return 0


def report(prompts: list[str], floors: list[float], rows: list[dict]) -> None:
    for k, prompt in enumerate(prompts):
        print(f"prompt {k}: {prompt!r}")
    print("| group (turns) | prompt | unsure no-speech | WER | escalated (right label) | prompt echo cut | empty "
          "| right decodes blanked |")
    print("|---|---|---|---|---|---|---|---|")
    for group in GROUPS:
        for k in range(len(prompts)):
            for floor in floors:
                mine = [r for r in rows if r["group"] == group and r["prompt"] == k and r["unsure"] == floor]
                if not mine:
                    continue
                wer = (f'{word_errors([r["text"] for r in mine], [r["heard"] for r in mine]).rate:.3f}'
                       if group != "noise" else "–")
                escalated = sum(r["escalated"] is not None for r in mine)
                right = sum(r["escalated"] == r["label"] for r in mine if r["label"])
                echo = sum("prompt_echo" in r["guard"] for r in mine)
                empty = sum(not r["heard"] for r in mine)
                lost = sum(r["raw_right"] and not r["heard"] for r in mine)
                print(f"| {group} ({len(mine)}) | {k} | {floor} | {wer} | {escalated}"
                      f"{f' ({right})' if group == 'safety' else ''} | {echo} | {empty} | {lost} |")


if __name__ == "__main__":
    raise SystemExit(main())

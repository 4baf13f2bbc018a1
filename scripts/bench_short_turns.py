#!/usr/bin/env python
"""Short whole caller turns on the phone line: WER, lost last words and CPU per final encoder window.

A final shorter than ``asr.final_short_turn_s`` (padding included) decodes in Whisper's native 30 s
window, every other final in ``asr.final_chunk_length`` (10 s). This decodes the turns that rule
covers exactly as a served final is decoded, once per window, side by side (every window on one
turn before the next turn, so load on the machine falls on all of them alike):

* the telephone channel (8 kHz µ-law and back, ``voicebot.eval.short_turns.on_the_line``) over the recognizer's
  pre-roll (0.3 s of line hiss), the speech, and its post-roll (0.4 s of hiss);
* ``Transcriber.transcribe(..., final=True, fallback=False)`` at beam 5, word timings on; the
  window forced with ``window_s`` (``window_s=30`` is what today's rule gives these turns,
  ``window_s=10`` what ``final_short_turn_s = 0`` gives them).

Turns (only those that today's rule sends to the 30 s window, i.e. shorter than
``final_short_turn_s`` with the padding; the rest are counted and left out):

* ``emodb``: every clip of ../shared/data/speech-de of at most ``--max-s`` seconds (EmoDB);
* ``answers``: short caller answers typical of the product, spoken as the call scenarios are
  (``scripts/make_scenario_audio.py``: SVOX Pico, plain and the faster, higher ``variant`` voice):
  the scenarios' caller lines of at most ``--max-s`` s plus ``ANSWERS`` below. Nothing is written.

    python scripts/bench_short_turns.py [--groups emodb,answers] [--windows 10,15,20,30] [--max-s 3.5] [--json F]
    python scripts/bench_short_turns.py --groups emodb --hiss-under   # line hiss under the speech as well
    python scripts/bench_short_turns.py --from-json emodb.json answers.json   # the tables of earlier runs together

Prints one row per (group, window): n, WER, turns whose last reference word is not heard (not
aligned to the same word after ``normalize_german``: misheard or missing), turns whose end is dropped
(the reference's last word(s) have no hypothesis words at all: the turn's end cut off), empty finals,
CPU-s and wall ms per turn (also for the turns of one or two words, across the groups); then each window
against 30 s per turn (turns with fewer / more word errors, a paired bootstrap 95% interval of the WER difference).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from make_scenario_audio import VARIANT_LENGTH_SCALE, _variant  # noqa: E402

from voicebot.audio.resample import resample  # noqa: E402
from voicebot.config import load_settings  # noqa: E402
from voicebot.eval.asr_cases import RATE  # noqa: E402
from voicebot.eval.asr_checks import check_edges, end_dropped  # noqa: E402
from voicebot.eval.metrics import normalize_german, word_errors  # noqa: E402
from voicebot.eval.short_turns import emodb_speech, levelled, on_the_line  # noqa: E402

BEAM = 5
FEW_WORDS = "1-2 words"  # a row of the tables: the turns of one or two reference words, whatever their group
# Short answers a caller gives the triage bot (confirmations, refusals, numbers, dates, slots, closings).
ANSWERS = (
    "Ja.", "Nein.", "Nein, danke.", "Ja, bitte.", "Genau.", "Richtig.", "Stimmt.", "Okay.", "Das war's.",
    "Danke, das war alles.", "Nein, das ist falsch.", "Nein, nicht ganz.", "Ja, das passt.", "Ja, gerne.",
    "Vier sieben eins eins.", "Zwölf.", "Dreiundzwanzig.", "Null eins sieben drei.", "Fünfzig Euro.",
    "Zweitausendzwanzig.", "Am Montag.", "Morgen früh.", "Um zehn Uhr.", "Am dritten Mai.",
    "Kundennummer drei acht zwei.", "Mitarbeiter, bitte.", "Einen Moment.", "Ich weiß nicht.", "Vielleicht.",
    "Auf Wiederhören.", "Tschüss.", "Hallo?", "Wie bitte?", "Noch einmal, bitte.", "Die Rechnung.",
    "Ich möchte kündigen.", "Mein Internet geht nicht.", "Ein Techniker, bitte.", "Nein, das wär's.",
    "Alles klar, danke.",
)


@dataclass
class Turn:
    group: str
    name: str
    text: str
    audio: np.ndarray  # 16 kHz int16 after the phone channel, pre- and post-roll included

    @property
    def seconds(self) -> float:
        return len(self.audio) / RATE


@dataclass
class Scores:
    hyps: list[str] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    wall: list[float] = field(default_factory=list)
    window: list[float] = field(default_factory=list)


def answer_turns(settings, max_s: float) -> list[tuple[str, str, np.ndarray]]:
    from voicebot.tts import make_synthesizer
    from voicebot.tts.pico import pin_mmap_threshold

    pin_mmap_threshold()
    voices = {"pico-de": make_synthesizer(settings.tts, settings.models, "pico-de").load(),
              "pico-de-variant": make_synthesizer(replace(settings.tts, length_scale=VARIANT_LENGTH_SCALE),
                                                  settings.models, "pico-de").load()}
    scenarios = REPO / "eval" / "scenarios" / "scenarios.jsonl"
    lines = [t for row in scenarios.read_text(encoding="utf-8").splitlines() if row.strip()
             for t in json.loads(row)["turns"]]
    out = []
    for text in dict.fromkeys([*lines, *ANSWERS]):  # scenario lines first; each text once
        for voice, synth in voices.items():
            audio = synth.synthesize(text)
            pcm = resample(audio.pcm, audio.sample_rate, RATE)
            if voice == "pico-de-variant":
                pcm = _variant(pcm, RATE)
            speech = levelled(pcm)
            if len(speech) / RATE <= max_s:
                out.append((f"{voice}:{text}", text, speech))
    return out


def paired(refs: list[str], a: list[str], b: list[str], rng: random.Random, rounds: int = 2000) -> tuple:
    """Turns where ``a`` has fewer / more word errors than ``b``; bootstrap 95% interval of WER(a) - WER(b)."""
    ea = [word_errors([r], [h]) for r, h in zip(refs, a, strict=True)]
    eb = [word_errors([r], [h]) for r, h in zip(refs, b, strict=True)]
    edits_a = np.array([e.errors for e in ea], dtype=float)
    edits_b = np.array([e.errors for e in eb], dtype=float)
    words = np.array([e.reference_units for e in ea], dtype=float)
    diffs = []
    n = len(refs)
    for _ in range(rounds):
        idx = np.array([rng.randrange(n) for _ in range(n)])
        diffs.append((edits_a[idx].sum() - edits_b[idx].sum()) / words[idx].sum())
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    return int((edits_a < edits_b).sum()), int((edits_a > edits_b).sum()), float(lo), float(hi)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--groups", default="emodb,answers")
    ap.add_argument("--windows", default="10,15,20,30")
    ap.add_argument("--max-s", type=float, default=3.5, help="longest source clip / synthesized answer (s)")
    ap.add_argument("--limit", type=int, default=0, help="at most this many turns per group (0: all)")
    ap.add_argument("--hiss-under", action="store_true", help="line hiss under the speech too, not only around it")
    ap.add_argument("--json", type=Path, default=None, help="write every turn's decodes here")
    ap.add_argument("--from-json", type=Path, nargs="+", default=None,
                    help="no decoding: the tables of earlier --json files together (e.g. one per group)")
    args = ap.parse_args()
    windows = [int(w) for w in args.windows.split(",")]
    if args.from_json:
        report([r for f in args.from_json for r in json.loads(f.read_text(encoding="utf-8"))], windows)
        return 0

    unknown = set(args.groups.split(",")) - {"emodb", "answers"}
    if unknown:
        ap.error(f"unknown group(s) {', '.join(sorted(unknown))}; use emodb, answers")
    from voicebot.asr.transcriber import Transcriber

    settings = load_settings()
    turns: list[Turn] = []
    left_out = 0
    for group in args.groups.split(","):
        made = emodb_speech(args.max_s) if group == "emodb" else answer_turns(settings, args.max_s)
        if args.limit:
            made = made[: args.limit]
        for name, text, speech in made:
            turn = Turn(group, name, text, on_the_line(speech, seed=len(turns) + left_out, hiss_under=args.hiss_under))
            if turn.seconds < settings.asr.final_short_turn_s:  # the turns today's rule sends to 30 s
                turns.append(turn)
            else:
                left_out += 1
    asr = Transcriber(settings.asr, settings.models).load()
    asr.transcribe(np.zeros(RATE, np.float32), beam_size=1)  # warm-up
    for w in windows:
        asr.transcribe(np.zeros(RATE, np.float32), beam_size=BEAM, final=True, fallback=False, window_s=w)
    rule = [asr.window_for(t.seconds, final=True) for t in turns]
    print(f"{len(turns)} turns (mean {np.mean([t.seconds for t in turns]):.2f} s with the padding; {left_out} left "
          f"out as >= final_short_turn_s {settings.asr.final_short_turn_s}); the setting's window for them: "
          f"{sorted(set(rule))}", flush=True)
    scores = {w: Scores() for w in windows}
    for i, turn in enumerate(turns):
        for w in windows:
            cpu0, wall0 = time.process_time(), time.perf_counter()
            result = asr.transcribe(turn.audio, beam_size=BEAM, final=True, fallback=False, window_s=w)
            s = scores[w]
            s.wall.append(time.perf_counter() - wall0)
            s.cpu.append(time.process_time() - cpu0)
            s.hyps.append(result.text)
            s.window.append(result.extra.get("window_s", 0.0))
        if (i + 1) % 50 == 0:
            print(f"  {i + 1}/{len(turns)}", file=sys.stderr, flush=True)

    rows = [{"group": t.group, "name": t.name, "text": t.text, "seconds": round(t.seconds, 3),
             **{str(w): {"text": scores[w].hyps[i], "cpu": scores[w].cpu[i], "wall": scores[w].wall[i],
                         "window": scores[w].window[i]} for w in windows}} for i, t in enumerate(turns)]
    if args.json:
        args.json.write_text(json.dumps(rows, ensure_ascii=False, indent=1))
    report(rows, windows)
    return 0


def in_group(row: dict, group: str) -> bool:
    if group == FEW_WORDS:
        return len(normalize_german(row["text"]).split()) <= 2
    return group in ("all", row["group"])


def report(rows: list[dict], windows: list[int]) -> None:
    """The tables, from every turn's decodes (``rows`` as ``--json`` writes them)."""
    groups = list(dict.fromkeys(r["group"] for r in rows))
    if any(len(normalize_german(r["text"]).split()) <= 2 for r in rows):
        groups.append(FEW_WORDS)  # "Ja.", "Nein, danke.", "Zwölf.": across the groups
    print("\n| turns | n | window s | WER | last word not heard | end dropped | empty | CPU s / turn "
          "| wall ms / turn (p50) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for group in [*groups, "all"]:
        sel = [r for r in rows if in_group(r, group)]
        refs = [r["text"] for r in sel]
        for w in windows:
            hyps = [r[str(w)]["text"] for r in sel]
            not_heard = sum(not check_edges(a, b, k=1).last_heard for a, b in zip(refs, hyps, strict=True))
            dropped = sum(end_dropped(a, b) for a, b in zip(refs, hyps, strict=True))
            print(f"| {group} | {len(sel)} | {np.mean([r[str(w)]['window'] for r in sel]):.0f} | "
                  f"{word_errors(refs, hyps).rate:.3f} | {not_heard} | {dropped} | {sum(not h.strip() for h in hyps)} "
                  f"| {np.mean([r[str(w)]['cpu'] for r in sel]):.2f} | "
                  f"{1000 * np.median([r[str(w)]['wall'] for r in sel]):.0f} |")
    if 30 not in windows:
        return
    rng = random.Random(0)
    print("\n| turns | window s vs 30 | turns better | turns worse | WER difference, 95% bootstrap |")
    print("|---|---|---|---|---|")
    for group in [*groups, "all"]:
        sel = [r for r in rows if in_group(r, group)]
        refs = [r["text"] for r in sel]
        for w in (w for w in windows if w != 30):
            better, worse, lo, hi = paired(refs, [r[str(w)]["text"] for r in sel], [r["30"]["text"] for r in sel], rng)
            print(f"| {group} | {w} | {better} | {worse} | {lo:+.3f} .. {hi:+.3f} |")


if __name__ == "__main__":
    raise SystemExit(main())

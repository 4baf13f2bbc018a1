#!/usr/bin/env python
"""A second opinion on short phone finals: does a second decode catch missed safety requests without crying wolf?

Issue 14: on a noisy phone line whisper-base misses short spoken safety requests in the production decode
(``asr.final_short_window_s`` window, the domain prompt): "Mitarbeiter, bitte." -> "Ja." at 20 s but
"Mit Al-Biter, Beta." at 30 s; without the prompt more requests escalate. Here every turn of
scripts/bench_prompt_guards.py (``safety``, ``answers``, ``emodb``, ``noise``) is decoded three times as a phone
call's short final (beam 5, no fallback), each cleaned by the hallucination guards with its own prompt:

* ``A``: production: the ``asr.final_short_window_s`` window, ``asr.initial_prompt``;
* ``B``: a 30 s window, ``asr.initial_prompt``;
* ``C``: the ``asr.final_short_window_s`` window, no prompt.

A turn shorter than ``asr.final_short_turn_s`` (padding included) escalates under a union rule if A escalates
(the policy's ``safety_escalation`` for a caller's first turn) or if the second decode escalates:

* ``any``: the second decode counts like the first (classifier operating points + keyword nets);
* ``keyword``: the second decode counts only through the safety keyword nets (``any_safety_keyword``).

The union's label is A's where A escalated, else the second decode's. Longer turns keep A alone. Per group:
escalated (right label, for safety), WER of each decode after the guards, CPU-s per decode (``process_time``,
all of the process's threads), then every turn a union adds.

Decision rule (stated before the run): a second opinion is worth building if one union rule adds >= 6 of the
128 safety requests (escalated, or escalated to the right label) while the ordinary turns (answers + emodb +
noise, 386) escalated rise by at most 2.

    flock /tmp/voicebot-cpu.lock nice -n 10 .venv/bin/python scripts/bench_second_opinion.py \\
        [--groups safety,noise] [--part 1/2] [--limit 3] [--json out.json]
    .venv/bin/python scripts/bench_second_opinion.py --report a.json b.json   # tables over saved runs
    .venv/bin/python scripts/bench_second_opinion.py --report a.json b.json --rescore   # ... judged by today's model
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from bench_prompt_guards import GROUPS, Turn, build_turns  # noqa: E402

from voicebot.asr.guards import clean_for  # noqa: E402
from voicebot.asr.transcriber import Transcriber  # noqa: E402
from voicebot.config import load_settings  # noqa: E402
from voicebot.dialog.domain import load_domain  # noqa: E402
from voicebot.dialog.escalation import any_safety_keyword, safety_escalation  # noqa: E402
from voicebot.eval.metrics import word_errors  # noqa: E402
from voicebot.nlu.intent import load_intent_classifier  # noqa: E402

VIEWS = ("A", "B", "C")
SECOND = ("B", "C")
UNIONS = ("B", "C", "BC")  # second opinions: B, C, or both (three decodes)
RATE = 16000
SAFETY_TURNS, ORDINARY_TURNS = 128, 386  # the full groups (the decision rule's denominators)


@dataclass(frozen=True)
class Decode:
    """One decode of one turn, cleaned by the guards, judged as a caller's first turn."""

    view: str
    raw: str
    heard: str
    guard: list[str]
    cpu_s: float
    escalated: str | None  # safety_escalation's label (classifier + keyword nets)
    trigger: str
    keyword: str | None  # any_safety_keyword's label (keyword nets only)


@dataclass(frozen=True)
class Row:
    group: str
    text: str
    label: str | None
    duration_s: float
    short: bool  # shorter than asr.final_short_turn_s: gets a second opinion
    decodes: dict[str, Decode]

    def union(self, view: str, rule: str) -> str | None:
        """The turn's escalation label under A ∪ ``view`` (``B``, ``C`` or ``BC``; ``rule``: ``any`` or ``keyword``);
        ``A`` alone. With both second decodes, B's label comes before C's."""
        first = self.decodes["A"].escalated
        if view == "A" or first is not None or not self.short:
            return first
        labels = [self.decodes[v].escalated if rule == "any" else self.decodes[v].keyword for v in view]
        return next((label for label in labels if label is not None), None)


def decode_turn(asr: Transcriber, s, classifier, domain, turn: Turn) -> Row:  # type: ignore[no-untyped-def]
    views = {"A": (s.asr.final_short_window_s, s.asr.initial_prompt), "B": (30, s.asr.initial_prompt),
             "C": (s.asr.final_short_window_s, "")}
    duration = len(turn.audio) / RATE
    decodes = {}
    for view, (window, prompt) in views.items():
        started = time.process_time()
        raw = asr.transcribe(turn.audio, beam_size=s.asr.final_beam_size, final=True, fallback=False,
                             window_s=window, initial_prompt=prompt)
        cpu = time.process_time() - started
        heard = clean_for(s.asr, raw, prompt)
        label, trigger = None, ""
        keyword = None
        if heard.text:
            label, trigger, _phrase = safety_escalation(domain, heard.text, classifier.predict(heard.text))
            hit = any_safety_keyword(domain, heard.text)
            keyword = hit[0] if hit else None
        decodes[view] = Decode(view, raw.text, heard.text, list(heard.guard), round(cpu, 4), label, trigger, keyword)
    return Row(turn.group, turn.text, turn.label, round(duration, 3), duration < s.asr.final_short_turn_s, decodes)


def safety_in_truth() -> set[str]:
    """The ``answers`` lines that ARE safety requests (escalating them is right, not crying wolf): the first
    lines of the scenarios whose first intent is a safety intent, and ANSWERS' "Mitarbeiter, bitte."."""
    safety = set(load_domain(load_settings().dialog.domain).safety_labels)
    lines = [json.loads(x) for x in (REPO / "eval" / "scenarios" / "scenarios.jsonl").read_text().splitlines() if x]
    return {sc["turns"][0] for sc in lines if sc["first_intent"] in safety} | {"Mitarbeiter, bitte."}


def judged(decode: Decode, classifier, domain) -> Decode:  # type: ignore[no-untyped-def]
    """``decode`` with its escalation judged again by today's classifier and domain (the transcript as saved)."""
    if not decode.heard:
        return decode
    label, trigger, _phrase = safety_escalation(domain, decode.heard, classifier.predict(decode.heard))
    hit = any_safety_keyword(domain, decode.heard)
    return replace(decode, escalated=label, trigger=trigger, keyword=hit[0] if hit else None)


def rescored(rows: list[Row]) -> list[Row]:
    s = load_settings()
    classifier, domain = load_intent_classifier(s), load_domain(s.dialog.domain)
    return [replace(r, decodes={k: judged(d, classifier, domain) for k, d in r.decodes.items()}) for r in rows]


def load_rows(paths: list[Path]) -> list[Row]:
    rows = []
    for path in paths:
        for r in json.loads(path.read_text())["rows"]:
            decodes = {k: Decode(**d) for k, d in r.pop("decodes").items()}
            rows.append(Row(**r, decodes=decodes))
    return rows


def report(rows: list[Row]) -> None:
    rules = [("A", "any")] + [(v, rule) for v in UNIONS for rule in ("any", "keyword")]
    names = {("A", "any"): "A alone"} | {(v, r): f"A∪{'∪'.join(v)} {r}" for v in UNIONS for r in ("any", "keyword")}
    print("A: production (short window, prompt); B: 30 s window, prompt; C: short window, no prompt. "
          "Union only on turns < asr.final_short_turn_s.\n")
    print("| group (turns, < 4 s) | " + " | ".join(names[k] for k in rules)
          + " | WER A / B / C | CPU-s/turn A / B / C |")
    print("|---" * (len(rules) + 3) + "|")
    for group in GROUPS:
        mine = [r for r in rows if r.group == group]
        if not mine:
            continue
        cells = []
        for view, rule in rules:
            labels = [r.union(view, rule) for r in mine]
            right = sum(lab == r.label for lab, r in zip(labels, mine, strict=True) if r.label)
            cells.append(f"{sum(lab is not None for lab in labels)}" + (f" ({right})" if group == "safety" else ""))
        wer = " / ".join(f"{word_errors([r.text for r in mine], [r.decodes[v].heard for r in mine]).rate:.3f}"
                         for v in VIEWS) if group != "noise" else "–"
        cpu = " / ".join(f"{sum(r.decodes[v].cpu_s for r in mine) / len(mine):.2f}" for v in VIEWS)
        print(f"| {group} ({len(mine)}, {sum(r.short for r in mine)}) | " + " | ".join(cells) + f" | {wer} | {cpu} |")
    ordinary = [r for r in rows if r.group != "safety" and r.label is None]
    truth = safety_in_truth()
    safety = [r for r in rows if r.group == "safety"]
    print("\nAdded by each union rule (over A alone), and the decision rule "
          f"(>= 6 safety added, ordinary added <= 2; full groups: {SAFETY_TURNS} / {ORDINARY_TURNS}). "
          "'of them safety requests': answers lines that are safety requests themselves (safety_in_truth):")
    print("| rule | safety added (right label) | ordinary added | of them safety requests | false alarms added "
          "| meets the rule (false alarms) |\n|---|---|---|---|---|---|")
    for view, rule in rules[1:]:
        s_add = [r for r in safety if r.union(view, rule) is not None and r.union("A", "any") is None]
        s_right = sum(r.union(view, rule) == r.label for r in s_add)
        o_add = [r for r in ordinary if r.union(view, rule) is not None and r.union("A", "any") is None]
        real = sum(r.text in truth for r in o_add)
        meets = len(s_add) >= 6 and len(o_add) - real <= 2
        print(f"| {names[(view, rule)]} | {len(s_add)} ({s_right}) | {len(o_add)} | {real} | {len(o_add) - real} "
              f"| {'yes' if meets else 'no'} |")
    still = [r for r in safety if r.union("A", "any") is None and all(r.union(v, "any") is None for v in SECOND)]
    print(f"\nSafety requests missed by A, B and C alike: {len(still)}")
    for r in still:
        print(f"- {r.text!r}: " + " | ".join(f"{v} {r.decodes[v].heard!r}" for v in VIEWS))
    for view in SECOND:
        print(f"\nTurns A∪{view} adds ('any'; [kw] where the keyword rule adds it too):")
        for r in rows:
            if r.union(view, "any") is not None and r.union("A", "any") is None:
                d = r.decodes[view]
                kw = " [kw]" if r.union(view, "keyword") is not None else ""
                kw += " (a safety request)" if r.group != "safety" and r.text in truth else ""
                print(f"- {r.group}: {r.text!r} ({r.label or '-'}) A {r.decodes['A'].heard!r} -> "
                      f"{view} {d.heard!r} -> {d.escalated} by {d.trigger}{kw}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--groups", default=",".join(GROUPS), help="comma list of groups to decode")
    ap.add_argument("--limit", type=int, default=0, help="at most this many turns per group (0: all)")
    ap.add_argument("--part", default="1/1", help="K/N: decode only the K-th of N even slices of the turns "
                    "(to keep each CPU-lock hold short)")
    ap.add_argument("--json", type=Path, help="write every decode here")
    ap.add_argument("--report", type=Path, nargs="+", help="print the tables over saved --json runs; decode nothing")
    ap.add_argument("--rescore", action="store_true", help="with --report: judge the saved transcripts again with "
                    "today's classifier and domain (a changed model or rule, no decoding)")
    args = ap.parse_args()
    if args.report:
        rows = load_rows(args.report)
        report(rescored(rows) if args.rescore else rows)
        return 0
    groups = [g for g in args.groups.split(",") if g]
    unknown = set(groups) - set(GROUPS)
    if unknown:
        ap.error(f"unknown groups {sorted(unknown)}; known: {GROUPS}")
    s = load_settings()
    turns = [t for t in build_turns(s, args.limit) if t.group in groups]
    k, n = (int(x) for x in args.part.split("/"))
    turns = turns[(k - 1) * len(turns) // n: k * len(turns) // n]
    asr = Transcriber(s.asr, s.models).load()
    classifier, domain = load_intent_classifier(s), load_domain(s.dialog.domain)
    rows = []
    started = time.perf_counter()
    for i, turn in enumerate(turns, 1):
        rows.append(decode_turn(asr, s, classifier, domain, turn))
        if i % 20 == 0:
            print(f"[{i}/{len(turns)} turns, {time.perf_counter() - started:.0f} s]", file=sys.stderr, flush=True)
    print(f"{len(turns)} turns in {time.perf_counter() - started:.0f} s wall", file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps({"rows": [asdict(r) for r in rows]}, ensure_ascii=False, indent=1))
    report(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

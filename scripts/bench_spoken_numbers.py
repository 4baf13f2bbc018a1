#!/usr/bin/env python
"""Spoken reference numbers, dates and times on the phone line: does the slot survive recognizer and parser?

``--n`` caller answers from a seeded RNG: 5-8 digit numbers (leading zeros and repeated digits sometimes) said
digit by digit ("vier sieben null eins ...", sometimes in groups of three with a pause) or in pairs
("siebenundvierzig elf"), in the phrasings callers use ("Meine Kundennummer ist ...", "Das ist die ...", just
the digits, ...), and some dates and times ("am dritten März um vierzehn Uhr"). Each is spoken by both Pico
voices (scripts/bench_short_safety.py), put on the phone line between line hiss (``on_the_line``) and decoded as
a phone call's final (beam ``asr.final_beam_size``, no fallback, ``short_final_window_s(narrowband=True)`` for a
short turn, hallucination guards ``clean_for``), then read by ``extract_slots(text, TODAY)`` and by the
policy's reading for the asked question (the extracted slots the question accepts, else ``text_answer``): right
when the number said is the value of any slot the question accepts (the call has the number).

Printed: per template and voice the answers whose every expected slot came out exactly (key and value) from
``extract_slots`` and from the policy reading, the WER of the digits (the digit sequence of what was heard vs
what was said), and every failure as ``said | heard | parsed`` tagged ``asr`` (a digit misheard or dropped: no
parser can help), ``keyword`` (the digits right, the keyword misheard: a bare ``number``, which the policy reading
still takes for the asked question), ``parser`` (the heard text holds exactly the digits said, the parser got it
wrong) or ``?`` (a date or time: judge by hand).

    flock /tmp/voicebot-cpu.lock nice -n 10 .venv/bin/python scripts/bench_spoken_numbers.py \\
        --n 120 --seed 7 --json eval/reports/spoken_numbers.json [--skip 0 --limit 30]
    # re-score the cached decodes with the parser as it is now (no decoding, no lock):
    .venv/bin/python scripts/bench_spoken_numbers.py --from-json eval/reports/spoken_numbers.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from voicebot.eval.metrics import word_errors  # noqa: E402
from voicebot.nlu.slots import extract_slots  # noqa: E402
from voicebot.nlu.slots.dates import _ORDINAL_STEMS, WEEKDAYS, _nearest_year, _weekday_date  # noqa: E402
from voicebot.nlu.slots.tokens import tokenize, word_value  # noqa: E402

TODAY = dt.date(2026, 12, 1)  # a Tuesday: relative dates resolve the same on every run
ONES = ("null", "eins", "zwei", "drei", "vier", "fünf", "sechs", "sieben", "acht", "neun")
TEENS = ("zehn", "elf", "zwölf", "dreizehn", "vierzehn", "fünfzehn", "sechzehn", "siebzehn", "achtzehn", "neunzehn")
TENS = ("", "", "zwanzig", "dreißig", "vierzig", "fünfzig", "sechzig", "siebzig", "achtzig", "neunzig")
# (name, phrasing, the slot extract_slots should fill, the pipelines/default question asked)
TEMPLATES = (
    ("meine_kundennummer", "Meine Kundennummer ist {n}.", "customer_number", "kundennummer"),
    ("kundennummer", "Kundennummer {n}.", "customer_number", "kundennummer"),
    ("bestellnummer_lautet", "Die Bestellnummer lautet {n}.", "order_number", "bestellnummer"),
    ("das_ist_die", "Das ist die {n}.", "number", "kundennummer"),
    ("digits_only", "{n}.", "number", "bestellnummer"),
    ("rechnungsnummer", "Rechnungsnummer: {n}.", "invoice_number", "rechnungsnummer"),
    ("mitgliedsnummer", "Mitgliedsnummer {n}.", "member_number", "kundennummer"),
    ("versicherungsnummer", "Versicherungsnummer {n}.", "policy_number", "versicherungsnummer"),
)
MONTH_NAMES = ("Januar", "Februar", "März", "April", "Mai", "Juni", "Juli", "August", "September", "Oktober",
               "November", "Dezember")
WEEKDAY_NAMES = {v: k.capitalize() for k, v in reversed(WEEKDAYS.items())}
ORDINAL_WORDS = {v: k + "en" for k, v in reversed(_ORDINAL_STEMS.items())}  # 3 -> "dritten" (first stem wins)


@dataclass(frozen=True)
class Answer:
    template: str
    said: str  # what the voice speaks
    expected: dict[str, str]  # slot -> value extract_slots should give
    question: str  # the pipelines/default question this answers
    digits: str  # the digits said, in order ("" for none)


def two_digits(n: int) -> str:
    if n < 10:
        return f"null {ONES[n]}"
    if n < 20:
        return TEENS[n - 10]
    unit = n % 10
    return TENS[n // 10] if unit == 0 else f"{'ein' if unit == 1 else ONES[unit]}und{TENS[n // 10]}"


def spoken_number(digits: str, rng: random.Random) -> str:
    """``digits`` as a caller reads them: one by one (sometimes in groups of three), or in pairs."""
    if rng.random() < 0.3:  # pairs: "siebenundvierzig elf"; an odd first digit alone
        head = [ONES[int(digits[0])]] if len(digits) % 2 else []
        rest = digits[len(digits) % 2:]
        return " ".join(head + [two_digits(int(rest[k:k + 2])) for k in range(0, len(rest), 2)])
    words = [ONES[int(d)] for d in digits]
    if rng.random() < 0.3:  # a pause after every third digit
        return ", ".join(" ".join(words[k:k + 3]) for k in range(0, len(words), 3))
    return " ".join(words)


def random_digits(rng: random.Random) -> str:
    digits = [str(rng.randrange(10)) for _ in range(rng.randint(5, 8))]
    if rng.random() < 0.25:
        digits[0] = "0"
    if rng.random() < 0.35:  # a repeated digit: "... sieben sieben ..."
        k = rng.randrange(len(digits) - 1)
        digits[k + 1] = digits[k]
    return "".join(digits)


def hour_words(hour: int) -> str:
    return ONES[hour] if hour < 10 else TEENS[hour - 10] if hour < 20 else two_digits(hour)


def date_answer(rng: random.Random) -> Answer:
    """A date and/or time answer, with the value the parser's documented rules give (dates.py, times.py)."""
    kind = rng.randrange(5)
    day, month, hour = rng.randint(1, 28), rng.randint(1, 12), rng.randint(8, 17)
    when = f"um {hour_words(hour)} Uhr"
    if kind == 0:
        d = _nearest_year(day, month, TODAY)
        return Answer("date_month", f"Am {ORDINAL_WORDS[day]} {MONTH_NAMES[month - 1]} {when}.",
                      {"date": d.isoformat(), "time": f"{hour:02d}:00"}, "datum", "")
    if kind == 1:
        wd = rng.randrange(5)
        return Answer("date_weekday", f"Nächsten {WEEKDAY_NAMES[wd]} gegen {hour_words(hour)}.",
                      {"date": _weekday_date(wd, TODAY, mode="next").isoformat(), "time": f"{hour:02d}:00"},
                      "datum", "")
    if kind == 2:
        half = rng.randint(1, 5)  # "halb drei" is 14:30 (times.py: 1-6 are afternoon)
        months = [(TODAY.year + (TODAY.month - 1 + s) // 12, (TODAY.month - 1 + s) % 12 + 1) for s in (-1, 0, 1)]
        d = min((dt.date(y, m, day) for y, m in months), key=lambda x: (abs((x - TODAY).days), x < TODAY))
        return Answer("date_day_only", f"Am {ORDINAL_WORDS[day].capitalize()} um halb {ONES[half]}.",
                      {"date": d.isoformat(), "time": f"{half + 11:02d}:30"}, "datum", "")
    if kind == 3:
        d = _nearest_year(day, month, TODAY)
        return Answer("date_only", f"Den {ORDINAL_WORDS[day]} {MONTH_NAMES[month - 1]}, bitte.",
                      {"date": d.isoformat()}, "datum", "")
    return Answer("time_only", f"Am besten {when}.", {"time": f"{hour:02d}:00"}, "uhrzeit", "")


def build_answers(n: int, seed: int) -> list[Answer]:
    rng = random.Random(seed)
    answers = []
    for _ in range(n):
        if rng.random() < 0.15:
            answers.append(date_answer(rng))
            continue
        name, phrasing, slot, question = rng.choice(TEMPLATES)
        digits = random_digits(rng)
        said = phrasing.format(n=spoken_number(digits, rng))
        answers.append(Answer(name, said[0].upper() + said[1:], {slot: digits}, question, digits))
    return answers


def heard_digits(text: str) -> str:
    """The digits in ``text``, in order, written ("47 11") or as number words ("vier", "siebenundvierzig")."""
    out = []
    for tok in tokenize(text):
        value = tok.text if tok.is_digits else word_value(tok.text)
        if value is not None:
            out.append(str(value))
    return "".join(out)


def score(answer: Answer, heard: str) -> dict:  # type: ignore[type-arg]
    """What ``extract_slots`` and the policy's reading make of ``heard``, and whether it is the expected value."""
    from voicebot.dialog.answers import text_answer

    domain = _domain()
    slots = extract_slots(heard, TODAY)
    parsed_ok = all(slots.get(k) == v for k, v in answer.expected.items())
    question = domain.questions[answer.question]
    found = {k: v for k, v in slots.items() if k in question.accepts} or text_answer(domain, question, heard, slots)
    if answer.digits:  # the number said, under any slot the question accepts (a bare one: its first)
        policy_ok = answer.digits in found.values()
    else:
        policy_ok = all(slots.get(k) == v for k, v in answer.expected.items() if k in question.accepts)
    got = heard_digits(heard)
    blame = ""  # asr: a digit misheard or dropped; keyword: the digits read right, the keyword misheard (a bare
    # "number"); parser: the digits all in the text, the value wrong or missing; ?: a date or time (judge by hand)
    if not parsed_ok:
        blame = ("?" if not answer.digits else "asr" if got != answer.digits else
                 "keyword" if slots.get("number") == answer.digits else "parser")
    return {"slots": slots, "parsed_ok": parsed_ok, "policy_ok": policy_ok, "heard_digits": got, "blame": blame}


_DOMAIN: list = []  # type: ignore[type-arg]


def _domain():  # type: ignore[no-untyped-def]
    if not _DOMAIN:
        from voicebot.config import load_settings
        from voicebot.dialog.domain import load_domain

        _DOMAIN.append(load_domain(load_settings().dialog.domain))
    return _DOMAIN[0]


def decode(answers: list[Answer]) -> list[dict]:  # type: ignore[type-arg]
    from bench_short_safety import pico_voices, spoken

    from voicebot.asr.guards import clean_for
    from voicebot.asr.transcriber import Transcriber
    from voicebot.asr.windows import short_final_window_s
    from voicebot.config import load_settings
    from voicebot.eval.asr_cases import RATE
    from voicebot.eval.short_turns import on_the_line

    s = load_settings()
    voices = pico_voices(s)
    asr = Transcriber(s.asr, s.models).load()
    rows = []
    for k, answer in enumerate(answers):
        for voice in voices:
            t0 = time.perf_counter()
            audio = on_the_line(spoken(voices, voice, answer.said), 500 + k, False)
            dur = len(audio) / RATE
            raw = asr.transcribe(audio, beam_size=s.asr.final_beam_size, final=True, fallback=False,
                                 window_s=short_final_window_s(s.asr, dur, narrowband=True))
            rows.append({**asdict(answer), "voice": voice, "seconds": round(dur, 2), "raw": raw.text,
                         "heard": clean_for(s.asr, raw).text, "decode_s": round(time.perf_counter() - t0, 2)})
    return rows


def report(rows: list[dict]) -> None:  # type: ignore[type-arg]
    for r in rows:
        r.update(score(Answer(r["template"], r["said"], r["expected"], r["question"], r["digits"]), r["heard"]))
    voices = sorted({r["voice"] for r in rows})
    print("| template | voice | answers | extract_slots exact | policy reading exact | digit WER |")
    print("|---|---|---|---|---|---|")
    groups = sorted({r["template"] for r in rows}) + ["ALL"]
    for template in groups:
        for voice in [*voices, "both"]:
            mine = [r for r in rows if template in ("ALL", r["template"]) and voice in ("both", r["voice"])]
            if not mine or (voice == "both" and template != "ALL"):
                continue
            with_digits = [r for r in mine if r["digits"]]
            wer = (f'{word_errors([" ".join(r["digits"]) for r in with_digits], [" ".join(r["heard_digits"]) for r in with_digits], normalize=False).rate:.3f}'  # noqa: E501
                   if with_digits else "–")
            print(f'| {template} | {voice} | {len(mine)} | {sum(r["parsed_ok"] for r in mine)} '
                  f'| {sum(r["policy_ok"] for r in mine)} | {wer} |')
    fails = [r for r in rows if not r["parsed_ok"] or not r["policy_ok"]]
    blames = {b: sum(r["blame"] == b for r in fails) for b in ("asr", "keyword", "parser", "?", "")}
    print(f"\nfailures: {len(fails)} (asr {blames['asr']}, keyword misheard {blames['keyword']}, parser "
          f"{blames['parser']}, date/time {blames['?']}, policy reading only {blames['']})")
    for r in fails:
        parsed = ", ".join(f"{k}={v}" for k, v in r["slots"].items()) or "–"
        print(f'  [{r["blame"] or "policy"}] {r["voice"]} {r["said"]} | {r["heard"]} | {parsed} '
              f'(want {r["expected"]})')
    if any("decode_s" in r for r in rows):
        print(f'\ndecode s per answer and voice: {sum(r["decode_s"] for r in rows) / len(rows):.2f}')


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=60, help="caller answers to build (each spoken by both voices)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--skip", type=int, default=0, help="leave out the first this many answers (split a run)")
    ap.add_argument("--limit", type=int, default=0, help="decode at most this many answers (0: all)")
    ap.add_argument("--json", type=Path, help="write every decode here (re-score it with --from-json)")
    ap.add_argument("--from-json", type=Path, nargs="+", help="re-score these decodes (no decoding)")
    args = ap.parse_args()
    if args.from_json:
        rows = [r for p in args.from_json for r in json.loads(p.read_text())["rows"]]
    else:
        answers = build_answers(args.n, args.seed)[args.skip:]
        rows = decode(answers[: args.limit] if args.limit else answers)
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps({"n": args.n, "seed": args.seed, "skip": args.skip, "rows": rows},
                                            ensure_ascii=False, indent=1))
    report(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

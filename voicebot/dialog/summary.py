"""German wording built from slots: spoken read-backs for the caller, summaries for the agent.

Read-backs are for the ear: numbers digit by digit ("4711" -> "vier sieben
eins eins"), letters one by one, dates and times in words, because a
synthesizer reading "4711" says "viertausendsiebenhundertelf" and the caller
cannot check that against the card in their hand. Summaries are for the eye:
two or three template sentences from the intent, the slots and the caller's
key words, readable in the seconds before the agent says hello.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from voicebot.dialog.domain import Domain

DIGIT_WORDS = ("null", "eins", "zwei", "drei", "vier", "fünf", "sechs", "sieben", "acht", "neun")
_ONES = DIGIT_WORDS + ("zehn", "elf", "zwölf", "dreizehn", "vierzehn", "fünfzehn", "sechzehn", "siebzehn",
                       "achtzehn", "neunzehn")
_TENS = {2: "zwanzig", 3: "dreißig", 4: "vierzig", 5: "fünfzig", 6: "sechzig", 7: "siebzig", 8: "achtzig",
         9: "neunzig"}
_ORDINALS = ("", "erste", "zweite", "dritte", "vierte", "fünfte", "sechste", "siebte", "achte", "neunte", "zehnte",
             "elfte", "zwölfte", "dreizehnte", "vierzehnte", "fünfzehnte", "sechzehnte", "siebzehnte", "achtzehnte",
             "neunzehnte", "zwanzigste", "einundzwanzigste", "zweiundzwanzigste", "dreiundzwanzigste",
             "vierundzwanzigste", "fünfundzwanzigste", "sechsundzwanzigste", "siebenundzwanzigste",
             "achtundzwanzigste", "neunundzwanzigste", "dreißigste", "einunddreißigste")
MONTHS = ("Januar", "Februar", "März", "April", "Mai", "Juni", "Juli", "August", "September", "Oktober", "November",
          "Dezember")
WEEKDAYS = ("Montag", "Dienstag", "Mittwoch", "Donnerstag", "Freitag", "Samstag", "Sonntag")

REASONS = {
    "routed": "Weitergeleitet an {team}",
    "no_understanding": "Übergabe, weil das Anliegen nach zwei Versuchen nicht sicher verstanden wurde",
    "confirmation_rejected": "Übergabe, weil der Anrufer die erkannten Anliegen verneint hat",
    "asr_failures": "Übergabe, weil der Anrufer akustisch wiederholt nicht zu verstehen war",
    "notfall": "Sofortige Übergabe wegen eines möglichen Notfalls",
    "seelsorge": "Sofortige Übergabe wegen einer möglichen seelischen Krise",
    "mitarbeiter": "Übergabe auf Wunsch des Anrufers",
    "no_input": "Übergabe, weil der Anrufer auf zweimalige Nachfrage nicht geantwortet hat",
}


def number_words(n: int) -> str:
    """A non-negative integer below one million in German words (``21`` -> "einundzwanzig")."""
    if n < 0 or n >= 1_000_000:
        raise ValueError(f"number_words handles 0..999999, got {n}")
    if n < 20:
        return _ONES[n]
    if n < 100:
        unit = n % 10
        return (("ein" if unit == 1 else _ONES[unit]) + "und" if unit else "") + _TENS[n // 10]
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        return ("ein" if hundreds == 1 else _ONES[hundreds]) + "hundert" + (number_words(rest) if rest else "")
    thousands, rest = divmod(n, 1000)
    head = "ein" if thousands == 1 else number_words(thousands)
    return head + "tausend" + (number_words(rest) if rest else "")


def spoken_digits(value: str) -> str:
    """Read a reference digit by digit and letter by letter: "A-4711" -> "A vier sieben eins eins"."""
    parts = []
    for ch in value:
        if ch.isdigit():
            parts.append(DIGIT_WORDS[int(ch)])
        elif ch.isalpha():
            parts.append(ch.upper())
    return " ".join(parts)


def spoken_plate(value: str) -> str:
    """A licence plate group by group: "M-AB 1234" -> "M, A B, eins zwei drei vier"."""
    groups = value.replace("-", " ").split()
    spoken = []
    for group in groups:
        letters = " ".join(ch.upper() for ch in group if ch.isalpha())
        digits = spoken_digits("".join(ch for ch in group if ch.isdigit()))
        spoken.append(" ".join(p for p in (letters, digits) if p))
    return ", ".join(spoken)


def spoken_iban(value: str) -> str:
    """An IBAN in groups of four, the way it is printed and read out."""
    compact = value.replace(" ", "")
    return ", ".join(spoken_digits(compact[i : i + 4]) for i in range(0, len(compact), 4))


def spoken_date(value: str) -> str:
    """ISO "2026-03-03" -> "Dienstag, der dritte März"."""
    try:
        day = dt.date.fromisoformat(value)
    except ValueError:
        return value
    return f"{WEEKDAYS[day.weekday()]}, der {_ORDINALS[day.day]} {MONTHS[day.month - 1]}"


def spoken_time(value: str) -> str:
    """ "14:30" -> "vierzehn Uhr dreißig", "10:00" -> "zehn Uhr"."""
    try:
        hour, minute = (int(x) for x in value.split(":"))
    except ValueError:
        return value
    hour_words = "ein" if hour == 1 else number_words(hour)
    return f"{hour_words} Uhr" + (f" {number_words(minute)}" if minute else "")


def spoken_value(kind: str, value: str) -> str:
    """How the bot says a slot value back, by the slot's kind."""
    if kind == "digits":
        return spoken_digits(value)
    if kind == "plate":
        return spoken_plate(value)
    if kind == "iban":
        return spoken_iban(value)
    if kind == "date":
        return spoken_date(value)
    if kind == "time":
        return spoken_time(value)
    return value.strip().rstrip(".")


def display_value(kind: str, value: str) -> str:
    """How a slot value is written for the agent (German date format)."""
    if kind == "date":
        try:
            return dt.date.fromisoformat(value).strftime("%d.%m.%Y")
        except ValueError:
            return value
    if kind == "time":
        return f"{value} Uhr"
    return value


def key_phrase(caller_turns: list[str], prefer: str = "", max_words: int = 20) -> str:
    """The caller's words most worth quoting: the turn containing ``prefer``, else the longest."""
    turns = [t.strip() for t in caller_turns if t.strip()]
    if not turns:
        return ""
    preferred = [t for t in turns if prefer and prefer in t.lower()]
    chosen = preferred[0] if preferred else max(turns, key=lambda t: len(t.split()))
    words = chosen.split()
    return " ".join(words[:max_words]) + (" …" if len(words) > max_words else "")


def agent_summary(
    domain: Domain,
    label: str | None,
    confidence: float | None,
    slots: dict[str, str],
    caller_turns: list[str],
    reason: str,
    trigger_phrase: str = "",
) -> str:
    """Two or three German sentences: the concern, what was collected, why the agent has the call."""
    if label is None:
        first = "Das Anliegen des Anrufers ist noch nicht erkannt."
    else:
        spec = domain.intent(label)
        first = spec.summary or f"Anliegen: {spec.topic}."
        if confidence is not None and not spec.escalate:
            first = first.rstrip(".") + f" (Erkennungssicherheit {round(confidence * 100)} %)."
    collected = [
        f"{domain.slot_name(k)} {display_value(domain.slot_kind(k), v)}"
        for k, v in slots.items() if not k.endswith("_invalid")
    ]
    second = ("Erfasst: " + ", ".join(collected) + ".") if collected else "Noch keine Angaben erfasst."
    team = domain.routes[domain.intent(label).route].team if label else ""
    why = REASONS.get(reason, f"Übergabe ({reason})").format(team=team)
    quote = key_phrase(caller_turns, trigger_phrase)
    third = f"{why}. Anrufer sagte: „{quote}“" if quote else f"{why}."
    return " ".join((first, second, third))

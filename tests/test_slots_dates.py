"""Slot parsers for dates and times on spoken German as ASR writes it (relative days, clock phrases)."""

from __future__ import annotations

import datetime as dt

import pytest

from voicebot.nlu.slots import extract_slots, parse_date, parse_time

# Tuesday, 10 March 2026: every relative date below is resolved against it.
TODAY = dt.date(2026, 3, 10)


@pytest.mark.parametrize(
    ("text", "iso"),
    [
        ("heute", "2026-03-10"),
        ("geht das morgen", "2026-03-11"),
        ("morgen früh", "2026-03-11"),
        ("übermorgen", "2026-03-12"),
        ("gestern ist mir einer reingefahren", "2026-03-09"),
        ("vorgestern abend", "2026-03-08"),
        ("nächsten Dienstag", "2026-03-17"),
        ("am Dienstag", "2026-03-17"),
        ("am donnerstag", "2026-03-12"),
        ("kommenden Freitag", "2026-03-13"),
        ("übernächsten Montag", "2026-03-23"),
        ("nächste Woche Mittwoch", "2026-03-18"),
        ("Montag nächste Woche", "2026-03-16"),
        ("letzten Samstag", "2026-03-07"),
        ("am dritten März", "2026-03-03"),
        ("3. März", "2026-03-03"),
        ("dritter dritter", "2026-03-03"),
        ("am 14.02.", "2026-02-14"),
        ("am 14.2.2027", "2027-02-14"),
        ("den vierzehnten zweiten", "2026-02-14"),
        ("am ersten april", "2026-04-01"),
        ("am einunddreißigsten dezember", "2025-12-31"),
        ("zum zwanzigsten Juni", "2026-06-20"),
        ("am 24. Dezember 2026", "2026-12-24"),
        ("am dritten märz zweitausendsechsundzwanzig", "2026-03-03"),
        ("in zwei wochen", "2026-03-24"),
        ("in drei tagen", "2026-03-13"),
        ("ist meine Zahlung vom Freitag angekommen", "2026-03-06"),
        ("das paket steht seit montag in zustellung", "2026-03-09"),
        ("Morgen passt mir gut", "2026-03-11"),
    ],
)
def test_dates(text: str, iso: str) -> None:
    assert parse_date(text, TODAY) == iso


def test_date_without_year_picks_the_nearest() -> None:
    december = dt.date(2026, 12, 20)
    assert parse_date("am zehnten januar", december) == "2027-01-10"
    assert parse_date("am zehnten dezember", december) == "2026-12-10"


def test_a_day_alone_is_the_nearest_such_day() -> None:
    """"am Dritten" (the noun: the third of the month), as Whisper writes it, with a time after it or not."""
    today = dt.date(2026, 12, 1)
    assert extract_slots("Am Dritten, um 13 Uhr.", today) == {"date": "2026-12-03", "time": "13:00"}
    assert parse_date("Ab dem Ersten bitte.", today) == "2026-12-01"
    assert parse_date("Bis zum Zwanzigsten.", dt.date(2026, 12, 14)) == "2026-12-20"
    assert parse_date("Am Dreißigsten.", dt.date(2027, 2, 27)) == "2027-01-30"  # no 30 February
    for text in ("Am dritten Tag war es kaputt.", "Zum Ersten Mal.", "Im Dritten Stock."):
        assert parse_date(text, today) is None, text


@pytest.mark.parametrize(
    "text",
    [
        "guten Morgen ich hab ne Frage",
        "ich habe zwei Fragen",
        "am ersten",  # day without a month
        "am 31.02.",  # no such day
        "das kostet 49.90 euro",
        "ich habe Angst vor jedem Morgen",
        "Am Morgen war alles noch gut",
    ],
)
def test_no_date_invented(text: str) -> None:
    assert parse_date(text, TODAY) is None


def test_heute_morgen_is_today() -> None:
    # "heute" is the date; "morgen" after it is the morning, not tomorrow.
    assert parse_date("heute morgen war das internet weg", TODAY) == "2026-03-10"


@pytest.mark.parametrize(
    ("text", "clock"),
    [
        ("halb drei", "14:30"),
        ("um halb drei", "14:30"),
        ("halb drei morgens", "02:30"),
        ("halb neun", "08:30"),
        ("halb eins", "12:30"),
        ("halb sieben", "18:30"),
        ("viertel nach zehn", "10:15"),
        ("viertel vor elf", "10:45"),
        ("viertel nach vier", "16:15"),
        ("dreiviertel neun", "08:45"),
        ("drei viertel neun", "08:45"),
        ("viertel neun", "08:15"),
        ("zehn nach drei", "15:10"),
        ("zwanzig vor zwölf", "11:40"),
        ("fünf vor halb drei", "14:25"),
        ("fünf nach halb zehn", "09:35"),
        ("um 15 uhr", "15:00"),
        ("15:30", "15:30"),
        ("um 9.45 Uhr", "09:45"),
        ("fünfzehn uhr dreißig", "15:30"),
        ("um acht", "08:00"),
        ("um drei", "15:00"),
        ("um drei uhr nachts", "03:00"),
        ("um sieben uhr abends", "19:00"),
        ("zwölf uhr mittags", "12:00"),
        ("um ein uhr", "13:00"),
        ("gegen zehn", "10:00"),
        ("morgen früh um halb acht", "07:30"),
        ("neun uhr zwanzig", "09:20"),
        ("zwischen vierzehn und sechzehn Uhr", "14:00"),
        ("von acht bis zehn uhr", "08:00"),
        ("das internet fällt jeden abend um acht aus", "20:00"),
    ],
)
def test_times(text: str, clock: str) -> None:
    assert parse_time(text) == clock


@pytest.mark.parametrize(
    "text",
    ["ich habe zwei Fragen", "können wir das um zwei tage verschieben", "das dauert drei stunden", "halb so schlimm"],
)
def test_no_time_invented(text: str) -> None:
    assert parse_time(text) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # whisper writes "am Zwanzigsten um halb drei" in digits: the day of the month alone, nearest to today
        ("Am 20. um halb drei.", {"date": "2026-03-20", "time": "14:30"}),
        ("Am 13. um 10 Uhr", {"date": "2026-03-13", "time": "10:00"}),
        ("zum 15. bitte", {"date": "2026-03-15"}),
        ("Am 20.", {"date": "2026-03-20"}),
        # not a day alone: a counted noun, a full date, a decimal, no such day
        ("am 3. Tag", {}),
        ("Am 20. Dezember", {"date": "2025-12-20"}),
        ("am 14.02.", {"date": "2026-02-14"}),
        ("am 40.", {}),
        ("Das ist die 20. Rechnung", {}),
    ],
)
def test_day_alone_written_in_digits(text: str, expected: dict[str, str]) -> None:
    assert extract_slots(text, today=TODAY) == expected

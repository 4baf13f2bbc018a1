"""Slot parsers for amounts, IBANs, phone numbers and e-mails, and all slots of one utterance together."""

from __future__ import annotations

import datetime as dt

import pytest

from voicebot.nlu.slots import check_iban, extract_slots, parse_amount, parse_email, parse_iban, parse_phone

# Tuesday, 10 March 2026: every relative date below is resolved against it.
TODAY = dt.date(2026, 3, 10)


@pytest.mark.parametrize(
    ("text", "amount"),
    [
        ("neunundvierzig euro neunzig", "49.90 EUR"),
        ("49,90 €", "49.90 EUR"),
        ("€ 49,90", "49.90 EUR"),
        ("49.90 EUR", "49.90 EUR"),
        ("hundertzwanzig euro", "120.00 EUR"),
        ("ein hundert zwanzig euro", "120.00 EUR"),
        ("die haben mir 1.234,56 Euro abgebucht", "1234.56 EUR"),
        ("zwölf komma fünf euro", "12.50 EUR"),
        ("neunundvierzig euro und neunzig cent", "49.90 EUR"),
        ("fünfzig cent", "0.50 EUR"),
        ("dreitausend euro", "3000.00 EUR"),
        ("zweihundertneunundneunzig euro äh fünfundneunzig", "299.95 EUR"),
        ("es waren 35 euro zu viel", "35.00 EUR"),
    ],
)
def test_amounts(text: str, amount: str) -> None:
    assert parse_amount(text) == amount


@pytest.mark.parametrize("text", ["ich habe zwei Fragen", "die rechnung ist zu hoch", "ein paar euro mehr"])
def test_no_amount_invented(text: str) -> None:
    assert parse_amount(text) is None


VALID = "DE89370400440532013000"
# The digits of VALID after "DE", read one by one.
SPOKEN = "acht neun drei sieben null vier null null vier vier null fünf drei zwei null eins drei null null null"


@pytest.mark.parametrize(
    "text",
    [
        "DE89 3704 0044 0532 0130 00",
        "meine IBAN lautet DE89370400440532013000",
        "iban d e " + SPOKEN,
        "de neunundachtzig siebenunddreißig null vier null null vierundvierzig "
        "null fünf zweiunddreißig null eins dreißig null null",
        "die neue iban ist de 89 37 04 00 44 05 32 01 30 00",
        "d wie dora e wie emil " + SPOKEN,
        "IBAN DE89 3704 0044 0532 0130 00 und die BIC weiß ich nicht",
    ],
)
def test_iban(text: str) -> None:
    assert parse_iban(text) == VALID
    assert extract_slots(text, TODAY).get("iban") == VALID


@pytest.mark.parametrize(
    "text",
    [
        "DE89 3704 0044 0532 0130 01",  # one digit misheard
        "iban d e " + SPOKEN[: -len("null")] + "eins",  # last digit misheard
        "meine iban ist d e acht neun drei sieben null vier",  # incomplete
    ],
)
def test_iban_with_wrong_checksum_is_not_accepted(text: str) -> None:
    assert parse_iban(text) is None
    slots = extract_slots(text, TODAY)
    assert "iban" not in slots
    assert "iban_invalid" in slots


def test_check_iban() -> None:
    assert check_iban("de89 3704 0044 0532 0130 00") == (True, VALID)
    assert check_iban("DE00370400440532013000")[0] is False


@pytest.mark.parametrize(
    ("text", "phone"),
    [
        ("null eins sieben zwei eins zwei drei vier fünf sechs sieben", "01721234567"),
        ("meine handynummer ist null eins fünf eins eins zwei drei vier fünf sechs sieben", "01511234567"),
        ("plus vier neun eins sieben zwei eins zwei drei vier fünf sechs sieben", "+491721234567"),
        ("+49 172 1234567", "+491721234567"),
        ("+49 (0) 89 1234567", "+49891234567"),
        ("0049 30 123456", "+4930123456"),
        ("rufen Sie mich zurück unter der Nummer null acht neun zwölf vierunddreißig sechsundfünfzig", "089123456"),
        ("telefon 030 1234567", "0301234567"),
        ("ich bin erreichbar unter null sieben elf zwei drei vier fünf sechs sieben", "0711234567"),
    ],
)
def test_phone(text: str, phone: str) -> None:
    assert parse_phone(text) == phone


@pytest.mark.parametrize("text", ["ich habe zwei Fragen", "null acht fünfzehn", "das war 2019"])
def test_no_phone_invented(text: str) -> None:
    assert parse_phone(text) is None


@pytest.mark.parametrize(
    ("text", "email"),
    [
        ("meine email ist max punkt mustermann at gmx punkt de", "max.mustermann@gmx.de"),
        ("anna.schmidt@web.de", "anna.schmidt@web.de"),
        ("hans bindestrich peter ät t minus online punkt de", "hans-peter@t-online.de"),
        ("schreiben sie an info klammeraffe firma punkt com", "info@firma.com"),
    ],
)
def test_email(text: str, email: str) -> None:
    assert parse_email(text) == email


def test_no_email_invented() -> None:
    assert parse_email("ich war at home und so") is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Guten Tag, meine Kundennummer ist vier sieben eins eins, "
            "ich möchte nächsten Dienstag um halb drei einen Termin",
            {"customer_number": "4711", "date": "2026-03-17", "time": "14:30"},
        ),
        (
            "ja hallo äh ich steh hier auf der a neun mit meinem auto "
            "kennzeichen m wie martha a b zwölf vierunddreißig "
            "mitgliedsnummer eins zwei drei vier fünf sechs sieben acht neun",
            {"licence_plate": "M-AB 1234", "member_number": "123456789"},
        ),
        (
            "die Rechnung vom 3. März über neunundvierzig euro neunzig ist falsch "
            "rechnungsnummer zwei null zwei sechs null null eins",
            {"date": "2026-03-03", "amount": "49.90 EUR", "invoice_number": "2026001"},
        ),
        (
            "ich ziehe um neue adresse hauptstraße zwölf postleitzahl acht null drei drei eins ab dem ersten april",
            {"postcode": "80331", "date": "2026-04-01"},
        ),
        (
            "sie können mich unter null eins sieben zwei eins zwei drei vier fünf sechs sieben "
            "erreichen morgen ab zehn",
            {"phone": "01721234567", "date": "2026-03-11", "time": "10:00"},
        ),
        ("vier sieben eins eins null acht", {"number": "471108"}),
        ("die nummer ist neun acht sieben sechs", {"number": "9876"}),
        ("Artikelnummer siebenundzwanzig vierzehn, drei Stück", {}),  # two groups, no keyword: too short
        (
            "kundennummer vier sieben eins eins meine neue iban ist DE89 3704 0044 0532 0130 00",
            {"customer_number": "4711", "iban": VALID},
        ),
        (
            "Versicherungsnummer 4711 08 15, der Sturm war am Samstag",
            {"policy_number": "47110815", "date": "2026-03-14"},
        ),
    ],
)
def test_extract_slots_combined(text: str, expected: dict[str, str]) -> None:
    assert extract_slots(text, TODAY) == expected


@pytest.mark.parametrize(
    "text",
    [
        "ich habe zwei Fragen",
        "hallo?",
        "ja ich wollte nur mal",
        "ich bin 67 jahre alt und wohne seit 1999 hier",
        "es hat alles keinen sinn mehr",
        "mein mann ist umgekippt und atmet komisch",
        "",
        "äh ähm",
        "eins zwei drei test test",
    ],
)
def test_nothing_invented(text: str) -> None:
    assert extract_slots(text, TODAY) == {}


def test_default_today_is_used() -> None:
    assert extract_slots("heute")["date"] == dt.date.today().isoformat()

"""Slot parsers for numbers on spoken German as ASR writes it: digits, references, plates, postcodes."""

from __future__ import annotations

import datetime as dt

import pytest

from voicebot.nlu.slots import (
    extract_slots,
    parse_licence_plate,
    parse_postcode,
    parse_reference_numbers,
    parse_spoken_digits,
)

# Tuesday, 10 March 2026: every relative date below is resolved against it.
TODAY = dt.date(2026, 3, 10)


@pytest.mark.parametrize(
    ("spoken", "digits"),
    [
        ("vier sieben eins eins", "4711"),
        ("zwo drei zwo", "232"),
        ("null acht fünfzehn", "0815"),
        ("siebenundzwanzig", "27"),
        ("dreiundvierzig zwölf", "4312"),
        ("47 11 08", "471108"),
        ("vier sieben äh eins eins", "4711"),
        ("vierhundert zwölf", "412"),
        ("zweitausend vierundzwanzig", "2024"),
        ("eins doppel null acht", "1008"),
        ("viertausendsiebenhundertelf", "4711"),
        ("fuffzehn zwoa", "152"),
    ],
)
def test_spoken_digit_sequences(spoken: str, digits: str) -> None:
    assert parse_spoken_digits(spoken) == digits


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("meine Kundennummer ist vier sieben eins eins", {"customer_number": "4711"}),
        ("kundennummer äh null acht fünfzehn", {"customer_number": "0815"}),
        ("Kunden-Nr. 123456", {"customer_number": "123456"}),
        ("die kunden nummer lautet sieben sieben acht neun null", {"customer_number": "77890"}),
        ("Vertragsnummer dreiundvierzig zwölf", {"contract_number": "4312"}),
        ("ja also meine vertragsnummer is zwo null null eins fünf", {"contract_number": "20015"}),
        ("bestellnummer 47 11 08", {"order_number": "471108"}),
        ("die Auftragsnummer ist neun acht sieben sechs fünf", {"order_number": "98765"}),
        ("versicherungsnummer eins zwei drei vier fünf sechs", {"policy_number": "123456"}),
        ("Versicherungsscheinnummer 55 66 77 88", {"policy_number": "55667788"}),
        ("meine policennummer ist a wie anton vier vier zwei eins null", {"policy_number": "A44210"}),
        ("Rechnungsnummer R wie Richard zwanzig sechsundzwanzig null null drei", {"invoice_number": "R2026003"}),
        ("rechnungsnummer zwei null zwei sechs eins eins", {"invoice_number": "202611"}),
        ("meine mitgliedsnummer ist eins zwo drei vier fünf sechs sieben", {"member_number": "1234567"}),
        (
            "versichertennummer M wie Martha eins zwei drei vier fünf sechs sieben acht neun",
            {"member_number": "M123456789"},
        ),
        (
            "kundennummer vier sieben eins eins und die rechnungsnummer ist null acht fünfzehn",
            {"customer_number": "4711", "invoice_number": "0815"},
        ),
        # self-correction: the number after "Entschuldigung" counts
        (
            "Versicherungsschein sieben sieben acht, Entschuldigung, sieben sieben acht vier null zwei",
            {"policy_number": "778402"},
        ),
        # Whisper puts commas between dictated digits
        ("Kundennummer vier, sieben, eins, eins.", {"customer_number": "4711"}),
    ],
)
def test_reference_numbers_by_keyword(text: str, expected: dict[str, str]) -> None:
    assert parse_reference_numbers(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "ich habe zwei Fragen",
        "meine Kundennummer weiß ich gerade nicht",
        "kundennummer zwei",  # too short to be a reference
        "ich hab die Rechnungsnummer nicht zur Hand",
    ],
)
def test_no_reference_number_invented(text: str) -> None:
    assert parse_reference_numbers(text) == {}


@pytest.mark.parametrize(
    ("text", "plate"),
    [
        ("M wie Martha, A B, zwölf vierunddreißig", "M-AB 1234"),
        ("kennzeichen b minus x y eins zwei drei", "B-XY 123"),
        ("mein Kennzeichen ist M-AB 1234", "M-AB 1234"),
        ("das kennzeichen lautet h wie heinrich a wie anton zwei zwei", "H-A 22"),
        ("kennzeichen s wie stuttgart, k wie köln l wie leipzig vierhundertzwölf", "S-KL 412"),
        ("nummernschild K Minus L M Sieben Sieben", "K-LM 77"),
        ("Kennzeichen Emil Siegfried, Cäsar Dora, neun neun", "ES-CD 99"),
        ("kennzeichen hamburg minus anton berta eins e", "H-AB 1E"),
        ("Kennzeichen M wie München U wie Unna minus X wie Xanthippe drei drei drei", "MU-X 333"),
        ("äh das kennzeichen ist be minus ka el dreiundzwanzig", "B-KL 23"),
        ("kennzeichen d wie dora u wie ulrich s wie samuel minus a b eins zwo drei", "DUS-AB 123"),
        ("R wie Richard E wie Emil G wie Gustav, X Y, fünfzig", "REG-XY 50"),
    ],
)
def test_licence_plates(text: str, plate: str) -> None:
    assert parse_licence_plate(text) == plate


@pytest.mark.parametrize(
    "text",
    [
        "mein kennzeichen weiß ich nicht auswendig",
        "ich fahre einen golf",
        "kennzeichen m a b",  # no digits, not a plate
        "M wie Martha",
    ],
)
def test_no_plate_invented(text: str) -> None:
    assert parse_licence_plate(text) is None


@pytest.mark.parametrize(
    ("text", "postcode"),
    [
        ("postleitzahl acht null drei drei eins", "80331"),
        ("die PLZ ist 10115", "10115"),
        ("Postleitzahl ist null eins null sechs sieben", "01067"),
        ("ich wohne jetzt in der Hauptstraße 5, 70173 Stuttgart", "70173"),
    ],
)
def test_postcode(text: str, postcode: str) -> None:
    assert parse_postcode(text) == postcode


@pytest.mark.parametrize("text", ["postleitzahl acht null drei", "ich habe zwei Fragen", "das kostet 12345 euro"])
def test_no_postcode_invented(text: str) -> None:
    assert parse_postcode(text) is None

@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Meine Vertragsnummer ist 4.7118.", {"contract_number": "47118"}),
        ("kundennummer 47.118", {"customer_number": "47118"}),
        ("Meine Kundennummer ist 4.7.1.1.2.3.", {"customer_number": "471123"}),  # not the 4th of July
        ("Meine Kundennummer ist 9.001.25.", {"customer_number": "900125"}),
        ("Die Rechnungsnummer ist 2.0.2.4.1.1", {"invoice_number": "202411"}),
        ("Am 14.02.26 um 10 Uhr.", {"date": "2026-02-14", "time": "10:00"}),  # a date's chain stays a date
        ("Termin am 3.3.2027.", {"date": "2027-03-03"}),
    ],
)
def test_whisper_thousands_dots_in_spoken_digit_runs(text: str, expected: dict[str, str]) -> None:
    """Whisper renders digits said one by one as '4.7118'; the dots are not part of the number."""
    assert extract_slots(text, today=TODAY) == expected


# Shapes seen on the phone line in scripts/bench_spoken_numbers.py (whisper-base, Pico voices, line hiss).
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # digits dictated one by one or in pairs, written as a comma list
        ("Versicherungsnummer 0, 11, 86, 25.", {"policy_number": "0118625"}),
        ("Rechnungsnummer, 597, 971, 1.", {"invoice_number": "5979711"}),
        ("Rechnungsnummer, 1,63,72", {"invoice_number": "16372"}),
        ("Kundennummer, 06, 08, 3, 4, 0", {"customer_number": "0608340"}),
        ("Das ist die 63, 88, 86.", {"number": "638886"}),
        ("2,0,2,4,1, 1", {"number": "202411"}),
        ("0,7,4,952,8", {"number": "0749528"}),
        # two groups after a keyword, nothing after them
        ("Kundennummer, 067, 723.", {"customer_number": "067723"}),
        # a date's shape with no such date: the pairs said
        ("Meine Kundennummer ist 85.28.08.", {"customer_number": "852808"}),
        ("Das ist die 12.23.30", {"number": "122330"}),
        # the keyword as whisper splits or anglicises it
        ("Mit Gliedsnummer, 2.7.2.24.293.", {"member_number": "27224293"}),
        ("Mit Glieds Nummer 436-53", {"member_number": "43653"}),
        ("Versicherungs number 7 6 1 1 1 5", {"policy_number": "761115"}),
    ],
)
def test_whisper_digit_lists_on_the_phone_line(text: str, expected: dict[str, str]) -> None:
    assert extract_slots(text, today=TODAY) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("49,90 €", {"amount": "49.90 EUR"}),
        ("Das kostet 3,50, 4,20 und 5,10 Euro", {"amount": "5.10 EUR"}),  # a list of decimals is no number
        ("1, 2, 3 Euro", {"amount": "2.30 EUR"}),  # an amount follows: the chain is left as it was
        ("Bestellnummer 123, 45 Euro", {"order_number": "123", "amount": "45.00 EUR"}),
        ("Kundennummer 12345, 2 Stück", {"customer_number": "12345"}),
        ("Kundennummer 067, 723 bitte", {"customer_number": "067"}),  # words after: not the dictated tail
        ("Ich habe 3, 4, 5 Rechnungen", {}),
        ("am 14.02.", {"date": "2027-02-14"}),
        ("Das war am 31.12.26", {"date": "2026-12-31"}),
        ("1.250 Euro", {"amount": "1250.00 EUR"}),
        ("Ich bin mit Glied seit 2010", {}),
    ],
)
def test_digit_lists_leave_amounts_and_dates_alone(text: str, expected: dict[str, str]) -> None:
    assert extract_slots(text, today=dt.date(2026, 12, 1)) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # pairs after a keyword written in a date's shape: a reference number is never a date
        ("Meine Kundennummer ist 10.02.51.", {"customer_number": "100251"}),
        ("Rechnungsnummer, 27.01.41.", {"invoice_number": "270141"}),
        # a date said after the number, or an amount after the keyword, stays what it is
        ("Kundennummer 4711, am 14.02. um 10 Uhr", {"customer_number": "4711", "date": "2027-02-14", "time": "10:00"}),
        ("Kundennummer 4711 am 3.3.2027", {"customer_number": "4711", "date": "2027-03-03"}),
        ("Kundennummer 12,50 Euro", {"amount": "12.50 EUR"}),
        ("Die Rechnungsnummer weiß ich nicht, es sind 1.250 Euro.", {"amount": "1250.00 EUR"}),
        ("Rechnungsnummer 1.250 Euro", {"amount": "1250.00 EUR"}),
        ("Rechnung über 1.250 Euro, Rechnungsnummer 88123.", {"amount": "1250.00 EUR", "invoice_number": "88123"}),
    ],
)
def test_keyword_led_digit_groups_glued_by_dots(text: str, expected: dict[str, str]) -> None:
    assert extract_slots(text, today=dt.date(2026, 12, 1)) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # a keyword, then the dictated groups as a comma list to the end of the turn, a group sometimes a decimal
        ("Kundennummer, 0.37, 6.46, 25.", {"customer_number": "03764625"}),
        ("Rechnungsnummer, 1,57, 994, 7.", {"invoice_number": "1579947"}),
        ("Meine Kundenummer ist 4391.4.", {"customer_number": "43914"}),
        # words or an amount after the list: the number ends at its first group
        ("Kundennummer 4711, 12,50 Euro", {"customer_number": "4711", "amount": "12.50 EUR"}),
    ],
)
def test_keyword_led_comma_lists_to_the_end_of_the_turn(text: str, expected: dict[str, str]) -> None:
    assert extract_slots(text, today=dt.date(2026, 12, 1)) == expected

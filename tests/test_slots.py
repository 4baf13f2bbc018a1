"""Slot parsers on spoken German as ASR writes it (casing, words, digits, fillers)."""

from __future__ import annotations

import datetime as dt

import pytest

from voicebot.nlu.slots import (
    check_iban,
    extract_slots,
    parse_amount,
    parse_date,
    parse_email,
    parse_iban,
    parse_licence_plate,
    parse_phone,
    parse_postcode,
    parse_reference_numbers,
    parse_spoken_digits,
    parse_time,
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


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Meine Vertragsnummer ist 4.7118.", {"contract_number": "47118"}),
        ("kundennummer 47.118", {"customer_number": "47118"}),
    ],
)
def test_whisper_thousands_dots_in_spoken_digit_runs(text: str, expected: dict[str, str]) -> None:
    """Whisper renders digits said one by one as '4.7118'; the dots are not part of the number."""
    assert extract_slots(text, today=TODAY) == expected

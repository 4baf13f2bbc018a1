"""Personal-data masking: what the store keeps and what agents see."""

from __future__ import annotations

import pytest

from voicebot.assist.redact import mask_iban, mask_slot, redact_event, redact_text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Meine IBAN ist DE89 3704 0044 0532 0130 00, bitte.", "Meine IBAN ist DE89 **** **** **** **** 00, bitte."),
        ("IBAN DE89370400440532013000", "IBAN DE89 **** **** **** **** 00"),
        ("Meine Kundennummer ist 4711 0815.", "Meine Kundennummer ist **** **15."),
        ("Kundennummer: 12345", "Kundennummer: ***45"),
        ("Vertragsnummer KV-88123", "Vertragsnummer KV-***23"),
        ("Bestellnummer lautet 98 76 54", "Bestellnummer lautet ** ** 54"),
        ("meine Policennummer ist 55501234", "meine Policennummer ist ******34"),
        ("Rufen Sie mich unter 0171 2345678 an", "Rufen Sie mich unter **** *****78 an"),
        ("oder +49 30 1234567", "oder +49 ** *****67"),
        ("Mail an max.muster@example.de bitte", "Mail an m***@e***.de bitte"),
        ("Ich bin geboren am 12.03.1980 in Köln", "Ich bin geboren am **.**.**** in Köln"),
        ("Geburtsdatum: 3. März 1980", "Geburtsdatum: **.**.****"),
        ("geboren am dritten März neunzehnhundertachtzig", "geboren am **.**.****"),
        ("die Nummer 98765432.", "die Nummer ******32."),
    ],
)
def test_personal_data_is_masked(text: str, expected: str) -> None:
    assert redact_text(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Der Lappen liegt auf dem Eisschrank.",
        "Ich habe am 12.03.2024 einen Termin um 14 Uhr.",  # an appointment, not a birthday
        "Die Rechnung über 1250 Euro ist falsch.",
        "Postleitzahl 50667",
        "Telefonseelsorge 0800 111 0 111 oder 0800 111 0 222",  # service numbers must stay readable
        "Bei Gefahr rufen Sie 112.",
        "",
    ],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert redact_text(text) == text


def test_iban_mask_keeps_country_check_digits_and_last_two() -> None:
    assert mask_iban("DE89 3704 0044 0532 0130 00") == "DE89 **** **** **** **** 00"
    assert mask_iban("AT611904300234573201") == "AT61 **** **** **** **01"


def test_slots_are_masked_by_their_kind() -> None:
    assert mask_slot("iban", "DE89370400440532013000") == "DE89 **** **** **** **** 00"
    assert mask_slot("customer_number", "4711") == "**11"
    assert mask_slot("phone", "+491712345678") == "+49********78"
    assert mask_slot("email", "anna@firma.de") == "a***@f***.de"
    assert mask_slot("licence_plate", "M-AB 1234") == "M-** **34"
    assert mask_slot("date", "2026-03-03") == "2026-03-03"
    assert mask_slot("amount", "49.90 EUR") == "49.90 EUR"


def test_events_are_redacted_as_copies_and_structure_is_kept() -> None:
    event = {
        "type": "transcript.final",
        "call_id": "call-1234567890",
        "text": "Meine Kundennummer ist 12345678",
        "words": [{"text": "12345678", "start": 0.1, "end": 0.9}],
        "slots": {"customer_number": "12345678", "date": "2026-03-03"},
        "context": {"summary": "Kunde mit IBAN DE89 3704 0044 0532 0130 00", "transcript": ["0171 2345678"]},
        "seq": 3,
    }
    red = redact_event(event)
    assert red["text"] == "Meine Kundennummer ist ******78"
    assert red["words"] == []  # the number would survive word by word
    assert red["slots"] == {"customer_number": "******78", "date": "2026-03-03"}
    assert red["context"]["summary"] == "Kunde mit IBAN DE89 **** **** **** **** 00"
    assert red["context"]["transcript"] == ["**** *****78"]
    assert red["call_id"] == "call-1234567890" and red["seq"] == 3 and red["type"] == "transcript.final"
    assert event["text"] == "Meine Kundennummer ist 12345678"  # the original is untouched


def test_words_stay_when_nothing_was_masked() -> None:
    event = {"type": "transcript.final", "text": "Hallo", "words": [{"text": "Hallo"}]}
    assert redact_event(event)["words"] == [{"text": "Hallo"}]


# --- issue 17: what the security sweep found unmasked ---------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Ich bin am 24.11.1979 geboren.", "Ich bin am **.**.**** geboren."),  # keyword after the date
        ("Ich bin am 12.3.1985 geboren.", "Ich bin am **.**.**** geboren."),
        ("Kundennummer 4.711.815", "Kundennummer *.***.*15"),  # dotted
        ("Kundennummer 4 7 1 1", "Kundennummer * * 1 1"),  # spaced
        ("Ich bin am vierundzwanzigsten November neunzehnhundertneunundsiebzig geboren.",
         "Ich bin am **.**.**** geboren."),
        ("Mein Name ist Max Mustermann.", "Mein Name ist M*** M***."),
        ("meine Mail ist max punkt mustermann at gmx punkt de", "meine Mail ist m***@g***.de"),
        ("Meine Kundennummer ist vier sieben eins eins.", "Meine Kundennummer ist **11."),
        ("Ich bin am 12.3.1985", "Ich bin am **.**.****"),  # a partial cut before "geboren"
    ],
)
def test_what_the_sweep_found_is_masked(text: str, expected: str) -> None:
    assert redact_text(text) == expected


def test_an_iban_read_out_over_several_partials_never_shows() -> None:
    partials = ["meine IBAN ist DE89", "meine IBAN ist DE89 3704", "meine IBAN ist DE89 3704 0044 05",
                "meine IBAN ist DE89 3704 0044 0532 0130", "meine IBAN ist DE89 3704 0044 0532 0130 00"]
    for text in partials:
        out = redact_event({"type": "transcript.partial", "text": text, "committed": text})
        for group in ("3704", "0044", "0532", "0130", "05"):
            assert group not in out["text"] and group not in out["committed"], out
    # A partial that starts inside the IBAN (the beginning already committed).
    assert redact_text("0044 0532 0130 00") == "**** **** **** 00"


def test_appointment_dates_amounts_and_recent_dates_stay() -> None:
    text = "Ich bin am 24.11.1979 geboren und habe am 12.03.2026 einen Termin wegen 49,90 Euro."
    assert redact_text(text) == "Ich bin am **.**.**** geboren und habe am 12.03.2026 einen Termin wegen 49,90 Euro."


def test_caller_metadata_is_masked_by_key_at_any_depth() -> None:
    caller = {
        "from": "+4917112345678",
        "customer": {"Date-Of-Birth": "1979-11-24", "name": "Erika Mustermann", "kundennummer": 4711081,
                     "contact": [{"email": "erika@example.de"}, {"note": "geboren am 3. März 1980"}]},
        "geburtsdatum": "24.11.1979",
        "birth_year": 1979,
        "tariff": "L 50",
    }
    red = redact_event(caller)
    assert red["from"] == "+49*********78"
    assert red["customer"]["Date-Of-Birth"] == "**.**.****" and red["geburtsdatum"] == "**.**.****"
    assert red["customer"]["name"] == "E*** M***"
    assert red["customer"]["kundennummer"] == "*****81"
    assert red["customer"]["contact"] == [{"email": "e***@e***.de"}, {"note": "geboren am **.**.****"}]
    assert red["birth_year"] == "**.**.****" and red["tariff"] == "L 50"
    assert caller["geburtsdatum"] == "24.11.1979"  # a copy


def test_hostile_depth_is_replaced_not_walked() -> None:
    deep: dict = {"geburtsdatum": "24.11.1979"}
    for _ in range(900):
        deep = {"x": deep}
    red = redact_event({"type": "call.start", "metadata": deep})
    assert "24.11.1979" not in repr(red)


def test_typed_events_come_back_typed_and_masked() -> None:
    from voicebot.protocol.events import CallStartEvent, IntentEvent, TranscriptFinalEvent

    final = TranscriptFinalEvent(text="Ich bin am 12.3.1985 geboren.", call_id="c1", seq=4, confidence=0.9,
                                 words=[{"text": "12.3.1985", "start": 0.1, "end": 0.9, "p": 0.9}])
    red = redact_event(final)
    assert type(red) is TranscriptFinalEvent
    assert red.text == "Ich bin am **.**.**** geboren." and red.words == [] and red.seq == 4
    assert final.text == "Ich bin am 12.3.1985 geboren."  # the original is untouched

    intent = IntentEvent(label="rechnung", confidence=0.8, slots={"customer_number": "12345678"})
    assert redact_event(intent).slots == {"customer_number": "******78"}

    start = CallStartEvent(metadata={"caller": {"birth_date": "24.11.1979", "name": "Max Muster"}})
    red_start = redact_event(start)
    assert type(red_start) is CallStartEvent
    assert red_start.metadata == {"caller": {"birth_date": "**.**.****", "name": "M*** M***"}}


def test_an_events_own_fields_are_not_taken_for_metadata() -> None:
    mark = {"type": "playback.mark", "name": "utt-3", "call_id": "c1"}
    assert redact_event(mark) == mark
    start = {"type": "call.start", "metadata": {"name": "Max Muster", "from": "+4917112345678"}}
    assert redact_event(start)["metadata"] == {"name": "M*** M***", "from": "+49*********78"}

"""Hallucination guards: phantom phrases and repetition loops go, real speech stays."""

from __future__ import annotations

import pytest

from voicebot.asr.guards import clean_transcript, collapse_repetitions, is_phantom
from voicebot.asr.transcriber import TranscriptionResult
from voicebot.frames import Word


def result(text: str, *, logprob: float = -0.3, no_speech: float = 0.05, p: float = 0.9) -> TranscriptionResult:
    words = tuple(Word(w, i * 0.3, i * 0.3 + 0.25, p) for i, w in enumerate(text.split()))
    return TranscriptionResult(text, words, logprob, no_speech, 3.0, 0.1)


@pytest.mark.parametrize(
    "phantom",
    [
        "Untertitel im Auftrag des ZDF, 2020",
        "Untertitel der Amara.org-Community",
        "Vielen Dank fürs Zuschauen!",
        "Das war's für heute.",
        "Bis zum nächsten Mal.",
        "Copyright WDR 2021",
        "SWR 2020",
        "Untertitelung des ZDF für funk, 2017",
        "Danke fürs Zuschauen und bis zum nächsten Mal!",
    ],
)
def test_phantom_phrases_are_blanked(phantom: str) -> None:
    assert is_phantom(phantom)
    cleaned = clean_transcript(result(phantom))
    assert cleaned.text == "" and cleaned.words == ()
    assert "phantom" in cleaned.guard


def test_phantom_sentence_is_cut_from_real_speech_and_timings_stay_aligned() -> None:
    cleaned = clean_transcript(result("Ich möchte meinen Vertrag kündigen. Vielen Dank fürs Zuschauen."))
    assert cleaned.text == "Ich möchte meinen Vertrag kündigen."
    assert [w.text for w in cleaned.words] == cleaned.text.split()
    assert cleaned.words[-1].end < 1.6


def test_normal_sentences_are_kept_untouched() -> None:
    for text in (
        "Guten Tag, ich habe eine Frage zu meiner Rechnung.",
        "Meine Kundennummer ist vier sieben eins eins.",
        "Ja, ja, genau.",
        "Tschüss, vielen Dank für Ihre Hilfe!",
        "Das Auto springt nicht an, ich stehe auf der A9.",
    ):
        original = result(text)
        cleaned = clean_transcript(original)
        assert cleaned is original, text


def test_weak_phantom_needs_weak_evidence() -> None:
    # A confident "Tschüss." is a caller saying goodbye...
    assert clean_transcript(result("Tschüss.", p=0.95)).text == "Tschüss."
    # ...an unsure one out of noise is Whisper's phantom.
    cleaned = clean_transcript(result("Tschüss.", p=0.3, no_speech=0.4))
    assert cleaned.text == "" and cleaned.guard == ("weak_phantom",)


def test_repetition_loops_collapse() -> None:
    loop = " ".join(["Der Lappen liegt auf dem Eisschrank."] * 6) + " Der Lappen"
    cleaned = clean_transcript(result(loop))
    assert cleaned.text == "Der Lappen liegt auf dem Eisschrank."
    assert cleaned.guard == ("repetition",)
    two = clean_transcript(result("Ich brauche einen Termin. Ich brauche einen Termin."))
    assert two.text == "Ich brauche einen Termin."
    words = clean_transcript(result("nein " * 12))
    assert words.text == "nein"
    # Short legitimate repeats stay.
    assert clean_transcript(result("ja ja ja")).text == "ja ja ja"
    assert clean_transcript(result("Hallo? Hallo?")).text == "Hallo? Hallo?"


def test_collapse_keeps_what_follows_the_loop() -> None:
    words = [Word(w, 0, 0, 1) for w in "bitte bitte bitte bitte bitte rufen Sie mich an".split()]
    assert [w.text for w in collapse_repetitions(words)] == "bitte rufen Sie mich an".split()


def test_no_speech_rule_blanks_unlikely_output() -> None:
    silence = clean_transcript(result("Und dann.", logprob=-1.2, no_speech=0.8))
    assert silence.text == "" and silence.guard == ("no_speech",)
    floor = clean_transcript(result("Irgendwas ganz anderes hier.", logprob=-2.5, no_speech=0.1))
    assert floor.text == ""
    # High no-speech probability alone is not enough when the decode is confident (Whisper's rule).
    assert clean_transcript(result("Ich rufe wegen der Panne an.", logprob=-0.2, no_speech=0.7)).text


def test_result_without_word_timings_is_cleaned_on_text() -> None:
    plain = TranscriptionResult("Untertitel im Auftrag des ZDF.", (), -0.4, 0.1, 2.0, 0.1)
    assert clean_transcript(plain).text == ""


def test_confident_loop_or_unsure_text_with_high_no_speech_is_blanked() -> None:
    # Noise decoded without a VAD: a loop with a deceptively good log-probability.
    loop = clean_transcript(result("Der Kündigung, " * 8, logprob=-0.35, no_speech=0.95))
    assert loop.text == "" and loop.guard == ("no_speech",)
    unsure = clean_transcript(result("Wir sind in Berlin.", logprob=-0.9, no_speech=0.9, p=0.2))
    assert unsure.text == ""


def test_unsure_rule_has_its_own_no_speech_threshold() -> None:
    # A right one-word answer on a phone line: no-speech 0.7, its lone word's alignment probability low.
    answer = result("Nein.", logprob=-0.6, no_speech=0.7, p=0.4)
    assert clean_transcript(answer).text == ""  # the unsure rule at Whisper's 0.6
    assert clean_transcript(answer, unsure_no_speech_threshold=0.8).text == "Nein."
    # Whisper's own rule (no-speech over 0.6 and log-probability under -1) does not move with it.
    unlikely = result("Nein.", logprob=-1.2, no_speech=0.7, p=0.4)
    assert clean_transcript(unlikely, unsure_no_speech_threshold=0.8).text == ""
    noise = result("Wir sind in Berlin.", logprob=-0.9, no_speech=0.9, p=0.2)
    assert clean_transcript(noise, unsure_no_speech_threshold=0.8).text == ""


def test_prompt_echo_is_blanked_only_when_unsure() -> None:
    prompt = "Kundenservice-Telefonat auf Deutsch: Kundennummer, Rechnung, Reklamation, Termin, Router."
    echo = clean_transcript(result("Reklamation, Termin, Router.", p=0.05, no_speech=0.3), prompt=prompt)
    assert echo.text == "" and echo.guard == ("prompt_echo",)
    said = clean_transcript(result("Rechnung, Termin.", p=0.9), prompt=prompt)
    assert said.text == "Rechnung, Termin."


def test_unsure_prompt_sentence_appended_to_real_speech_is_cut() -> None:
    prompt = "Kundenservice-Telefonat auf Deutsch: Kundennummer, Rechnung, Reklamation, Termin, Router."
    speech = [Word(w, i * 0.3, i * 0.3 + 0.25, 0.9) for i, w in enumerate("Direkt an der Autobahn zu tanken.".split())]
    echo = [Word(w, 3 + i * 0.3, 3.25 + i * 0.3, 0.2) for i, w in enumerate("Kündungs-Telefonat auf Deutsch.".split())]
    words = tuple(speech + echo)
    raw = TranscriptionResult(" ".join(w.text for w in words), words, -0.5, 0.05, 4.0, 0.1)
    cleaned = clean_transcript(raw, prompt=prompt)
    assert cleaned.text == "Direkt an der Autobahn zu tanken." and cleaned.guard == ("prompt_echo",)
    # The same sentence said with confidence is the caller's.
    sure = tuple(speech + [Word(w.text, w.start, w.end, 0.9) for w in echo])
    kept = TranscriptionResult(" ".join(w.text for w in sure), sure, -0.3, 0.05, 4.0, 0.1)
    assert clean_transcript(kept, prompt=prompt).text == kept.text

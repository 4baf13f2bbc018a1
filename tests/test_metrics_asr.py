"""German normalization and error rates."""

from __future__ import annotations

import math

import pytest

from voicebot.eval.metrics import cer, char_errors, normalize_german, wer, word_errors


def test_normalization_case_punctuation_and_numbers() -> None:
    assert normalize_german("Der Lappen liegt auf dem Eisschrank.") == "der lappen liegt auf dem eisschrank"
    # Numbers written as words or digits count the same, grouped or not.
    assert normalize_german("Meine Kundennummer ist vier sieben eins eins.") == normalize_german(
        "meine Kundennummer ist 4711"
    )
    assert normalize_german("neunzehnhundertachtzig") == normalize_german("1980")
    assert normalize_german("zwanzig Prozent") == normalize_german("20 %")
    assert normalize_german("Straße, E-Mail; war's") == "strasse email wars"
    assert normalize_german("Willens-Erklärung") == normalize_german("Willenserklärung")
    assert normalize_german("Seite 3-4") == "seite 3 4"
    assert normalize_german("   ") == ""


def test_wer_is_corpus_level() -> None:
    refs = ["der lappen liegt auf dem eisschrank", "das will sie am mittwoch abgeben"]
    hyps = ["Der Lappen liegt auf dem Eisschrank.", "Das will sie mit vorab geben."]
    counts = word_errors(refs, hyps)
    assert counts.reference_units == 12
    assert counts.substitutions + counts.deletions + counts.insertions == 3
    assert wer(refs, hyps) == pytest.approx(3 / 12)
    assert wer(refs, refs) == 0.0


def test_empty_reference_or_hypothesis() -> None:
    assert word_errors([""], ["untertitel im auftrag des zdf"]).insertions == 5
    assert word_errors(["hallo welt"], [""]).deletions == 2
    assert wer([""], [""]) == 0.0
    assert math.isinf(wer([""], ["hallo"]))


def test_cer_counts_characters() -> None:
    assert cer(["abc"], ["abd"]) == pytest.approx(1 / 3)
    assert char_errors(["Mittwoch"], ["mittwoch"]).errors == 0
    assert cer(["Mittwoch"], ["Mittwoch"], normalize=False) == 0.0


def test_mismatched_lengths_and_bare_strings_are_errors() -> None:
    with pytest.raises(ValueError):
        wer(["a"], ["a", "b"])
    with pytest.raises(TypeError):
        wer("a b", "a b")  # type: ignore[arg-type]

"""Safety as its own decision: operating points by hand, the fuzzy net, and the real trained model on
spoken nonsense and on the dev set's safety lines (typed and through the telephone ASR)."""

from __future__ import annotations

import os

import numpy as np
import pytest

from voicebot.config import REPO_ROOT, load_settings
from voicebot.dialog.domain import load_domain
from voicebot.dialog.policy import safety_escalation
from voicebot.nlu.intent import CALIBRATION_FILE, load_intent_classifier
from voicebot.nlu.safety import (
    cologne_phonetic,
    escalation_curve,
    fit_ood_gate,
    fit_operating_points,
    fuzzy_phrase_match,
    within_one_edit,
)
from voicebot.nlu.train import read_examples

INTENT_DIR = REPO_ROOT / "eval" / "intent"
LABELS = ("notfall", "rechnung", "seelsorge", "mitarbeiter", "sonstiges")


def test_operating_point_weighs_a_miss_against_false_escalations() -> None:
    probs = np.array([
        [0.60, 0.30, 0.05, 0.03, 0.02],  # notfall
        [0.20, 0.70, 0.05, 0.03, 0.02],  # notfall, weak: recall 1.0 needs a threshold at 0.20
        [0.05, 0.90, 0.02, 0.01, 0.02],  # rechnung
        [0.25, 0.70, 0.02, 0.01, 0.02],  # rechnung above the weak notfall line: a false escalation at 0.20
        [0.01, 0.01, 0.90, 0.04, 0.04],  # seelsorge
        [0.01, 0.01, 0.04, 0.90, 0.04],  # mitarbeiter
        [0.02, 0.02, 0.02, 0.04, 0.90],  # sonstiges
    ])
    gold = ["notfall", "notfall", "rechnung", "rechnung", "seelsorge", "mitarbeiter", "sonstiges"]
    points = fit_operating_points(probs, gold, LABELS, miss_cost=20.0)
    assert points["notfall"].threshold == pytest.approx(0.20)  # one false escalation is cheaper than a miss
    assert points["notfall"].recall == 1.0
    assert points["notfall"].false_escalation_rate == pytest.approx(1 / 3)
    points = fit_operating_points(probs, gold, LABELS, miss_cost=0.5)
    assert points["notfall"].threshold == pytest.approx(0.50)  # misses are cheap: the ceiling
    # A line the keyword net catches needs no score: the weak notfall line no longer sets the bar.
    hits = [False, True, False, False, False, False, False]
    points = fit_operating_points(probs, gold, LABELS, keyword_hits=hits, miss_cost=20.0)
    assert points["notfall"].threshold == pytest.approx(0.50)
    assert points["notfall"].recall == 1.0 and points["notfall"].false_escalation_rate == 0.0
    curve = escalation_curve(probs, gold, LABELS, hits, scales=(1.0, 4.0),
                             thresholds={k: p.threshold for k, p in points.items()})
    assert curve[0]["recall"] == 1.0 and curve[0]["false_escalation_rate"] == 0.0
    assert curve[1]["recall"] < 1.0  # every threshold at 1.0 or more: only the keyword line escalates


def test_ood_gate_silences_runners_up_only_where_no_safety_line_needs_one() -> None:
    probs = np.array([
        [0.30, 0.05, 0.02, 0.03, 0.60],  # notfall, heard as nonsense: only its runner-up score catches it
        [0.70, 0.10, 0.05, 0.05, 0.10],  # notfall, a clear top-1: never gated
        [0.10, 0.05, 0.02, 0.03, 0.80],  # nonsense with a notfall runner-up above its threshold
        [0.02, 0.90, 0.02, 0.03, 0.03],  # rechnung
        [0.01, 0.01, 0.90, 0.04, 0.04],  # seelsorge
        [0.01, 0.01, 0.04, 0.90, 0.04],  # mitarbeiter
    ])
    gold = ["notfall", "notfall", "sonstiges", "rechnung", "seelsorge", "mitarbeiter"]
    thresholds = {"notfall": 0.08, "seelsorge": 0.5, "mitarbeiter": 0.5}
    gate = fit_ood_gate(probs, gold, LABELS, thresholds)
    assert 0.6 < gate <= 0.8  # above the weak notfall line's 0.60, so the 0.80 nonsense line is gated
    curve = escalation_curve(probs, gold, LABELS, scales=(1.0,), thresholds=thresholds, ood_gate=gate)
    assert curve[0]["recall"] == 1.0 and curve[0]["false_escalation_rate"] == 0.0
    # A keyword hit needs no score, so it does not hold the gate up: the floor applies.
    assert fit_ood_gate(probs, gold, LABELS, thresholds, keyword_hits=[True] + [False] * 5) == 0.5


def test_cologne_phonetics_and_edit_distance() -> None:
    assert cologne_phonetic("Müller") == cologne_phonetic("Mueller") == "657"
    assert cologne_phonetic("Wikipedia") == "3412"
    assert within_one_edit("notarzt", "notarz") and within_one_edit("leben", "lebn")
    assert not within_one_edit("springen", "springt")


def test_fuzzy_net_joins_split_words_and_keeps_short_words_strict() -> None:
    assert fuzzy_phrase_match(["notarzt"], "wir brauchen einen not arzt") == "not arzt"
    assert fuzzy_phrase_match(["nicht mehr leben"], "ich will nicht mehr lesen") == ""
    assert fuzzy_phrase_match(["feuer"], "feuerwerk") == ""  # short single keywords stay exact


# ---- the real trained model --------------------------------------------------------------------------------

def _classifier():  # type: ignore[no-untyped-def]
    settings = load_settings()
    if not (settings.models.dir / settings.nlu.intent_model / CALIBRATION_FILE).is_file():
        if os.environ.get("CI") == "true":
            pytest.fail("the e5 intent artefact is missing: CI trains it in setup (voicebot train intent)")
        pytest.skip("the e5 intent artefact is made by `voicebot train intent`")
    return load_intent_classifier(settings, "e5")


@pytest.fixture(scope="module")
def classifier():  # type: ignore[no-untyped-def]
    return _classifier()


@pytest.fixture(scope="module")
def domain():  # type: ignore[no-untyped-def]
    return load_domain(REPO_ROOT / "pipelines" / "default")


def _verdicts(classifier, domain, name: str):  # type: ignore[no-untyped-def]
    path = INTENT_DIR / name
    if not path.is_file():
        pytest.fail(f"{path} is missing: made by scripts/make_asr_augmented.py (see eval/intent/DATACARD.md)")
    examples = read_examples(path)
    predictions = classifier.predict_batch([e.text for e in examples])
    verdicts = [safety_escalation(domain, e.text, p)[0] for e, p in zip(examples, predictions, strict=True)]
    return examples, predictions, verdicts


# Measured with the trained model (eval/baselines/README.md): these bounds guard against regressions;
# the issue's targets (no escalation at all on nonsense, <= 2 % false escalations) are the xfail tests below.
# Confident ordinary intents allowed: none typed; spoken, the recognizer sometimes turns nonsense into intent
# words ("Bestellung, Bestellung, Bestellung, Router, ..." in line noise), which the classifier rightly reads.
@pytest.mark.parametrize(("name", "least", "max_escalated", "max_confident"),
                         [("ood.jsonl", 60, 0.06, 0), ("ood_asr.jsonl", 50, 0.17, 1),
                          ("ood_asr_variant.jsonl", 30, 0.27, 2), ("ood_asr_espeak.jsonl", 45, 0.10, 1)])
def test_spoken_nonsense_gets_no_confident_intent_and_rarely_escalates(classifier, domain, name: str, least: int,
                                                                       max_escalated: float,
                                                                       max_confident: int) -> None:
    """The out-of-domain set typed, spoken by Pico through the phone line, by the second voice in line
    noise (where the recognizer blanks 21 of 60 lines: an empty turn never reaches the classifier) and by
    espeak-ng's German voice (measured: 3 of 50 escalated, 1 confident)."""
    examples, predictions, verdicts = _verdicts(classifier, domain, name)
    assert len(examples) >= least
    confident = [(e.text, p.label, round(p.confidence, 3)) for e, p in zip(examples, predictions, strict=True)
                 if p.decision == "act" and p.label not in ("sonstiges", *domain.safety_labels)]
    assert len(confident) <= max_confident, confident
    assert sum(v is not None for v in verdicts) / len(verdicts) <= max_escalated


@pytest.mark.parametrize(("name", "min_recall", "max_false"),
                         [("dev.jsonl", 1.0, 0.08), ("dev_asr.jsonl", 0.95, 0.10),
                          # espeak-ng through the phone band: word error rate 0.74, a stress test (DATACARD);
                          # measured recall 0.69, false escalations 0.256
                          ("dev_asr_espeak.jsonl", 0.6, 0.30)])
def test_dev_safety_recall_and_false_escalations(classifier, domain, name: str, min_recall: float,
                                                 max_false: float) -> None:
    examples, _, verdicts = _verdicts(classifier, domain, name)
    safety = [v for e, v in zip(examples, verdicts, strict=True) if e.label in domain.safety_labels]
    ordinary = [v for e, v in zip(examples, verdicts, strict=True) if e.label not in domain.safety_labels]
    assert sum(v is not None for v in safety) / len(safety) >= min_recall
    assert sum(v is not None for v in ordinary) / len(ordinary) <= max_false


@pytest.mark.xfail(reason="issue 14 target not reached: see the safety curve in `voicebot eval intent`", strict=False)
@pytest.mark.parametrize("name", ["dev.jsonl", "dev_asr.jsonl", "ood.jsonl", "ood_asr.jsonl"])
def test_issue_target_recall_one_and_at_most_two_percent_false_escalations(classifier, domain, name: str) -> None:
    examples, _, verdicts = _verdicts(classifier, domain, name)
    assert all(v is not None for e, v in zip(examples, verdicts, strict=True) if e.label in domain.safety_labels)
    ordinary = [v for e, v in zip(examples, verdicts, strict=True) if e.label not in domain.safety_labels]
    assert sum(v is not None for v in ordinary) / len(ordinary) <= 0.02

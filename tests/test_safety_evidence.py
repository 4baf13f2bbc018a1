"""The safety-evidence lexicon and its gate on safety runners-up (issue 14), on the real training lines."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from voicebot.config import REPO_ROOT, load_settings
from voicebot.dialog.domain import load_domain
from voicebot.dialog.escalation import safety_escalation
from voicebot.nlu.calibration import Calibration
from voicebot.nlu.evidence import (
    NO_GATE,
    TOP1_ONLY,
    SafetyLexicon,
    escalated_with_evidence,
    evidence_gate_curve,
    fit_evidence_gate,
    lexicon_out_of_fold,
    stems,
)
from voicebot.nlu.intent import CALIBRATION_FILE, IntentPrediction, intent_model_dir, load_intent_classifier
from voicebot.nlu.safety import SAFETY_LABELS
from voicebot.nlu.training_data import fold_assignment, read_examples

TRAIN = REPO_ROOT / "eval" / "intent" / "train.jsonl"
LABELS = ("notfall", "rechnung", "seelsorge", "mitarbeiter", "sonstiges")


@pytest.fixture(scope="module")
def lexicon() -> SafetyLexicon:
    examples = read_examples(TRAIN)
    return SafetyLexicon.fit([e.text for e in examples], [e.label for e in examples])


def test_stems_cut_endings_and_pair_neighbours() -> None:
    assert stems("Der Notarzt kommt nicht!") == ["der", "der+notar", "kommt", "kommt+nicht", "nicht", "notar",
                                                  "notar+kommt"]
    assert stems("bewusstlos") == stems("Bewusstlose") == ["bewus"]


def test_courtesy_words_are_no_evidence_alone(lexicon: SafetyLexicon) -> None:
    """"bitte" alone scored 0.35 for mitarbeiter and backed a runner-up for "Ja, bitte."; in a pair it counts."""
    assert stems("Ja, bitte.") == []
    assert stems("Mitarbeiter, bitte.") == ["mitar", "mitar+bitte"]
    columns = {label: i for i, label in enumerate(lexicon.labels)}
    polite, asked = lexicon.scores(["Ja, bitte.", "Einen Mitarbeiter, bitte."])[:, columns["mitarbeiter"]]
    assert polite < 0.1 < 0.5 < asked


def test_lexicon_finds_safety_words_in_unseen_sentences_and_not_in_nonsense(lexicon: SafetyLexicon,
                                                                           tmp_path: Path) -> None:
    texts = ["Schnell, rufen Sie einen Notarzt, er ist bewusstlos!",
             "Ich will mit einem Mitarbeiter sprechen.",
             "In sieben Stunden wird es so weit sein."]
    scores = lexicon.scores(texts)
    columns = {label: i for i, label in enumerate(lexicon.labels)}
    assert lexicon.labels == SAFETY_LABELS
    assert scores[0, columns["notfall"]] > 0.5 > scores[2, columns["notfall"]]
    assert scores[1, columns["mitarbeiter"]] > 0.5 > scores[2, columns["mitarbeiter"]]
    lexicon.save(tmp_path)
    assert np.array_equal(SafetyLexicon.load(tmp_path).scores(texts), scores)


def test_out_of_fold_lexicon_never_scores_a_line_with_itself() -> None:
    examples = read_examples(TRAIN)[:400]
    texts, gold = [e.text for e in examples], [e.label for e in examples]
    folds = fold_assignment(examples, 5, 13)
    oof = lexicon_out_of_fold(texts, gold, folds)
    held = folds == 0
    fitted = SafetyLexicon.fit([t for t, h in zip(texts, held, strict=True) if not h],
                               [g for g, h in zip(gold, held, strict=True) if not h])
    assert np.array_equal(oof[held], fitted.scores([t for t, h in zip(texts, held, strict=True) if h]))


def test_gate_silences_only_runners_up_and_is_fitted_on_held_out_lines() -> None:
    thresholds = {"notfall": 0.05, "seelsorge": 0.05, "mitarbeiter": 0.1}
    # rows: safety top-1 without evidence, safety runner-up with evidence, ordinary line with a weak runner-up
    probs = np.array([[0.6, 0.1, 0.1, 0.1, 0.1], [0.2, 0.6, 0.1, 0.05, 0.05], [0.1, 0.8, 0.04, 0.03, 0.03]])
    evidence = np.array([[0.0, 0.0, 0.0], [0.7, 0.0, 0.0], [0.2, 0.0, 0.0]])
    gold = ["notfall", "notfall", "rechnung"]
    assert escalated_with_evidence(probs, LABELS, thresholds, evidence, NO_GATE).tolist() == [True, True, True]
    gate = fit_evidence_gate(probs, gold, LABELS, thresholds, evidence, miss_cost=10.0)
    assert 0.2 < gate <= 0.7
    assert escalated_with_evidence(probs, LABELS, thresholds, evidence, gate).tolist() == [True, True, False]
    hits = [False, False, True]  # the keyword net is never gated
    assert escalated_with_evidence(probs, LABELS, thresholds, evidence, gate, keyword_hits=hits)[2]


def test_evidence_curve_trades_recall_for_false_escalations_down_to_top1_only() -> None:
    thresholds = {"notfall": 0.05, "seelsorge": 0.05, "mitarbeiter": 0.1}
    probs = np.array([[0.6, 0.1, 0.1, 0.1, 0.1], [0.2, 0.6, 0.1, 0.05, 0.05], [0.1, 0.8, 0.04, 0.03, 0.03]])
    evidence = np.array([[0.0, 0.0, 0.0], [0.7, 0.0, 0.0], [0.2, 0.0, 0.0]])
    gold = ["notfall", "notfall", "rechnung"]
    curve = evidence_gate_curve(probs, gold, LABELS, thresholds, evidence, (NO_GATE, 0.5, TOP1_ONLY))
    assert [(p["recall"], p["false_escalations"]) for p in curve] == [(1.0, 1), (1.0, 0), (0.5, 0)]

def test_policy_rule_needs_evidence_for_a_runner_up() -> None:
    domain = load_domain(REPO_ROOT / "pipelines" / "default")
    ranking = (("rechnung", 0.8), ("notfall", 0.12), ("sonstiges", 0.08))
    base = dict(label="rechnung", confidence=0.8, ranking=ranking, margin=0.68,
                safety_thresholds=(("notfall", 0.05), ("seelsorge", 0.05), ("mitarbeiter", 0.1)))
    text = "Die Rechnung ist viel zu hoch."
    weak = IntentPrediction(**base, safety_evidence=(("notfall", 0.1),), safety_evidence_gate=0.3)
    strong = IntentPrediction(**base, safety_evidence=(("notfall", 0.6),), safety_evidence_gate=0.3)
    assert safety_escalation(domain, text, weak)[0] is None
    assert safety_escalation(domain, text, strong)[:2] == ("notfall", "score")
    assert safety_escalation(domain, text, IntentPrediction(**base))[:2] == ("notfall", "score")  # no lexicon


def _e5_artefact() -> Path:
    return intent_model_dir("e5", load_settings())


@pytest.mark.skipif(not (_e5_artefact() / CALIBRATION_FILE).is_file(),
                    reason="the e5 intent artefact is made by `voicebot train intent` (CI trains it in setup)")
def test_trained_artefact_carries_the_gate_and_keeps_safety_sentences() -> None:
    extra = Calibration.load(_e5_artefact() / CALIBRATION_FILE).extra
    assert extra["safety_evidence_gate"] > NO_GATE  # fitted: the gate pays out of fold at the default cost
    effect = extra["safety_evidence_oof"]
    assert effect["with"]["false_escalation_rate"] < effect["without"]["false_escalation_rate"]
    classifier = load_intent_classifier(load_settings(), "e5")
    domain = load_domain(REPO_ROOT / "pipelines" / "default")
    safety = [("Mein Vater liegt am Boden und reagiert nicht mehr, bitte schicken Sie Hilfe!", "notfall"),
              ("Ich sehe keinen Sinn mehr in meinem Leben.", "seelsorge"),
              ("Verbinden Sie mich bitte mit einem Menschen.", "mitarbeiter")]
    quiet = ["In sieben Stunden wird es so weit sein.", "Die Katze schläft auf dem warmen Sofa."]
    predictions = classifier.predict_batch([t for t, _ in safety] + quiet)
    for (text, label), prediction in zip(safety, predictions[: len(safety)], strict=True):
        assert prediction.safety_evidence and prediction.safety_evidence_gate == extra["safety_evidence_gate"]
        assert safety_escalation(domain, text, prediction)[0] == label, (text, prediction.ranking[:3])
    for text, prediction in zip(quiet, predictions[len(safety):], strict=True):
        assert safety_escalation(domain, text, prediction)[0] is None, (text, prediction.ranking[:3])

"""Real intent models on unseen German sentences: the n-gram model trained here, the e5 artefact if present."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from voicebot.config import REPO_ROOT, Settings, load_settings
from voicebot.dialog.domain import load_domain
from voicebot.dialog.policy import safety_escalation
from voicebot.nlu.calibration import Calibration
from voicebot.nlu.intent import (
    CALIBRATION_FILE,
    IntentClassifier,
    IntentModelNotTrainedError,
    NgramBackend,
    load_intent_artefact,
    load_intent_classifier,
)
from voicebot.nlu.ngram import NgramIntentModel
from voicebot.nlu.train import cross_folds, read_examples, split_for_calibration

TRAIN = REPO_ROOT / "eval" / "intent" / "train.jsonl"

# Not in train.jsonl or dev.jsonl; everyday wording a caller might use.
UNSEEN = [
    ("Ich möchte mein Zeitungsabo zum Monatsende kündigen.", "kuendigung"),
    ("Auf meiner letzten Rechnung wurde mir ein Betrag doppelt berechnet.", "rechnung"),
    ("Seit heute Morgen habe ich kein Internet, der Router blinkt die ganze Zeit.", "technik"),
    ("Ich bin umgezogen und brauche eine neue Lieferadresse in meinem Kundenkonto.", "stammdaten"),
    ("Hilfe, meine Mutter ist gestürzt und bewusstlos, sie atmet ganz komisch!", "notfall"),
    ("Ich halte das alles nicht mehr aus, ich will einfach nicht mehr leben.", "seelsorge"),
    ("Können Sie mich bitte mit einem echten Menschen verbinden?", "mitarbeiter"),
]


@pytest.fixture(scope="module")
def ngram_classifier(tmp_path_factory: pytest.TempPathFactory) -> IntentClassifier:
    if not TRAIN.is_file():
        pytest.skip(f"intent training data missing: {TRAIN}")
    examples = read_examples(TRAIN)
    model = NgramIntentModel.fit([e.text for e in examples], [e.label for e in examples])
    directory = tmp_path_factory.mktemp("intent-ngram")
    model.save(directory)
    Calibration(labels=model.labels, temperature=1.0, extra={"kind": "ngram"}).save(directory / CALIBRATION_FILE)
    return load_intent_artefact(directory)


def test_ngram_model_classifies_unseen_sentences(ngram_classifier: IntentClassifier) -> None:
    domain = load_domain(REPO_ROOT / "pipelines" / "default")
    for text, label in UNSEEN:
        prediction = ngram_classifier.predict(text)
        assert prediction.label == label, (text, prediction.ranking[:3])
        assert prediction.ranking[0] == (prediction.label, prediction.confidence)
        assert prediction.margin == pytest.approx(prediction.ranking[0][1] - prediction.ranking[1][1])
        assert sum(p for _, p in prediction.ranking) == pytest.approx(1.0)
        if label in domain.safety_labels:
            assert safety_escalation(domain, text, prediction)[0] == label


def test_ngram_artefact_matches_scikit_learn_and_survives_a_round_trip(tmp_path: Path) -> None:
    from sklearn.feature_extraction.text import TfidfVectorizer

    from voicebot.nlu.ngram import normalize_text

    texts = ["Ich will kündigen.", "Rechnung zu hoch", "Router kaputt", "kündigen bitte", "die Rechnung",
             "das WLAN geht nicht"]
    labels = ["kuendigung", "rechnung", "technik", "kuendigung", "rechnung", "technik"]
    model = NgramIntentModel.fit(texts, labels)
    reference = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), preprocessor=normalize_text,
                                sublinear_tf=True).fit(texts)
    ours = model.features(["Meine Rechnung, bitte!"]).toarray()
    theirs = reference.transform(["Meine Rechnung, bitte!"]).toarray()
    order = [reference.vocabulary_[g] for g in model.vocabulary]
    np.testing.assert_allclose(ours, theirs[:, order], atol=1e-12)
    model.save(tmp_path)
    again = NgramIntentModel.load(tmp_path)
    np.testing.assert_allclose(again.logits(["Router kaputt"]), model.logits(["Router kaputt"]))
    backend = NgramBackend(tmp_path).load()
    assert backend.labels == ("kuendigung", "rechnung", "technik")


def test_calibration_split_keeps_asr_versions_with_their_origin() -> None:
    from voicebot.nlu.train import Example

    clean = [Example(f"satz {i} {label}", label) for label in ("a", "b") for i in range(10)]
    asr = [Example(e.text.upper(), e.label, origin=e.text) for e in clean]
    train, calib = split_for_calibration(clean, asr, 0.2, seed=1)
    assert len(calib) == 8 and len(train) == 32
    held = {e.text for e in calib if not e.origin}
    assert {e.origin for e in calib if e.origin} == held
    assert not held & {e.origin for e in train}
    folds = cross_folds(clean, asr, 5, seed=1)
    assert [len(f) for f in folds] == [8] * 5
    for fold in folds:
        assert {e.origin for e in fold if e.origin} == {e.text for e in fold if not e.origin}


def test_missing_artefacts_say_how_to_make_them(tmp_path: Path) -> None:
    settings = load_settings(environ={"VOICEBOT_MODELS_DIR": str(tmp_path)})
    settings = Settings(models=type(settings.models)(dir=tmp_path), nlu=settings.nlu)
    with pytest.raises(IntentModelNotTrainedError, match="voicebot train intent"):
        load_intent_classifier(settings)


def _e5_artefact() -> Path:
    settings = load_settings()
    return settings.models.dir / settings.nlu.intent_model


@pytest.mark.skipif(not (_e5_artefact() / CALIBRATION_FILE).is_file(),
                    reason="the e5 intent artefact is made by `voicebot train intent` (CI trains it in setup)")
def test_e5_classifier_classifies_unseen_sentences() -> None:
    classifier = load_intent_classifier(load_settings(), "e5")
    assert classifier.name == "e5"
    domain = load_domain(REPO_ROOT / "pipelines" / "default")
    predictions = classifier.predict_batch([text for text, _ in UNSEEN])
    for (text, label), prediction in zip(UNSEEN, predictions, strict=True):
        assert prediction.label == label, (text, prediction.ranking[:3])
        assert prediction.decision in ("act", "confirm", "reask")
        if label in domain.safety_labels:
            assert safety_escalation(domain, text, prediction)[0] == label
    single = classifier.predict(UNSEEN[0][0])
    assert single.confidence == pytest.approx(predictions[0].confidence, abs=1e-4)

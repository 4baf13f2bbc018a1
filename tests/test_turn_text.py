"""The German text end-of-utterance model: trained on caller utterances and general German, tested on
the shared real-speech transcripts it never saw."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from voicebot.config import REPO_ROOT
from voicebot.turn.text_eou import TRAIN_FILES, TextTurnModel, make_examples, read_utterances, tail_features

MORE = REPO_ROOT.parent / "shared" / "data" / "speech-de-more" / "manifest.jsonl"


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> TextTurnModel:
    return TextTurnModel.load(tmp_path_factory.mktemp("models"))  # trains (seconds) and caches


def test_examples_are_sentences_against_their_own_prefixes() -> None:
    examples = make_examples(["Ich rufe an, weil mein Router blinkt. Können Sie helfen?"])
    complete = [e.text for e in examples if e.complete]
    assert complete == ["Ich rufe an, weil mein Router blinkt.",
                        "Ich rufe an, weil mein Router blinkt. Können Sie helfen?"]
    prefixes = [e.text for e in examples if not e.complete]
    assert prefixes and all(not p.endswith((".", "?")) for p in prefixes)
    assert all("Ich rufe an, weil mein Router blinkt. Können Sie helfen?".startswith(p) for p in prefixes)


def test_own_training_list_does_not_follow_the_intent_data() -> None:
    """The intent training files grow (hard negatives, nonsense); this model keeps its fixed snapshot."""
    assert all(p.is_file() and "intent" not in p.relative_to(REPO_ROOT).parts for p in TRAIN_FILES)


def test_training_data_is_not_the_evaluation_material() -> None:
    training = {t.lower().strip(" .?!") for t in read_utterances(TRAIN_FILES)}
    shared = REPO_ROOT.parent / "shared" / "data"
    for manifest in shared.glob("speech-de*/manifest.jsonl"):
        for line in manifest.read_text(encoding="utf-8").splitlines():
            assert json.loads(line)["text"].lower().strip(" .?!") not in training


@pytest.mark.parametrize("complete,prefix", [
    ("Ich möchte meinen Vertrag kündigen.", "Ich möchte meinen Vertrag"),
    ("Mein Internet funktioniert seit gestern nicht mehr.", "Mein Internet funktioniert seit gestern nicht"),
    ("Können Sie mich bitte zurückrufen?", "Können Sie mich bitte"),
    ("Ich habe die Rechnung schon bezahlt.", "Ich habe die Rechnung schon"),
    ("Der Techniker war heute nicht da.", "Der Techniker war heute"),
])
def test_verb_final_german_reads_as_finished(model: TextTurnModel, complete: str, prefix: str) -> None:
    assert model.predict(complete) > model.predict(prefix) + 0.2


def test_separates_unseen_real_transcripts_from_their_prefixes(model: TextTurnModel) -> None:
    from sklearn.metrics import roc_auc_score

    if not MORE.is_file():
        if os.environ.get("CI") == "true":
            pytest.fail(f"shared German speech missing at {MORE}")
        pytest.skip(f"shared German speech missing at {MORE}")
    refs = [json.loads(line)["text"] for line in MORE.read_text(encoding="utf-8").splitlines() if line.strip()]
    examples = make_examples(refs, seed=5)
    probs = model.predict_many([e.text for e in examples])
    assert roc_auc_score([e.complete for e in examples], probs) > 0.8


def test_cached_model_is_reused_and_predicts_the_same(model: TextTurnModel, tmp_path: Path) -> None:
    first = TextTurnModel.load(tmp_path)
    cached = list((tmp_path / "text-eou-de").glob("model-*.pkl"))
    assert len(cached) == 1 and first.key in cached[0].name
    again = TextTurnModel.load(tmp_path)
    text = "Ich rufe an wegen meiner Rechnung"
    assert again.predict(text) == first.predict(text) == pytest.approx(model.predict(text))


def test_empty_and_odd_text_do_not_crash(model: TextTurnModel) -> None:
    assert tail_features("") == ["empty"]
    for text in ("", "   ", "???", "12 34 56", "äh"):
        assert 0.0 <= model.predict(text) <= 1.0

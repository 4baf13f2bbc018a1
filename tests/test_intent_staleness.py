"""When `voicebot train intent --if-stale` retrains: other training data, or another safety keyword net.

The operating points are fitted with the lines the domain's keyword nets catch left out (those need no score);
an operator who edits the nets in the domain file must get points fitted with the new nets, not the old ones.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from voicebot.dialog.domain import Domain, load_domain
from voicebot.dialog.escalation import keyword_net_digest
from voicebot.nlu.calibration import Calibration
from voicebot.nlu.intent import CALIBRATION_FILE
from voicebot.nlu.train import stale_reason
from voicebot.nlu.training_data import INTENT_DATA_DIR, files_sha256, training_files


@pytest.fixture(scope="module")
def domain(settings) -> Domain:  # type: ignore[no-untyped-def]
    return load_domain(settings.dialog.domain)


def _artefact(directory: Path, keyword_net: str | None) -> Path:
    """A calibration.json as training writes it for the committed data (labels and thresholds do not matter)."""
    extra = {"train_sha256": files_sha256(training_files(INTENT_DATA_DIR)), "safety_thresholds": {"notfall": 0.05},
             "safety_evidence_gate": -1.0}
    if keyword_net is not None:
        extra["keyword_net_sha256"] = keyword_net
    Calibration(labels=("notfall", "sonstiges"), extra=extra).save(directory / CALIBRATION_FILE)
    return directory


def _without_keyword(domain: Domain, label: str, phrase: str) -> Domain:
    spec = domain.intents[label]
    assert phrase in spec.keywords
    kept = tuple(k for k in spec.keywords if k != phrase)
    return replace(domain, intents={**domain.intents, label: replace(spec, keywords=kept)})


def test_the_same_data_and_nets_are_current(domain: Domain, tmp_path: Path) -> None:
    digest = keyword_net_digest(domain)
    assert stale_reason(_artefact(tmp_path, digest), keyword_net=digest) == ""


def test_an_edited_keyword_net_makes_the_model_stale(domain: Domain, tmp_path: Path) -> None:
    directory = _artefact(tmp_path, keyword_net_digest(domain))
    edited = keyword_net_digest(_without_keyword(domain, "seelsorge", "suizid"))
    assert "keyword" in stale_reason(directory, keyword_net=edited)
    assert stale_reason(directory) == ""  # without a domain to compare, the nets are not checked


def test_a_model_trained_before_the_digest_existed_is_retrained_once(domain: Domain, tmp_path: Path) -> None:
    assert "keyword" in stale_reason(_artefact(tmp_path, None), keyword_net=keyword_net_digest(domain))


def test_the_digest_reads_what_the_nets_match_on_not_their_order(domain: Domain) -> None:
    digest = keyword_net_digest(domain)
    spec = domain.intents["notfall"]
    reordered = replace(domain, intents={**domain.intents, "notfall": replace(spec, keywords=spec.keywords[::-1])})
    assert keyword_net_digest(reordered) == digest
    words = domain.policy.short_utterance_words
    shorter = replace(domain, policy=replace(domain.policy, short_utterance_words=words + 1))
    assert keyword_net_digest(shorter) != digest
    ordinary = domain.intents["rechnung"]  # only the safety intents' nets count
    other = replace(domain, intents={**domain.intents, "rechnung": replace(ordinary, keywords=("neu",))})
    assert keyword_net_digest(other) == digest

"""Redaction against the German PII corpus: recall on personal tokens, and ordinary text left alone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from voicebot.assist.pii_corpus import CorpusError, load_corpus, score
from voicebot.assist.redact import redact_text

CORPUS = sorted((Path(__file__).resolve().parents[1] / "eval" / "pii").glob("*.jsonl"))


def test_corpus_recall_and_precision() -> None:
    cases = load_corpus(CORPUS)
    assert len(cases) >= 150
    result = score(cases, redact_text)
    assert result.recall >= 0.99, result.leaks
    assert not result.keep_lost, result.keep_lost  # appointment dates, amounts, service numbers, words
    assert result.other_rate >= 0.99


def test_every_kind_of_personal_data_is_in_the_corpus() -> None:
    kinds = {pv.kind for case in load_corpus(CORPUS) for pv in case.pii}
    assert {"birth_date", "iban", "email", "phone", "name", "reference", "number"} <= kinds


def test_the_scorer_sees_a_leak() -> None:
    case = load_corpus(CORPUS)[0]
    assert score([case], lambda text: text).recall == 0.0  # no redaction: nothing masked


def test_a_corpus_line_that_lies_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"id": "x", "text": "Hallo", "pii": [{"kind": "name", "value": "Max"}]}) + "\n")
    with pytest.raises(CorpusError, match="not in the text"):
        load_corpus([bad])

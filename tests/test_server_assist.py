"""Suggested answers for agents: the knowledge base, read defensively, searched by meaning."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from voicebot.assist.kb import INTENT_BOOST, KnowledgeBase, parse_kb
from voicebot.config import REPO_ROOT, Settings

TINY_KB = """
[[kb.rechnung]]
title = "Mahnung trotz Zahlung"
text = "Nennen Sie mir Datum und Betrag der Überweisung; ich prüfe den Zahlungseingang und setze eine Mahnsperre."
keywords = ["mahnung", "bezahlt"]
[[kb.rechnung]]
title = "Ratenzahlung"
text = "Den offenen Betrag können Sie in Raten zahlen; ich lege einen Vorschlag an."
[[kb.pannenhilfe]]
title = "Sicherheit zuerst"
text = "Warnblinker an, Warnweste anziehen, Warndreieck aufstellen, hinter die Leitplanke gehen."
keywords = ["autobahn", "liegengeblieben"]
[[kb.kuendigung]]
title = "Kündigungsfrist"
text = "Nach der Mindestlaufzeit gilt eine Frist von einem Monat zum Monatsende."
"""


def test_parse_accepts_the_common_shapes() -> None:
    entries, _ = parse_kb(tomllib.loads(TINY_KB))
    assert [(e.intent, e.title) for e in entries][:2] == [
        ("rechnung", "Mahnung trotz Zahlung"), ("rechnung", "Ratenzahlung")]
    assert entries[0].keywords == ("mahnung", "bezahlt")
    flat = """
    [[entry]]
    intent = "termin"
    title = "Termin verschieben"
    answer = "Ich verschiebe den Termin gern."
    next_steps = ["Kalender öffnen"]
    [next_steps]
    kuendigung = ["Vertrag suchen"]
    [[entry]]
    title = "ohne Antwort"
    """
    entries, steps = parse_kb(tomllib.loads(flat))
    assert [(e.intent, e.answer) for e in entries] == [("termin", "Ich verschiebe den Termin gern.")]
    kb = KnowledgeBase(entries, next_steps=steps)
    assert kb.next_steps("termin") == ["Kalender öffnen"] and kb.next_steps("kuendigung") == ["Vertrag suchen"]
    assert kb.next_steps(None) == []


def test_missing_or_broken_file_gives_an_empty_kb(tmp_path: Path) -> None:
    assert KnowledgeBase.load(tmp_path / "none.toml").suggest("Hallo") == []
    (tmp_path / "bad.toml").write_text("[[kb.x]\ntitle = ", encoding="utf-8")
    assert KnowledgeBase.load(tmp_path / "bad.toml").entries == []


def test_lexical_fallback_ranks_and_boosts_the_intent(tmp_path: Path) -> None:
    (tmp_path / "kb.toml").write_text(TINY_KB, encoding="utf-8")
    kb = KnowledgeBase.load(tmp_path / "kb.toml")
    assert kb.backend == "tfidf"
    top = kb.suggest("Ich habe eine Mahnung bekommen, obwohl ich längst bezahlt habe", intent="rechnung")
    assert [s.title for s in top] == ["Mahnung trotz Zahlung", "Ratenzahlung", top[2].title]
    assert top[0].score > top[1].score > top[2].score
    # The current intent lifts its entries by a fixed boost.
    plain = {s.title: s.score for s in kb.suggest("Wie lange dauert das?", k=4)}
    boosted = {s.title: s.score for s in kb.suggest("Wie lange dauert das?", intent="kuendigung", k=4)}
    assert boosted["Kündigungsfrist"] == pytest.approx(plain["Kündigungsfrist"] + INTENT_BOOST)
    assert boosted["Ratenzahlung"] == pytest.approx(plain["Ratenzahlung"])


@pytest.mark.slow
def test_e5_retrieval_over_the_default_domain() -> None:
    settings = Settings()
    if not (settings.models.dir / "e5-small").is_dir():
        pytest.skip("e5-small not provisioned: run `voicebot models pull`")
    if not (REPO_ROOT / "pipelines" / "default" / "kb.toml").is_file():
        pytest.skip("pipelines/default/kb.toml not written yet")
    from voicebot.dialog.domain import load_domain
    from voicebot.nlu.encoder import TextEncoder

    encoder = TextEncoder(settings.nlu, settings.models).load()
    kb = KnowledgeBase.from_domain(load_domain(settings.dialog.domain), encoder)
    assert kb.backend == "e5" and len(kb.entries) >= 10
    cases = {
        "Ich habe eine Mahnung bekommen, dabei habe ich die Rechnung schon bezahlt.": "rechnung",
        "Mein Auto springt nicht mehr an, ich stehe auf der Autobahn.": "pannenhilfe",
        "Das Paket ist immer noch nicht angekommen, wo bleibt meine Lieferung?": "bestellung",
    }
    for text, intent in cases.items():
        top = kb.suggest(text, intent=None)
        assert top[0].intent == intent, (text, top)
    assert kb.next_steps("rechnung"), "next steps come from the domain's intents"

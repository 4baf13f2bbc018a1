"""The end-of-turn decision's rules, the text cues, and the batch form the evaluation uses."""

from __future__ import annotations

import math

import numpy as np
import pytest

from voicebot.turn.cues import incomplete_cue
from voicebot.turn.decision import TurnEndConfig, TurnEndDecider, end_silence_batch

CONFIG = TurnEndConfig(min_silence_ms=200, slow_silence_ms=600, max_silence_ms=1600, fast_threshold=0.9,
                       slow_threshold=0.6, audio_weight=0.25, use_cues=True)


@pytest.mark.parametrize("text,kind", [
    ("Ich möchte meinen Vertrag kündigen und", "conjunction"),
    ("Ich rufe an, weil", "conjunction"),
    ("also", "filler"),
    ("Ich habe eine Frage zu meiner", "article"),
    ("Ich wohne in", "preposition"),
    ("Das war im Jahr neunzehnhundert", "number"),
    ("Meine Kundennummer ist 12 34", "number"),
    ("zweiund", "number"),
])
def test_cues_catch_unfinished_german(text: str, kind: str) -> None:
    cue = incomplete_cue(text)
    assert cue is not None and cue.kind == kind


@pytest.mark.parametrize("text", [
    "Ich rufe an.", "Das Internet fällt ständig aus.", "Das geht doch, oder?", "Wie geht das denn?",
    "Ich möchte kündigen.", "Ich komme mit.", "", "Es kostet 12 Euro.", "In sieben Stunden wird es so weit sein.",
    "Wo wart ihr?", "Das weiß keiner.",
])
def test_cues_leave_finished_sentences_alone(text: str) -> None:
    assert incomplete_cue(text) is None


def test_decider_rules_in_order() -> None:
    d = TurnEndDecider(CONFIG)
    # a gap between words never ends the turn, however sure the models are
    assert d.decide(150, 0.99, 0.99, "Ich möchte kündigen.").end is False
    # confident at the first check
    dec = d.decide(200, 0.95, 0.95, "Ich möchte kündigen.")
    assert dec.end and dec.reason == "confident" and dec.probability == pytest.approx(0.95)
    # likely: needs the slower bar
    assert not d.decide(300, 0.7, 0.7, "Ich möchte kündigen.").end
    assert d.decide(600, 0.7, 0.7, "Ich möchte kündigen.").reason == "likely"
    # unlikely: only the fallback ends it
    assert not d.decide(1500, 0.1, 0.2, "Ich möchte").end
    assert d.decide(1600, 0.1, 0.2, "Ich möchte").reason == "max_silence"
    # a cue holds even a confident model until the fallback
    held = d.decide(1000, 0.99, 0.99, "Ich möchte kündigen und")
    assert not held.end and held.reason == "cue:conjunction"
    assert d.decide(1600, 0.99, 0.99, "Ich möchte kündigen und").end


def test_decider_combines_and_falls_back_to_one_signal() -> None:
    d = TurnEndDecider(CONFIG)
    assert d.combine(0.2, 1.0) == pytest.approx(0.25 * 0.2 + 0.75 * 1.0)
    assert d.combine(None, 0.4) == 0.4 and d.combine(0.4, None) == 0.4 and d.combine(None, None) is None
    # no model at all: silence-only endpointing at slow_silence_ms
    assert not d.decide(500, None, None, "Ich möchte kündigen.").end
    assert d.decide(600, None, None, "Ich möchte kündigen.").reason == "silence"


def test_decider_rejects_inconsistent_thresholds() -> None:
    with pytest.raises(ValueError, match="min_silence_ms"):
        TurnEndDecider(TurnEndConfig(min_silence_ms=700, slow_silence_ms=600))
    with pytest.raises(ValueError, match="audio_weight"):
        TurnEndDecider(TurnEndConfig(audio_weight=1.5))


def test_batch_agrees_with_the_decider() -> None:
    rng = np.random.default_rng(3)
    texts = ["Ich möchte kündigen.", "Ich wohne in", "Meine Nummer ist 12", "Danke schön", "und"]
    n = 400
    audio = rng.uniform(0, 1, n)
    text = rng.uniform(0, 1, n)
    audio[::7] = math.nan
    text[::11] = math.nan
    chosen = [texts[i % len(texts)] for i in range(n)]
    cue = np.array([incomplete_cue(t) is not None for t in chosen])
    for config in (CONFIG, TurnEndConfig(audio_weight=1.0, use_cues=False), TurnEndConfig(fast_threshold=1.01)):
        d = TurnEndDecider(config)
        batch = end_silence_batch(config, audio, text, cue)
        for i in range(n):
            a = None if math.isnan(audio[i]) else float(audio[i])
            t = None if math.isnan(text[i]) else float(text[i])
            assert batch[i] == d.end_silence_ms(a, t, chosen[i])[0]
            # and decide() ends exactly from that silence on
            assert d.decide(batch[i], a, t, chosen[i]).end
            if batch[i] > config.min_silence_ms:
                assert not d.decide(batch[i] - 1, a, t, chosen[i]).end

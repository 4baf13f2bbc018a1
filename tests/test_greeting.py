"""The default greeting, spoken by the default voice, leaves the caller waiting at most 6 s (issue 12)."""

from __future__ import annotations

from voicebot.config import REPO_ROOT
from voicebot.dialog.domain import load_domain
from voicebot.tts.base import split_sentences, trim_trailing_silence
from voicebot.tts.pico import PicoSynthesizer
from voicebot.tts.playback import LAST_SILENCE_S

GREETING_MAX_S = 6.0


def test_default_greeting_plays_in_at_most_six_seconds(pico: PicoSynthesizer) -> None:
    greeting = load_domain(REPO_ROOT / "pipelines" / "default").prompts["greeting"]
    sentences = [pico.synthesize(s) for s in split_sentences(greeting)]
    # As the player sends it: every sentence whole, the last one's trailing silence cut to LAST_SILENCE_S.
    last = sentences[-1]
    played_s = sum(a.duration for a in sentences[:-1])
    played_s += len(trim_trailing_silence(last.pcm, last.sample_rate, LAST_SILENCE_S)) / last.sample_rate
    assert "Mitarbeiter" in greeting and "utomatische" in greeting  # the way to a person, the AI disclosure
    assert 2.0 < played_s <= GREETING_MAX_S, (played_s, greeting)

"""The engines on real models: whisper-base on real German speech, Pico and piper voices, e5 embeddings."""

from __future__ import annotations

import numpy as np
import pytest

from voicebot.audio.io import read_audio
from voicebot.audio.resample import resample
from voicebot.eval.metrics import normalize_german


def test_whisper_transcribes_real_german_clip(transcriber, speech_dir, speech_manifest) -> None:
    item = next(m for m in speech_manifest if m["text"] == "Das will sie am Mittwoch abgeben." )
    pcm, rate = read_audio(speech_dir / item["audio"])
    result = transcriber.transcribe(resample(pcm, rate, 16000))
    assert normalize_german(result.text) == normalize_german(item["text"])
    assert result.words and 0.3 < result.confidence <= 1.0
    assert result.words[0].start < result.words[-1].end <= len(pcm) / rate + 0.5


def test_pico_speaks_german_that_whisper_understands(pico, transcriber) -> None:
    sentence = "Ihre Bestellung wird morgen geliefert."
    audio = pico.synthesize(sentence)
    assert audio.sample_rate == 16000 and audio.pcm.dtype == np.int16
    assert 1.0 < audio.duration < 6.0
    result = transcriber.transcribe(audio.pcm)
    assert normalize_german(result.text) == normalize_german(sentence)


def test_pico_respells_loanwords(pico) -> None:
    from voicebot.tts.lexicon import respell

    assert respell("Bitte prüfen Sie den Router und Ihre E-Mail.") == "Bitte prüfen Sie den Rauter und Ihre I-Mäil."
    assert pico.synthesize("Kundenservice").duration > 0.3


def test_piper_voice_speaks(settings) -> None:
    from voicebot.tts import make_synthesizer

    if not (settings.models.dir / "piper-joe-en").is_dir():
        pytest.skip("piper-joe-en not provisioned")
    piper = make_synthesizer(settings.tts, settings.models, "piper-joe-en").load()
    audio = piper.synthesize("Hello, this is a test of the piper voice.")
    assert audio.sample_rate == 22050
    assert audio.duration > 1.0
    # volume 0.8 leaves headroom: no clipping
    assert np.abs(audio.pcm.astype(np.int32)).max() < 32767 * 0.85


def test_e5_paraphrases_score_above_unrelated(encoder) -> None:
    vectors = encoder.encode([
        "Ich möchte meinen Vertrag kündigen.",
        "Ich will mein Abo beenden.",
        "Mein Auto springt nicht an.",
        "Der Wagen startet nicht mehr, ich stehe auf der Autobahn.",
    ])
    assert vectors.shape == (4, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    sims = vectors @ vectors.T
    assert sims[0, 1] > sims[0, 2] and sims[0, 1] > sims[0, 3]
    assert sims[2, 3] > sims[2, 0] and sims[2, 3] > sims[2, 1]

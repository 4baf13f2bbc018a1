"""Speech synthesis: engines (Pico, piper), the respelling lexicon, playback."""

from __future__ import annotations

from voicebot.config import ModelSettings, TtsSettings
from voicebot.tts.base import SynthesizedAudio, Synthesizer, split_sentences, synthesize_text


def make_synthesizer(settings: TtsSettings, models: ModelSettings, voice: str | None = None) -> Synthesizer:
    """Build (not load) the synthesizer a voice reference names."""
    from voicebot.tts.pico import PicoSynthesizer
    from voicebot.tts.piper import PiperSynthesizer

    reference = voice or settings.voice
    if reference.startswith("pico"):
        return PicoSynthesizer(settings, models, reference)
    return PiperSynthesizer(settings, models, reference)


__all__ = ["SynthesizedAudio", "Synthesizer", "make_synthesizer", "split_sentences", "synthesize_text"]

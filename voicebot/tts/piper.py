"""Piper voices (ONNX). Any piper voice (e.g. de_DE-thorsten-medium) is configured by path."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from voicebot.config import ModelSettings, TtsSettings
from voicebot.models.registry import resolve_model_dir
from voicebot.tts.base import SynthesizedAudio


class PiperSynthesizer:
    """piper-tts. ``reference`` is a registry name (a dir with voice.onnx) or a path to a .onnx voice."""

    def __init__(self, settings: TtsSettings, models: ModelSettings, reference: str) -> None:
        self.settings = settings
        self.models = models
        self.reference = reference
        self.name = reference if "/" not in reference else Path(reference).stem
        self.sample_rate = 22050
        self._voice = None

    def _paths(self) -> tuple[Path, Path]:
        if self.reference.endswith(".onnx"):
            model = Path(self.reference).expanduser()
            if not model.is_file():
                raise FileNotFoundError(f"piper voice {model} does not exist")
            return model, Path(str(model) + ".json")
        voice_dir = resolve_model_dir(self.reference, self.models, ("voice.onnx", "voice.onnx.json"))
        return voice_dir / "voice.onnx", voice_dir / "voice.onnx.json"

    def load(self) -> "PiperSynthesizer":
        from piper import PiperVoice

        model, config = self._paths()
        self._voice = PiperVoice.load(model, config_path=config)
        self.sample_rate = int(self._voice.config.sample_rate)
        return self

    def synthesize(self, text: str) -> SynthesizedAudio:
        from piper import SynthesisConfig

        if self._voice is None:
            raise RuntimeError("PiperSynthesizer.load() has not been called")
        # Piper normalizes to full scale; 0.8 leaves headroom for resampling.
        config = SynthesisConfig(volume=self.settings.piper_volume, length_scale=self.settings.length_scale)
        chunks = [c.audio_float_array for c in self._voice.synthesize(text, config)]
        if not chunks:
            return SynthesizedAudio(np.zeros(0, dtype=np.int16), self.sample_rate)
        audio = np.concatenate(chunks)
        pcm = np.clip(audio * 32767.0, -32768, 32767).astype(np.int16)
        return SynthesizedAudio(pcm, self.sample_rate)

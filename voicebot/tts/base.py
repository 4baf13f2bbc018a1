"""The speech-synthesis engine interface and the sentence splitter it is used with."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterator, Protocol

import numpy as np


@dataclass(frozen=True)
class SynthesizedAudio:
    """Mono 16-bit PCM with its sample rate (never implied)."""

    pcm: np.ndarray
    sample_rate: int

    @property
    def duration(self) -> float:
        return len(self.pcm) / self.sample_rate


class Synthesizer(Protocol):
    """A TTS engine: plain, synchronous, loaded once per process."""

    name: str
    sample_rate: int

    def load(self) -> "Synthesizer": ...

    def synthesize(self, text: str) -> SynthesizedAudio:
        """Synthesize one sentence (or a short text) to PCM."""
        ...


# Split after sentence punctuation followed by whitespace, but not after ordinal
# numbers or common abbreviations ("3. März", "z. B.", "Nr. 5").
_ABBREVIATIONS = ("z.B.", "z. B.", "Nr.", "bzw.", "ca.", "Dr.", "Hr.", "Fr.", "usw.", "ggf.", "u.a.", "Str.", "d.h.")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-ZÄÖÜ0-9\"„])")


def split_sentences(text: str) -> list[str]:
    """Split German text into sentences for sentence-by-sentence synthesis."""
    text = " ".join(text.split())
    if not text:
        return []
    protected = text
    for i, abbr in enumerate(_ABBREVIATIONS):
        protected = protected.replace(abbr, f"\x00{i}\x00")
    protected = re.sub(r"(\d)\.(\s)", "\\1\x01\\2", protected)
    parts = _SENTENCE_END.split(protected)
    sentences = []
    for part in parts:
        restored = part.replace("\x01", ".")
        for i, abbr in enumerate(_ABBREVIATIONS):
            restored = restored.replace(f"\x00{i}\x00", abbr)
        if restored.strip():
            sentences.append(restored.strip())
    return sentences


def synthesize_text(synth: Synthesizer, text: str) -> Iterator[SynthesizedAudio]:
    """Yield one chunk per sentence, so the first audio is ready after the first sentence."""
    for sentence in split_sentences(text):
        yield synth.synthesize(sentence)


_SILENT = 300  # |sample| below this is silence (about -40 dBFS)


def trim_trailing_silence(pcm: np.ndarray, sample_rate: int, keep_s: float) -> np.ndarray:
    """``pcm`` with its trailing silence cut to ``keep_s`` seconds."""
    loud = np.flatnonzero(np.abs(pcm.astype(np.int32)) > _SILENT)
    if len(loud) == 0:
        return pcm
    end = min(len(pcm), int(loud[-1]) + 1 + int(keep_s * sample_rate))
    return pcm[:end]

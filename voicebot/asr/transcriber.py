"""The ASR engine: faster-whisper (CTranslate2) with German forced.

A plain synchronous class with an explicit ``load()``. It consumes faster-whisper's
lazy segment generator itself, so callers (executor threads) get finished results.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from voicebot.config import AsrSettings, ModelSettings
from voicebot.frames import Word
from voicebot.models.registry import resolve_model_dir

ASR_SAMPLE_RATE = 16000
WHISPER_FILES = ("model.bin", "config.json", "tokenizer.json")


@dataclass(frozen=True)
class TranscriptionResult:
    text: str
    words: tuple[Word, ...]
    avg_logprob: float
    no_speech_prob: float
    duration: float
    decode_seconds: float
    segments: int = 0
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def confidence(self) -> float:
        """A 0..1 turn confidence.

        The geometric mean of word probabilities where words exist (it tracks
        misrecognitions best), damped by the no-speech probability.
        """
        if not self.text.strip():
            return 0.0
        if self.words:
            probs = np.clip(np.array([w.probability for w in self.words]), 1e-6, 1.0)
            base = float(np.exp(np.mean(np.log(probs))))
        else:
            base = math.exp(min(0.0, self.avg_logprob))
        return base * (1.0 - 0.5 * self.no_speech_prob)


def to_float32(pcm: np.ndarray) -> np.ndarray:
    if pcm.dtype == np.int16:
        return pcm.astype(np.float32) / 32768.0
    return pcm.astype(np.float32, copy=False)


class Transcriber:
    """faster-whisper on CPU (int8) or CUDA (float16), German, one loaded model shared by all calls."""

    def __init__(self, settings: AsrSettings, models: ModelSettings) -> None:
        self.settings = settings
        self.models = models
        self.model_dir: Path | None = None
        self._model = None
        # CTranslate2 is thread-safe, but two decodes in parallel on 2 cores only
        # thrash; callers that want concurrency go through the scheduler.
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def load(self) -> "Transcriber":
        from faster_whisper import WhisperModel

        self.model_dir = resolve_model_dir(self.settings.model, self.models, WHISPER_FILES)
        device = self.settings.device
        compute_type = self.settings.compute_type
        if device == "auto":
            device = "cuda" if _cuda_available() else "cpu"
        if device == "cuda" and compute_type == "int8":
            compute_type = "float16"
        self._model = WhisperModel(
            str(self.model_dir),
            device=device,
            compute_type=compute_type,
            cpu_threads=self.settings.cpu_threads,
            local_files_only=True,
        )
        return self

    @property
    def model(self):  # type: ignore[no-untyped-def]
        if self._model is None:
            raise RuntimeError("Transcriber.load() has not been called")
        return self._model

    def transcribe(
        self,
        audio: np.ndarray,
        *,
        beam_size: int | None = None,
        word_timestamps: bool = True,
        initial_prompt: str | None = None,
        offset: float = 0.0,
    ) -> TranscriptionResult:
        """Transcribe one 16 kHz mono utterance (int16 or float32).

        ``offset`` shifts word times onto the caller's timeline.
        """
        samples = to_float32(audio)
        duration = len(samples) / ASR_SAMPLE_RATE
        chunk = max(1, min(30, math.ceil(duration) + 1, self.settings.chunk_length))
        if duration + 0.5 > chunk:
            chunk = 30  # the utterance does not fit the short window: use Whisper's native one
        prompt = self.settings.initial_prompt if initial_prompt is None else initial_prompt
        started = time.perf_counter()
        with self._lock:
            segments, _info = self.model.transcribe(
                samples,
                language=self.settings.language,
                task="transcribe",
                beam_size=beam_size or self.settings.final_beam_size,
                initial_prompt=prompt or None,
                hotwords=self.settings.hotwords or None,
                word_timestamps=word_timestamps,
                no_speech_threshold=self.settings.no_speech_threshold,
                log_prob_threshold=self.settings.log_prob_threshold,
                condition_on_previous_text=False,
                vad_filter=False,
                chunk_length=chunk,
                temperature=0.0,
            )
            segments = list(segments)  # decoding happens while the generator is consumed
        elapsed = time.perf_counter() - started
        words: list[Word] = []
        texts: list[str] = []
        logprobs: list[float] = []
        no_speech = 0.0
        for segment in segments:
            texts.append(segment.text.strip())
            logprobs.append(segment.avg_logprob)
            no_speech = max(no_speech, segment.no_speech_prob)
            for w in segment.words or ():
                words.append(Word(w.word.strip(), offset + w.start, offset + w.end, w.probability))
        return TranscriptionResult(
            text=" ".join(t for t in texts if t).strip(),
            words=tuple(words),
            avg_logprob=float(np.mean(logprobs)) if logprobs else -10.0,
            no_speech_prob=no_speech,
            duration=duration,
            decode_seconds=elapsed,
            segments=len(segments),
        )


def _cuda_available() -> bool:
    try:
        import ctranslate2

        return ctranslate2.get_cuda_device_count() > 0
    except Exception:  # noqa: BLE001 - any failure to probe CUDA means "no CUDA"
        return False

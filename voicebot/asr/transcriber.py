"""The ASR engine: faster-whisper (CTranslate2) with German forced.

A plain synchronous class with an explicit ``load()``. Callers (executor threads)
get finished results; nothing lazy leaks out.

Turn-sized audio (up to 30 s, which is every caller turn: the endpointer caps turns
well below that) is decoded as exactly **one** Whisper window, built here from
faster-whisper's parts (feature extractor, CTranslate2 ``encode``/``generate``/
``align``), instead of through ``WhisperModel.transcribe``. Two reasons, both
measured:

* ``transcribe`` always pads the mel features to 3,000 frames (30 s) however small
  ``chunk_length`` is, so the encoder costs the same for a 2 s turn as for 30 s.
  Here the window is ``asr.chunk_length`` seconds (10 by default) for turns that
  fit, which makes the encoder several times cheaper (see ``window_for``).
* With word timestamps, ``transcribe`` seeks to the last word and decodes the
  padded rest of the window again, which is where phantom sentences such as
  "Ich bin jetzt bei der Kante." come from on short clips.

``transcribe_batch`` decodes several turns (several calls) in one CTranslate2 batch;
the scheduler decides whether batching pays on the machine at hand.
Longer audio (files) falls back to faster-whisper's long-form ``transcribe``.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from voicebot.asr.fallback import resample_failed
from voicebot.asr.replicas import ModelSet
from voicebot.asr.windows import (
    ASR_SAMPLE_RATE,
    NATIVE_WINDOW_S,
    WINDOW_MARGIN_S,
    batch_samples,
    encoder_window_s,
    short_final_window_s,
    to_float32,
)
from voicebot.config import AsrSettings, ModelSettings
from voicebot.frames import Word
from voicebot.models.registry import resolve_model_dir
from voicebot.models.whisper_vocab import MultilingualModel, pruned_multilingual

WHISPER_FILES = ("model.bin", "config.json", "tokenizer.json")
# Generation cap relative to the audio: German speech is ~3 words (~5 tokens)
# per second; the cap only bounds the cost of a runaway repetition loop.
MAX_TOKENS_PER_S = 15
PREPEND_PUNCTUATIONS = "\"'“¿([{-"
APPEND_PUNCTUATIONS = "\"'.。,，!！?？:：”)]}、"


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
    # Why the hallucination guards changed the text ("no_speech", "phantom", ...); empty if untouched.
    guard: tuple[str, ...] = ()

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

    @property
    def turn_confidence(self) -> float:
        """The confidence a caller's ``Transcript`` carries (the policy's ``asr_min_confidence``, the agents' view).

        As ``confidence``, without the first word's probability when more words follow. Word probabilities come
        from faster-whisper's alignment pass, which scores the text after the bare start sequence: not after the
        initial prompt and the no-timestamps token the beam search decoded it with. The first word alone pays for
        that ("Kundennummer 526108": 0.01 and 0.75), and short right answers were re-asked: on 482 phone turns
        (the scenarios' turns, 193 shared clips, 170 short answers) right ones under 0.35 23 -> 9 of 298, wrong ones
        over it 45 -> 46 of 88
        (docs/capacity/asr-decoding.md "Turn confidence"). The hallucination guards keep ``confidence``.
        """
        if len(self.words) < 2 or not self.text.strip():
            return self.confidence
        return replace(self, words=self.words[1:]).confidence


def empty_result(duration: float = 0.0) -> TranscriptionResult:
    """The result of audio that holds no words (or was not decoded at all)."""
    return TranscriptionResult("", (), -10.0, 1.0, duration, 0.0)


class Transcriber:
    """faster-whisper on CPU (int8) or CUDA (float16), German, one loaded model shared by all calls."""

    def __init__(self, settings: AsrSettings, models: ModelSettings) -> None:
        self.settings = settings
        self.models = models
        self.model_dir: Path | None = None
        self._model: Any = None
        self.models_set: ModelSet | None = None  # the finals' model plus the wide encoder / partial lane (CPU)
        self._tokenizer: Any = None
        self._suppress: tuple[int, ...] = ()
        # CTranslate2 runs ``asr.decode_workers`` decodes at once (one model replica's
        # workers, ``cpu_threads`` split between them); more callers than that wait here.
        # Callers that want concurrency go through the scheduler.
        self._lock = threading.BoundedSemaphore(max(1, settings.decode_workers))
        self._partial_lock = threading.BoundedSemaphore(1)  # the partial lane's one replica (asr.partial_lane)
        # Batches that needed the temperature fallback, and its sampling rounds (each FALLBACK_BEST_OF samples).
        self.fallback_decodes = 0
        self.fallback_rounds = 0
        self._count_lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._model is not None

    @property
    def concurrency(self) -> int:
        """Decodes this engine runs at once (``asr.decode_workers`` once the model is loaded)."""
        return max(1, self.settings.decode_workers) if self._model is not None else 1

    def load(self) -> Transcriber:
        from faster_whisper import WhisperModel
        from faster_whisper.tokenizer import Tokenizer
        from faster_whisper.transcribe import get_suppressed_tokens

        self.model_dir = resolve_model_dir(self.settings.model, self.models, WHISPER_FILES)
        device = self.settings.device
        compute_type = self.settings.compute_type
        if device == "auto":
            device = "cuda" if _cuda_available() else "cpu"
        if device == "cuda" and compute_type == "int8":
            compute_type = "float16"
        workers = max(1, self.settings.decode_workers)

        multilingual = pruned_multilingual(self.model_dir)

        def make(threads: int, replicas: int) -> Any:
            model = WhisperModel(str(self.model_dir), device=device, compute_type=compute_type, cpu_threads=threads,
                                 num_workers=replicas, local_files_only=True)
            if multilingual:  # a language-pruned vocabulary: CTranslate2 counts tokens to tell (see whisper_vocab)
                model.model = MultilingualModel(model.model)
            return model

        cpu = device == "cpu"
        self.models_set = ModelSet.load(
            make, workers=workers, threads=max(1, self.settings.cpu_threads // workers),
            lone_encode_threads=self.settings.lone_encode_threads if cpu else 0,
            partial_lane=self.settings.partial_lane and cpu, partial_nice=self.settings.partial_nice,
        )
        self._model = self.models_set.main
        self._tokenizer = Tokenizer(
            self._model.hf_tokenizer, self._model.model.is_multilingual, task="transcribe",
            language=self.settings.language,
        )
        self._suppress = tuple(get_suppressed_tokens(self._tokenizer, [-1]) or ())
        return self

    @property
    def partial_lane(self) -> bool:
        """Partials decode on a model object of their own (the scheduler gives them a worker of their own)."""
        return self.models_set is not None and self.models_set.partial is not None

    @property
    def model(self):  # type: ignore[no-untyped-def]
        if self._model is None:
            raise RuntimeError("Transcriber.load() has not been called")
        return self._model

    def window_for(self, duration: float, final: bool = False) -> int:
        """Encoder window (seconds) for an utterance of ``duration`` seconds.

        ``asr.chunk_length`` seconds for turns that fit in it, else just long enough,
        capped at Whisper's native 30 s. Windows much shorter than ~8 s make
        whisper-base loop and drift (measured on the shared German set: WER 0.18
        at 30 s, 0.19 at 10 s, 0.20 at 8 s, 0.28 at 5 s, 0.70+ at 2-3 s).

        ``final``: a final-quality (beam-search) decode uses ``asr.final_chunk_length``
        (10 s, bucketed: on 40 phone turns of 3-20 s with pre/post-roll WER 0.365 vs 0.389 in
        30 s windows, at 0.46x the CPU), except finals shorter than ``asr.final_short_turn_s``,
        which lose their last word in so short a window: they take ``asr.final_short_window_wideband_s`` (30 s;
        a phone call's recognizer asks for ``asr.final_short_window_s`` instead, ``window_s``).
        """
        minimum = self.settings.final_chunk_length if final else self.settings.chunk_length
        if final:  # a short turn keeps its last word in a longer window (the line is not known here)
            minimum = short_final_window_s(self.settings, duration, narrowband=None) or minimum
        return encoder_window_s(duration, max(minimum, self.settings.chunk_length), self.settings.window_buckets)

    def transcribe(
        self,
        audio: np.ndarray,
        *,
        beam_size: int | None = None,
        word_timestamps: bool = True,
        initial_prompt: str | None = None,
        offset: float = 0.0,
        final: bool | None = None,
        window_s: int | None = None,
        fallback: bool | None = None,
    ) -> TranscriptionResult:
        """Transcribe one 16 kHz mono utterance (int16 or float32).

        ``offset`` shifts word times onto the caller's timeline. ``final`` / ``window_s`` / ``fallback``:
        see ``transcribe_batch``.
        """
        if len(audio) / ASR_SAMPLE_RATE + WINDOW_MARGIN_S <= NATIVE_WINDOW_S:
            return self.transcribe_batch(
                [audio], beam_size=beam_size, word_timestamps=word_timestamps,
                initial_prompt=initial_prompt, offsets=[offset], final=final, window_s=window_s,
                fallback=fallback,
            )[0]
        return self._transcribe_long(audio, beam_size, word_timestamps, initial_prompt, offset)

    def transcribe_batch(
        self,
        audios: Sequence[np.ndarray],
        *,
        beam_size: int | None = None,
        word_timestamps: bool = True,
        initial_prompt: str | None = None,
        offsets: Sequence[float] | None = None,
        final: bool | None = None,
        window_s: int | None = None,
        fallback: bool | None = None,
    ) -> list[TranscriptionResult]:
        """Decode several utterances (each ≤ 30 s) as one CTranslate2 batch, one window each.

        All items share the window of the longest one. ``decode_seconds`` of every
        result is the wall time of the whole batch. ``final``: size the window as for a
        final (``asr.final_chunk_length``); ``None`` means "a beam search is a final"
        (the old rule). ``window_s`` forces the window (evaluations; never below the audio).
        ``fallback``: the temperature fallback (``voicebot.asr.fallback``) for failed decodes; ``None``: finals
        get it, partials do not (a hurried final under load may go without: ``asr.hurried_fallback``).
        """
        if not audios:
            return []
        samples, durations, offsets = batch_samples(audios, offsets)
        beam = beam_size or self.settings.final_beam_size
        is_final = beam > 1 if final is None else final
        window = max(self.window_for(d, final=is_final) for d in durations)
        if window_s is not None:
            window = encoder_window_s(max(durations), window_s)
        prompt_text = self.settings.initial_prompt if initial_prompt is None else initial_prompt
        started = time.perf_counter()
        models = self.models_set
        lane = models.for_decode(is_final) if models is not None else self.model
        with self._lock if lane is self._model else self._partial_lock:
            with models.running(lane) if models is not None else contextlib.nullcontext(False) as alone:
                decoded = self._decode_window(samples, window, beam, prompt_text, word_timestamps,
                                              fallback=is_final if fallback is None else fallback,
                                              lane=lane, alone=alone)
        elapsed = time.perf_counter() - started
        results = []
        for (text, words, avg_logprob, no_speech), duration, offset in zip(decoded, durations, offsets, strict=True):
            results.append(
                TranscriptionResult(
                    text=text,
                    words=tuple(Word(w.text, offset + w.start, offset + w.end, w.probability) for w in words),
                    avg_logprob=avg_logprob,
                    no_speech_prob=no_speech,
                    duration=duration,
                    decode_seconds=elapsed,
                    segments=1 if text else 0,
                    extra={"window_s": float(window), "batch": float(len(audios))},
                )
            )
        return results

    def _decode_window(
        self, samples: list[np.ndarray], window: int, beam: int, prompt_text: str, word_timestamps: bool,
        fallback: bool | None = None, lane: Any = None, alone: bool = False,
    ) -> list[tuple[str, list[Word], float, float]]:
        """Features → encoder → greedy/beam generate → (optional) word alignment, for one batch.

        ``lane``: the WhisperModel to decode on (the finals' one by default); a final that runs alone is
        encoded on the wide encoder (``asr.lone_encode_threads``), see ``voicebot.asr.replicas``."""
        import ctranslate2

        model = lane if lane is not None else self.model
        tok = self._tokenizer
        extractor = model.feature_extractor
        n_frames = window * ASR_SAMPLE_RATE // extractor.hop_length
        feats = []
        content_frames = []
        for s in samples:
            # Pad the *audio* with zeros, as original Whisper does, so the padding looks
            # like digital silence to the encoder rather than arbitrary feature zeros.
            padded = np.zeros(window * ASR_SAMPLE_RATE, dtype=np.float32)
            padded[: len(s)] = s[: len(padded)]
            mel = extractor(padded, padding=0)[:, :n_frames]
            if mel.shape[-1] < n_frames:
                mel = np.pad(mel, ((0, 0), (0, n_frames - mel.shape[-1])))
            feats.append(mel)
            content_frames.append(min(n_frames, max(1, len(s) // extractor.hop_length)))
        features = ctranslate2.StorageView.from_array(np.ascontiguousarray(np.stack(feats)))
        to_cpu = model.model.device == "cuda" and len(model.model.device_index) > 1
        encoder = self.models_set.encoder_for(model, alone) if self.models_set is not None else model
        encoder_output = encoder.model.encode(features, to_cpu=to_cpu)
        previous = tok.encode(" " + prompt_text.strip()) if prompt_text and prompt_text.strip() else []
        prompt = model.get_prompt(tok, previous, without_timestamps=False, hotwords=self.settings.hotwords or None)
        longest = max(len(x) for x in samples) / ASR_SAMPLE_RATE
        max_length = min(model.max_length, len(prompt) + int(MAX_TOKENS_PER_S * longest) + 16)
        results = model.model.generate(
            encoder_output,
            [list(prompt) for _ in samples],
            beam_size=beam,
            max_length=max_length,
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=list(self._suppress),
            max_initial_timestamp_index=50,
        )
        texts: list[list[int]] = []
        stats: list[tuple[float, float]] = []
        for r in results:
            tokens = r.sequences_ids[0]
            # faster-whisper's recovery of the mean log-probability (length_penalty = 1).
            avg_logprob = r.scores[0] * len(tokens) / (len(tokens) + 1)
            texts.append([t for t in tokens if t < tok.eot])
            stats.append((float(avg_logprob), float(r.no_speech_prob)))
        if beam > 1 if fallback is None else fallback:  # finals: temperature fallback (partials stay one pass)
            rounds = resample_failed(model.model, tok, self.settings, encoder_output, prompt, texts, stats,
                                     max_length=max_length, suppress_blank=True,
                                     suppress_tokens=list(self._suppress), max_initial_timestamp_index=50)
            if rounds:
                with self._count_lock:
                    self.fallback_decodes += 1
                    self.fallback_rounds += rounds
        if word_timestamps and any(texts):
            words_per_item = self._align(encoder_output, texts, content_frames, model)
        else:
            words_per_item = [[] for _ in texts]
        out = []
        for text_tokens, words, (avg_logprob, no_speech) in zip(texts, words_per_item, stats, strict=True):
            out.append((tok.decode(text_tokens).strip(), words, avg_logprob, no_speech))
        return out

    def _align(self, encoder_output: Any, texts: list[list[int]], content_frames: list[int],
               model: Any = None) -> list[list[Word]]:
        """Word timings and probabilities from cross-attention (faster-whisper's own alignment code)."""
        tok = self._tokenizer
        # An item without text still needs a row in the batch: align a lone "." and discard it.
        placeholder = tok.encode(".")
        segments: list[list[dict[str, Any]]] = [
            [{"seek": 0, "start": 0.0, "end": frames / 100.0, "tokens": t or placeholder}]
            for t, frames in zip(texts, content_frames, strict=True)
        ]
        (model if model is not None else self.model).add_word_timestamps(
            segments, tok, encoder_output, content_frames, PREPEND_PUNCTUATIONS, APPEND_PUNCTUATIONS,
            last_speech_timestamp=0.0,
        )
        out: list[list[Word]] = []
        for text_tokens, segment in zip(texts, segments, strict=True):
            if not text_tokens:
                out.append([])
                continue
            out.append([
                Word(w["word"].strip(), float(w["start"]), float(w["end"]), float(w["probability"]))
                for w in segment[0].get("words", ())
                if w["word"].strip()
            ])
        return out

    def _transcribe_long(
        self, audio: np.ndarray, beam_size: int | None, word_timestamps: bool, initial_prompt: str | None,
        offset: float,
    ) -> TranscriptionResult:
        """faster-whisper's long-form path (30 s windows, seeking) for audio that is not a turn."""
        samples = to_float32(audio)
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
            duration=len(samples) / ASR_SAMPLE_RATE,
            decode_seconds=elapsed,
            segments=len(segments),
        )


def _cuda_available() -> bool:
    try:
        import ctranslate2

        return ctranslate2.get_cuda_device_count() > 0
    except Exception:  # noqa: BLE001 - any failure to probe CUDA means "no CUDA"
        return False

"""Pick the ASR engine for the configured backend and device.

``settings.asr.backend``:
* ``ctranslate2``: faster-whisper's CTranslate2 engine (``Transcriber``), int8 on CPU,
  float16 on CUDA. Fails on CUDA hosts without ``libcublas.so.12`` (CUDA 13 only).
* ``torch``: ``TorchTranscriber`` on the converted Hugging Face checkpoint, float32 on
  CPU, float16 on CUDA; batches many calls' turns on a GPU.
* ``auto``: CTranslate2 wherever it can run on the requested device, torch otherwise.
  On CPU that is always CTranslate2 (int8 is the faster CPU path).

Both engines have ``load()``, ``transcribe()`` and ``transcribe_batch()`` returning
``TranscriptionResult``; the engine comes back unloaded (``make_transcriber(s).load()``).
"""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import Protocol

import numpy as np

from voicebot.asr.transcriber import TranscriptionResult
from voicebot.config import Settings

log = logging.getLogger(__name__)

CUBLAS_FOR_CT2 = "libcublas.so.12"  # what CTranslate2 4.x's PyPI wheels dlopen for CUDA work
BACKENDS = ("ctranslate2", "torch", "auto")


class AsrEngine(Protocol):
    """What the scheduler and the evaluations need from an ASR engine."""

    def load(self) -> AsrEngine: ...

    def transcribe(self, audio: np.ndarray, *, beam_size: int | None = None, word_timestamps: bool = True,
                   initial_prompt: str | None = None, offset: float = 0.0) -> TranscriptionResult: ...

    def transcribe_batch(self, audios: Sequence[np.ndarray], *, beam_size: int | None = None,
                         word_timestamps: bool = True, initial_prompt: str | None = None,
                         offsets: Sequence[float] | None = None) -> list[TranscriptionResult]: ...


class BackendUnavailableError(RuntimeError):
    """The configured ASR backend cannot run on the configured device here."""


def ct2_cuda_usable() -> bool:
    """CTranslate2 sees a CUDA device *and* the cuBLAS it was built against can be loaded.

    ``get_cuda_device_count()`` alone says yes on CUDA-13-only hosts, where the first
    CUDA matmul then fails on the missing ``libcublas.so.12``.
    """
    try:
        import ctranslate2

        if ctranslate2.get_cuda_device_count() < 1:
            return False
    except Exception:  # noqa: BLE001 - no CTranslate2, or no CUDA runtime at all
        return False
    try:
        ctypes.CDLL(CUBLAS_FOR_CT2)
    except OSError:
        return False
    return True


def torch_cuda_usable() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:  # noqa: BLE001 - a broken torch install means "no CUDA through torch"
        return False


def resolve_device(requested: str, backend: str = "auto") -> str:
    """``auto`` → ``cuda`` if the backend's runtime (either, for ``auto``) can use a GPU here, else ``cpu``."""
    if requested not in ("cpu", "cuda", "auto"):
        raise ValueError(f"asr.device must be cpu, cuda or auto, not {requested!r}")
    if requested != "auto":
        return requested
    usable = {"ctranslate2": ct2_cuda_usable, "torch": torch_cuda_usable}.get(backend)
    gpu = usable() if usable else (torch_cuda_usable() or ct2_cuda_usable())
    return "cuda" if gpu else "cpu"


def choose_backend(backend: str, device: str) -> str:
    """The concrete backend for ``backend`` (maybe ``auto``) on a concrete ``device``."""
    if backend not in BACKENDS:
        raise ValueError(f"asr.backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
    if backend == "auto":
        if device == "cpu" or ct2_cuda_usable():
            return "ctranslate2"
        return "torch"
    if backend == "ctranslate2" and device == "cuda" and not ct2_cuda_usable():
        raise BackendUnavailableError(
            f"CTranslate2 cannot use CUDA here (no CUDA device for it, or {CUBLAS_FOR_CT2} is missing, "
            "as on CUDA-13-only hosts): set asr.backend = \"torch\" (or \"auto\")"
        )
    if backend == "torch" and device == "cuda" and not torch_cuda_usable():
        raise BackendUnavailableError("torch sees no CUDA device: install a CUDA build of torch or use device cpu")
    return backend


def make_transcriber(settings: Settings) -> AsrEngine:
    """The ASR engine ``settings.asr`` asks for, not yet loaded."""
    device = resolve_device(settings.asr.device, settings.asr.backend)
    backend = choose_backend(settings.asr.backend, device)
    log.info("ASR backend %s on %s (asked: %s on %s)", backend, device, settings.asr.backend, settings.asr.device)
    if backend == "torch":
        from voicebot.asr.torch_backend import TorchTranscriber

        return TorchTranscriber(settings.asr, settings.models, device=device)
    from voicebot.asr.transcriber import Transcriber

    return Transcriber(replace(settings.asr, device=device), settings.models)

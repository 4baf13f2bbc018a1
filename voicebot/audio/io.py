"""Reading and writing audio files (WAV, FLAC, OGG and whatever else libsndfile reads).

Everything comes back as mono int16, the pipeline's one sample format.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from voicebot.audio.errors import AudioFileError, AudioFormatError
from voicebot.audio.resample import resample

PathLike = str | Path


def read_audio(path: PathLike) -> tuple[np.ndarray, int]:
    """Read an audio file as ``(mono int16 pcm, sample_rate)``; multichannel audio is averaged."""
    p = Path(path)
    if not p.exists():
        raise AudioFileError(f"audio file not found: {p}")
    if p.is_dir():
        raise AudioFileError(f"expected an audio file, got a directory: {p}")
    try:
        # Float read, then one rounding to int16: exact for 16-bit sources and
        # a correct (not truncated) conversion for 24-bit, float and Vorbis ones.
        data, rate = sf.read(str(p), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise AudioFileError(
            f"cannot read {p} as audio ({exc}); use WAV, FLAC or OGG (anything libsndfile reads)"
        ) from exc
    mono = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    pcm = np.clip(np.round(mono.astype(np.float64) * 32768.0), -32768, 32767).astype(np.int16)
    return pcm, int(rate)


def write_wav(path: PathLike, pcm: np.ndarray, rate: int) -> None:
    """Write mono int16 PCM as a 16-bit WAV file."""
    if not isinstance(pcm, np.ndarray) or pcm.dtype != np.int16 or pcm.ndim != 1:
        raise AudioFormatError(
            f"write_wav needs a 1-D int16 array, got {getattr(pcm, 'dtype', type(pcm))} {getattr(pcm, 'shape', '')}"
        )
    if isinstance(rate, bool) or not isinstance(rate, (int, np.integer)) or rate <= 0:
        raise AudioFormatError(f"sample rate must be a positive integer, got {rate!r}")
    try:
        sf.write(str(path), pcm, int(rate), subtype="PCM_16", format="WAV")
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise AudioFileError(f"cannot write WAV file {path}: {exc}") from exc


def load_for_asr(path: PathLike, rate: int = 16000) -> np.ndarray:
    """Read an audio file as mono int16 at ``rate`` (the ASR rate, 16 kHz by default)."""
    pcm, src = read_audio(path)
    return resample(pcm, src, rate)

"""Wire encodings of caller and bot audio: pcm_s16le, G.711 µ-law and A-law.

G.711 is implemented with lookup tables in numpy (``audioop`` is gone from
Python 3.13). The tables follow the ITU-T G.711 reference code (Sun's
``g711.c``, which ``audioop`` also used), so bytes are interoperable with
telephony gateways: µ-law of 0 is ``0xFF``, A-law of 0 is ``0xD5``.

``Decoder`` turns incoming bytes into ``AudioFrame``s with a running stream time;
``Encoder`` turns bot audio at any rate into bytes of the caller's format.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Final

import numpy as np

from voicebot.audio.errors import AudioFormatError
from voicebot.audio.resample import StreamResampler
from voicebot.frames import AudioFrame

SUPPORTED_ENCODINGS: Final = ("pcm_s16le", "mulaw", "alaw")
SUPPORTED_RATES: Final = (8000, 16000, 22050, 24000, 44100, 48000)

# Names other systems use for the same encodings (Twilio, SIP/RTP, MIME types).
_ENCODING_ALIASES: Final = {
    "pcm": "pcm_s16le",
    "pcm16": "pcm_s16le",
    "s16le": "pcm_s16le",
    "linear16": "pcm_s16le",
    "audio/l16": "pcm_s16le",
    "ulaw": "mulaw",
    "mu-law": "mulaw",
    "pcmu": "mulaw",
    "g711_ulaw": "mulaw",
    "audio/x-mulaw": "mulaw",
    "a-law": "alaw",
    "pcma": "alaw",
    "g711_alaw": "alaw",
    "audio/x-alaw": "alaw",
}


@dataclass(frozen=True)
class AudioFormat:
    """An encoding and a sample rate, validated on construction.

    Common aliases (``ulaw``, ``pcmu``, ``audio/x-mulaw``, ``linear16``, ...) are
    normalized to the canonical names ``pcm_s16le``, ``mulaw`` and ``alaw``.
    """

    encoding: str
    sample_rate: int

    def __post_init__(self) -> None:
        if not isinstance(self.encoding, str):
            raise AudioFormatError(f"encoding must be a string; use one of {', '.join(SUPPORTED_ENCODINGS)}")
        name = self.encoding.strip().lower()
        name = _ENCODING_ALIASES.get(name, name)
        if name not in SUPPORTED_ENCODINGS:
            raise AudioFormatError(
                f"unsupported encoding {self.encoding!r}; use one of {', '.join(SUPPORTED_ENCODINGS)}"
            )
        # bool is an int subclass; "sample_rate": true in a JSON message is a client bug.
        if isinstance(self.sample_rate, bool) or not isinstance(self.sample_rate, (int, np.integer)):
            raise AudioFormatError(
                f"sample_rate must be an integer, got {self.sample_rate!r}; "
                f"use one of {', '.join(map(str, SUPPORTED_RATES))}"
            )
        if int(self.sample_rate) not in SUPPORTED_RATES:
            raise AudioFormatError(
                f"unsupported sample_rate {self.sample_rate}; use one of {', '.join(map(str, SUPPORTED_RATES))}"
            )
        object.__setattr__(self, "encoding", name)
        object.__setattr__(self, "sample_rate", int(self.sample_rate))

    @property
    def bytes_per_sample(self) -> int:
        return 2 if self.encoding == "pcm_s16le" else 1

    def bytes_for(self, seconds: float) -> int:
        """Number of bytes that hold ``seconds`` of audio in this format."""
        return int(round(seconds * self.sample_rate)) * self.bytes_per_sample


# --- G.711 tables ------------------------------------------------------------------

_SEG_UEND = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF], dtype=np.int32)
_SEG_AEND = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF], dtype=np.int32)
_ALL_INT16 = np.arange(-32768, 32768, dtype=np.int32)


@cache
def _mulaw_encode_table() -> np.ndarray:
    """uint8 µ-law code of every int16 value, indexed by the value viewed as uint16."""
    v = _ALL_INT16 >> 2  # G.711 µ-law works on 14-bit magnitudes
    neg = v < 0
    mask = np.where(neg, 0x7F, 0xFF)
    mag = np.minimum(np.abs(v), 8159) + 0x21  # clip, then add the bias (0x84 >> 2)
    seg = np.searchsorted(_SEG_UEND, mag, side="left")
    code = np.where(seg >= 8, 0x7F ^ mask, ((seg << 4) | ((mag >> (seg + 1)) & 0xF)) ^ mask)
    return _index_by_uint16(code.astype(np.uint8))


@cache
def _alaw_encode_table() -> np.ndarray:
    """uint8 A-law code of every int16 value, indexed by the value viewed as uint16."""
    v = _ALL_INT16 >> 3  # A-law works on 13-bit values
    neg = v < 0
    mask = np.where(neg, 0x55, 0xD5)
    mag = np.where(neg, -v - 1, v)
    seg = np.searchsorted(_SEG_AEND, mag, side="left")
    low = np.where(seg < 2, (mag >> 1) & 0xF, (mag >> np.maximum(seg, 1)) & 0xF)
    code = np.where(seg >= 8, 0x7F ^ mask, ((seg << 4) | low) ^ mask)
    return _index_by_uint16(code.astype(np.uint8))


def _index_by_uint16(codes_by_value: np.ndarray) -> np.ndarray:
    # codes_by_value[i] belongs to int16 value i - 32768; reorder so that the
    # table can be indexed by pcm.view(np.uint16) (two's complement bit pattern).
    return np.roll(codes_by_value, -32768)


@cache
def _mulaw_decode_table() -> np.ndarray:
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    t = (((u & 0x0F) << 3) + 0x84) << ((u & 0x70) >> 4)
    return np.where(u & 0x80, 0x84 - t, t - 0x84).astype(np.int16)


@cache
def _alaw_decode_table() -> np.ndarray:
    a = np.arange(256, dtype=np.int32) ^ 0x55
    t = (a & 0x0F) << 4
    seg = (a & 0x70) >> 4
    t = np.where(seg == 0, t + 8, t + 0x108)
    t = np.where(seg > 1, t << np.maximum(seg - 1, 0), t)
    return np.where(a & 0x80, t, -t).astype(np.int16)


# --- one-shot conversions ----------------------------------------------------------


def _check_pcm(pcm: np.ndarray) -> np.ndarray:
    if not isinstance(pcm, np.ndarray) or pcm.dtype != np.int16 or pcm.ndim != 1:
        shape = getattr(pcm, "shape", None)
        raise AudioFormatError(f"expected a 1-D int16 array, got {getattr(pcm, 'dtype', type(pcm))} {shape}")
    return pcm


def mulaw_encode(pcm: np.ndarray) -> bytes:
    """G.711 µ-law bytes of int16 PCM."""
    return _mulaw_encode_table()[_check_pcm(pcm).view(np.uint16)].tobytes()


def mulaw_decode(data: bytes) -> np.ndarray:
    """int16 PCM of G.711 µ-law bytes."""
    return _mulaw_decode_table()[np.frombuffer(data, dtype=np.uint8)]


def alaw_encode(pcm: np.ndarray) -> bytes:
    """G.711 A-law bytes of int16 PCM."""
    return _alaw_encode_table()[_check_pcm(pcm).view(np.uint16)].tobytes()


def alaw_decode(data: bytes) -> np.ndarray:
    """int16 PCM of G.711 A-law bytes."""
    return _alaw_decode_table()[np.frombuffer(data, dtype=np.uint8)]


def encode(pcm: np.ndarray, encoding: str) -> bytes:
    """Bytes of int16 PCM in ``encoding`` (``pcm_s16le``, ``mulaw`` or ``alaw``)."""
    name = AudioFormat(encoding, 16000).encoding
    if name == "mulaw":
        return mulaw_encode(pcm)
    if name == "alaw":
        return alaw_encode(pcm)
    return _check_pcm(pcm).astype("<i2", copy=False).tobytes()


def decode(data: bytes, encoding: str) -> np.ndarray:
    """int16 PCM (a fresh, writable array) of bytes in ``encoding``."""
    name = AudioFormat(encoding, 16000).encoding
    if name == "mulaw":
        return mulaw_decode(data)
    if name == "alaw":
        return alaw_decode(data)
    if len(data) % 2:
        raise AudioFormatError(
            f"pcm_s16le audio must have an even number of bytes (2 per sample), got {len(data)} bytes"
        )
    return np.frombuffer(data, dtype="<i2").astype(np.int16)


def pcm_to_float32(pcm: np.ndarray) -> np.ndarray:
    """int16 PCM as float32 in [-1, 1) (what Whisper and Silero take)."""
    return _check_pcm(pcm).astype(np.float32) / 32768.0


def float32_to_pcm(audio: np.ndarray) -> np.ndarray:
    """Float audio in [-1, 1] as int16 PCM; values outside are clipped, not wrapped."""
    scaled = np.round(np.asarray(audio, dtype=np.float64) * 32768.0)
    return np.clip(scaled, -32768, 32767).astype(np.int16)


# --- streaming ---------------------------------------------------------------------


class Decoder:
    """Turns incoming bytes of one ``AudioFormat`` into ``AudioFrame``s at its rate.

    Keeps the running stream time: each frame's ``t`` is where the previous one
    ended (the caller timeline starts at ``t0``). Byte chunks must hold whole
    samples; an odd pcm_s16le chunk is a client bug and raises ``AudioFormatError``.
    """

    def __init__(self, fmt: AudioFormat, t0: float = 0.0) -> None:
        self.format = fmt
        self._t0 = t0
        self._samples = 0

    @property
    def time(self) -> float:
        """Stream time (seconds) just after the last decoded sample."""
        return self._t0 + self._samples / self.format.sample_rate

    def decode(self, data: bytes) -> AudioFrame:
        pcm = decode(data, self.format.encoding)
        frame = AudioFrame(pcm=pcm, sample_rate=self.format.sample_rate, t=self.time)
        self._samples += len(pcm)
        return frame


class Encoder:
    """Turns bot audio (int16 at any rate) into bytes of the caller's ``AudioFormat``.

    Resampling is streaming, so sentence after sentence joins without clicks.
    Call ``flush()`` at the end of an utterance to get the resampler's tail, and
    ``reset()`` on barge-in to drop what is buffered.
    """

    def __init__(self, fmt: AudioFormat) -> None:
        self.format = fmt
        self._resampler: StreamResampler | None = None

    def encode(self, pcm: np.ndarray, sample_rate: int) -> bytes:
        return encode(self._resample(pcm, sample_rate, last=False), self.format.encoding)

    def flush(self) -> bytes:
        """Bytes still held by the resampler; the encoder is ready for a new utterance."""
        if self._resampler is None:
            return b""
        tail = self._resampler.process(np.zeros(0, dtype=np.int16), last=True)
        return encode(tail, self.format.encoding)

    def reset(self) -> None:
        if self._resampler is not None:
            self._resampler.reset()

    def _resample(self, pcm: np.ndarray, sample_rate: int, last: bool) -> np.ndarray:
        _check_pcm(pcm)
        if self._resampler is None or self._resampler.src_rate != sample_rate:
            # A new source rate (another TTS voice) starts a fresh stream.
            self._resampler = StreamResampler(sample_rate, self.format.sample_rate)
        return self._resampler.process(pcm, last=last)

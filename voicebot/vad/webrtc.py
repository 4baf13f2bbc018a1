"""WebRTC voice activity detector (``webrtcvad-wheels``).

A GMM-based classifier: microseconds per frame, no model file, binary
decisions. Cheap enough to run on every call; less precise than Silero on
noise and music.
"""

from __future__ import annotations

import numpy as np
import webrtcvad

WEBRTC_RATES = (8000, 16000, 32000, 48000)
WEBRTC_FRAME_MS = (10, 20, 30)


class WebRtcVad:
    """Per-call WebRTC VAD over fixed frames of ``frame_ms`` at ``sample_rate``.

    ``aggressiveness`` 0..3: higher rejects more non-speech (and more quiet
    speech). ``is_speech`` returns 1.0 or 0.0 so it fits the probability
    interface of the endpointer.
    """

    def __init__(self, aggressiveness: int = 2, sample_rate: int = 16000, frame_ms: int = 30) -> None:
        if aggressiveness not in (0, 1, 2, 3):
            raise ValueError(f"webrtc aggressiveness must be 0, 1, 2 or 3, got {aggressiveness!r}")
        if sample_rate not in WEBRTC_RATES:
            raise ValueError(
                f"webrtc VAD sample_rate must be one of {', '.join(map(str, WEBRTC_RATES))}, got {sample_rate}"
            )
        if frame_ms not in WEBRTC_FRAME_MS:
            raise ValueError(f"webrtc VAD frame_ms must be 10, 20 or 30, got {frame_ms}")
        self.aggressiveness = aggressiveness
        self.sample_rate = sample_rate
        self.frame_ms = frame_ms
        self.frame_samples = sample_rate * frame_ms // 1000
        self._vad = webrtcvad.Vad(aggressiveness)

    def is_speech(self, frame_pcm: np.ndarray) -> float:
        """1.0 if the frame (exactly ``frame_samples`` int16 samples) holds speech, else 0.0."""
        if frame_pcm.dtype != np.int16 or frame_pcm.shape != (self.frame_samples,):
            raise ValueError(
                f"webrtc VAD needs {self.frame_samples} int16 samples per frame, "
                f"got {frame_pcm.dtype} {frame_pcm.shape}"
            )
        data = frame_pcm.astype("<i2", copy=False).tobytes()
        return 1.0 if self._vad.is_speech(data, self.sample_rate) else 0.0

    def reset(self) -> None:
        # The C VAD adapts its noise model over time; a fresh instance is a clean start.
        self._vad = webrtcvad.Vad(self.aggressiveness)

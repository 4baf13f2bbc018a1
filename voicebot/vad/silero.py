"""Silero VAD v6 (ONNX) run directly with onnxruntime.

The model ships inside faster-whisper (``faster_whisper/assets/silero_vad_v6.onnx``)
and is provisioned into the model store by ``voicebot models pull``.

Split in two, like every engine here:

* ``SileroVadModel``: the ONNX session. Load once per process and share it
  between calls; ``InferenceSession.run`` is thread-safe.
* ``SileroVad``: one call's detector. It owns the recurrent state (``h``, ``c``)
  and the 64-sample context carried from one window to the next.

The model takes 16 kHz audio in windows of 512 samples (32 ms), each prefixed
with the last 64 samples of the previous window, as faster-whisper's
``SileroVADModel`` feeds it. Its ``input`` is ``(seq, 576)`` and the LSTM runs
along ``seq``, so a batch of consecutive windows equals feeding them one by one.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np

SILERO_RATE = 16000
WINDOW_SAMPLES = 512
CONTEXT_SAMPLES = 64
_STATE_SHAPE = (1, 1, 128)
MODEL_FILENAME = "silero_vad_v6.onnx"
# Gated windows deferred at most this long (32 x 32 ms): one model call for them costs ~0.5x of one call each.
MAX_DEFERRED_WINDOWS = 32


def default_model_path() -> Path | None:
    """The ONNX file inside the installed faster-whisper package, or None if it is not installed."""
    # find_spec locates the package without importing it (which would pull in ctranslate2).
    spec = importlib.util.find_spec("faster_whisper")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "assets" / MODEL_FILENAME


class SileroVadModel:
    """The shared Silero VAD ONNX session (an engine: construct, then ``load()``).

    ``path`` is the provisioned file (``models/store/silero-vad/silero_vad_v6.onnx``);
    without one, the copy inside the installed faster-whisper package is used.
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else default_model_path()
        self._session: Any = None

    @property
    def loaded(self) -> bool:
        return self._session is not None

    def load(self) -> SileroVadModel:
        if self._session is not None:
            return self
        if self.path is None or not self.path.is_file():
            where = self.path if self.path is not None else "faster_whisper/assets (faster-whisper is not installed)"
            raise FileNotFoundError(
                f"Silero VAD model not found at {where}; run `voicebot models pull` or install faster-whisper"
            )
        try:
            import onnxruntime
        except ImportError as exc:
            raise RuntimeError("the Silero VAD needs the onnxruntime package; pip install onnxruntime") from exc
        opts = onnxruntime.SessionOptions()
        # One thread per session: many calls run VADs side by side, and thread
        # pools per call would oversubscribe the cores for a 0.1 ms model.
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.enable_cpu_mem_arena = False
        opts.log_severity_level = 4
        try:
            self._session = onnxruntime.InferenceSession(
                str(self.path), sess_options=opts, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf types
            raise RuntimeError(f"cannot load Silero VAD model {self.path}: {exc}") from exc
        return self

    def run(self, windows: np.ndarray, h: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Speech probabilities of ``(n, 576)`` float32 windows (context + audio), and the next state."""
        if self._session is None:
            raise RuntimeError("SileroVadModel.load() must be called before use")
        probs, hn, cn = self._session.run(None, {"input": windows, "h": h, "c": c})
        return np.asarray(probs, dtype=np.float32).reshape(-1), hn, cn

    def detector(self) -> SileroVad:
        """A fresh per-call detector sharing this session."""
        return SileroVad(self)


class SileroVad:
    """One call's Silero detector: 512-sample (32 ms) frames at 16 kHz, probabilities in [0, 1]."""

    sample_rate = SILERO_RATE
    frame_ms = WINDOW_SAMPLES * 1000 / SILERO_RATE  # 32.0
    frame_samples = WINDOW_SAMPLES

    def __init__(self, model: SileroVadModel) -> None:
        if not model.loaded:
            model.load()
        self._model = model
        self.reset()

    def reset(self) -> None:
        self._deferred: list[np.ndarray] = []
        self._h = np.zeros(_STATE_SHAPE, dtype=np.float32)
        self._c = np.zeros(_STATE_SHAPE, dtype=np.float32)
        self._context = np.zeros(CONTEXT_SAMPLES, dtype=np.float32)

    def is_speech(self, frame_pcm: np.ndarray) -> float:
        """Speech probability of one window of exactly 512 int16 samples."""
        return float(self.probabilities(frame_pcm)[-1])

    def defer(self, frame_pcm: np.ndarray) -> None:
        """The next window, whose probability is not needed (the energy gate silences it). It runs later, in
        one model call with the windows deferred after it and the next window that counts: the state is
        what window-by-window runs give, at about half the CPU (a call's fixed cost is half of a lone window's)."""
        _check_windows(frame_pcm)
        self._deferred.append(frame_pcm.copy())
        if len(self._deferred) >= MAX_DEFERRED_WINDOWS:
            pending, self._deferred = self._deferred, []
            self.probabilities(np.concatenate(pending))

    def probabilities(self, pcm: np.ndarray) -> np.ndarray:
        """Probabilities of consecutive 512-sample windows (``len(pcm)`` a multiple of 512), in one model call;
        any deferred windows run first, in the same call (their probabilities are not returned).

        Equivalent to calling ``is_speech`` window by window; faster for offline use.
        """
        _check_windows(pcm)
        ahead = len(self._deferred)
        if ahead:
            pcm = np.concatenate([*self._deferred, pcm])
            self._deferred = []
        audio = pcm.astype(np.float32).reshape(-1, WINDOW_SAMPLES) / 32768.0
        # Each window is prefixed by the tail of the one before it; the first by
        # the tail carried over from the previous call.
        context = np.empty((len(audio), CONTEXT_SAMPLES), dtype=np.float32)
        context[0] = self._context
        context[1:] = audio[:-1, -CONTEXT_SAMPLES:]
        probs, self._h, self._c = self._model.run(np.concatenate([context, audio], axis=1), self._h, self._c)
        self._context = audio[-1, -CONTEXT_SAMPLES:].copy()
        return probs[ahead:]


def _check_windows(pcm: np.ndarray) -> None:
    if pcm.dtype != np.int16 or pcm.ndim != 1 or len(pcm) == 0 or len(pcm) % WINDOW_SAMPLES:
        raise ValueError(
            f"Silero VAD needs int16 audio in windows of {WINDOW_SAMPLES} samples, got {pcm.dtype} {pcm.shape}"
        )

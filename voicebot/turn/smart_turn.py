"""Smart Turn v3.2: P(the caller's turn is complete) from the last 8 s of audio.

A Whisper-tiny encoder with a classifier head (pipecat-ai/smart-turn, BSD-2-Clause), int8
ONNX, provisioned by ``voicebot models pull`` as ``smart-turn-v3``. The lead's turn-taker
calls it once per pause, after a short VAD silence, with the turn's audio including that
silence (pipecat does the same, at 0.2 s).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from voicebot.config import ModelSettings
from voicebot.models.registry import ModelNotProvisionedError
from voicebot.turn.features import last_window, log_mel

REGISTRY_NAME = "smart-turn-v3"
ONNX_FILE = "smart-turn-v3.2-cpu.onnx"


class SmartTurnModel:
    """``SmartTurnModel(path).load()``; ``.predict(audio16k) -> float`` (> 0.5: complete)."""

    def __init__(self, path: str | Path, threads: int = 1) -> None:
        # A directory holding the ONNX (the provisioned model dir) or the .onnx file itself.
        self.path = Path(path)
        self.threads = threads
        self._session = None

    @classmethod
    def from_settings(cls, models: ModelSettings, threads: int = 1) -> SmartTurnModel:
        return cls(models.dir / REGISTRY_NAME, threads)

    @property
    def onnx_path(self) -> Path:
        return self.path / ONNX_FILE if self.path.is_dir() or not self.path.suffix else self.path

    def load(self) -> SmartTurnModel:
        import onnxruntime as ort

        if not self.onnx_path.is_file():
            raise ModelNotProvisionedError(REGISTRY_NAME, self.onnx_path)
        opts = ort.SessionOptions()
        # One thread: it runs beside ASR on a small CPU, and one 8 s window is small work.
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._session = ort.InferenceSession(str(self.onnx_path), sess_options=opts,
                                             providers=["CPUExecutionProvider"])
        return self

    @property
    def loaded(self) -> bool:
        return self._session is not None

    def features(self, audio16k: np.ndarray) -> np.ndarray:
        """(1, 80, 800) model input for the last 8 s of ``audio16k`` (int16 or float in [-1, 1])."""
        return log_mel(last_window(audio16k))[None]

    def predict(self, audio16k: np.ndarray) -> float:
        """Probability that the turn is complete, from the last 8 s of 16 kHz mono audio."""
        if self._session is None:
            raise RuntimeError("SmartTurnModel.predict before load()")
        if len(audio16k) == 0:
            raise ValueError("SmartTurnModel.predict needs audio, got an empty array")
        (out,) = self._session.run(["logits"], {"input_features": self.features(audio16k)})
        return float(np.asarray(out).reshape(-1)[0])  # the graph ends in a sigmoid already

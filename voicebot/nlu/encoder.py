"""The text encoder engine: multilingual-e5 (or any HF encoder) with mean pooling."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from voicebot.config import ModelSettings, NluSettings
from voicebot.models.registry import resolve_model_dir

E5_FILES = ("config.json", "model.safetensors", "tokenizer.json")


class TextEncoder:
    """Sentence embeddings: mean-pooled last hidden states, L2-normalized (e5's recipe).

    e5 expects a "query: " or "passage: " prefix; callers choose which.
    """

    def __init__(self, settings: NluSettings, models: ModelSettings, threads: int | None = None) -> None:
        """``threads``: torch's intra-op threads, set at load (process-wide); None leaves torch's setting
        alone (a server sets ``nlu.serve_threads`` once all its models are loaded)."""
        self.settings = settings
        self.models = models
        self.threads = threads
        self.model_dir: Path | None = None
        self.model = None
        self.tokenizer = None
        self._lock = threading.Lock()

    def load(self) -> TextEncoder:
        import torch
        from transformers import AutoModel, AutoTokenizer

        if self.threads is not None:
            torch.set_num_threads(self.threads)
        self.model_dir = resolve_model_dir(self.settings.encoder, self.models, E5_FILES)
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir, local_files_only=True)
        # e5 has no pooler: we mean-pool, so none is built (and none is reported missing).
        self.model = AutoModel.from_pretrained(self.model_dir, local_files_only=True, add_pooling_layer=False).eval()
        return self

    def encode(self, texts: list[str], prefix: str = "query: ", max_length: int = 128) -> np.ndarray:
        import torch

        if self.model is None or self.tokenizer is None:
            raise RuntimeError("TextEncoder.load() has not been called")
        batch = self.tokenizer(
            [prefix + t for t in texts], padding=True, truncation=True, max_length=max_length, return_tensors="pt"
        )
        with self._lock, torch.inference_mode():
            hidden = self.model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        pooled = torch.nn.functional.normalize(pooled, dim=-1)
        return pooled.numpy().astype(np.float32)

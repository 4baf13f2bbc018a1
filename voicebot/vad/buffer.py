"""``_GrowingBuffer``: the endpointer's append-only int16 buffer for the ongoing turn's audio."""

from __future__ import annotations

import numpy as np


class _GrowingBuffer:
    """int16 samples appended in O(1) amortized time (partial decodes read it often)."""

    def __init__(self, capacity: int) -> None:
        self._data = np.zeros(max(capacity, 1024), dtype=np.int16)
        self._n = 0

    def __len__(self) -> int:
        return self._n

    def append(self, pcm: np.ndarray) -> None:
        need = self._n + len(pcm)
        if need > len(self._data):
            grown = np.zeros(max(need, 2 * len(self._data)), dtype=np.int16)
            grown[: self._n] = self._data[: self._n]
            self._data = grown
        self._data[self._n : need] = pcm
        self._n = need

    def view(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        stop = self._n if stop is None else min(stop, self._n)
        return self._data[start:stop]

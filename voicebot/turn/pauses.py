"""How long this caller pauses and then goes on: the silence a confident end of turn needs in this call.

Callers pause between the sentences of one concern, each in their own rhythm. To the end-of-turn
models the end of a complete sentence looks like the end of a turn, so a caller who pauses 0.6 s
between sentences is cut in on at every sentence end. ``CallerPauses`` remembers the last few
pauses after which this caller went on (a turn ended early that the caller continued within
``window_ms``: the end-of-turn stage reports them) and asks a confident end to wait a little longer
than the longest of them, at most ``cap_ms``. A caller who has not gone on after an end yet keeps
the plain decision. (Pauses the models waited through are not counted: a single noise frame in a
silence would pass for a caller going on.)
"""

from __future__ import annotations

from collections import deque


class CallerPauses:
    """``went_on(pause_ms)`` after each such pause; ``wait_ms()`` is the silence a confident end needs (0: none)."""

    def __init__(self, cap_ms: float, margin_ms: float = 100.0, window_ms: float = 1500.0, keep: int = 3) -> None:
        if cap_ms < 0 or margin_ms < 0 or window_ms <= 0 or keep < 1:
            raise ValueError(f"caller pauses: need cap_ms >= 0, margin_ms >= 0, window_ms > 0, keep >= 1; got "
                             f"{cap_ms}, {margin_ms}, {window_ms}, {keep}")
        self.cap_ms = cap_ms
        self.margin_ms = margin_ms
        self.window_ms = window_ms
        self._recent: deque[float] = deque(maxlen=keep)

    def went_on(self, pause_ms: float) -> None:
        """The caller spoke again ``pause_ms`` after their last voice (longer than ``window_ms``: a new turn)."""
        if 0.0 < pause_ms <= self.window_ms:
            self._recent.append(pause_ms)

    @property
    def recent(self) -> tuple[float, ...]:
        return tuple(self._recent)

    def wait_ms(self) -> float:
        if self.cap_ms <= 0 or not self._recent:
            return 0.0
        return min(self.cap_ms, max(self._recent) + self.margin_ms)

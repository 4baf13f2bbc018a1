"""How late the server's own event loop runs, so its lag is never blamed on a client.

A ticker sleeps ``interval_s`` at a time and records how much later than asked it woke.
Under CPU saturation the loop falls behind: sends time out and outboxes fill although the
client reads fine. ``lagged_since(t)`` tells the outboxes whether the loop itself stalled
since ``t`` (the gap still running counts too); they then wait or shed audio instead of
dropping the caller as a ``slow_consumer``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable

WINDOW_S = 30.0  # lag samples kept


class LoopLag:
    def __init__(self, interval_s: float = 0.05, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval_s = interval_s
        self.clock = clock
        self._samples: deque[tuple[float, float]] = deque()  # (when it woke, how late)
        self._last_tick = clock()
        self._task: asyncio.Task[None] | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The event loop being watched (None before ``start``)."""
        return self._task.get_loop() if self._task is not None else None

    def start(self) -> None:
        self._last_tick = self.clock()
        self._task = asyncio.create_task(self._run(), name="loop-lag")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            self.record(self.clock())

    def record(self, now: float) -> None:
        """The ticker woke at ``now`` (one interval after the last tick was due)."""
        self._samples.append((now, max(0.0, now - self._last_tick - self.interval_s)))
        self._last_tick = now
        while self._samples and self._samples[0][0] < now - WINDOW_S:
            self._samples.popleft()

    def lagged_since(self, since: float) -> float:
        """The longest stall of the loop (seconds) since ``since``, the one still running included."""
        running = max(0.0, self.clock() - self._last_tick - self.interval_s)
        return max([running, *(lag for when, lag in self._samples if when >= since)])

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

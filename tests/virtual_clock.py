"""An event loop on virtual time, for tests of real-time pacing without wall-clock assertions.

``loop.time()`` starts at 0 and only moves when every task is waiting for a timer: it then
jumps straight to the next timer. So ``asyncio.sleep(0.5)`` takes no real time, and timings
measured with ``loop.time()`` are exact and independent of the machine's load. Code under
test must not wait on threads (use async fakes), or virtual time would run ahead of them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        super().__init__()
        self._now = 0.0

    def time(self) -> float:
        return self._now

    def _run_once(self) -> None:
        ready = self._ready  # type: ignore[attr-defined]
        scheduled = self._scheduled  # type: ignore[attr-defined]
        if not ready and scheduled:
            self._now = max(self._now, scheduled[0]._when)
        super()._run_once()  # type: ignore[misc]


def run_virtual(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion on a fresh virtual-time loop."""
    with asyncio.Runner(loop_factory=VirtualTimeLoop) as runner:
        return runner.run(coro)

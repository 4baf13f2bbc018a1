"""Commit before send: a call's deliveries, in order, each only once its event is in the store.

The store commits on its own writer thread and resolves a ``concurrent.futures.Future``
per event (group commit, about a millisecond). ``CommitOrder`` queues what must happen
after each commit (the agents' fan-out, the caller's copy, bot audio behind it) and runs
it on the event loop in the order it was queued, so nobody ever sees an event that a
crash could still lose, and events and audio keep their order on the wire. Nothing here
blocks the call's pipeline: the session publishes and goes on.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future

log = logging.getLogger(__name__)

Action = Callable[[], None]
DRAIN_S = 5.0


class CommitOrder:
    def __init__(self, name: str = "") -> None:
        self.name = name
        self._queue: deque[tuple[Future[None] | None, Action]] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        self.store_failures = 0

    def after(self, committed: Future[None] | None, action: Action) -> None:
        """Run ``action`` once ``committed`` is resolved (``None``: nothing to wait for) and
        everything queued before it has run."""
        self._queue.append((committed, action))
        self._idle.clear()
        if committed is not None and not committed.done():
            loop = self._loop = self._loop or asyncio.get_running_loop()
            committed.add_done_callback(lambda _f: loop.call_soon_threadsafe(self._release))
        self._release()

    def _release(self) -> None:
        queue = self._queue
        while queue and (queue[0][0] is None or queue[0][0].done()):
            committed, action = queue.popleft()
            if committed is not None and committed.exception() is not None:
                # Delivered anyway (the call goes on), but counted and logged: the store lost it.
                self.store_failures += 1
                log.error("call %s: an event was not stored: %s", self.name, committed.exception())
            try:
                action()
            except Exception:  # noqa: BLE001 - one failed delivery must not block the ones behind it
                log.exception("call %s: delivery failed", self.name)
        if not queue:
            self._idle.set()

    async def drained(self) -> None:
        """Wait until everything queued so far has been delivered (at most ``DRAIN_S``: a store
        that stopped committing must not keep a call from closing)."""
        try:
            await asyncio.wait_for(self._idle.wait(), DRAIN_S)
        except TimeoutError:
            log.error("call %s: %d deliveries still wait for the store", self.name, len(self._queue))

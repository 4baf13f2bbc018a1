"""The frame bus of one call: stages and observers subscribe by frame type.

``publish`` delivers a frame to every subscriber whose types match, in the order
they subscribed, and awaits each: a frame published from inside a handler is
delivered (depth first) before the outer ``publish`` returns, so the order of
events on the wire is the causal order. Handlers must be quick; a stage that has
slow work (an intent model, speech playback) queues it for its own task.
``changed`` is set on every publish, so waiters can sleep until something happens
instead of polling.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)

Handler = Callable[[Any], Awaitable[None]]


class FrameBus:
    def __init__(self, call_id: str = "") -> None:
        self.call_id = call_id
        self._subscribers: list[tuple[tuple[type, ...], Handler]] = []
        self.changed = asyncio.Event()

    def subscribe(self, handler: Handler, *frame_types: type) -> None:
        """Deliver frames of ``frame_types`` (any subclass) to ``handler``."""
        if not frame_types:
            raise ValueError("subscribe needs at least one frame type")
        self._subscribers.append((frame_types, handler))

    async def publish(self, frame: Any) -> None:
        for frame_types, handler in self._subscribers:
            if isinstance(frame, frame_types):
                try:
                    await handler(frame)
                except asyncio.CancelledError:
                    raise
                except Exception:  # noqa: BLE001 - one broken subscriber must not stop the call
                    log.exception("call %s: handler %s failed on %s", self.call_id,
                                  getattr(handler, "__qualname__", handler), type(frame).__name__)
        self.poke()

    def poke(self) -> None:
        """Wake whoever waits for a change (a stage finished work without publishing)."""
        self.changed.set()

    async def wait_change(self) -> None:
        """Sleep until the next publish or poke (callers bound it with ``asyncio.timeout``)."""
        self.changed.clear()
        await self.changed.wait()

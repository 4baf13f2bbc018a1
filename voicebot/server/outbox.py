"""A bounded send queue and one sender task per websocket.

Nothing that produces events or audio ever awaits a client: producers call
``put`` (never blocks) and a sender task drains the queue onto the socket. A
client that stops reading lets the queue grow until ``maxsize``; then it is
dropped with a ``slow_consumer`` error, and every other call goes on as if
nothing happened. Ordering is preserved: events and audio share the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import BaseModel
from starlette.websockets import WebSocket

from voicebot.protocol.base import to_json
from voicebot.protocol.events import ErrorEvent
from voicebot.server.looplag import LoopLag

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Close:
    code: int
    reason: str


def error_event(code: str, message: str, *, fatal: bool = False, call_id: str = "") -> ErrorEvent:
    """The one shape of a protocol error (``type`` "error", a machine code, a human message)."""
    return ErrorEvent(code=code, message=message, fatal=fatal, call_id=call_id)


class Outbox:
    """Ordered, bounded, non-blocking delivery of text and binary messages to one websocket."""

    def __init__(
        self, ws: WebSocket, *, maxsize: int, send_timeout: float, name: str,
        on_slow: Callable[[], None] | None = None,
        slow_error: Callable[[ErrorEvent], str] = to_json,
        lag: LoopLag | None = None,
    ) -> None:
        """``lag``: the server loop's own lag; when the loop stalled, a full queue or a send
        timeout is the server's fault, not the client's (audio is shed, the client kept)."""
        self.ws = ws
        self.lag = lag
        self.shed_audio = 0  # audio frames dropped because the server itself fell behind
        self.maxsize = maxsize
        self.send_timeout = send_timeout
        self.name = name
        self.on_slow = on_slow
        self.slow = False
        self._slow_error = slow_error
        # Unbounded underneath so that the close marker always fits; the bound is enforced in put().
        self._queue: asyncio.Queue[str | bytes | _Close] = asyncio.Queue()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._slow_task: asyncio.Task[None] | None = None
        self.done = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"outbox:{self.name}")

    @property
    def open(self) -> bool:
        return not (self._closing or self.slow or self.done.is_set())

    def send_event(self, message: BaseModel) -> bool:
        """Queue one typed message as JSON text."""
        return self.put(to_json(message))

    def put(self, item: str | bytes) -> bool:
        """Queue a message; False if it was dropped (closing, or the client is too slow)."""
        if not self.open:
            return False
        if self._queue.qsize() >= self.maxsize:
            if self._server_lagged(time.monotonic() - self.send_timeout):
                # The loop stalled and the backlog burst out at once: shed the oldest audio.
                self.shed_audio += self.purge_audio()
                if isinstance(item, bytes):
                    self.shed_audio += 1
                    return False
                # An event is never shed: it goes in even over the bound (the loop is catching up).
            else:
                self._drop_slow()
                return False
        self._queue.put_nowait(item)
        return True

    def purge_audio(self) -> int:
        """Drop queued binary audio not yet sent (barge-in); events stay. Returns the number dropped."""
        kept: list[str | bytes | _Close] = []
        dropped = 0
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if isinstance(item, bytes):
                dropped += 1
            else:
                kept.append(item)
        for item in kept:
            self._queue.put_nowait(item)
        return dropped

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Send what is queued, then close the socket with ``code``."""
        if self._closing or self.done.is_set():
            return
        self._closing = True
        self._queue.put_nowait(_Close(code, reason))

    async def wait_closed(self, *, grace: float) -> None:
        """Wait up to ``grace`` seconds for the sender to finish, then stop it."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.done.wait(), grace)
        if not self.done.is_set() and self._task is not None:
            self._task.cancel()
            self.done.set()

    async def _run(self) -> None:
        try:
            while True:
                item = await self._queue.get()
                if isinstance(item, _Close):
                    await self._close_socket(item.code, item.reason)
                    return
                try:
                    await self._send(item)
                except TimeoutError:
                    self._drop_slow()
                    return
                except Exception as exc:  # noqa: BLE001 - a vanished peer shows up as many exception types
                    log.debug("%s: send failed (%s); peer gone", self.name, exc)
                    return
        finally:
            if not self.slow:
                self.done.set()

    async def _send(self, item: str | bytes) -> None:
        """One send within ``send_timeout``, unless the server's own loop stalled meanwhile."""
        send = self.ws.send_bytes(item) if isinstance(item, bytes) else self.ws.send_text(item)  # type: ignore[arg-type]
        task = asyncio.ensure_future(send)
        started = time.monotonic()
        for attempt in range(2):
            done, _ = await asyncio.wait({task}, timeout=self.send_timeout)
            if done:
                task.result()
                return
            if attempt or not self._server_lagged(started):
                break
            started = time.monotonic()  # the server was behind, not the client: one more send_timeout
        task.cancel()  # a client that still does not read is dropped, whatever the loop does
        raise TimeoutError

    def _server_lagged(self, since: float) -> bool:
        return self.lag is not None and self.lag.lagged_since(since) >= self.send_timeout / 2

    async def _close_socket(self, code: int, reason: str) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(code, reason), self.send_timeout)

    def _drop_slow(self) -> None:
        if self.slow:
            return
        self.slow = True
        log.warning("%s: client is not reading (%d messages queued); dropping it", self.name, self._queue.qsize())
        if self._task is not None and self._task is not asyncio.current_task():
            self._task.cancel()
        while not self._queue.empty():
            self._queue.get_nowait()
        self._slow_task = asyncio.create_task(self._send_slow_error(), name=f"outbox-slow:{self.name}")
        if self.on_slow is not None:
            self.on_slow()

    async def _send_slow_error(self) -> None:
        # The socket is backed up: the error and the close frame go out if the client reads again
        # within send_timeout; if it never does, the connection handler gives up on it.
        try:
            message = self._slow_error(
                error_event("slow_consumer", "client did not read fast enough; connection dropped", fatal=True)
            )
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.ws.send_text(message), self.send_timeout)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.ws.close(1008, "slow consumer"), self.send_timeout)
        finally:
            self.done.set()

"""Cross-worker messages on PostgreSQL LISTEN/NOTIFY: every worker hears every call's events.

``PgEventBus(url, worker_id)``: ``publish(call_id, data, kind="event")`` and
``publish_many`` (a batch in one round trip) from any thread; ``subscribe(callback)``
gets a ``BusMessage`` per message on the bus's listener thread (an asyncio consumer
hands it over with ``loop.call_soon_threadsafe``). ``kind`` says what the payload is —
the bus does not care; the server's federation (``voicebot.server.federation``) sends
``event``, ``call``, ``control`` and ``reply``.

NOTIFY carries at most 8000 bytes: a longer payload goes as numbered chunks, sent in
one transaction (PostgreSQL delivers them together and in order) and joined again
by the listener. Delivery is at most once, in publish order per publisher; a
listener that loses its connection reconnects, and whatever was published meanwhile
is lost to it (the store has the full record: a consumer re-reads a call from there).
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import psycopg

log = logging.getLogger(__name__)

CHANNEL = "voicebot_bus"
_CHUNK_CHARS = 1000  # ASCII-escaped, a chunk is at most ~6 kB: under NOTIFY's 8000-byte limit with the envelope


@dataclass(frozen=True)
class BusMessage:
    worker_id: str  # who published it
    call_id: str
    kind: str  # "event" | "call" | "control" | "reply" (voicebot.server.federation) | ...
    data: str  # the payload as published (an event's JSON for kind "event")


Callback = Callable[[BusMessage], None]


class PgEventBus:
    """Publish and listen on one PostgreSQL channel; ``echo=False`` drops this worker's own messages."""

    def __init__(self, url: str, worker_id: str, *, channel: str = CHANNEL, echo: bool = False) -> None:
        if not channel.isidentifier():
            raise ValueError(f"bus channel must be a plain identifier, not {channel!r}")
        self.url, self.worker_id, self.channel, self.echo = url, worker_id, channel, echo
        self._callbacks: list[Callback] = []
        self._lock = threading.Lock()  # guards the publisher connection and the callback list
        self._publisher: psycopg.Connection | None = None
        self._partial: dict[str, list[str]] = {}
        self._stopped = threading.Event()
        self._listening = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ publish
    def publish(self, call_id: str, data: str, kind: str = "event") -> None:
        """Send one message to every worker listening (blocking: one round trip; call it from a thread)."""
        self.publish_many([(call_id, data, kind)])

    def publish_many(self, messages: list[tuple[str, str, str]]) -> None:
        """Send ``(call_id, data, kind)`` messages in one transaction (one round trip), in order."""
        envelopes = [env for call_id, data, kind in messages for env in self._envelopes(call_id, data, kind)]
        if not envelopes:
            return
        with self._lock:
            for attempt in (0, 1):
                if self._publisher is None or self._publisher.closed:
                    self._publisher = psycopg.connect(self.url, autocommit=True)
                try:
                    with self._publisher.transaction():  # chunks of one message arrive together
                        for env in envelopes:
                            self._publisher.execute("SELECT pg_notify(%s, %s)", (self.channel, env))
                    return
                except psycopg.OperationalError:
                    self._publisher.close()
                    self._publisher = None
                    if attempt:
                        raise

    def _envelopes(self, call_id: str, data: str, kind: str) -> list[str]:
        msg_id = uuid.uuid4().hex[:12]
        pieces = [data[i:i + _CHUNK_CHARS] for i in range(0, len(data), _CHUNK_CHARS)] or [""]
        return [json.dumps({"w": self.worker_id, "c": call_id, "k": kind, "m": msg_id, "i": i, "n": len(pieces),
                            "d": piece}, ensure_ascii=True, separators=(",", ":"))
                for i, piece in enumerate(pieces)]

    # ------------------------------------------------------------------ subscribe
    def subscribe(self, callback: Callback) -> Callable[[], None]:
        """Call ``callback`` for every message from now on; returns the function that unsubscribes.

        The first subscription starts the listener and returns once it is listening, so a message
        published after ``subscribe`` returns is heard.
        """
        with self._lock:
            self._callbacks.append(callback)
            if self._thread is None:
                self._thread = threading.Thread(target=self._listen, name=f"bus:{self.worker_id}", daemon=True)
                self._thread.start()
        self._listening.wait(30.0)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._callbacks:
                    self._callbacks.remove(callback)

        return unsubscribe

    def _listen(self) -> None:
        while not self._stopped.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True) as conn:
                    conn.execute(f"LISTEN {self.channel}")  # an identifier, checked in __init__
                    self._listening.set()
                    while not self._stopped.is_set():
                        # Wakes at least every half second to notice close().
                        for note in conn.notifies(timeout=0.5):
                            self._deliver(note.payload)
            except psycopg.OperationalError as exc:
                if self._stopped.is_set():
                    return
                log.warning("bus: listener connection lost (%s); reconnecting", exc)
                self._partial.clear()
                self._stopped.wait(1.0)  # do not spin against a server that is down

    def _deliver(self, payload: str) -> None:
        try:
            env = json.loads(payload)
            sender, msg_id, index, count = str(env["w"]), str(env["m"]), int(env["i"]), int(env["n"])
            piece = str(env["d"])
        except (ValueError, KeyError, TypeError):
            log.warning("bus: dropped a malformed message on %s", self.channel)
            return
        if sender == self.worker_id and not self.echo:
            return
        if count > 1:
            parts = self._partial.setdefault(msg_id, [])
            if len(parts) != index:  # a chunk went missing (a reconnect): the message is lost
                self._partial.pop(msg_id, None)
                return
            parts.append(piece)
            if len(parts) < count:
                return
            piece = "".join(self._partial.pop(msg_id))
        message = BusMessage(sender, str(env["c"]), str(env["k"]), piece)
        with self._lock:
            callbacks = list(self._callbacks)
        for callback in callbacks:
            try:
                callback(message)
            except Exception:  # one consumer's bug must not stop the others or the listener
                log.exception("bus: subscriber failed on a message for call %s", message.call_id)

    def close(self) -> None:
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(5.0)
        with self._lock:
            if self._publisher is not None:
                self._publisher.close()
                self._publisher = None

"""The agent's words as transcript events (``speaker: "agent"``).

While an agent speaks to a caller, its microphone audio goes through a
``StreamingRecognizer`` of its own on the server's shared ASR client (the same
scheduler, VAD and endpointer settings the caller's side uses). What it
recognizes is published through the hub like any call event, so it is masked
for agents and the store as usual, replayed, and stored; the caller's own
connection does not get it. ``start``/``end`` are seconds of the agent's
stream, counted from its ``audio.start``.

Frames go through a queue to one pump task, so the agent's receive loop never
waits on the recognizer, and audio is recognized in arrival order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from voicebot.frames import AudioFrame, Transcript
from voicebot.protocol.events import TranscriptFinalEvent, TranscriptPartialEvent, WordTiming

if TYPE_CHECKING:
    from voicebot.server.hub import LiveCall
    from voicebot.server.runtime import CallRuntime

log = logging.getLogger(__name__)

_QUEUE_MAX = 500  # ~10 s of 20 ms frames: a recognizer that falls further behind drops audio
_CLOSE_TIMEOUT_S = 5.0


class AgentRecognizer:
    """One agent's speech on one call, transcribed and published (a no-op without an ASR client)."""

    def __init__(self, runtime: CallRuntime, call: LiveCall) -> None:
        self.runtime = runtime
        self.call = call
        self.recognizer: Any = None
        clients = getattr(runtime, "clients", None)
        if clients is not None and getattr(clients, "asr", None) is not None:
            from voicebot.asr.streaming import StreamingRecognizer

            # Its own id at the scheduler: cancelling the agent's partials never touches the caller's.
            self.recognizer = StreamingRecognizer(clients.asr, runtime.settings, f"{call.call_id}~agent",
                                                  clients.vad_model)
        self._queue: asyncio.Queue[AudioFrame | None] = asyncio.Queue(maxsize=_QUEUE_MAX)
        self._pump: asyncio.Task[None] | None = None
        self._watch: asyncio.Task[None] | None = None
        self.dropped = 0

    def start(self) -> None:
        if self.recognizer is None:
            return
        name = self.call.call_id
        self._pump = asyncio.create_task(self._run(), name=f"agent-asr-{name}")
        self._watch = asyncio.create_task(self._results(), name=f"agent-asr-results-{name}")

    def push(self, frame: AudioFrame) -> None:
        if self._pump is None or self._pump.done():
            return
        try:
            self._queue.put_nowait(frame)
        except asyncio.QueueFull:
            self.dropped += 1  # the agent still reaches the caller; only its transcript loses audio

    async def _run(self) -> None:
        assert self.recognizer is not None
        while True:
            frame = await self._queue.get()
            if frame is None:
                self._publish(await self.recognizer.flush())
                return
            try:
                self._publish(await self.recognizer.push(frame))
            except Exception:  # noqa: BLE001 - a transcript is a help; the agent keeps talking
                log.exception("call %s: agent audio could not be recognized", self.call.call_id)

    async def _results(self) -> None:
        """Decodes that finish while no audio arrives (the agent fell silent)."""
        assert self.recognizer is not None
        ready = self.recognizer.results_ready
        while True:
            await ready.wait()
            ready.clear()
            self._publish(await self.recognizer.poll())

    def _publish(self, frames: list[Any]) -> None:
        hub = self.runtime.hub
        for frame in frames:
            if not isinstance(frame, Transcript) or self.call.state == "ended":
                continue
            if frame.is_final:
                if not frame.text.strip():
                    continue
                event: TranscriptPartialEvent | TranscriptFinalEvent = TranscriptFinalEvent(
                    text=frame.text, confidence=round(frame.confidence, 4), start=round(frame.start, 3),
                    end=round(frame.end, 3), speaker="agent",
                    words=[WordTiming(text=w.text, start=round(w.start, 3), end=round(w.end, 3),
                                      p=round(w.probability, 4)) for w in frame.words])
            else:
                event = TranscriptPartialEvent(text=frame.text, confidence=round(frame.confidence, 4),
                                               start=round(frame.start, 3), end=round(frame.end, 3),
                                               committed=frame.committed, speaker="agent")
            hub.publish(self.call, event)

    async def aclose(self) -> None:
        """Transcribe what was said up to now (bounded in time), then stop."""
        if self._pump is None:
            return
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(None)
        with contextlib.suppress(TimeoutError, asyncio.CancelledError, Exception):
            await asyncio.wait_for(asyncio.shield(self._pump), _CLOSE_TIMEOUT_S)
        for task in (self._pump, self._watch):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if self.recognizer is not None:
            await self.recognizer.aclose()

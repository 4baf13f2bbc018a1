"""The recognizer stage: caller audio in, speech and transcript frames out.

It wraps the call's ``StreamingRecognizer`` (VAD, endpointing, streaming ASR) and
publishes what it returns, plus one ``VoiceActivity`` frame per pushed audio
frame (the barge-in controller's early pause and the latency observer's "last
voiced audio" both need it). Decodes that finish while no audio arrives (a
browser sends nothing during silence) are published by a watcher that sleeps on
the recognizer's ``results_ready`` event: no timer, no polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING

from voicebot.call.bus import FrameBus
from voicebot.frames import AudioFrame, VoiceActivity

if TYPE_CHECKING:
    from voicebot.asr.streaming import StreamingRecognizer


class RecognizerStage:
    def __init__(self, recognizer: StreamingRecognizer, bus: FrameBus) -> None:
        self.recognizer = recognizer
        self.bus = bus
        self._watcher: asyncio.Task[None] | None = None

    @property
    def in_speech(self) -> bool:
        return self.recognizer.in_speech

    @property
    def time(self) -> float:
        """Caller stream time analysed so far."""
        return self.recognizer.endpointer.time

    def start(self) -> None:
        self._watcher = asyncio.create_task(self._watch(), name=f"recognizer-{self.bus.call_id}")

    async def push(self, frame: AudioFrame) -> None:
        arrived = time.perf_counter()
        for out in await self.recognizer.push(frame):
            await self.bus.publish(out)
        endpointer = self.recognizer.endpointer
        probability = endpointer.last_probability
        await self.bus.publish(VoiceActivity(
            t=endpointer.time, probability=probability,
            voiced=probability >= endpointer.settings.threshold, wall=arrived,
        ))

    async def _watch(self) -> None:
        ready = self.recognizer.results_ready
        while True:
            await ready.wait()
            ready.clear()
            for out in await self.recognizer.poll():
                await self.bus.publish(out)

    async def end_turn(self) -> None:
        """Close the ongoing turn now (the end-of-turn stage decided)."""
        for out in self.recognizer.end_turn():
            await self.bus.publish(out)

    async def flush(self) -> None:
        """End of caller input: close an open turn and publish every pending result."""
        for out in await self.recognizer.flush():
            await self.bus.publish(out)

    async def aclose(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        await self.recognizer.aclose()

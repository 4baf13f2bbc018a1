"""Engine clients over Ray Serve handles: the call core's ``AsrClient``, ``IntentClient`` and
``SpeechClient`` (``voicebot.call.clients``) with the models on the cluster.

The ASR client keeps the local scheduler's promises where they matter to a call: a final is
never dropped; partials degrade instead of piling up (at most one in flight per call, the
newest waiting behind it replaces an older one, which resolves to ``None``, and one that
waited longer than ``asr.partial_max_age_ms`` is dropped). Batching across calls happens in
the deployment (``@serve.batch``), where the requests of every worker meet.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from voicebot.call.clients import EndOfTurnClient, EngineClients
from voicebot.config import AsrSettings, Settings
from voicebot.engines_ray.deployments import AsrRequest

if TYPE_CHECKING:
    from voicebot.asr.transcriber import TranscriptionResult
    from voicebot.engines_ray.worker import RayEngines
    from voicebot.nlu.intent import IntentPrediction
    from voicebot.tts.base import SynthesizedAudio

log = logging.getLogger(__name__)
LATENCY_WINDOW = 2000


@dataclass
class _Waiting:
    request: AsrRequest
    future: asyncio.Future[TranscriptionResult | None]
    enqueued: float = field(default_factory=time.monotonic)


class RayAsrClient:
    """Decodes on the ASR deployment; finals first-class, partials best effort."""

    def __init__(self, handle: Any, settings: AsrSettings, *, capacity: int = 1) -> None:
        self.handle = handle
        self.settings = settings
        self.capacity = capacity  # finals the deployment decodes at once (batch size x replicas)
        self._finals_in_flight = 0
        self._busy: set[str] = set()  # calls with a partial in flight
        self._waiting: dict[str, _Waiting] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._latencies: dict[str, deque[float]] = {
            "final": deque(maxlen=LATENCY_WINDOW), "partial": deque(maxlen=LATENCY_WINDOW)}
        self._dropped = 0

    async def start(self) -> RayAsrClient:
        return self

    async def aclose(self) -> None:
        for waiting in self._waiting.values():
            if not waiting.future.done():
                waiting.future.set_result(None)
        self._waiting.clear()
        for task in list(self._tasks):
            task.cancel()

    async def transcribe(
        self, audio16k: np.ndarray, *, call_id: str, final: bool, offset: float = 0.0,
        initial_prompt: str | None = None, word_timestamps: bool | None = None,
    ) -> TranscriptionResult | None:
        """Same contract as ``AsrScheduler.transcribe``: ``None`` only for a dropped partial."""
        words = word_timestamps if word_timestamps is not None else final
        beam = self.settings.final_beam_size if final else self.settings.beam_size
        request = AsrRequest(audio16k, final, beam, words, initial_prompt, offset)
        if final:
            self._finals_in_flight += 1
            try:
                return await self._send(request)
            finally:
                self._finals_in_flight -= 1
        if call_id in self._busy:
            older = self._waiting.pop(call_id, None)
            if older is not None and not older.future.done():
                older.future.set_result(None)
                self._dropped += 1
            waiting = _Waiting(request, asyncio.get_running_loop().create_future())
            self._waiting[call_id] = waiting
            return await waiting.future
        return await self._partial(call_id, request)

    async def _partial(self, call_id: str, request: AsrRequest) -> TranscriptionResult | None:
        self._busy.add(call_id)
        try:
            return await self._send(request)
        except Exception:  # noqa: BLE001 - a failed partial is a dropped partial; the final will tell
            log.warning("ASR partial failed on the cluster", exc_info=True)
            return None
        finally:
            self._next(call_id)

    def _next(self, call_id: str) -> None:
        """The call's partial is back: send the one waiting behind it, else the call is free."""
        waiting = self._waiting.pop(call_id, None)
        if waiting is None or waiting.future.done():
            self._busy.discard(call_id)
            return
        task = asyncio.create_task(self._forward(call_id, waiting))  # the call stays busy meanwhile
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _forward(self, call_id: str, waiting: _Waiting) -> None:
        """Send the partial that waited behind the call's previous one (unless it is stale by now)."""
        if time.monotonic() - waiting.enqueued > self.settings.partial_max_age_ms / 1000.0:
            self._dropped += 1
            if not waiting.future.done():
                waiting.future.set_result(None)
            self._next(call_id)
            return
        result = await self._partial(call_id, waiting.request)
        if not waiting.future.done():
            waiting.future.set_result(result)

    async def _send(self, request: AsrRequest) -> TranscriptionResult:
        started = time.monotonic()
        result: TranscriptionResult = await self.handle.transcribe.remote(request)
        latency = time.monotonic() - started
        self._latencies["final" if request.final else "partial"].append(latency)
        return replace(result, extra={**result.extra, "latency_seconds": latency})

    def cancel_partials(self, call_id: str) -> None:
        waiting = self._waiting.pop(call_id, None)
        if waiting is not None and not waiting.future.done():
            waiting.future.set_result(None)

    @property
    def queued_finals(self) -> int:
        """Finals of this worker beyond what the deployment decodes at once (the recognizer
        skips speculative finals while this is above zero)."""
        return max(0, self._finals_in_flight - self.capacity)

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {"finals_in_flight": self._finals_in_flight, "partials_dropped": self._dropped,
                               "queued_partials": len(self._waiting)}
        for kind, lat in self._latencies.items():
            arr = np.array(lat) if lat else None
            out[kind] = {"served": len(lat),
                         "latency_p50": float(np.percentile(arr, 50)) if arr is not None else None,
                         "latency_p95": float(np.percentile(arr, 95)) if arr is not None else None}
        return out


class RayIntentClient:
    def __init__(self, handle: Any) -> None:
        self.handle = handle

    async def predict(self, text: str) -> IntentPrediction:
        return await self.handle.predict.remote(text)


class RaySpeechClient:
    def __init__(self, handle: Any, sample_rate: int) -> None:
        self.handle = handle
        self._sample_rate = sample_rate

    @property
    def sample_rate(self) -> int:
        return self._sample_rate

    async def synthesize(self, sentence: str) -> SynthesizedAudio:
        return await self.handle.synthesize.remote(sentence)


class RayEngineClients(EngineClients):
    """ASR, intent and TTS on Ray Serve; VAD, end of turn and the agents' encoder stay in the worker
    (per-frame or sub-100 ms models whose round trip would cost more than they do)."""

    @classmethod
    def of(cls, engines: RayEngines, settings: Settings) -> RayEngineClients:
        from concurrent.futures import ThreadPoolExecutor

        eng = settings.engines
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="engine")  # Smart Turn only
        return cls(
            asr=RayAsrClient(engines.asr_handle, settings.asr, capacity=eng.asr_max_batch * eng.asr_replicas),
            intent=RayIntentClient(engines.intent_handle),
            speech=RaySpeechClient(engines.speech_handle, engines.sample_rate),
            vad_model=engines.vad_model,
            encoder=engines.encoder,
            load_seconds=dict(engines.load_seconds),
            end_of_turn=(EndOfTurnClient(engines.smart_turn, engines.text_turn, executor)
                         if engines.smart_turn is not None or engines.text_turn is not None else None),
            executor=executor,
        )

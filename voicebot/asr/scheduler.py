"""One model, many calls: the ASR scheduler.

Every call's decode requests go through one ``AsrScheduler``, which owns the
loaded ``Transcriber`` and runs it in a single worker thread (the event loop
never blocks). Policy, in order of importance:

* **finals first**: an end-of-turn transcript is what the dialog waits for, so
  queued finals are always served before any partial;
* **partials degrade, they do not queue up**: each call has at most one pending
  partial; a newer request replaces it (the older one resolves to ``None``), and
  a partial that waited longer than ``partial_max_age_s`` is dropped (``None``);
* **finals degrade under load**: while other finals wait, a final is decoded
  greedily (``asr.beam_size``) instead of with ``asr.final_beam_size``
  (``adaptive_beam``); beam 5 costs ~1.6x the CPU of greedy here;
* **batching**: up to ``max_batch`` requests of the same kind go to the engine
  as one CTranslate2 batch (``Transcriber.transcribe_batch``). On the 2-core CPU
  machine batching does not pay (the encoder costs the same per item batched or
  not and greedy decoding gains little), so ``asr.max_batch`` defaults to 1;
  ``scripts/bench_asr.py --batch N`` measures it on the machine at hand. On a GPU
  it is the main lever.

``stats()`` exposes queue depth and per-request latency (queue wait + decode).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np

from voicebot.asr.transcriber import ASR_SAMPLE_RATE, TranscriptionResult
from voicebot.config import AsrSettings

log = logging.getLogger(__name__)
LATENCY_WINDOW = 2000  # recent requests kept per kind for the latency percentiles


class BatchTranscriber(Protocol):
    """What the scheduler needs from an engine (``Transcriber`` or a test fake)."""

    def transcribe(
        self, audio: np.ndarray, *, beam_size: int | None = None, word_timestamps: bool = True,
        initial_prompt: str | None = None, offset: float = 0.0,
    ) -> TranscriptionResult: ...


@dataclass
class _Request:
    audio: np.ndarray
    call_id: str
    final: bool
    offset: float
    initial_prompt: str | None
    word_timestamps: bool
    enqueued: float
    future: asyncio.Future[TranscriptionResult | None] = field(repr=False)


@dataclass
class _KindStats:
    served: int = 0
    dropped_stale: int = 0
    replaced: int = 0
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW))
    waits: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW))


class AsrScheduler:
    """Serves the decode requests of all concurrent calls with one shared model."""

    def __init__(
        self,
        transcriber: BatchTranscriber,
        settings: AsrSettings | None = None,
        *,
        max_batch: int | None = None,
        partial_max_age_s: float | None = None,
        partial_word_timestamps: bool = False,
        prioritize: bool = True,
        adaptive_beam: bool = True,
        clock: Callable[[], float] = time.monotonic,
        executor: Executor | None = None,
    ) -> None:
        """``executor``: run decodes on this (shared) executor instead of a thread of our own;
        the scheduler still decodes one batch at a time, so it never holds more than one worker."""
        self.transcriber = transcriber
        self.settings = settings or getattr(transcriber, "settings", None) or AsrSettings()
        self.max_batch = max(1, max_batch if max_batch is not None else self.settings.max_batch)
        self.partial_max_age_s = (
            partial_max_age_s if partial_max_age_s is not None else self.settings.partial_max_age_ms / 1000.0
        )
        # Partials only feed LocalAgreement and the live view: no word timings needed,
        # and skipping the cross-attention alignment makes them cheaper.
        self.partial_word_timestamps = partial_word_timestamps
        # prioritize=False is plain first-come-first-served (no final priority, no
        # replacement, no staleness drop): the baseline scripts/bench_asr.py compares against.
        self.prioritize = prioritize
        self.adaptive_beam = adaptive_beam
        self._clock = clock
        self._finals: deque[_Request] = deque()
        self._partials: OrderedDict[str, _Request] = OrderedDict()
        self._wakeup: asyncio.Event | None = None
        self._worker: asyncio.Task[None] | None = None
        self._shared_executor = executor
        self._executor: Executor | None = executor
        self._stats = {"final": _KindStats(), "partial": _KindStats()}
        self._busy_seconds = 0.0
        self._audio_seconds = 0.0
        self._batches = 0
        self._batched_items = 0
        self._started_at: float | None = None
        self._in_flight = 0
        self._hurried = 0  # finals decoded greedily because others were waiting

    # --- lifecycle --------------------------------------------------------------------

    async def start(self) -> AsrScheduler:
        if self._worker is None:
            self._wakeup = asyncio.Event()
            if self._shared_executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="asr")
            self._started_at = self._clock()
            self._worker = asyncio.create_task(self._run(), name="asr-scheduler")
        return self

    async def aclose(self) -> None:
        """Stop the worker; requests still queued resolve to ``None``."""
        if self._worker is not None:
            self._worker.cancel()
            try:
                await self._worker
            except asyncio.CancelledError:
                pass
            self._worker = None
        for req in [*self._finals, *self._partials.values()]:
            if not req.future.done():
                req.future.set_result(None)
        self._finals.clear()
        self._partials.clear()
        if self._executor is not None and self._shared_executor is None:
            self._executor.shutdown(wait=True)
            self._executor = None

    async def __aenter__(self) -> AsrScheduler:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # --- requests ---------------------------------------------------------------------

    async def transcribe(
        self,
        audio16k: np.ndarray,
        *,
        call_id: str,
        final: bool,
        offset: float = 0.0,
        initial_prompt: str | None = None,
        word_timestamps: bool | None = None,
    ) -> TranscriptionResult | None:
        """Decode one turn (``final``) or the turn so far (partial).

        Finals are decoded with ``asr.final_beam_size`` and word timings, partials
        greedily and (unless ``word_timestamps`` asks for them) without timings.
        Returns ``None`` for a partial that was dropped (replaced by a newer one of
        the same call, or too old by the time the model was free).
        """
        if self._worker is None or self._wakeup is None:
            raise RuntimeError("AsrScheduler.start() has not been awaited")
        loop = asyncio.get_running_loop()
        words = word_timestamps if word_timestamps is not None else (final or self.partial_word_timestamps)
        req = _Request(audio16k, call_id, final, offset, initial_prompt, words, self._clock(), loop.create_future())
        if final or not self.prioritize:
            self._finals.append(req)  # FIFO mode: one queue for everything
        else:
            older = self._partials.get(call_id)
            if older is not None and not older.future.done():
                older.future.set_result(None)
                self._stats["partial"].replaced += 1
            # Assigning to an existing key keeps the call's place in the queue (fairness).
            self._partials[call_id] = req
        self._wakeup.set()
        return await req.future

    def cancel_partials(self, call_id: str) -> None:
        """Drop the call's pending partial (its turn ended, or the call hung up)."""
        req = self._partials.pop(call_id, None)
        if req is not None and not req.future.done():
            req.future.set_result(None)

    # --- worker -----------------------------------------------------------------------

    def _next_batch(self) -> list[_Request]:
        if self._finals:
            kind = self._finals[0].final
            batch: list[_Request] = []
            while self._finals and len(batch) < self.max_batch and self._finals[0].final == kind:
                batch.append(self._finals.popleft())
            return [r for r in batch if not r.future.done()] or self._next_batch()
        batch = []
        now = self._clock()
        while self._partials and len(batch) < self.max_batch:
            _call, req = self._partials.popitem(last=False)
            if req.future.done():  # the caller gave up (cancelled)
                continue
            if now - req.enqueued > self.partial_max_age_s:
                req.future.set_result(None)
                self._stats["partial"].dropped_stale += 1
                continue
            batch.append(req)
        return batch

    async def _run(self) -> None:
        assert self._wakeup is not None
        loop = asyncio.get_running_loop()
        while True:
            batch = self._next_batch()
            if not batch:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            started = self._clock()
            self._in_flight = len(batch)
            # Under load (more finals waiting behind this batch), finals are decoded
            # greedily: a little accuracy for a lot of latency when calls pile up.
            hurry = batch[0].final and self.adaptive_beam and self.queued_finals > 0
            if hurry:
                self._hurried += len(batch)
            try:
                results = await loop.run_in_executor(self._executor, self._decode, batch, hurry)
            except Exception as exc:  # noqa: BLE001 - a failed decode fails its requests, not the worker
                log.exception("ASR decode failed")
                for req in batch:
                    if not req.future.done():
                        req.future.set_exception(exc)
                continue
            finally:
                self._in_flight = 0
            done = self._clock()
            self._busy_seconds += done - started
            self._batches += 1
            self._batched_items += len(batch)
            for req, result in zip(batch, results, strict=True):
                kind = self._stats["final" if req.final else "partial"]
                kind.served += 1
                kind.latencies.append(done - req.enqueued)
                kind.waits.append(started - req.enqueued)
                self._audio_seconds += len(req.audio) / ASR_SAMPLE_RATE
                extra = {**result.extra, "queue_seconds": started - req.enqueued,
                         "latency_seconds": done - req.enqueued}
                if not req.future.done():
                    req.future.set_result(replace(result, extra=extra))

    def _decode(self, batch: list[_Request], hurry: bool = False) -> list[TranscriptionResult]:
        """Runs in the worker thread. Requests that cannot share a batch are decoded in groups."""
        final = batch[0].final and not hurry
        beam = self.settings.final_beam_size if final else self.settings.beam_size
        if len(batch) == 1 or not hasattr(self.transcriber, "transcribe_batch"):
            return [
                self.transcriber.transcribe(
                    r.audio, beam_size=beam, word_timestamps=r.word_timestamps, initial_prompt=r.initial_prompt,
                    offset=r.offset,
                )
                for r in batch
            ]
        groups: dict[tuple[bool, str | None], list[int]] = {}
        for i, r in enumerate(batch):
            groups.setdefault((r.word_timestamps, r.initial_prompt), []).append(i)
        results: list[TranscriptionResult | None] = [None] * len(batch)
        for (words, prompt), idx in groups.items():
            out = self.transcriber.transcribe_batch(  # type: ignore[attr-defined]
                [batch[i].audio for i in idx], beam_size=beam, word_timestamps=words, initial_prompt=prompt,
                offsets=[batch[i].offset for i in idx],
            )
            for i, result in zip(idx, out, strict=True):
                results[i] = result
        return [r for r in results if r is not None]

    # --- observability ----------------------------------------------------------------

    @property
    def queued_finals(self) -> int:
        return sum(1 for r in self._finals if r.final and not r.future.done())

    @property
    def queue_depth(self) -> int:
        return sum(1 for r in self._finals if not r.future.done()) + sum(
            1 for r in self._partials.values() if not r.future.done()
        )

    def stats(self) -> dict[str, Any]:
        """Queue depth, per-kind counts and latency percentiles (seconds), utilization, RTF."""
        elapsed = (self._clock() - self._started_at) if self._started_at is not None else 0.0
        out: dict[str, Any] = {
            "queue_depth": self.queue_depth,
            "queued_finals": self.queued_finals,
            "finals_hurried": self._hurried,
            "queued_partials": sum(1 for r in self._partials.values() if not r.future.done()),
            "in_flight": self._in_flight,
            "batches": self._batches,
            "mean_batch": (self._batched_items / self._batches) if self._batches else 0.0,
            "busy_seconds": self._busy_seconds,
            "utilization": (self._busy_seconds / elapsed) if elapsed > 0 else 0.0,
            "audio_seconds": self._audio_seconds,
            "rtf": (self._busy_seconds / self._audio_seconds) if self._audio_seconds else 0.0,
        }
        for name, kind in self._stats.items():
            lat = np.array(kind.latencies) if kind.latencies else None
            out[name] = {
                "served": kind.served,
                "dropped_stale": kind.dropped_stale,
                "replaced": kind.replaced,
                "latency_p50": float(np.percentile(lat, 50)) if lat is not None else None,
                "latency_p95": float(np.percentile(lat, 95)) if lat is not None else None,
                "wait_p50": float(np.percentile(np.array(kind.waits), 50)) if kind.waits else None,
            }
        return out

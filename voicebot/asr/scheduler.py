"""One model, many calls: the ASR scheduler.

Every call's decode requests go through one ``AsrScheduler``, which owns the
loaded ``Transcriber`` and runs it in a single worker thread (the event loop
never blocks). Policy, in order of importance:

* **finals first**: an end-of-turn transcript is what the dialog waits for, so
  queued finals are always served before any partial;
* **confirmed finals before speculative ones**: a final decoded at a pause before the
  turn is known to be over (``speculative=True``) waits behind every confirmed final
  until ``promote(call_id)`` (still before any partial): it may be thrown away;
* **partials degrade, they do not queue up**: each call has at most one pending
  partial; a newer request replaces it (the older one resolves to ``None``), and
  a partial that waited longer than ``partial_max_age_s`` is dropped (``None``);
* **the partial rate adapts to load** (``partial_interval_ms``, asked by each call's
  recognizer before a partial; ``voicebot.asr.partial_rate``); while a final waits, no
  call starts a partial at all. The live transcript coarsens before the answer is late;
* **finals degrade under load**: while other finals wait, a final is decoded
  greedily (``asr.beam_size``) instead of with ``asr.final_beam_size``
  (``adaptive_beam``); beam 5 costs ~1.6x the CPU of greedy here;
* **batching**: up to ``max_batch`` requests of the same kind go to the engine
  as one CTranslate2 batch (``Transcriber.transcribe_batch``). On the 2-core CPU
  machine batching does not pay, finals on phone turns included (a batch shares its
  longest turn's window: 2 finals batched 1.10 vs 1.03 CPU-s each one after another),
  so ``asr.max_batch`` defaults to 1; ``scripts/bench_asr.py --batching 1,2,4 --phone``
  measures it on the machine at hand. On a GPU it is the main lever.

``stats()`` exposes queue depth and per-request latency (queue wait + decode).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np

from voicebot.asr.partial_rate import ACTIVE_PARTIAL_S, adaptive_interval_ms
from voicebot.asr.transcriber import ASR_SAMPLE_RATE, TranscriptionResult
from voicebot.config import AsrSettings

log = logging.getLogger(__name__)
LATENCY_WINDOW = 2000  # recent requests kept per kind for the latency percentiles
COST_SMOOTHING = 0.3  # weight of the newest decode in the running mean decode time per kind


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
    speculative: bool = False  # a final decoded at a pause, before the turn is known to be over


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
        workers: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        executor: Executor | None = None,
    ) -> None:
        """``executor``: run decodes on this (shared) executor instead of threads of our own.
        ``workers``: batches decoded at once (default: the engine's ``concurrency``, 1 if it has none);
        the scheduler never holds more executor threads than that."""
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
        self.workers = max(1, workers if workers is not None else int(getattr(transcriber, "concurrency", 1)))
        self._clock = clock
        self._finals: deque[_Request] = deque()
        self._partials: OrderedDict[str, _Request] = OrderedDict()
        self._wakeup: asyncio.Event | None = None
        self._worker_tasks: list[asyncio.Task[None]] = []
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
        # Running mean wall seconds of one decode per kind (None until measured), and when each
        # call last asked for a partial: the adaptive partial rate is sized from these.
        self._cost: dict[str, float | None] = {"final": None, "partial": None}
        self._partial_calls: dict[str, float] = {}
        self._skipped_partials = 0  # partials a recognizer did not ask for because finals waited
        # Engines that size a final's window themselves take ``final=`` (test fakes may not).
        self._final_kw = _takes_final(getattr(transcriber, "transcribe", None))
        self._final_kw_batch = _takes_final(getattr(transcriber, "transcribe_batch", None))

    # --- lifecycle --------------------------------------------------------------------

    async def start(self) -> AsrScheduler:
        if not self._worker_tasks:
            self._wakeup = asyncio.Event()
            if self._shared_executor is None:
                self._executor = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="asr")
            self._started_at = self._clock()
            self._worker_tasks = [asyncio.create_task(self._run(), name=f"asr-scheduler-{i}")
                                  for i in range(self.workers)]
        return self

    async def aclose(self) -> None:
        """Stop the worker; requests still queued resolve to ``None``."""
        for task in self._worker_tasks:
            task.cancel()
        for task in self._worker_tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
        self._worker_tasks = []
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
        speculative: bool = False,
    ) -> TranscriptionResult | None:
        """Decode one turn (``final``) or the turn so far (partial).

        ``speculative`` (finals only): the turn may not be over yet (a decode started at a
        pause); it waits behind every confirmed final but before any partial, until
        ``promote(call_id)`` says its turn is over.

        Finals are decoded with ``asr.final_beam_size`` and word timings, partials
        greedily and (unless ``word_timestamps`` asks for them) without timings.
        Returns ``None`` for a partial that was dropped (replaced by a newer one of
        the same call, or too old by the time the model was free).
        """
        if not self._worker_tasks or self._wakeup is None:
            raise RuntimeError("AsrScheduler.start() has not been awaited")
        loop = asyncio.get_running_loop()
        words = word_timestamps if word_timestamps is not None else (final or self.partial_word_timestamps)
        req = _Request(audio16k, call_id, final, offset, initial_prompt, words, self._clock(), loop.create_future(),
                       speculative=final and speculative and self.prioritize)
        if not self.prioritize:
            self._finals.append(req)  # FIFO mode: one queue for everything
        elif final:
            self._queue_final(req)
        else:
            older = self._partials.get(call_id)
            if older is not None and not older.future.done():
                older.future.set_result(None)
                self._stats["partial"].replaced += 1
            # Assigning to an existing key keeps the call's place in the queue (fairness).
            self._partials[call_id] = req
            self._partial_calls[call_id] = req.enqueued
        self._wakeup.set()
        return await req.future

    def _queue_final(self, req: _Request) -> None:
        """Confirmed finals in arrival order, then speculative ones in arrival order."""
        if req.speculative:
            self._finals.append(req)
            return
        at = next((i for i, r in enumerate(self._finals) if r.speculative), len(self._finals))
        self._finals.insert(at, req)

    def promote(self, call_id: str) -> None:
        """The call's turn is over: its queued speculative final is now a confirmed one."""
        for req in [r for r in self._finals if r.call_id == call_id and r.speculative]:
            self._finals.remove(req)
            req.speculative = False
            self._queue_final(req)

    def cancel_partials(self, call_id: str) -> None:
        """Drop the call's pending partial (its turn ended, or the call hung up)."""
        req = self._partials.pop(call_id, None)
        self._partial_calls.pop(call_id, None)
        if req is not None and not req.future.done():
            req.future.set_result(None)

    # --- adaptive partial rate --------------------------------------------------------

    def partial_interval_ms(self, base_ms: int) -> int | None:
        """How often (ms of audio) a call in speech should ask for a partial now; ``None``: not now.

        ``None`` while any final waits for the model (the caller's answer comes first). Otherwise
        ``base_ms`` (``asr.partial_interval_ms``) stretched so that the calls making partials,
        each at this interval, keep the worker busy with partials for at most
        ``asr.partial_cpu_share`` of its time, given the measured decode time of a partial;
        capped at ``asr.partial_max_interval_ms`` (the coalescing queue absorbs the rest).
        """
        if not (self.settings.adaptive_partials and self.prioritize):
            return base_ms
        if self.queued_finals > 0:
            self._skipped_partials += 1
            return None
        cost = self._cost["partial"]
        if cost is None:
            return base_ms
        now = self._clock()
        for call, last in list(self._partial_calls.items()):
            if now - last > ACTIVE_PARTIAL_S:
                del self._partial_calls[call]
        return adaptive_interval_ms(base_ms, len(self._partial_calls), cost, self.settings.partial_cpu_share,
                                    self.settings.partial_max_interval_ms, workers=self.workers)

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
            self._in_flight += len(batch)
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
                self._in_flight -= len(batch)
            done = self._clock()
            self._busy_seconds += done - started
            name = "final" if batch[0].final else "partial"
            per_item = (done - started) / len(batch)
            old_cost = self._cost[name]
            self._cost[name] = per_item if old_cost is None else (
                COST_SMOOTHING * per_item + (1 - COST_SMOOTHING) * old_cost)
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
        # The window follows the kind of request, not the beam (greedy finals keep the final's window).
        kw: dict[str, Any] = {"final": batch[0].final} if self._final_kw else {}
        kw_batch: dict[str, Any] = {"final": batch[0].final} if self._final_kw_batch else {}
        if len(batch) == 1 or not hasattr(self.transcriber, "transcribe_batch"):
            return [
                self.transcriber.transcribe(
                    r.audio, beam_size=beam, word_timestamps=r.word_timestamps, initial_prompt=r.initial_prompt,
                    offset=r.offset, **kw,
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
                offsets=[batch[i].offset for i in idx], **kw_batch,
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
            "partials_skipped": self._skipped_partials,
            "partial_decode_s": self._cost["partial"],
            "final_decode_s": self._cost["final"],
            "calls_making_partials": len(self._partial_calls),
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


def _takes_final(method: Callable[..., Any] | None) -> bool:
    if method is None:
        return False
    try:
        return "final" in inspect.signature(method).parameters
    except (TypeError, ValueError):
        return False

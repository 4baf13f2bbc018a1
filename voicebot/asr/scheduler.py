"""One model, many calls: the ASR scheduler.

Every call's decode requests go through one ``AsrScheduler``, which owns the
loaded ``Transcriber`` and decides what is decoded next; its ``DecodePool``
(``voicebot.asr.decode_pool``) runs the decodes in worker threads (the event loop
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
  recognizer before a partial; ``voicebot.asr.partial_rate``); while a final waits (queued
  pause-segment decodes included), no call starts a partial at all. The live transcript
  coarsens before the answer is late. (Letting partials start beside queued segment decodes
  was measured at 16 calls and did not win: docs/capacity/cost-and-load.md "Fifth round");
* **a worker stays free for finals**: with several calls making partials, partials never
  take the last idle decode worker, so a final starts at once instead of waiting out a
  partial decode; with a partial lane (``asr.partial_lane``: the engine decodes partials on a
  model object of their own, its thread at nice ``asr.partial_nice``) partials have a worker of
  their own and never take a final's;
* **finals degrade under load**: while other finals wait, a final is decoded
  greedily (``asr.beam_size``) instead of with ``asr.final_beam_size``
  (``adaptive_beam``). On 28 phone turns (10 s bucketed windows, word timings, the temperature
  fallback for both) beam 5 cost 1.18x the CPU of greedy and read WER 0.374 against 0.434; beam 2
  was greedy's equal in both
  (docs/capacity/asr-decoding.md "Threads of a lone decode"): a hurried final saves ~15% of its CPU;
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
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from voicebot.asr.decode_pool import ANY, FINALS, PARTIALS, BatchTranscriber, DecodePool
from voicebot.asr.decode_pool import DecodeRequest as _Request
from voicebot.asr.partial_rate import ACTIVE_PARTIAL_S, adaptive_interval_ms
from voicebot.asr.transcriber import ASR_SAMPLE_RATE, TranscriptionResult
from voicebot.config import AsrSettings

__all__ = ["AsrScheduler", "BatchTranscriber", "DecodeSpan"]
LATENCY_WINDOW = 2000  # recent requests kept per kind for the latency percentiles


@dataclass(frozen=True)
class DecodeSpan:
    """One served decode, for timelines (``AsrScheduler.observers``; times on the scheduler's clock, s)."""

    call_id: str
    use: str  # what became of it: final | speculative | partial | discarded (its requester had gone)
    audio_s: float
    enqueued: float
    started: float
    done: float


@dataclass
class _KindStats:
    served: int = 0
    dropped_stale: int = 0
    replaced: int = 0
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW))
    waits: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW))
    decodes: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW))


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
        partial_lane: bool | None = None,
    ) -> None:
        """``executor``: run decodes on this (shared) executor instead of threads of our own.
        ``workers``: batches decoded at once (default: the engine's ``concurrency``, 1 if it has none);
        the scheduler never holds more executor threads than that.
        ``partial_lane``: partials on a worker of their own (default: the engine's ``partial_lane``)."""
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
        self._pool = DecodePool(transcriber, self.settings, workers=self.workers, clock=clock, executor=executor,
                                partial_lane=partial_lane)
        self._stats = {"final": _KindStats(), "partial": _KindStats()}
        self._audio_seconds = 0.0
        self._started_at: float | None = None
        # When each call last asked for a partial: the adaptive partial rate is sized from these
        # and from the pool's measured decode time of a partial.
        self._partial_calls: dict[str, float] = {}
        self._skipped_partials = 0  # partials a recognizer did not ask for because finals waited
        # Decode seconds (wall, per worker) by what became of the decode: the cost model's split of the ASR work.
        # "discarded": its requester had gone (a pause decode voided by speech, a partial of an ended turn).
        self.decode_seconds = {"final": 0.0, "speculative": 0.0, "partial": 0.0, "discarded": 0.0}
        # Called on the event loop with every served decode (keep it short): scripts/bench_turn_timeline.py.
        self.observers: list[Callable[[DecodeSpan], None]] = []

    # --- lifecycle --------------------------------------------------------------------

    async def start(self) -> AsrScheduler:
        if not self._pool.running:
            self._started_at = self._clock()
            self._pool.start(self._next_batch, self._hurry, self._served)
        return self

    async def aclose(self) -> None:
        """Stop the workers; requests still queued resolve to ``None``."""
        await self._pool.aclose()
        for req in [*self._finals, *self._partials.values()]:
            if not req.future.done():
                req.future.set_result(None)
        self._finals.clear()
        self._partials.clear()

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
        window_s: int | None = None,
    ) -> TranscriptionResult | None:
        """Decode one turn (``final``) or the turn so far (partial).

        ``speculative`` (finals only): the turn may not be over yet (a decode started at a
        pause); it waits behind every confirmed final but before any partial, until
        ``promote(call_id)`` says its turn is over.

        ``window_s``: the encoder window to decode in (engines that take it; e.g. a segment of a
        turn after a cut gets a window sized to itself, not the short whole turn's 30 s one).

        Finals are decoded with ``asr.final_beam_size`` and word timings, partials
        greedily and (unless ``word_timestamps`` asks for them) without timings.
        Returns ``None`` for a partial that was dropped (replaced by a newer one of
        the same call, or too old by the time the model was free).
        """
        if not self._pool.running:
            raise RuntimeError("AsrScheduler.start() has not been awaited")
        loop = asyncio.get_running_loop()
        words = word_timestamps if word_timestamps is not None else (final or self.partial_word_timestamps)
        req = _Request(audio16k, call_id, final, offset, initial_prompt, words, self._clock(), loop.create_future(),
                       speculative=final and speculative and self.prioritize, window_s=window_s)
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
        self._pool.wake()
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
        cost = self._pool.cost["partial"]
        if cost is None:
            return base_ms
        now = self._clock()
        for call, last in list(self._partial_calls.items()):
            if now - last > ACTIVE_PARTIAL_S:
                del self._partial_calls[call]
        return adaptive_interval_ms(base_ms, len(self._partial_calls), cost, self.settings.partial_cpu_share,
                                    self.settings.partial_max_interval_ms,
                                    workers=1 if self._pool.partial_lane else self.workers)

    # --- worker -----------------------------------------------------------------------

    def _next_batch(self, lane: str = ANY) -> list[_Request]:
        """The next batch for a worker of ``lane``: ANY (finals first, else partials), FINALS or PARTIALS."""
        if self._finals and lane != PARTIALS:
            kind = self._finals[0].final
            batch: list[_Request] = []
            while self._finals and len(batch) < self.max_batch and self._finals[0].final == kind:
                batch.append(self._finals.popleft())
            return [r for r in batch if not r.future.done()] or self._next_batch(lane)
        if lane == FINALS or (lane == ANY and self._keep_worker_for_finals()):
            return []
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

    def _keep_worker_for_finals(self) -> bool:
        """With several calls making partials, partials never take the last free worker: a final that
        comes in then starts at once instead of waiting out a partial decode (1-3 s under load)."""
        return (self.prioritize and self.settings.adaptive_partials and self.workers > 1
                and len(self._partial_calls) > 1 and self._pool.in_flight >= self.workers - 1)

    def _hurry(self, batch: list[_Request]) -> bool:
        """Under load (more finals waiting behind this batch), finals are decoded greedily:
        a little accuracy for a lot of latency when calls pile up."""
        return batch[0].final and self.adaptive_beam and self.queued_confirmed_finals > 0

    def _served(self, req: _Request, result: TranscriptionResult, started: float, done: float) -> None:
        kind = self._stats["final" if req.final else "partial"]
        spent = (done - started) / max(1, req.batch_size)
        what = ("discarded" if req.future.done() else "partial" if not req.final
                else "speculative" if req.speculative else "final")
        self.decode_seconds[what] += spent
        for observe in self.observers:
            observe(DecodeSpan(req.call_id, what, len(req.audio) / ASR_SAMPLE_RATE, req.enqueued, started, done))
        kind.served += 1
        kind.latencies.append(done - req.enqueued)
        kind.waits.append(started - req.enqueued)
        kind.decodes.append(done - started)
        self._audio_seconds += len(req.audio) / ASR_SAMPLE_RATE
        extra = {**result.extra, "queue_seconds": started - req.enqueued, "latency_seconds": done - req.enqueued}
        if not req.future.done():
            req.future.set_result(replace(result, extra=extra))

    # --- observability ----------------------------------------------------------------

    @property
    def queued_finals(self) -> int:
        if not self._finals:  # asked on every pushed frame of every call: the common case is cheap
            return 0
        return sum(1 for r in self._finals if r.final and not r.future.done())

    @property
    def queued_confirmed_finals(self) -> int:
        """Finals of turns known to be over; queued segment decodes (speculative) do not make others hurry."""
        return sum(1 for r in self._finals if r.final and not r.speculative and not r.future.done())

    @property
    def queue_depth(self) -> int:
        return sum(1 for r in self._finals if not r.future.done()) + sum(
            1 for r in self._partials.values() if not r.future.done()
        )

    def stats(self) -> dict[str, Any]:
        """Queue depth, per-kind counts and latency percentiles (seconds), utilization, RTF."""
        elapsed = (self._clock() - self._started_at) if self._started_at is not None else 0.0
        pool = self._pool
        out: dict[str, Any] = {
            "queue_depth": self.queue_depth,
            "queued_finals": self.queued_finals,
            "finals_hurried": self._pool.hurried,
            "partials_skipped": self._skipped_partials,
            "partial_decode_s": self._pool.cost["partial"],
            "final_decode_s": self._pool.cost["final"],
            "calls_making_partials": len(self._partial_calls),
            "queued_partials": sum(1 for r in self._partials.values() if not r.future.done()),
            "in_flight": pool.in_flight,
            "partial_lane": pool.partial_lane,
            "lone_encodes": getattr(getattr(self.transcriber, "models_set", None), "lone_encodes", 0),
            "fallback_decodes": getattr(self.transcriber, "fallback_decodes", 0),
            "fallback_rounds": getattr(self.transcriber, "fallback_rounds", 0),
            "batches": pool.batches,
            "mean_batch": (pool.batched_items / pool.batches) if pool.batches else 0.0,
            "busy_seconds": pool.busy_seconds,
            "decode_seconds": dict(self.decode_seconds),
            "utilization": (pool.busy_seconds / elapsed) if elapsed > 0 else 0.0,
            "audio_seconds": self._audio_seconds,
            "rtf": (pool.busy_seconds / self._audio_seconds) if self._audio_seconds else 0.0,
        }
        for name, kind in self._stats.items():
            lat = np.array(kind.latencies) if kind.latencies else None
            out[name] = {
                "served": kind.served,
                "dropped_stale": kind.dropped_stale,
                "replaced": kind.replaced,
                "latency_p50": float(np.percentile(lat, 50)) if lat is not None else None,
                "latency_p95": float(np.percentile(lat, 95)) if lat is not None else None,
                "wait_p50": _pct(kind.waits, 50),
                "wait_p95": _pct(kind.waits, 95),
                "decode_p50": _pct(kind.decodes, 50),
                "decode_p95": _pct(kind.decodes, 95),
            }
        return out


def _pct(values: deque[float], q: float) -> float | None:
    return float(np.percentile(np.array(values), q)) if values else None

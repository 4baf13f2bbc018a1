"""The ASR decode workers: what runs the batches the scheduler hands out.

``AsrScheduler`` decides *what* is decoded next (finals first, partials coalesced);
``DecodePool`` runs it: ``workers`` coroutines, each taking the next batch and decoding it
in an executor thread (the event loop never blocks), so at most ``workers`` decodes run at
once. It keeps the running mean decode time per kind, which the adaptive partial rate is
sized from, and the busy time behind ``stats()``'s utilization.

An engine with a partial lane (``partial_lane`` true: ``asr.partial_lane``, partials on a model
object of their own at low CPU priority, ``voicebot.asr.replicas``) gets one more worker, on a
thread of its own, that decodes only partials; the ``workers`` then decode only finals.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from voicebot.asr.transcriber import TranscriptionResult
from voicebot.config import AsrSettings

log = logging.getLogger(__name__)
COST_SMOOTHING = 0.3  # weight of the newest decode in the running mean decode time per kind


class BatchTranscriber(Protocol):
    """What the scheduler needs from an engine (``Transcriber`` or a test fake)."""

    def transcribe(
        self, audio: np.ndarray, *, beam_size: int | None = None, word_timestamps: bool = True,
        initial_prompt: str | None = None, offset: float = 0.0,
    ) -> TranscriptionResult: ...


@dataclass(eq=False)  # identity: a queue's remove() must never compare audio arrays
class DecodeRequest:
    audio: np.ndarray
    call_id: str
    final: bool
    offset: float
    initial_prompt: str | None
    word_timestamps: bool
    enqueued: float
    future: asyncio.Future[TranscriptionResult | None] = field(repr=False)
    speculative: bool = False  # a final decoded at a pause, before the turn is known to be over
    window_s: int | None = None  # the encoder window the caller chose (engines that take ``window_s``)
    batch_size: int = 1  # requests decoded with it in one batch (set when it is decoded)


# What the pool asks its scheduler: the next batch for a worker of a lane (ANY, FINALS or PARTIALS; empty: nothing
# to do), whether to decode a batch of finals greedily (others wait behind it), and what to do with each served request.
ANY, FINALS, PARTIALS = "any", "final", "partial"
NextBatch = Callable[[str], list[DecodeRequest]]
Hurry = Callable[[list[DecodeRequest]], bool]
Served = Callable[[DecodeRequest, TranscriptionResult, float, float], None]


class DecodePool:
    """``workers`` decodes at a time, on ``executor`` (shared) or on threads of its own."""

    def __init__(self, transcriber: BatchTranscriber, settings: AsrSettings, *, workers: int,
                 clock: Callable[[], float] = time.monotonic, executor: Executor | None = None,
                 partial_lane: bool | None = None) -> None:
        self.transcriber = transcriber
        self.settings = settings
        self.workers = max(1, workers)
        self._clock = clock
        self._shared_executor = executor
        self._executor: Executor | None = executor
        self._tasks: list[asyncio.Task[None]] = []
        self.wakeup: asyncio.Event | None = None
        # Running mean wall seconds of one decode per kind (None until measured).
        self.cost: dict[str, float | None] = {"final": None, "partial": None}
        self.busy_seconds = 0.0
        self.batches = 0
        self.batched_items = 0
        self.in_flight = 0
        self.finals_in_flight = 0  # final-quality decodes (confirmed or at a pause) running now
        self.hurried = 0  # finals decoded greedily because others were waiting
        # Partials on a worker (and thread) of their own: the engine decodes them on a model object of their own.
        self.partial_lane = bool(getattr(transcriber, "partial_lane", False) if partial_lane is None else partial_lane)
        self._partial_executor: Executor | None = None
        # Engines that size a final's window themselves take ``final=`` (test fakes may not).
        self._final_kw = accepts(getattr(transcriber, "transcribe", None), "final")
        self._final_kw_batch = accepts(getattr(transcriber, "transcribe_batch", None), "final")
        self._window_kw = accepts(getattr(transcriber, "transcribe", None), "window_s")
        self._window_kw_batch = accepts(getattr(transcriber, "transcribe_batch", None), "window_s")
        self._fallback_kw = accepts(getattr(transcriber, "transcribe", None), "fallback")
        self._fallback_kw_batch = accepts(getattr(transcriber, "transcribe_batch", None), "fallback")

    @property
    def running(self) -> bool:
        return bool(self._tasks)

    def start(self, next_batch: NextBatch, hurry: Hurry, served: Served) -> None:
        if self._tasks:
            return
        self.wakeup = asyncio.Event()
        if self._shared_executor is None:
            self._executor = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="asr")
        lane = FINALS if self.partial_lane else ANY
        self._tasks = [asyncio.create_task(self._run(next_batch, hurry, served, lane, self._executor),
                                           name=f"asr-decode-{i}") for i in range(self.workers)]
        if self.partial_lane:
            # Its own thread: on a shared executor of ``workers`` threads a partial could hold a final's thread.
            self._partial_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="asr-partial")
            self._tasks.append(asyncio.create_task(
                self._run(next_batch, hurry, served, PARTIALS, self._partial_executor), name="asr-decode-partial"))

    def wake(self) -> None:
        if self.wakeup is not None:
            self.wakeup.set()

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
        self._tasks = []
        if self._executor is not None and self._shared_executor is None:
            self._executor.shutdown(wait=True)
            self._executor = None
        if self._partial_executor is not None:
            self._partial_executor.shutdown(wait=True)
            self._partial_executor = None

    async def _run(self, next_batch: NextBatch, hurry: Hurry, served: Served, lane: str,
                   executor: Executor | None) -> None:
        assert self.wakeup is not None
        loop = asyncio.get_running_loop()
        while True:
            batch = next_batch(lane)
            if not batch:
                self.wakeup.clear()
                await self.wakeup.wait()
                continue
            started = self._clock()
            self.in_flight += len(batch)
            greedy = hurry(batch)
            if greedy:
                self.hurried += len(batch)
            busy = self.finals_in_flight > 0  # another final-quality decode runs beside this one
            finals = len(batch) if batch[0].final else 0
            self.finals_in_flight += finals
            try:
                results = await loop.run_in_executor(executor, self._decode, batch, greedy, busy)
            except Exception as exc:  # noqa: BLE001 - a failed decode fails its requests, not the worker
                log.exception("ASR decode failed")
                for req in batch:
                    if not req.future.done():
                        req.future.set_exception(exc)
                continue
            finally:
                self.in_flight -= len(batch)
                self.finals_in_flight -= finals
            done = self._clock()
            self.busy_seconds += done - started
            name = "final" if batch[0].final else "partial"
            per_item = (done - started) / len(batch)
            old = self.cost[name]
            self.cost[name] = per_item if old is None else COST_SMOOTHING * per_item + (1 - COST_SMOOTHING) * old
            self.batches += 1
            self.batched_items += len(batch)
            for req, result in zip(batch, results, strict=True):
                req.batch_size = len(batch)
                served(req, result, started, done)

    def _decode(self, batch: list[DecodeRequest], hurry: bool = False,
                busy: bool = False) -> list[TranscriptionResult]:
        """Runs in the worker thread. Requests that cannot share a batch are decoded in groups. ``busy``: another
        final-quality decode ran when this one started (``asr.final_fallback = "alone"``)."""
        final = batch[0].final and not hurry
        beam = self.settings.final_beam_size if final else self.settings.beam_size
        # The window follows the kind of request, not the beam (greedy finals keep the final's window).
        kw: dict[str, Any] = {"final": batch[0].final} if self._final_kw else {}
        kw_batch: dict[str, Any] = {"final": batch[0].final} if self._final_kw_batch else {}
        rule = self.settings.final_fallback
        if batch[0].final and ((hurry and not self.settings.hurried_fallback) or rule == "never"
                               or (busy and rule == "alone")):
            # A failed decode is not re-sampled (up to 5 temperatures x 5 samples): the answer waiting on it (and
            # the queue behind it) is worth more than the rare loop the hallucination guards would blank anyway.
            kw.update({"fallback": False} if self._fallback_kw else {})
            kw_batch.update({"fallback": False} if self._fallback_kw_batch else {})
        if len(batch) == 1 or not hasattr(self.transcriber, "transcribe_batch"):
            return [
                self.transcriber.transcribe(
                    r.audio, beam_size=beam, word_timestamps=r.word_timestamps, initial_prompt=r.initial_prompt,
                    offset=r.offset, **kw, **({"window_s": r.window_s} if self._window_kw and r.window_s else {}),
                )
                for r in batch
            ]
        groups: dict[tuple[bool, str | None, int | None], list[int]] = {}
        for i, r in enumerate(batch):
            groups.setdefault((r.word_timestamps, r.initial_prompt, r.window_s), []).append(i)
        results: list[TranscriptionResult | None] = [None] * len(batch)
        for (words, prompt, window), idx in groups.items():
            out = self.transcriber.transcribe_batch(  # type: ignore[attr-defined]
                [batch[i].audio for i in idx], beam_size=beam, word_timestamps=words, initial_prompt=prompt,
                offsets=[batch[i].offset for i in idx], **kw_batch,
                **({"window_s": window} if self._window_kw_batch and window else {}),
            )
            for i, result in zip(idx, out, strict=True):
                results[i] = result
        return [r for r in results if r is not None]


def accepts(method: Callable[..., Any] | None, name: str) -> bool:
    """Whether an engine's or ASR client's method takes the keyword ``name`` (remote ones may not)."""
    if method is None:
        return False
    try:
        return name in inspect.signature(method).parameters
    except (TypeError, ValueError):
        return False

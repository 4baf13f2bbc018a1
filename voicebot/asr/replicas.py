"""The CTranslate2 model objects behind one ``Transcriber``, and which one a decode runs on.

CTranslate2 fixes a model object's threads at load: ``num_workers`` replicas (decodes at once,
weights shared) of ``cpu_threads`` intra-op threads each, the same for every call. On the 2-core
box a Whisper decode splits unevenly (scripts/bench_asr.py --lone, phone turns, beam 5):

* the **encoder** (one big batched pass) gets faster with a second thread, at the same CPU;
* the **beam search** (hundreds of small steps) gets *slower* with one, and costs more CPU.

So the finals' replicas stay at one thread each (``asr.decode_workers`` of them), and up to two
more objects sit beside them, each optional:

* ``wide``: one replica of ``asr.lone_encode_threads`` threads that only **encodes**, for a decode
  that starts while no other runs on the finals' object (one call: the second core idles
  otherwise); its encoder output goes on to the finals' replica for the beam search and word
  timings (the same text: tests/test_asr_lanes.py);
* ``partial``: one replica of one thread for the **partials** (``asr.partial_lane``), its threads at
  nice ``asr.partial_nice``: partials take only CPU that finals, the event loop and the light models
  leave, so the live transcript coarsens before the caller's answer does.

Each extra object holds its own copy of the weights (whisper-base int8: ~115 MB resident).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def thread_ids() -> set[int]:
    """This process's thread ids (Linux; empty elsewhere)."""
    tasks = Path(f"/proc/{os.getpid()}/task")
    try:
        return {int(t.name) for t in tasks.iterdir()}
    except (OSError, ValueError):
        return set()


def set_thread_nice(tids: set[int], level: int) -> int:
    """Put these threads at nice ``level`` (never raise their priority). Returns how many were changed."""
    done = 0
    for tid in tids:
        try:
            if os.getpriority(os.PRIO_PROCESS, tid) < level:
                os.setpriority(os.PRIO_PROCESS, tid, level)
                done += 1
        except OSError:  # the thread ended, or the OS refused
            continue
    return done


@dataclass
class ModelSet:
    """The finals' model (``main``) and the optional ``wide`` encoder and ``partial`` lane objects."""

    main: Any
    wide: Any | None = None
    partial: Any | None = None
    partial_tids: tuple[int, ...] = ()  # the partial object's CTranslate2 threads (Linux), at nice partial_nice
    _main_running: int = 0
    _count: threading.Lock = field(default_factory=threading.Lock, repr=False)
    lone_encodes: int = 0  # decodes whose encoder ran on ``wide``

    @classmethod
    def load(cls, make: Callable[[int, int], Any], *, workers: int, threads: int, lone_encode_threads: int,
             partial_lane: bool, partial_nice: int) -> ModelSet:
        """``make(cpu_threads, num_workers)`` loads one WhisperModel (CPU)."""
        main = make(threads, workers)
        wide = make(lone_encode_threads, 1) if lone_encode_threads > 1 else None
        partial = None
        tids: set[int] = set()
        if partial_lane:
            before = thread_ids()
            partial = make(1, 1)
            # The threads that load started are the partial object's replica (Linux; elsewhere none are found
            # and partials just run at the decodes' priority).
            tids = thread_ids() - before
            if partial_nice > 0:
                set_thread_nice(tids, partial_nice)
            log.info("asr: partials on a model of their own, %d thread(s) at nice %d", len(tids), partial_nice)
        return cls(main=main, wide=wide, partial=partial, partial_tids=tuple(sorted(tids)))

    def for_decode(self, final: bool) -> Any:
        """The object a decode's beam search (and, unless ``encoder_for`` says otherwise, encoder) runs on."""
        return self.partial if (not final and self.partial is not None) else self.main

    @contextmanager
    def running(self, model: Any) -> Iterator[bool]:
        """Count the decodes in flight on ``main``; yields whether this one runs alone there (then the wide
        encoder may take its encoder pass: no other decode wants the second core)."""
        if model is not self.main or self.wide is None:
            yield False
            return
        with self._count:
            self._main_running += 1
            alone = self._main_running == 1
        try:
            yield alone
        finally:
            with self._count:
                self._main_running -= 1

    def encoder_for(self, model: Any, alone: bool) -> Any:
        """The object that encodes a decode on ``model``: ``wide`` for a lone one on ``main``, else ``model`` itself."""
        if alone and self.wide is not None and model is self.main:
            self.lone_encodes += 1
            return self.wide
        return model

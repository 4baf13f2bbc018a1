"""Engine thread pools that say where the time goes.

Calls reach the synchronous models through executor threads. ``EnginePool`` is such an
executor, named (its threads carry the pool's name down to the kernel, so
``/proc/<pid>/task/*/comm``, ``top -H`` and py-spy show which pool burns the CPU), and it
measures, per kind of work (``smart_turn``, ``intent``, ``tts``, ...), how long a job waited
for a thread, how long it ran, and the CPU the running thread itself spent.
``stats()`` gives the percentiles; the server exposes them on ``/metrics``.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")
WINDOW = 2000  # recent jobs kept per kind for the percentiles
_PR_SET_NAME, _PR_GET_NAME = 15, 16


def _libc() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None


_LIBC = _libc()


def set_native_thread_name(name: str) -> None:
    """Name the calling OS thread (15 bytes, Linux; elsewhere a no-op). Threads it starts later
    (CTranslate2, OpenMP and onnxruntime workers) inherit the name."""
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_NAME, ctypes.c_char_p(name.encode()[:15]), 0, 0, 0)


def native_thread_name() -> str:
    if _LIBC is None:
        return threading.current_thread().name
    buf = ctypes.create_string_buffer(16)
    _LIBC.prctl(_PR_GET_NAME, buf, 0, 0, 0)
    return buf.value.decode(errors="replace")


def renice_threads(name: str, increment: int) -> int:
    """Lower the CPU priority of this process's threads named ``name`` by ``increment`` nice levels
    (Linux: nice is per thread). Returns how many threads were reniced (0 elsewhere, or on refusal)."""
    import os

    tasks = Path(f"/proc/{os.getpid()}/task")
    if increment <= 0 or not tasks.is_dir():
        return 0
    done = 0
    for task in tasks.iterdir():
        try:
            if (task / "comm").read_text().strip() != name:
                continue
            tid = int(task.name)
            os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + increment))
            done += 1
        except (OSError, ValueError):
            continue
    return done


@contextmanager
def native_thread_named(name: str) -> Iterator[None]:
    """Name the calling thread for a while (a model load: the threads the model starts keep the name)."""
    before = native_thread_name()
    set_native_thread_name(name)
    try:
        yield
    finally:
        set_native_thread_name(before)


@dataclass
class _Times:
    jobs: int = 0
    busy_s: float = 0.0
    cpu_s: float = 0.0
    waits: deque[float] = field(default_factory=lambda: deque(maxlen=WINDOW))
    runs: deque[float] = field(default_factory=lambda: deque(maxlen=WINDOW))


@dataclass(frozen=True)
class KindTimes:
    """One kind of job on one pool: counts, totals (seconds) and percentiles (milliseconds)."""

    pool: str
    kind: str
    jobs: int
    busy_s: float
    cpu_s: float  # CPU of the pool thread itself (threads a library starts are not in it)
    wait_p50_ms: float
    wait_p95_ms: float
    run_p50_ms: float
    run_p95_ms: float


class EnginePool:
    """A named thread pool that times each job by kind: ``await pool.run("intent", fn, text)``."""

    def __init__(self, name: str, threads: int) -> None:
        self.name = name
        self.threads = threads
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=name,
                                           initializer=set_native_thread_name, initargs=(name,))
        self._times: dict[str, _Times] = {}
        self._lock = threading.Lock()
        self.queued = 0  # jobs submitted, not yet started

    async def run(self, kind: str, fn: Callable[..., T], *args: Any) -> T:
        submitted = time.perf_counter()
        with self._lock:
            self.queued += 1

        def job() -> T:
            started, cpu = time.perf_counter(), time.thread_time()
            with self._lock:
                self.queued -= 1
            try:
                return fn(*args)
            finally:
                self.record(kind, started - submitted, time.perf_counter() - started, time.thread_time() - cpu)

        return await asyncio.get_running_loop().run_in_executor(self.executor, job)

    def record(self, kind: str, wait_s: float, run_s: float, cpu_s: float = 0.0) -> None:
        with self._lock:
            t = self._times.setdefault(kind, _Times())
            t.jobs += 1
            t.busy_s += run_s
            t.cpu_s += cpu_s
            t.waits.append(wait_s)
            t.runs.append(run_s)

    def stats(self) -> list[KindTimes]:
        def ms(values: deque[float], q: float) -> float:
            return float(np.percentile(np.array(values), q) * 1000.0) if values else 0.0

        with self._lock:
            return [KindTimes(self.name, kind, t.jobs, t.busy_s, t.cpu_s, ms(t.waits, 50), ms(t.waits, 95),
                              ms(t.runs, 50), ms(t.runs, 95)) for kind, t in sorted(self._times.items())]

    def shutdown(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)

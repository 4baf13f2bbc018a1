"""What the load benchmark watches besides its calls: the server's CPU and memory, and a progress bar.

``sample_processes`` samples the server (with its children) and the load generator itself with
psutil, so a saturated client is told apart from a slow server.
"""

from __future__ import annotations

import asyncio
import sys


async def sample_processes(pid: int | None, stop: asyncio.Event, interval: float = 0.5) -> dict[str, list[float]]:
    """Every ``interval``: the server's CPU percent (100 = one core; with its children) and RSS in MB,
    this load generator's own CPU percent (a client near 100 % measures itself, not the server), and the whole
    machine's (100 = one core: what is left idle, or taken by other jobs)."""
    import psutil

    series: dict[str, list[float]] = {"cpu": [], "rss": [], "client_cpu": [], "machine_cpu": []}
    cores = psutil.cpu_count() or 1
    me = psutil.Process()
    procs: dict[int, psutil.Process] = {}
    server = None
    if pid is not None:
        try:
            server = psutil.Process(pid)
            procs[pid] = server
        except psutil.NoSuchProcess:
            server = None

    def sample() -> tuple[float, float, float]:
        total_cpu = total_rss = 0.0
        if server is not None:
            try:
                for child in server.children(recursive=True):
                    procs.setdefault(child.pid, child)
            except psutil.NoSuchProcess:
                pass
            for p in list(procs.values()):
                try:
                    total_cpu += p.cpu_percent(None)
                    total_rss += p.memory_info().rss / 1e6
                except psutil.NoSuchProcess:
                    procs.pop(p.pid, None)
        return total_cpu, total_rss, me.cpu_percent(None)

    psutil.cpu_percent(None)
    sample()  # primes cpu_percent, whose first reading is meaningless
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), timeout=interval)
        except TimeoutError:
            pass
        c, r, own = sample()
        if server is not None:
            series["cpu"].append(c)
            series["rss"].append(r)
        series["client_cpu"].append(own)
        series["machine_cpu"].append(psutil.cpu_percent(None) * cores)  # every process, 100 = one core
    return series


async def progress_bar(calls: int, duration: float, stop: asyncio.Event) -> None:
    """A seconds bar on stderr while a level runs (runs are minutes long)."""
    from tqdm import tqdm

    with tqdm(total=round(duration), desc=f"{calls} calls", unit="s", file=sys.stderr, leave=False) as bar:
        while not stop.is_set() and bar.n < bar.total:
            try:
                await asyncio.wait_for(stop.wait(), timeout=1.0)
            except TimeoutError:
                bar.update(1)

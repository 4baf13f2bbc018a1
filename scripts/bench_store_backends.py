#!/usr/bin/env python3
"""The call store on SQLite next to PostgreSQL, and one worker next to two on one database.

Each row: ``--calls`` concurrent calls spread over ``workers`` store instances (each its
own writer thread and connection, as two ``voicebot serve`` processes would have),
every call producing events at a telephone call's pace (``--rate`` per second) and,
as the hub does, waiting for each event's commit before "sending" it. Printed: the
extra delay before a client may see an event (enqueue → commit, p50/p95/p99) and a
burst row (events/s committed when queued as fast as possible). PostgreSQL is this
project's own (``scripts/postgres.sh``, started here unless ``--url`` names one).

    .venv/bin/python scripts/bench_store_backends.py
    .venv/bin/python scripts/bench_store_backends.py --calls 8,32 --seconds 3 --url postgresql://...
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench_pg import pct as _pct  # noqa: E402
from bench_pg import project_postgres  # noqa: E402

from voicebot.config import StoreSettings  # noqa: E402 - after the path set-up for a plain checkout
from voicebot.store.base import CallStoreBackend  # noqa: E402
from voicebot.store.factory import open_store  # noqa: E402


async def _call(store: CallStoreBackend, call_id: str, rate: float, seconds: float, wait_ms: list[float]) -> None:
    store.create_call(call_id)
    loop = asyncio.get_running_loop()
    start = loop.time()
    for i in range(int(rate * seconds)):
        event = {"type": "transcript.partial" if i % 4 else "transcript.final", "seq": i,
                 "text": f"ich habe eine Frage zu meiner Rechnung Nummer {i}", "confidence": 0.8}
        t0 = time.perf_counter()
        await asyncio.wrap_future(store.add_event(call_id, event, redacted=True))
        wait_ms.append((time.perf_counter() - t0) * 1e3)
        await asyncio.sleep(max(0.0, start + (i + 1) / rate - loop.time()))


async def _paced(stores: list[CallStoreBackend], calls: int, rate: float, seconds: float) -> list[float]:
    wait_ms: list[float] = []
    tag = uuid.uuid4().hex[:6]
    await asyncio.gather(*(_call(stores[c % len(stores)], f"{tag}-{c}", rate, seconds, wait_ms) for c in range(calls)))
    return wait_ms


def _burst(stores: list[CallStoreBackend], events: int) -> float:
    tag = uuid.uuid4().hex[:6]
    t0 = time.perf_counter()
    futures = []
    for w, store in enumerate(stores):
        store.create_call(f"{tag}-{w}")
        futures += [store.add_event(f"{tag}-{w}", {"type": "transcript.partial", "text": f"wort {i}"}, redacted=True)
                    for i in range(events // len(stores))]
    for f in futures:
        f.result(timeout=300)
    return len(futures) / (time.perf_counter() - t0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", default="8,32", help="concurrent calls per row (spread over the workers)")
    ap.add_argument("--rate", type=float, default=10.0, help="events per second per call")
    ap.add_argument("--seconds", type=float, default=3.0, help="length of each paced row")
    ap.add_argument("--burst", type=int, default=10000, help="events in the burst row (0: none)")
    ap.add_argument("--url", default="", help="a PostgreSQL URL (default: start one with scripts/postgres.sh)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="voicebot-bench-") as folder, project_postgres(args.url) as url:
        tmp = Path(folder)  # the SQLite files
        print("| backend | workers | calls | events | commit wait ms p50 | p95 | p99 | burst events/s |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for backend in ("sqlite", "postgres"):
            for workers in (1, 2):
                settings = StoreSettings(path=tmp / f"{workers}.sqlite3", url=url if backend == "postgres" else "",
                                         redact_pii=False)
                stores = [open_store(settings, worker_id=f"bench-{workers}-{w}") for w in range(workers)]
                try:
                    burst = _burst(stores, args.burst) if args.burst else float("nan")
                    for calls in (int(c) for c in args.calls.split(",")):
                        waits = asyncio.run(_paced(stores, calls, args.rate, args.seconds))
                        print(f"| {backend} | {workers} | {calls} | {len(waits)} | {_pct(waits, 0.5):.2f} | "
                              f"{_pct(waits, 0.95):.2f} | {_pct(waits, 0.99):.2f} | {burst:.0f} |", flush=True)
                finally:
                    for s in stores:
                        s.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""What waiting for the store's commit costs per event (issue 17: no client sees an uncommitted event).

For each SQLite ``synchronous`` mode and each number of concurrent calls, every
call produces events at a telephone call's pace (``--rate`` per second, a final
or an intent among partials), and, as the hub would, waits for each event's
commit future before "sending" it. Printed per row: the cost of queueing one
event (``add_event`` on the event loop), the extra delay before a client may
see it (enqueue → commit, p50/p95/p99/max), and the group-commit size.
A burst row queues events as fast as it can (throughput with group commit).

    .venv/bin/python scripts/bench_store.py
    .venv/bin/python scripts/bench_store.py --calls 1,8,32 --seconds 5 --modes NORMAL,FULL
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from voicebot.store.sqlite import CallStore  # noqa: E402 - after the path set-up for a plain checkout


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def _call(store: CallStore, call_id: str, rate: float, seconds: float,
                enqueue_us: list[float], wait_ms: list[float]) -> None:
    store.create_call(call_id)
    loop = asyncio.get_running_loop()
    n = int(rate * seconds)
    start = loop.time()
    for i in range(n):
        event = {"type": "transcript.partial" if i % 4 else "transcript.final", "seq": i,
                 "text": f"ich habe eine Frage zu meiner Rechnung Nummer {i}", "confidence": 0.8}
        t0 = time.perf_counter()
        fut = store.add_event(call_id, event, redacted=True)
        t1 = time.perf_counter()
        await asyncio.wrap_future(fut)  # the hub's wait before sending to any client
        t2 = time.perf_counter()
        enqueue_us.append((t1 - t0) * 1e6)
        wait_ms.append((t2 - t1) * 1e3)
        await asyncio.sleep(max(0.0, start + (i + 1) / rate - loop.time()))


async def _paced(path: Path, mode: str, calls: int, rate: float, seconds: float) -> dict[str, float]:
    store = CallStore(path, synchronous=mode)
    enqueue_us: list[float] = []
    wait_ms: list[float] = []
    try:
        await asyncio.gather(*(_call(store, f"{mode}-{calls}-{c}", rate, seconds, enqueue_us, wait_ms)
                               for c in range(calls)))
    finally:
        store.close()
    return {"events": len(wait_ms), "enqueue_us": statistics.median(enqueue_us), "p50": _pct(wait_ms, 0.5),
            "p95": _pct(wait_ms, 0.95), "p99": _pct(wait_ms, 0.99), "max": max(wait_ms)}


async def _burst(path: Path, mode: str, events: int) -> dict[str, float]:
    store = CallStore(path, synchronous=mode)
    store.create_call(f"burst-{mode}")
    try:
        t0 = time.perf_counter()
        futs = [store.add_event(f"burst-{mode}", {"type": "transcript.partial", "text": f"wort {i}"}, redacted=True)
                for i in range(events)]
        t1 = time.perf_counter()
        await asyncio.wrap_future(futs[-1])
        t2 = time.perf_counter()
    finally:
        store.close()
    return {"events": events, "enqueue_us": (t1 - t0) / events * 1e6, "per_s": events / (t2 - t0),
            "last_ms": (t2 - t1) * 1e3}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", default="1,8,32", help="concurrent calls per row")
    ap.add_argument("--rate", type=float, default=10.0, help="events per second per call")
    ap.add_argument("--seconds", type=float, default=3.0, help="length of each paced row")
    ap.add_argument("--modes", default="NORMAL,FULL", help="SQLite synchronous modes")
    ap.add_argument("--burst", type=int, default=20000, help="events in the burst row (0: none)")
    ap.add_argument("--dir", type=Path, help="where the store files go (default: a temporary folder)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        print("| sync | calls | events | enqueue µs (p50) | commit wait ms p50 | p95 | p99 | max |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for mode in args.modes.split(","):
            for calls in (int(c) for c in args.calls.split(",")):
                path = Path(tmp) / f"paced-{mode}-{calls}.sqlite3"
                r = asyncio.run(_paced(path, mode, calls, args.rate, args.seconds))
                print(f"| {mode} | {calls} | {r['events']:.0f} | {r['enqueue_us']:.1f} | {r['p50']:.2f} | "
                      f"{r['p95']:.2f} | {r['p99']:.2f} | {r['max']:.2f} |", flush=True)
        if args.burst:
            print("\n| sync | burst events | enqueue µs/event | committed events/s | last commit after queueing ms |")
            print("|---|---:|---:|---:|---:|")
            for mode in args.modes.split(","):
                r = asyncio.run(_burst(Path(tmp) / f"burst-{mode}.sqlite3", mode, args.burst))
                print(f"| {mode} | {r['events']:.0f} | {r['enqueue_us']:.1f} | {r['per_s']:.0f} | {r['last_ms']:.1f} |",
                      flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

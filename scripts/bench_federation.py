#!/usr/bin/env python3
"""What it costs an agent to watch a call held by another worker (the federation's bus hop).

Two workers' hubs on one PostgreSQL (each its own store, bus connections and federation,
as two ``voicebot serve`` processes would have, here in one process and one event loop):
``--calls`` calls on worker A, each publishing caller transcripts at ``--rate`` events/s
(stored, redacted for agents, committed before delivery, as in the server). An agent on
A and one on B subscribe to all calls. Printed per row: the owner's delay (publish →
its own agent, i.e. the store's commit) and the extra delay on the other worker (its
agent's receipt − the owner agent's receipt), p50/p95/p99 in ms, and events lost.
PostgreSQL is this project's own (``scripts/postgres.sh``), started here unless ``--url``.

    .venv/bin/python scripts/bench_federation.py --calls 8,32 --seconds 3
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from dataclasses import replace
from pathlib import Path

from pydantic import BaseModel

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench_pg import pct as _pct  # noqa: E402
from bench_pg import project_postgres  # noqa: E402

from voicebot.config import Settings  # noqa: E402
from voicebot.protocol.events import TranscriptPartialEvent  # noqa: E402
from voicebot.server.federation import Federation  # noqa: E402
from voicebot.server.hub import CallHub  # noqa: E402
from voicebot.server.metrics import ServerMetrics  # noqa: E402
from voicebot.store.factory import open_store  # noqa: E402


class Watcher:
    """An agent link that notes when each (call, seq) reached it."""

    agent_id = "bench"

    def __init__(self, expect: int) -> None:
        self.subscriptions = {"*"}
        self.at: dict[tuple[str, int], float] = {}
        self.expect = expect
        self.all_in = asyncio.Event()

    def deliver(self, message: BaseModel) -> bool:
        if isinstance(message, TranscriptPartialEvent) and message.seq is not None:
            self.at[(message.call_id, message.seq)] = time.perf_counter()
            if len(self.at) >= self.expect:
                self.all_in.set()
        return True

    def close(self, code: int, reason: str) -> None:
        pass


async def _row(url: str, calls: int, rate: float, seconds: float, tag: str) -> tuple[list[float], list[float], int]:
    base = Settings()
    # Every call stays in the agents' list (the measure is the bus, not the list's length).
    settings = replace(base, store=replace(base.store, url=url), server=replace(base.server, recent_calls=calls))
    hubs, feds, stores = [], [], []
    for name in ("a", "b"):
        store = await asyncio.to_thread(open_store, settings.store, worker_id=f"bench-{tag}-{name}", redact=False)
        hub = CallHub(settings, ServerMetrics(), store)
        fed = Federation(hub, url, store.worker_id, settings.store.lease_s)
        await fed.start()
        hubs.append(hub)
        feds.append(fed)
        stores.append(store)
    owner, other = Watcher(calls * int(seconds * rate)), Watcher(calls * int(seconds * rate))
    hubs[0].add_agent(owner)
    hubs[1].add_agent(other)
    sent: dict[tuple[str, int], float] = {}
    text = "Guten Tag, meine Kundennummer ist 12345678 und es geht um die Rechnung vom März"

    async def call(i: int) -> None:
        live = hubs[0].open_call(f"bench-{tag}-{i}", "voicebot.v1", {"name": "Erika"})
        await asyncio.sleep(i / calls / rate)  # spread the calls over one event interval
        for n in range(int(seconds * rate)):
            event = hubs[0].publish(live, TranscriptPartialEvent(text=text[: 10 + n % 60]))
            sent[(live.call_id, event.seq or 0)] = time.perf_counter()
            await asyncio.sleep(1 / rate)  # a telephone call's pace, not a wait for a condition
        hubs[0].close_call(live, "completed")

    await asyncio.gather(*(call(i) for i in range(calls)))
    with contextlib.suppress(TimeoutError):  # every event at the other worker's agent (lost ones: 30 s)
        await asyncio.wait_for(other.all_in.wait(), 30)
    own = [(owner.at[k] - t) * 1000 for k, t in sent.items() if k in owner.at]
    extra = [(other.at[k] - owner.at[k]) * 1000 for k in sent if k in other.at and k in owner.at]
    for fed in feds:
        await fed.aclose()
    for store in stores:
        store.close()
    return own, extra, len(sent) - len(other.at)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", default="8,32", help="concurrent calls on worker A, one row each")
    ap.add_argument("--rate", type=float, default=10.0, help="events per second per call")
    ap.add_argument("--seconds", type=float, default=3.0, help="length of each row")
    ap.add_argument("--url", default="", help="a PostgreSQL URL (default: start one with scripts/postgres.sh)")
    args = ap.parse_args()
    with project_postgres(args.url) as url:
        print("| calls | events | owner's agent ms p50 | p95 | p99 | other worker's agent +ms p50 | p95 | p99 | lost |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for calls in (int(c) for c in args.calls.split(",")):
            own, extra, lost = asyncio.run(_row(url, calls, args.rate, args.seconds, f"{calls}-{time.time_ns()}"))
            print(f"| {calls} | {len(own)} | {_pct(own, .5):.1f} | {_pct(own, .95):.1f} | {_pct(own, .99):.1f} | "
                  f"{_pct(extra, .5):.1f} | {_pct(extra, .95):.1f} | {_pct(extra, .99):.1f} | {lost} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

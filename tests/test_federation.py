"""The federation between workers, in one process: two hubs on one real PostgreSQL bus.

Control messages reach the worker that holds a call and come back as typed results
or errors (the owner's own error, ``worker_unreachable`` when nobody answers); a
remote call's history merges the bus and the store without duplicates. The full
picture (two `voicebot serve` processes, kill -9, restart) is test_cluster_workers.py.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fakes import QueuedAgent

from voicebot.config import Settings
from voicebot.protocol.agent import CallSummary, CallUpdateMessage
from voicebot.protocol.events import (
    AgentTakeoverEvent,
    CallStartedEvent,
    IntentEvent,
    TranscriptFinalEvent,
    TranscriptPartialEvent,
    dump,
)
from voicebot.server.hub import CallHub, CallRejected
from voicebot.server.metrics import ServerMetrics
from voicebot.server.remote import RemoteCall

pytest_plugins = ["pg_server"]  # fixtures: pg_server, pg_schema


class Session:
    """The bot of a call (``voicebot.server.hub.Session``): records what the owning worker was told."""

    state = "bot"

    def __init__(self) -> None:
        self.told: list[tuple[str, str]] = []

    async def start(self) -> None: ...
    async def push_audio(self, frame: Any) -> None: ...
    async def end(self, reason: str = "completed") -> None: ...

    async def take_over(self, agent_id: str) -> None:
        self.told.append(("takeover", agent_id))

    async def release(self, agent_id: str) -> None:
        self.told.append(("release", agent_id))


def _summary(call_id: str, state: str = "bot") -> CallSummary:
    return CallSummary(call_id=call_id, protocol="voicebot.v1", started_at=1.0, state=state)  # type: ignore[arg-type]


async def test_control_reaches_the_owner_and_errors_come_back_typed(pg_schema: str) -> None:
    from voicebot.server.federation import Federation
    from voicebot.store import migrations

    await asyncio.to_thread(migrations.upgrade, pg_schema)  # the reconcile reads the calls table
    hubs = [CallHub(Settings(), ServerMetrics()) for _ in range(2)]
    feds = [Federation(hub, pg_schema, f"fed-{i}", lease_s=3.0, control_timeout_s=0.5) for i, hub in enumerate(hubs)]
    agent = QueuedAgent()
    hubs[1].add_agent(agent)
    try:
        for fed in feds:
            await fed.start()
        call = hubs[0].open_call("fed-call", "voicebot.v1", {"name": "Erika"})
        call.session = session = Session()
        await agent.until(lambda m: isinstance(m, CallUpdateMessage) and m.call.call_id == "fed-call")
        hubs[0].publish(call, CallStartedEvent(protocol="voicebot.v1", encoding="pcm_s16le", sample_rate=16000))
        started = await agent.until(lambda m: isinstance(m, CallStartedEvent))
        assert (started.call_id, started.seq) == ("fed-call", 0)  # stamped by the owner, heard on worker 1
        assert [c.call_id for c in hubs[1].list_calls()] == ["fed-call"] and not hubs[1].calls

        await hubs[1].take_over("fed-call", "anna")  # returns once the owner did it
        await hubs[1].release("fed-call", "anna")
        assert session.told == [("takeover", "anna"), ("release", "anna")]

        # The owner no longer has the call (its end was lost on the bus): its own error comes back.
        feds[1].remote["ghost"] = RemoteCall("ghost", "fed-0", row=_summary("ghost"), loaded=True)
        with pytest.raises(CallRejected) as rejected:
            await hubs[1].take_over("ghost", "anna")
        assert rejected.value.code == "unknown_call"
        # A worker that does not answer (gone before its lease ran out).
        feds[1].remote["orphan"] = RemoteCall("orphan", "fed-gone", row=_summary("orphan"), loaded=True)
        with pytest.raises(CallRejected) as rejected:
            await hubs[1].release("orphan", "anna")
        assert rejected.value.code == "worker_unreachable"
        feds[1].remote["over"] = RemoteCall("over", "fed-0", row=_summary("over", "ended"), loaded=True)
        with pytest.raises(CallRejected) as rejected:
            await hubs[1].take_over("over", "anna")
        assert rejected.value.code == "unknown_call"  # ended: not even asked
    finally:
        for fed in feds:
            await fed.aclose()


def test_a_remote_calls_history_merges_bus_and_store_once_each() -> None:
    remote = RemoteCall("c", "w2")
    heard = [TranscriptPartialEvent(call_id="c", seq=3, text="Hal"),
             TranscriptFinalEvent(call_id="c", seq=4, text="Hallo, meine Rechnung"),
             TranscriptPartialEvent(call_id="c", seq=5, text="und")]
    for event in heard:
        assert remote.hear(event)
    assert not remote.hear(heard[1])  # heard twice: shown and kept once
    stored = [CallStartedEvent(call_id="c", seq=0, protocol="voicebot.v1", encoding="mulaw", sample_rate=8000),
              TranscriptPartialEvent(call_id="c", seq=1, text="Hallo"), heard[0], heard[1],
              IntentEvent(call_id="c", seq=6, label="rechnung", confidence=0.9),
              AgentTakeoverEvent(call_id="c", seq=7, agent_id="anna")]
    row = {"call_id": "c", "protocol": "voicebot.v1", "caller": {"name": "E***"},
           "started_at": "2026-11-29T10:00:00.000+00:00", "ended_at": None, "status": "active"}
    remote.load(row, [dump(e) for e in stored], lambda e: e)
    replay = remote.replay(limit=100)
    assert [e.seq for e in replay] == [0, 4, 5, 6, 7]  # in order, once each; only the newest partial
    summary = remote.summary()
    assert (summary.state, summary.agent_id, summary.intent, summary.turns) == ("human", "anna", "rechnung", 1)
    remote.end("interrupted", 1_800_000_000.0)  # the store closed it: its worker is gone
    assert (remote.summary().state, remote.summary().end_reason, remote.live) == ("ended", "interrupted", False)
    assert [e.seq for e in remote.replay(limit=2)] == [6, 7]

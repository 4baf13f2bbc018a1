"""The cross-worker bus on PostgreSQL LISTEN/NOTIFY, between two real connections (two workers)."""

from __future__ import annotations

import queue

from voicebot.store.bus import BusMessage, PgEventBus

pytest_plugins = ["pg_server"]  # the session's PostgreSQL server fixture, `pg_server`


def test_the_bus_carries_events_between_workers_in_order_and_whole(pg_server: str) -> None:
    w1, w2 = PgEventBus(pg_server, "w1"), PgEventBus(pg_server, "w2", echo=True)
    heard: dict[str, queue.SimpleQueue[BusMessage]] = {"w1": queue.SimpleQueue(), "w2": queue.SimpleQueue()}
    try:
        w1.subscribe(heard["w1"].put)
        w2.subscribe(heard["w2"].put)
        long_text = "Schäden am Dach nach dem Sturm, " * 600  # ~19 kB of JSON: far over NOTIFY's 8000 bytes
        sent = [("c1", f'{{"type":"transcript.partial","seq":{i}}}') for i in range(20)]
        sent.append(("c2", '{"type":"transcript.final","text":"' + long_text + '"}'))
        for call_id, data in sent:
            w1.publish(call_id, data)
        w2.publish("c1", '{"agent_id":"anna"}', kind="takeover")
        got = [heard["w2"].get(timeout=30) for _ in range(len(sent) + 1)]
        assert [(m.call_id, m.data) for m in got[:-1]] == sent and {m.worker_id for m in got[:-1]} == {"w1"}
        assert (got[-1].worker_id, got[-1].kind) == ("w2", "takeover")  # echo=True: its own message too
        takeover = heard["w1"].get(timeout=30)  # w1 (echo off) hears w2's message, not its own
        assert (takeover.worker_id, takeover.call_id, takeover.kind) == ("w2", "c1", "takeover")
        assert heard["w1"].empty()
    finally:
        w1.close()
        w2.close()

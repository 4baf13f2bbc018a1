"""The call store contract on both backends (SQLite and a real PostgreSQL server), and worker leases.

The PostgreSQL server is this project's own (``tests/pg_server.py``: ``scripts/postgres.sh``, a
throw-away data directory); every test gets a fresh schema in it.
Time in the lease tests is a controlled clock, never a sleep.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from voicebot.config import StoreSettings
from voicebot.store import factory
from voicebot.store.base import CallStoreBackend
from voicebot.store.errors import DuplicateCallId, StoreClosed, StoreError
from voicebot.store.factory import open_store

pytest_plugins = ["pg_server"]  # fixtures: pg_server (the session's PostgreSQL), pg_schema (a fresh schema)

REPO = Path(__file__).resolve().parents[1]


class Clock:
    """A clock the test moves by hand (seconds since the epoch)."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _settings(path: Path, url: str, *, redact: bool = False, lease_s: float = 15.0) -> StoreSettings:
    return StoreSettings(path=path, url=url, redact_pii=redact, lease_s=lease_s)


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where one test's database lives: a SQLite file, or a fresh schema on the session's PostgreSQL."""
    if request.param == "postgres":
        return str(request.getfixturevalue("pg_schema"))
    return ""


OpenStore = Callable[..., CallStoreBackend]


@pytest.fixture
def open_(backend: str, tmp_path: Path) -> Iterator[OpenStore]:
    """Opens stores (workers) on the test's one database; closes what is still open at the end."""
    opened: list[CallStoreBackend] = []

    def make(worker_id: str = "w1", *, redact: bool = False, clock: Clock | None = None,
             lease_s: float = 15.0) -> CallStoreBackend:
        settings = _settings(tmp_path / "calls.sqlite3", backend, redact=redact, lease_s=lease_s)
        extra: dict[str, Any] = {"heartbeat_s": 0}  # heartbeats by hand, on the test's clock
        if clock is not None:
            extra["clock"] = clock
        store = open_store(settings, worker_id=worker_id, **extra)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


def _call_events() -> list[dict[str, Any]]:
    return [
        {"type": "call.start", "metadata": {}},
        {"type": "bot.utterance", "text": "Guten Tag.", "action": "greet"},
        {"type": "transcript.partial", "text": "Ich habe", "confidence": 0.7},
        {"type": "transcript.final", "text": "Ich habe eine Frage zur Rechnung, Kundennummer 12345678.",
         "confidence": 0.9, "start": 0.5, "end": 2.5, "words": []},
        {"type": "intent", "label": "rechnung", "confidence": 0.82,
         "alternatives": [{"label": "bestellung", "confidence": 0.1}], "slots": {"customer_number": "12345678"}},
        {"type": "route", "route": "buchhaltung", "intent": "rechnung"},
        {"type": "handoff", "reason": "low_confidence", "context": {"summary": "Rechnung, Kundennummer 12345678"}},
        {"type": "agent.takeover", "agent_id": "anna"},
        {"type": "call.end", "reason": "completed"},
    ]


# ---------------------------------------------------------------------------- the contract, on both
def test_a_whole_call_reads_back_the_same_on_both_backends(open_: OpenStore) -> None:
    store = open_(redact=True)
    assert isinstance(store, CallStoreBackend)
    store.create_call("c1", caller={"from": "+49 171 2345678"}, started_at=1_700_000_000.25)
    futures = [store.add_event("c1", e) for e in _call_events()]
    assert all(f.result(timeout=30) is None for f in futures)
    call = store.get_call("c1")
    assert call is not None
    assert call["started_at"] == "2023-11-14T22:13:20.250+00:00"  # ISO UTC text on both
    assert call["status"] == "completed" and call["ended_at"] is not None and call["worker_id"] == "w1"
    assert call["first_intent"] == call["last_intent"] == "rechnung"
    assert call["route"] == "buchhaltung" and call["handoff"] == "low_confidence"
    assert call["handled_by"] == "human" and call["agent_id"] == "anna" and call["turns"] == 2
    assert call["caller"] == {"from": "+49 *** *****78"}
    assert [(t["idx"], t["speaker"]) for t in call["turns_list"]] == [(0, "bot"), (1, "caller")]
    assert call["turns_list"][1]["text"].endswith("Kundennummer ******78.")
    assert call["intents"][0]["turn_idx"] == 1 and call["intents"][0]["slots"] == {"customer_number": "******78"}
    assert call["intents"][0]["alternatives"] == [{"label": "bestellung", "confidence": 0.1}]
    assert call["handoffs"][0]["context"] == {"summary": "Rechnung, Kundennummer ******78"}
    assert [e["type"] for e in call["events"]] == [e["type"] for e in _call_events()]
    assert call["events"][3]["start"] == 0.5


def test_a_failed_write_fails_its_future_only(open_: OpenStore) -> None:
    store = open_()
    store.create_call("c3")
    first = store.add_event("c3", {"type": "transcript.final", "text": "eins", "seq": 0})
    clash = store.add_event("c3", {"type": "transcript.final", "text": "zwei", "seq": 0})  # seq taken
    after = store.add_event("c3", {"type": "transcript.final", "text": "drei"})
    assert first.result(timeout=30) is None and after.result(timeout=30) is None
    with pytest.raises(StoreError):
        clash.result(timeout=30)
    call = store.get_call("c3")
    assert [(e["text"]) for e in call["events"]] == ["eins", "drei"]
    assert [t["text"] for t in call["turns_list"]] == ["eins", "drei"]  # the failed one left no turn
    assert [(t["idx"], t["text"]) for t in call["turns_list"]] == [(0, "eins"), (1, "drei")]


def test_call_ids_are_unique_for_ever_across_workers_and_restarts(open_: OpenStore) -> None:
    first = open_("w1")
    first.create_call("once")
    assert first.call_exists("once")  # queued counts before the commit
    with pytest.raises(DuplicateCallId):
        first.create_call("once")
    first.add_event("once", {"type": "call.end", "reason": "completed"})
    first.close()
    other = open_("w2")
    assert other.call_exists("once") and not other.call_exists("other")
    with pytest.raises(DuplicateCallId) as info:
        other.create_call("once")
    assert info.value.call_id == "once"


def test_seq_and_turns_continue_after_a_restart(open_: OpenStore) -> None:
    first = open_("w1")
    first.create_call("long")
    for text in ("eins", "zwei"):
        first.add_event("long", {"type": "transcript.final", "text": text})
    first.close()
    second = open_("w1")
    assert second.add_event("long", {"type": "transcript.final", "text": "drei"}).result(timeout=30) is None
    call = second.get_call("long")
    assert [e["text"] for e in call["events"]] == ["eins", "zwei", "drei"]
    assert [(t["idx"], t["text"]) for t in call["turns_list"]] == [(0, "eins"), (1, "zwei"), (2, "drei")]


def test_end_is_idempotent_and_unknown_calls_still_land(open_: OpenStore) -> None:
    store = open_()
    store.create_call("c2")
    store.end_call("c2", "interrupted")
    store.end_call("c2", "completed")
    store.add_event("c2", {"type": "call.end", "reason": "completed"})
    store.add_event("late", {"type": "error", "code": "bad_audio"})
    assert store.flush()
    assert store.get_call("c2")["status"] == "interrupted"
    assert store.get_call("late")["events"][0]["code"] == "bad_audio"


def test_list_and_prefix_lookup(open_: OpenStore, backend: str, tmp_path: Path) -> None:
    store = open_()
    for i in range(3):
        store.create_call(f"abc{i}", started_at=1_700_000_000 + i)
    store.create_call("xyz", started_at=1_700_000_100)
    store.end_call("abc1", "completed")
    assert store.flush()
    assert [c["call_id"] for c in store.list_calls(limit=2)] == ["xyz", "abc2"]
    assert [c["call_id"] for c in store.list_calls(status="completed")] == ["abc1"]
    assert store.get_call("xy")["call_id"] == "xyz"
    assert store.get_call("abc") is None and store.get_call("nope") is None  # ambiguous, unknown
    assert store.get_call("ab_") is None  # LIKE wildcards in an id prefix are literal
    # What `voicebot calls` reads, without a worker: the same rows.
    settings = _settings(tmp_path / "calls.sqlite3", backend)
    assert factory.list_calls(settings, limit=2) == store.list_calls(limit=2)
    assert factory.get_call(settings, "xy") == store.get_call("xyz")


def test_writes_after_close_fail_at_once(open_: OpenStore) -> None:
    store = open_()
    store.close()
    fut = store.add_event("x", {"type": "error"})
    assert fut.done() and isinstance(fut.exception(), StoreClosed)


def test_two_workers_writing_at_once_keep_every_event_in_order(open_: OpenStore) -> None:
    workers = [open_("w1"), open_("w2")]

    def produce(store: CallStoreBackend, name: str) -> None:
        for c in range(4):
            store.create_call(f"{name}-{c}")
        futures = [store.add_event(f"{name}-{i % 4}", {"type": "transcript.final", "text": f"satz {i}"})
                   for i in range(200)]
        for f in futures:
            f.result(timeout=60)

    threads = [threading.Thread(target=produce, args=(w, w.worker_id)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for w in workers:
        for c in range(4):
            call = w.get_call(f"{w.worker_id}-{c}")
            assert [t["idx"] for t in call["turns_list"]] == list(range(50))
            assert [e["text"] for e in call["events"]] == [f"satz {i}" for i in range(c, 200, 4)]


def test_two_workers_racing_for_one_call_id_one_wins(open_: OpenStore, backend: str, tmp_path: Path) -> None:
    w1, w2 = open_("w1"), open_("w2")
    assert w1.flush() and w2.flush()
    blocker: Any
    if backend:  # hold both writers back until both creates are queued: neither sees the other's
        import psycopg

        blocker = psycopg.connect(backend)
        blocker.execute("LOCK TABLE calls IN EXCLUSIVE MODE")  # reads go on, writes wait
    else:
        blocker = sqlite3.connect(tmp_path / "calls.sqlite3", isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
    futures = [w1.create_call("same"), w2.create_call("same")]
    blocker.rollback() if backend else blocker.execute("ROLLBACK")
    blocker.close()
    outcomes = [f.exception(timeout=60) for f in futures]
    assert sum(o is None for o in outcomes) == 1
    assert sum(isinstance(o, DuplicateCallId) for o in outcomes) == 1


def test_a_lost_database_connection_fails_one_batch_then_reconnects(pg_schema: str) -> None:
    import psycopg

    url = pg_schema
    store = open_store(_settings(Path("unused"), url), worker_id="cut-off", heartbeat_s=0)
    try:
        store.create_call("c")
        assert store.flush()
        with psycopg.connect(url, autocommit=True) as admin:  # what a restarted or failed-over server does
            admin.execute("SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity "  # waits for the exit
                          "WHERE application_name = 'voicebot:cut-off'")
        lost = store.add_event("c", {"type": "transcript.final", "text": "verloren"})
        with pytest.raises(StoreError):
            lost.result(timeout=30)
        assert store.add_event("c", {"type": "transcript.final", "text": "wieder da"}).result(timeout=30) is None
        assert [t["text"] for t in store.get_call("c")["turns_list"]] == ["wieder da"]  # the reader reconnects too
    finally:
        store.close()


# ---------------------------------------------------------------------------- worker leases
def test_restarting_one_worker_leaves_the_other_workers_calls_alone(open_: OpenStore) -> None:
    clock = Clock()
    w1, w2 = open_("w1", clock=clock), open_("w2", clock=clock)
    w1.create_call("w1-call")
    w2.create_call("w2-call")
    w2.add_event("w2-call", {"type": "transcript.final", "text": "Hallo"})
    assert w1.flush() and w2.flush()
    w1.close()  # worker 1 goes down (its open call is left behind) and comes back
    clock.now += 3
    w1 = open_("w1", clock=clock)
    assert w1.recover_interrupted().result(timeout=30) is None
    assert w1.get_call("w1-call")["status"] == "interrupted"  # its own previous incarnation's call
    assert w1.get_call("w2-call")["status"] == "active"  # a live worker's call: untouched
    w1.create_call("w1-new")
    assert w1.recover_interrupted().result(timeout=30) is None  # again, later: its own new call stays open
    assert w1.get_call("w1-new")["status"] == "active"


def test_a_worker_that_stops_heartbeating_has_its_calls_interrupted(open_: OpenStore) -> None:
    clock = Clock()
    w1, w2 = open_("w1", clock=clock, lease_s=10), open_("w2", clock=clock, lease_s=10)
    w1.create_call("w1-call")
    w2.create_call("w2-call")
    for i in range(3):
        w1.add_event("w1-call", {"type": "transcript.final", "text": f"eins {i}"})
        w2.add_event("w2-call", {"type": "transcript.final", "text": f"zwei {i}"})
    assert w1.flush() and w2.flush()
    clock.now += 8  # within the lease: nothing happens
    assert w1.heartbeat().result(timeout=30) is None
    assert w1.get_call("w2-call")["status"] == "active"
    clock.now += 8  # w2 (hung, or killed -9: no close) never renewed; w1 renewed at +8
    assert w1.heartbeat().result(timeout=30) is None
    gone, alive = w1.get_call("w2-call"), w1.get_call("w1-call")
    assert gone["status"] == "interrupted" and [t["text"] for t in gone["turns_list"]] == ["zwei 0", "zwei 1", "zwei 2"]
    assert alive["status"] == "active" and [t["text"] for t in alive["turns_list"]] == ["eins 0", "eins 1", "eins 2"]


_WORKER = """
import sys
from pathlib import Path
from voicebot.config import StoreSettings
from voicebot.store.factory import open_store
store = open_store(StoreSettings(path=Path(sys.argv[1]), url=sys.argv[2], redact_pii=False), worker_id="killed")
store.create_call("killed-call")
for i in range(3):
    store.add_event("killed-call", {"type": "transcript.final", "text": f"zwei {i}"})
assert store.flush()
print("ready", flush=True)
sys.stdin.read()  # runs until killed
"""


def test_kill_9_of_a_worker_process_interrupts_its_calls_only(open_: OpenStore, backend: str, tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys
    import time

    proc = subprocess.Popen([sys.executable, "-c", _WORKER, str(tmp_path / "calls.sqlite3"), backend],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        clock = Clock(time.time())  # the killed worker wrote its lease on the real clock
        w1 = open_("alive", clock=clock, lease_s=15)
        w1.create_call("alive-call")
        w1.add_event("alive-call", {"type": "transcript.final", "text": "eins"})
        assert w1.heartbeat().result(timeout=30) is None
        assert w1.get_call("killed-call")["status"] == "active"  # its lease is still valid
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    clock.now += 16  # the killed worker's lease (15 s) runs out without anybody sleeping
    assert w1.heartbeat().result(timeout=30) is None
    killed, alive = w1.get_call("killed-call"), w1.get_call("alive-call")
    assert killed["status"] == "interrupted"
    assert [t["text"] for t in killed["turns_list"]] == ["zwei 0", "zwei 1", "zwei 2"]  # every event kept
    assert alive["status"] == "active" and [e["text"] for e in alive["events"]] == ["eins"]


def test_a_clean_stop_ends_the_lease_at_once(open_: OpenStore) -> None:
    clock = Clock()
    w1, w2 = open_("w1", clock=clock), open_("w2", clock=clock)
    w2.create_call("left-open")
    w2.close()  # closed without ending its call
    clock.now += 0.5
    assert w1.heartbeat().result(timeout=30) is None
    assert w1.get_call("left-open")["status"] == "interrupted"

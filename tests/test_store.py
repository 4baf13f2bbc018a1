"""The SQLite call store: written from its own thread, read back whole; no clocks in here."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from voicebot.store.sqlite import CallStore, DuplicateCallId, StoreClosed, get_call, list_calls


def _call_events(call_id: str) -> list[dict]:
    return [
        {"type": "call.start", "metadata": {}},
        {"type": "bot.utterance", "text": "Guten Tag.", "action": "greet"},
        {"type": "transcript.partial", "text": "Ich habe", "confidence": 0.7},
        {"type": "transcript.final", "text": "Ich habe eine Frage zur Rechnung, Kundennummer 12345678.",
         "confidence": 0.9, "start": 0.5, "end": 2.5, "words": []},
        {"type": "intent", "label": "rechnung", "confidence": 0.82,
         "alternatives": [{"label": "bestellung", "confidence": 0.1}], "slots": {"customer_number": "12345678"}},
        {"type": "route", "route": "buchhaltung", "intent": "rechnung"},
        {"type": "handoff", "reason": "low_confidence",
         "context": {"summary": "Rechnung, Kundennummer 12345678", "next_steps": ["Rechnung prüfen"]}},
        {"type": "agent.takeover", "agent_id": "anna"},
        {"type": "call.end", "reason": "completed"},
    ]


@pytest.fixture
def store(tmp_path: Path):
    s = CallStore(tmp_path / "sub" / "calls.sqlite3", redact=True)
    yield s
    s.close()


def test_a_whole_call_is_recorded_and_read_back(store: CallStore) -> None:
    store.create_call("c1", protocol="voicebot.v1", caller={"from": "+49 171 2345678"})
    for event in _call_events("c1"):
        store.add_event("c1", event)
    assert store.flush()
    call = store.get_call("c1")
    assert call is not None
    assert call["status"] == "completed" and call["ended_at"] is not None
    assert call["first_intent"] == call["last_intent"] == "rechnung"
    assert call["route"] == "buchhaltung" and call["handoff"] == "low_confidence"
    assert call["handled_by"] == "human" and call["agent_id"] == "anna"
    assert call["caller"] == {"from": "+49 *** *****78"}
    assert [t["speaker"] for t in call["turns_list"]] == ["bot", "caller"]
    assert call["turns_list"][1]["text"].endswith("Kundennummer ******78.")  # redacted before storage
    assert call["intents"][0]["turn_idx"] == 1 and call["intents"][0]["slots"] == {"customer_number": "******78"}
    assert call["handoffs"][0]["context"]["summary"] == "Rechnung, Kundennummer ******78"
    assert [e["type"] for e in call["events"]] == [e["type"] for e in _call_events("c1")]
    assert "12345678" not in Path(store.path).read_bytes().decode("latin-1")


def test_wal_mode_and_plain_tables(store: CallStore) -> None:
    store.flush()
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"calls", "events", "turns", "intents", "handoffs"} <= tables


def test_writes_do_not_wait_for_the_disk_and_resolve_at_commit(store: CallStore) -> None:
    store.create_call("burst")
    assert store.flush()
    # Another connection holds the write lock: the writer cannot commit, the producer goes on.
    blocker = sqlite3.connect(store.path, timeout=30.0, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    futures = [store.add_event("burst", {"type": "transcript.partial", "text": f"wort {i}"}) for i in range(2000)]
    assert not any(f.done() for f in futures)  # nothing is reported committed while it is not
    assert _committed_events(store.path, "burst") == 0
    blocker.execute("ROLLBACK")
    blocker.close()
    for f in futures:
        assert f.result(timeout=30) is None
    # Resolved means on file: a fresh reader sees every event.
    assert _committed_events(store.path, "burst") == 2000


def _committed_events(path: Path, call_id: str) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM events WHERE call_id = ?", (call_id,)).fetchone()[0])


def test_writes_after_close_fail_at_once(tmp_path: Path) -> None:
    s = CallStore(tmp_path / "calls.sqlite3")
    s.close()
    fut = s.add_event("x", {"type": "error"})
    assert fut.done() and isinstance(fut.exception(), StoreClosed)


def test_call_ids_are_unique_for_ever(tmp_path: Path) -> None:
    path = tmp_path / "calls.sqlite3"
    first = CallStore(path)
    first.create_call("once")
    assert first.call_exists("once")  # queued counts, before any commit
    with pytest.raises(DuplicateCallId):
        first.create_call("once")
    first.add_event("once", {"type": "call.end", "reason": "completed"})
    first.close()
    second = CallStore(path)  # a later process: the ended call's id is still taken
    try:
        assert second.call_exists("once") and not second.call_exists("other")
        with pytest.raises(DuplicateCallId) as info:
            second.create_call("once")
        assert info.value.call_id == "once"
    finally:
        second.close()


def test_seq_and_turns_continue_after_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "calls.sqlite3"
    first = CallStore(path)
    first.create_call("long")
    for text in ("eins", "zwei"):
        first.add_event("long", {"type": "transcript.final", "text": text})
    first.close()
    second = CallStore(path)
    second.add_event("long", {"type": "transcript.final", "text": "drei"})
    second.flush()
    call = second.get_call("long")
    second.close()
    assert [e["seq"] for e in _stored_seqs(path, "long")] == [0, 1, 2]
    assert [(t["idx"], t["text"]) for t in call["turns_list"]] == [(0, "eins"), (1, "zwei"), (2, "drei")]


def _stored_seqs(path: Path, call_id: str) -> list[dict]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT seq FROM events WHERE call_id = ? ORDER BY seq", (call_id,))
        return [{"seq": r[0]} for r in rows]


def test_a_file_with_old_duplicates_still_opens(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, call_id TEXT NOT NULL, seq INTEGER NOT NULL, "
                     "ts TEXT NOT NULL, type TEXT NOT NULL, payload TEXT NOT NULL)")
        conn.executemany("INSERT INTO events (call_id, seq, ts, type, payload) VALUES ('d', 0, 't', 'x', '{}')",
                         [(), ()])
    s = CallStore(path)
    try:
        s.create_call("new")
        assert s.flush() and s.get_call("new") is not None
    finally:
        s.close()


def test_end_is_idempotent_and_first_status_wins(store: CallStore) -> None:
    store.create_call("c2")
    store.end_call("c2", "interrupted")
    store.end_call("c2", "completed")
    store.add_event("c2", {"type": "call.end", "reason": "completed"})
    store.flush()
    assert store.get_call("c2")["status"] == "interrupted"


def test_calls_left_open_by_a_crash_are_marked_interrupted(tmp_path: Path) -> None:
    path = tmp_path / "calls.sqlite3"
    first = CallStore(path)
    first.create_call("crashed")
    first.add_event("crashed", {"type": "transcript.final", "text": "Hallo"})
    first.close()  # the process "died" before the call ended
    second = CallStore(path)
    second.recover_interrupted()
    second.flush()
    call = second.get_call("crashed")
    second.close()
    assert call["status"] == "interrupted" and call["turns_list"][0]["text"] == "Hallo"


def test_list_and_prefix_lookup(store: CallStore) -> None:
    for i in range(3):
        store.create_call(f"abc{i}", started_at=1_700_000_000 + i)
    store.create_call("xyz", started_at=1_700_000_100)
    store.flush()
    assert [c["call_id"] for c in list_calls(store.path, limit=2)] == ["xyz", "abc2"]
    assert get_call(store.path, "xy")["call_id"] == "xyz"
    assert get_call(store.path, "abc") is None  # ambiguous
    assert get_call(store.path, "nope") is None


def test_events_for_an_unknown_call_still_land(store: CallStore) -> None:
    store.add_event("late", {"type": "error", "code": "bad_audio"})
    store.flush()
    assert store.get_call("late")["events"][0]["code"] == "bad_audio"


def test_reading_a_missing_store_says_so(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        list_calls(tmp_path / "none.sqlite3")


def test_calls_cli_lists_and_shows(store: CallStore, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    from voicebot.cli.main import main

    store.create_call("cli-call-1", protocol="twilio", started_at=1_700_000_000)
    for event in _call_events("cli-call-1"):
        store.add_event("cli-call-1", event)
    store.flush()
    monkeypatch.setenv("VOICEBOT_STORE__PATH", str(store.path))
    assert main(["calls", "list"]) == 0
    listing = capsys.readouterr().out
    assert "cli-call-1" in listing and "completed" in listing and "rechnung" in listing
    assert main(["calls", "show", "cli-call"]) == 0
    shown = capsys.readouterr().out
    assert "CALLER Ich habe eine Frage zur Rechnung, Kundennummer ******78." in shown
    assert "intent rechnung (0.82; bestellung 0.10)" in shown and "HANDOFF low_confidence" in shown
    assert main(["calls", "show", "nope"]) == 1

"""The call store's Alembic migrations: one set for SQLite and PostgreSQL, run when a store opens."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from voicebot.config import StoreSettings
from voicebot.store import migrations
from voicebot.store.base import CallStoreBackend
from voicebot.store.factory import open_store

pytest_plugins = ["pg_server"]  # fixtures: pg_server (the session's PostgreSQL), pg_schema (a fresh schema)

REPO = Path(__file__).resolve().parents[1]


def _settings(path: Path, url: str) -> StoreSettings:
    return StoreSettings(path=path, url=url, redact_pii=False)


def test_the_head_constant_is_alembics_head() -> None:
    assert migrations.head() == migrations.HEAD


def _affinity(declared: str) -> str:
    """SQLite's type affinity: what a declared type means there (FLOAT and REAL are the same)."""
    declared = declared.upper()
    if "INT" in declared:
        return "INTEGER"
    if any(k in declared for k in ("CHAR", "CLOB", "TEXT")):
        return "TEXT"
    return "REAL" if any(k in declared for k in ("REAL", "FLOA", "DOUB")) else "NUMERIC"


def _sqlite_schema(path: Path) -> set[tuple[str, str]]:
    """Columns (name, affinity, not null, default, primary key) and indexes; a key's NOT NULL is implied."""
    with sqlite3.connect(path) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        cols = {(t, f"{c[1]}:{_affinity(c[2])}:{bool(c[3] or c[5])}:{c[4]}:{c[5]}")
                for t in tables for c in conn.execute(f"PRAGMA table_info({t})")}
        idx = {("index", f"{r[0]}:{r[1]}") for r in conn.execute(
            "SELECT name, tbl_name FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_%'")}
    return cols | idx


def test_a_pre_alembic_sqlite_file_migrates_to_the_same_schema_as_a_new_one(tmp_path: Path) -> None:
    old = tmp_path / "old.sqlite3"
    schema_sql = (REPO / "voicebot" / "store" / "schema.sql").read_text("utf-8")
    with sqlite3.connect(old) as conn:  # a file as the store wrote it before the migrations
        conn.executescript(schema_sql)
        conn.execute("INSERT INTO calls (call_id, protocol, started_at) VALUES ('legacy', 'twilio', '2024')")
    new = tmp_path / "new.sqlite3"
    migrations.upgrade(f"sqlite:///{new}")  # Alembic alone, from nothing
    store = open_store(_settings(old, ""), worker_id="w1", heartbeat_s=0)
    try:
        assert store.recover_interrupted().result(timeout=30) is None
        assert store.get_call("legacy")["status"] == "interrupted"  # from before worker ids: its process is gone
    finally:
        store.close()
    assert migrations.current(f"sqlite:///{old}") == migrations.HEAD
    assert _sqlite_schema(old) == _sqlite_schema(new)


def test_postgres_schema_types_and_concurrent_first_opens(pg_schema: str) -> None:
    import psycopg

    url = pg_schema
    stores: list[CallStoreBackend] = []
    errors: list[BaseException] = []

    def start(worker: str) -> None:
        try:
            stores.append(open_store(_settings(Path("unused"), url), worker_id=worker, heartbeat_s=0))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(f"w{i}",)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    try:
        assert not errors and len(stores) == 3  # three workers migrating one fresh database at once
        assert migrations.current(url) == migrations.HEAD
        with psycopg.connect(url) as conn:
            types = dict(conn.execute("SELECT column_name, data_type FROM information_schema.columns "
                                      "WHERE table_name = 'events' AND table_schema = current_schema()").fetchall())
        assert types["payload"] == "jsonb" and types["ts"] == "timestamp with time zone" and types["id"] == "bigint"
    finally:
        for s in stores:
            s.close()


def test_a_bad_store_url_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="postgresql://"):
        open_store(_settings(tmp_path / "x.sqlite3", "mysql://nobody@localhost/x"))

"""Reading the PostgreSQL store: the same dicts as ``voicebot.store.reads`` gives for SQLite.

Timestamps come back as the ISO 8601 UTC text the SQLite store keeps, JSON columns
as Python objects (jsonb), so callers cannot tell the backends apart.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from voicebot.store.reads import like_prefix


def list_calls(conn: psycopg.Connection, limit: int = 50, status: str | None = None) -> list[dict[str, Any]]:
    sql = "SELECT * FROM calls"
    params: list[Any] = []
    if status:
        sql += " WHERE status = %s"
        params.append(status)
    sql += " ORDER BY started_at DESC LIMIT %s"
    params.append(limit)
    with conn.cursor(row_factory=dict_row) as cur:
        return [_row(r) for r in cur.execute(sql, params)]


def get_call(conn: psycopg.Connection, call_id: str) -> dict[str, Any] | None:
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute("SELECT * FROM calls WHERE call_id = %s", (call_id,)).fetchall()
        if not rows:
            like = like_prefix(call_id)
            rows = cur.execute("SELECT * FROM calls WHERE call_id LIKE %s ESCAPE '\\' LIMIT 2", (like,)).fetchall()
            if len(rows) != 1:
                return None
        call = _row(rows[0])
        cid = call["call_id"]

        def rows_of(table: str, order: str) -> list[dict[str, Any]]:
            # table and order are constants from this function, never user input.
            return [_row(r) for r in cur.execute(f"SELECT * FROM {table} WHERE call_id = %s ORDER BY {order}", (cid,))]

        call["turns_list"] = rows_of("turns", "idx")
        call["intents"] = rows_of("intents", "id")
        call["handoffs"] = rows_of("handoffs", "id")
        call["events"] = [r["payload"] for r in rows_of("events", "seq, id")]
        return call


def _row(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v.astimezone(UTC).isoformat(timespec="milliseconds") if isinstance(v, datetime) else v
            for k, v in row.items()}

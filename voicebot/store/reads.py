"""Reading the call store: short-lived connections of their own, no writer thread needed.

WAL lets these run while the writer writes; they see what is committed, never
what is only queued.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any


def open_read(path: Path | str) -> sqlite3.Connection:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"call store not found: {path}")
    conn = sqlite3.connect(path, timeout=30.0)
    conn.row_factory = sqlite3.Row
    return conn


def list_calls(path: Path | str, limit: int = 50, status: str | None = None) -> list[dict[str, Any]]:
    """Read the most recent calls from a store file (no writer thread needed)."""
    with open_read(path) as conn:
        sql = "SELECT * FROM calls"
        params: list[Any] = []
        if status:
            sql += " WHERE status = ?"
            params.append(status)
        sql += " ORDER BY started_at DESC LIMIT ?"
        params.append(limit)
        return [_row(r) for r in conn.execute(sql, params)]


def like_prefix(call_id: str) -> str:
    """A LIKE pattern (ESCAPE '\\') for call ids starting with ``call_id``, its wildcards taken literally."""
    return call_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def get_call(path: Path | str, call_id: str) -> dict[str, Any] | None:
    """One call with its turns, intents, handoffs and events from a store file."""
    with open_read(path) as conn:
        rows = conn.execute("SELECT * FROM calls WHERE call_id = ?", (call_id,)).fetchall()
        if not rows:
            like = like_prefix(call_id)
            rows = conn.execute("SELECT * FROM calls WHERE call_id LIKE ? ESCAPE '\\' LIMIT 2", (like,)).fetchall()
            if len(rows) != 1:
                return None
        call = _row(rows[0])
        cid = call["call_id"]

        def rows_of(table: str, order: str) -> list[dict[str, Any]]:
            # table and order are constants from this function, never user input.
            sql = f"SELECT * FROM {table} WHERE call_id = ? ORDER BY {order}"  # noqa: S608
            return [_row(r) for r in conn.execute(sql, (cid,))]

        call["turns_list"] = rows_of("turns", "idx")
        call["intents"] = rows_of("intents", "id")
        call["handoffs"] = rows_of("handoffs", "id")
        call["events"] = [json.loads(r["payload"]) for r in rows_of("events", "seq, id")]
        return call


def _row(row: sqlite3.Row) -> dict[str, Any]:
    out = dict(row)
    for key in ("caller", "alternatives", "slots", "context"):
        if isinstance(out.get(key), str):
            try:
                out[key] = json.loads(out[key])
            except json.JSONDecodeError:
                pass
    return out

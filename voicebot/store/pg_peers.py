"""What a worker reads of the other workers' calls in the PostgreSQL store (the federation's side).

The bus delivers at most once; the store is the record. A worker re-reads from here
the open calls of the other workers (to list calls it never heard of: it started
later, or its listener reconnected), whether calls it mirrors have ended (their
worker died and a lease sweep closed them), and one call's row and events (the
replay of a call held elsewhere).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from voicebot.store import pg_reads


def open_elsewhere(conn: psycopg.Connection, worker_id: str) -> dict[str, str]:
    """call id -> worker id of every open call held by another worker."""
    rows = conn.execute("SELECT call_id, worker_id FROM calls WHERE ended_at IS NULL AND worker_id IS NOT NULL "
                        "AND worker_id <> %s", (worker_id,)).fetchall()
    return {str(call_id): str(worker) for call_id, worker in rows}


def ended_among(conn: psycopg.Connection, call_ids: list[str]) -> dict[str, tuple[str, float]]:
    """call id -> (status, ended_at epoch seconds) for those of ``call_ids`` that are closed in the store."""
    if not call_ids:
        return {}
    rows = conn.execute("SELECT call_id, status, ended_at FROM calls WHERE call_id = ANY(%s) "
                        "AND ended_at IS NOT NULL", (call_ids,)).fetchall()
    return {str(cid): (str(status or "interrupted"), _epoch(ended)) for cid, status, ended in rows}


def call_with_events(conn: psycopg.Connection, call_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    """The call's row (ISO timestamps, as ``pg_reads``) and its events in ``seq`` order; None if unknown."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute("SELECT * FROM calls WHERE call_id = %s", (call_id,)).fetchone()
        if row is None:
            return None
        events = [r["payload"] for r in cur.execute("SELECT payload FROM events WHERE call_id = %s ORDER BY seq, id",
                                                    (call_id,))]
    return pg_reads._row(row), events


def _epoch(value: Any) -> float:
    if isinstance(value, datetime):
        return value.timestamp()
    return datetime.fromisoformat(str(value)).timestamp() if value else 0.0

"""The SQLite store's schema: the Alembic migrations, with a fast path and the pre-Alembic files.

A file already at head costs one query and no Alembic import. A new file goes through Alembic in
one transaction: measured 25-110 ms per open on the (shared, noisy) development machine, against
35-120 ms for the old ``schema.sql`` script; the first open in a process also imports Alembic and
SQLAlchemy (~1 s, once).
"""

from __future__ import annotations

import logging
import sqlite3
from importlib import resources
from pathlib import Path

from voicebot.store import migrations

log = logging.getLogger(__name__)


def migrate_sqlite(conn: sqlite3.Connection, path: Path) -> None:
    """Bring the file at ``path`` to the migrations' head (``conn``: an autocommit connection to it)."""
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "alembic_version" in tables:
        if conn.execute("SELECT version_num FROM alembic_version").fetchone() == (migrations.HEAD,):
            return
    elif tables & {"calls", "events"}:
        # A file from before the migrations: complete it with the baseline script (revision 0001), stamp it.
        try:
            conn.executescript(resources.files("voicebot.store").joinpath("schema.sql").read_text("utf-8"))
        except sqlite3.IntegrityError as exc:
            # A file from before the unique indexes, holding duplicates: keep it readable and writable.
            log.warning("call store %s: existing duplicates, uniqueness not enforced here (%s)", path, exc)
        migrations.stamp(f"sqlite:///{path}", migrations.BASELINE)
    migrations.upgrade(f"sqlite:///{path}")

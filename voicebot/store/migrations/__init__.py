"""Alembic migrations of the call store, one set for SQLite and PostgreSQL.

Run programmatically when a store opens (no alembic.ini needed): ``upgrade(url)``.
By hand: ``alembic -c voicebot/store/migrations/alembic.ini -x url=postgresql://... upgrade head``.

Revision 0001 is the schema of ``schema.sql`` (the pre-Alembic baseline): a SQLite
file without an ``alembic_version`` table is brought to it by that script and
stamped 0001; everything after 0001 exists only as a migration here.
"""

from __future__ import annotations

from pathlib import Path

HEAD = "0002"  # tests check that this is the head of versions/
BASELINE = "0001"
_HERE = Path(__file__).resolve().parent
_LOCK_KEY = 0x766F6963  # pg advisory lock: two workers starting at once migrate one after the other


def sqlalchemy_url(url: str) -> str:
    """The SQLAlchemy URL of a store URL (``postgresql://`` means psycopg 3, ``sqlite:///path``)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def _config(url: str):  # -> alembic.config.Config (imported lazily: alembic costs ~0.2 s to import)
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(_HERE))
    cfg.set_main_option("sqlalchemy.url", sqlalchemy_url(url).replace("%", "%%"))
    return cfg


def engine_for(url: str):  # -> sqlalchemy.Engine
    """An engine whose transactions cover DDL on SQLite too (one migration = one atomic commit)."""
    import sqlalchemy as sa

    engine = sa.create_engine(sqlalchemy_url(url), poolclass=sa.pool.NullPool)
    if engine.dialect.name == "sqlite":
        # pysqlite commits before DDL on its own; take BEGIN/COMMIT out of its hands (SQLAlchemy's
        # documented recipe), so a failed migration leaves the file as it was.
        sa.event.listen(engine, "connect", lambda dbapi_conn, _rec: setattr(dbapi_conn, "isolation_level", None))
        sa.event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
    return engine


def _run(url: str, action: str, revision: str) -> None:
    import sqlalchemy as sa
    from alembic import command

    cfg = _config(url)
    engine = engine_for(url)
    try:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
            cfg.attributes["connection"] = conn
            getattr(command, action)(cfg, revision)
    finally:
        engine.dispose()


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the store at ``url`` to ``revision`` (transactional on PostgreSQL, serialized by an advisory lock)."""
    _run(url, "upgrade", revision)


def stamp(url: str, revision: str) -> None:
    """Record that the store at ``url`` is at ``revision`` without running anything."""
    _run(url, "stamp", revision)


def current(url: str) -> str | None:
    """The revision the store at ``url`` is at (None: never migrated)."""
    from alembic.migration import MigrationContext

    engine = engine_for(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def head() -> str:
    """The head revision as Alembic reads it from versions/ (the tests compare it with ``HEAD``)."""
    from alembic.script import ScriptDirectory

    return str(ScriptDirectory.from_config(_config("sqlite://")).get_current_head())

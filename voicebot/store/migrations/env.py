"""Alembic environment: a connection handed in by ``voicebot.store.migrations``, or a URL (``-x url=...``)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from voicebot.store.migrations import engine_for, sqlalchemy_url

config = context.config


def _url() -> str:
    given = context.get_x_argument(as_dictionary=True).get("url")
    return sqlalchemy_url(given or config.get_main_option("sqlalchemy.url") or "")


def _online(conn: sa.Connection) -> None:
    # Transactional DDL on SQLite as well (engine_for makes pysqlite honour it): all or nothing.
    context.configure(connection=conn, target_metadata=None, transactional_ddl=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    context.configure(url=_url(), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
elif config.attributes.get("connection") is not None:
    _online(config.attributes["connection"])
else:
    engine = engine_for(_url())
    with engine.connect() as connection:
        _online(connection)
        connection.commit()

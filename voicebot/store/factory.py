"""Open the call store the settings name: PostgreSQL when ``store.url`` is set, else SQLite at ``store.path``."""

from __future__ import annotations

from typing import Any

from voicebot.config import StoreSettings
from voicebot.store.base import CallStoreBackend

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def is_postgres(url: str) -> bool:
    return url.startswith(POSTGRES_SCHEMES)


def open_store(settings: StoreSettings, *, worker_id: str = "", **kwargs: Any) -> CallStoreBackend:
    """The store of ``settings.store`` (blocking: it connects and migrates; run it in a thread from async code).

    ``worker_id``: used when ``store.worker_id`` is empty (the server passes host:port, so two
    workers on one host differ); without either, the host name. Keyword arguments go to the
    backend (``clock``, ``heartbeat_s`` for tests). A URL of another scheme is a clear ``ValueError``.
    """
    options: dict[str, Any] = {
        "redact": settings.redact_pii,
        "worker_id": settings.worker_id or worker_id,
        "lease_s": settings.lease_s,
        **kwargs,
    }
    if settings.url:
        if not is_postgres(settings.url):
            raise ValueError(f"store.url must start with postgresql:// (empty: SQLite at store.path), "
                             f"not {settings.url.split('://', 1)[0]!r}://...")
        from voicebot.store.postgres import PostgresCallStore  # psycopg only where PostgreSQL is used

        return PostgresCallStore(settings.url, **options)
    from voicebot.store.sqlite import CallStore

    return CallStore(settings.path, **options)


def list_calls(settings: StoreSettings, limit: int = 50, status: str | None = None) -> list[dict[str, Any]]:
    """Read the most recent calls from the store the settings name (no writer, no worker lease)."""
    if settings.url:
        import psycopg

        from voicebot.store import pg_reads

        with psycopg.connect(settings.url, autocommit=True) as conn:
            return pg_reads.list_calls(conn, limit=limit, status=status)
    from voicebot.store import reads

    return reads.list_calls(settings.path, limit=limit, status=status)


def get_call(settings: StoreSettings, call_id: str) -> dict[str, Any] | None:
    """One call (an unambiguous id prefix is enough) from the store the settings name."""
    if settings.url:
        import psycopg

        from voicebot.store import pg_reads

        with psycopg.connect(settings.url, autocommit=True) as conn:
            return pg_reads.get_call(conn, call_id)
    from voicebot.store import reads

    return reads.get_call(settings.path, call_id)


def describe(settings: StoreSettings) -> str:
    """Where the store is, for messages (a PostgreSQL URL without its password)."""
    if not settings.url:
        return str(settings.path)
    from voicebot.store.postgres import redacted_url

    return redacted_url(settings.url)

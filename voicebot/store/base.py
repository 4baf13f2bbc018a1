"""What every call store backend offers (``CallStore`` on SQLite, ``PostgresCallStore``).

The server and the tools type against this, not a backend: ``open_store(settings.store)``
(``voicebot.store.factory``) picks the backend from the settings.
"""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel


@runtime_checkable
class CallStoreBackend(Protocol):
    """A call store: queued writes whose futures resolve at commit, synchronous reads, a worker lease."""

    worker_id: str
    redact: bool

    def create_call(
        self, call_id: str, *, protocol: str = ..., caller: dict[str, Any] | None = None,
        started_at: float | None = None,
    ) -> Future[None]:
        """Record a new call; raises ``DuplicateCallId`` for an id the store has seen."""
        ...

    def call_exists(self, call_id: str) -> bool: ...

    def add_event(self, call_id: str, event: dict[str, Any] | BaseModel, *, redacted: bool = False) -> Future[None]:
        ...

    def end_call(self, call_id: str, status: str = ..., ended_at: float | None = None) -> Future[None]: ...

    def recover_interrupted(self) -> Future[None]:
        """Close the open calls of gone workers (this worker's previous process, expired leases)."""
        ...

    def heartbeat(self) -> Future[None]: ...

    def flush(self, timeout: float = ...) -> bool: ...

    def close(self, timeout: float = ...) -> None: ...

    def list_calls(self, limit: int = ..., status: str | None = None) -> list[dict[str, Any]]: ...

    def get_call(self, call_id: str) -> dict[str, Any] | None: ...

"""What a call store write can fail with (the futures of ``CallStore`` carry these)."""

from __future__ import annotations


class StoreError(RuntimeError):
    """A write was not committed (a constraint, a full disk, a failed commit)."""


class StoreClosed(StoreError):
    """The store was closed before the write was queued."""


class DuplicateCallId(StoreError, ValueError):
    """``create_call`` with an id the store already holds: call ids are never reused."""

    def __init__(self, call_id: str) -> None:
        super().__init__(f"call id {call_id!r} was used before")
        self.call_id = call_id

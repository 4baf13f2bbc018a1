"""Worker leases: which worker holds a call, and whether that worker is still alive.

Every store instance is one worker (``worker_id``, unique per live process). It
writes a row in ``workers`` when it opens and renews it from a heartbeat thread
(``expires_at = now + lease_s``); every call it creates carries its worker id.
Recovery (at start, and on every heartbeat) closes as ``interrupted`` only

- the calls its own previous incarnation left open (same worker id, open when this
  store opened: that process is gone, this one replaced it), and
- the open calls of other workers whose lease has expired (killed, hung, cut off),

never the calls of a worker whose lease is still valid. The SQL is shared by both
backends (``?`` placeholders; PostgreSQL gets ``%s``); timestamps are the stores'
ISO 8601 UTC text, which PostgreSQL reads into its timestamptz columns.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

Clock = Callable[[], float]  # seconds since the epoch, like time.time (tests pass a controllable one)


# A connection's execute (sqlite3 or psycopg): (sql, params) -> a cursor with rowcount and fetchall().
Execute = Callable[..., Any]

_OPEN = ("INSERT INTO workers (worker_id, started_at, heartbeat_at, expires_at) VALUES (?, ?, ?, ?) "
         "ON CONFLICT (worker_id) DO UPDATE SET started_at = excluded.started_at, "
         "heartbeat_at = excluded.heartbeat_at, expires_at = excluded.expires_at")
_RENEW = ("INSERT INTO workers (worker_id, started_at, heartbeat_at, expires_at) VALUES (?, ?, ?, ?) "
          "ON CONFLICT (worker_id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at, "
          "expires_at = excluded.expires_at")
_RELEASE = "UPDATE workers SET expires_at = ? WHERE worker_id = ?"
_INHERITED = "SELECT call_id FROM calls WHERE worker_id = ? AND ended_at IS NULL"
_CLOSE_CALL = "UPDATE calls SET status = 'interrupted', ended_at = ? WHERE call_id = ? AND ended_at IS NULL"
_SWEEP_EXPIRED = (
    "UPDATE calls SET status = 'interrupted', ended_at = ? WHERE ended_at IS NULL AND worker_id IN "
    "(SELECT worker_id FROM workers WHERE expires_at < ? AND worker_id <> ?)"
)
# Calls from before worker ids (an old single-process SQLite file): their process is gone.
_SWEEP_LEGACY = "UPDATE calls SET status = 'interrupted', ended_at = ? WHERE ended_at IS NULL AND worker_id IS NULL"


def default_worker_id() -> str:
    """The host name: stable across restarts, so a restarted worker recovers its own calls at once.

    Two workers on one host must be given distinct ids (``store.worker_id``, e.g. host:port).
    """
    return socket.gethostname() or f"pid-{os.getpid()}"


@dataclass
class WorkerLease:
    """One worker's lease and the SQL that keeps it; used from the store's writer thread only."""

    worker_id: str
    lease_s: float
    clock: Clock
    paramstyle: str = "qmark"  # "qmark" (sqlite3) or "format" (psycopg)
    inherited: list[str] = field(default_factory=list)  # open calls of our previous incarnation

    def __post_init__(self) -> None:
        if not self.worker_id.strip():
            raise ValueError("worker_id must not be empty")
        if self.lease_s <= 0:
            raise ValueError(f"lease_s must be positive, not {self.lease_s}")

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.paramstyle == "format" else sql

    def open(self, execute: Execute, iso: Callable[[float], str]) -> None:
        """Take the lease and remember the calls a previous process of this worker id left open."""
        now = self.clock()
        self.inherited = [row[0] for row in execute(self._sql(_INHERITED), (self.worker_id,)).fetchall()]
        execute(self._sql(_OPEN), (self.worker_id, iso(now), iso(now), iso(now + self.lease_s)))

    def renew(self, execute: Execute, now: float, iso: Callable[[float], str]) -> int:
        """Extend the lease, then close the calls of workers whose lease ran out; returns how many."""
        execute(self._sql(_RENEW), (self.worker_id, iso(now), iso(now), iso(now + self.lease_s)))
        return self.sweep(execute, now, iso, legacy=False)

    def sweep(self, execute: Execute, now: float, iso: Callable[[float], str], *, legacy: bool) -> int:
        stamp = iso(now)
        closed = execute(self._sql(_SWEEP_EXPIRED), (stamp, stamp, self.worker_id)).rowcount
        if legacy:
            closed += execute(self._sql(_SWEEP_LEGACY), (stamp,)).rowcount
        if closed:
            log.warning("call store: %d call(s) of gone workers marked interrupted", closed)
        return closed

    def recover(self, execute: Execute, now: float, iso: Callable[[float], str]) -> int:
        """Close our previous incarnation's calls, expired workers' calls and pre-lease calls."""
        stamp = iso(now)
        closed = sum(execute(self._sql(_CLOSE_CALL), (stamp, cid)).rowcount for cid in self.inherited)
        if closed:
            log.warning("call store: %d call(s) left open by an earlier process of worker %r marked interrupted",
                        closed, self.worker_id)
        self.inherited = []
        return closed + self.sweep(execute, now, iso, legacy=True)

    def release(self, execute: Execute, now: float, iso: Callable[[float], str]) -> None:
        """A clean stop: the lease ends now, so any call still open is swept by the other workers."""
        execute(self._sql(_RELEASE), (iso(now), self.worker_id))


class Heartbeat:
    """Calls ``beat`` every ``interval`` seconds from a daemon thread until ``stop``."""

    def __init__(self, beat: Callable[[], object], interval: float, name: str) -> None:
        self._beat = beat
        self._interval = interval
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        if self._interval > 0:
            self._thread.start()

    def _run(self) -> None:
        while not self._stopped.wait(self._interval):  # the wait is the timer, and wakes at once on stop
            try:
                self._beat()
            except Exception:  # a heartbeat must never kill its thread
                log.exception("call store heartbeat failed")

    def stop(self) -> None:
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join(5.0)

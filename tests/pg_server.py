"""A PostgreSQL server for the tests: this project's own (``scripts/postgres.sh``), once per test process.

Debian's package, a throw-away data directory, 127.0.0.1 on a free port; every test that
needs a clean database takes a fresh schema in it (``pg_schema``). Test modules load it
with ``pytest_plugins = ["pg_server"]``, so one server serves them all. Without PostgreSQL
the tests skip, which fails them under CI=true (the conftest hook).
"""

from __future__ import annotations

import atexit
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "postgres.sh"
_started: dict[str, str] = {}  # "url", or "error": started at most once per process


def _sh(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout)


def _start() -> None:
    installed = _sh("install", timeout=600)
    if installed.returncode != 0:
        _started["error"] = f"PostgreSQL not installable here: {installed.stderr.strip()[-300:]}"
        return
    # Not under pytest's tmp dirs (mode 700): a root test run starts the server as the `postgres` user.
    base = Path(tempfile.mkdtemp(prefix="voicebot-pg-"))
    base.chmod(0o755)
    data = base / "data"
    started = _sh("start", str(data))
    if started.returncode != 0:
        shutil.rmtree(base, ignore_errors=True)
        _started["error"] = f"PostgreSQL did not start: {started.stderr.strip()[-500:]}"
        return
    _started["url"] = started.stdout.strip().splitlines()[-1].removeprefix("url ")

    def stop() -> None:
        _sh("stop", str(data), "immediate")  # thrown away: no shutdown checkpoint
        shutil.rmtree(base, ignore_errors=True)

    atexit.register(stop)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """URL of the test process's PostgreSQL server (skips, or fails under CI=true, without one)."""
    pytest.importorskip("psycopg", reason="psycopg not installed: pip install -e '.[test]'")
    if not _started:
        _start()
    if "error" in _started:
        pytest.skip(_started["error"])
    yield _started["url"]


@pytest.fixture
def pg_schema(pg_server: str) -> str:
    """A fresh, empty schema on the server, as a URL whose connections use it: one test's own database."""
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    return f"{pg_server}?options=-csearch_path%3D{schema}"

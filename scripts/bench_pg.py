"""What the store and bus benchmarks share: a project-local PostgreSQL for the run, and percentiles."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def pct(values: list[float], q: float) -> float:
    """The ``q`` quantile by rank (no interpolation); NaN for no values."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


@contextlib.contextmanager
def project_postgres(url: str = "") -> Iterator[str]:
    """``url`` if given, else a PostgreSQL of scripts/postgres.sh in a temporary folder, stopped afterwards."""
    if url:
        yield url
        return
    tmp = Path(tempfile.mkdtemp(prefix="voicebot-bench-"))
    tmp.chmod(0o755)  # the postgres user reads its data folder through it
    script = str(REPO / "scripts" / "postgres.sh")
    try:
        out = subprocess.run(["bash", script, "start", str(tmp / "pg")], capture_output=True, text=True, check=True)
        yield out.stdout.strip().splitlines()[-1].removeprefix("url ")
    finally:
        subprocess.run(["bash", script, "stop", str(tmp / "pg")], capture_output=True, text=True)
        shutil.rmtree(tmp, ignore_errors=True)

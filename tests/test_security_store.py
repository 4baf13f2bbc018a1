"""The store under kill -9: what it reported committed is on file, whatever the moment of death."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

# A writer process: queues events forever and prints each seq once the store reports it committed,
# the way the hub lets a client see an event only after that.
_WRITER = textwrap.dedent(
    """
    import sys
    from voicebot.store.sqlite import CallStore

    store = CallStore(sys.argv[1])
    store.create_call("killed")

    def announce(seq):
        return lambda fut: fut.exception() is None and print(f"committed {seq}", flush=True)

    seq = 0
    while True:
        fut = store.add_event("killed", {"type": "transcript.final", "text": f"Satz {seq}", "seq": seq})
        fut.add_done_callback(announce(seq))
        seq += 1
        if seq % 50 == 0:
            fut.result()  # keep the queue short, as a real call's pace does
    """
)


@pytest.mark.parametrize("after", [1, 40, 400])
def test_sigkill_loses_nothing_that_was_reported_committed(tmp_path: Path, after: int) -> None:
    path = tmp_path / "calls.sqlite3"
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(path)], stdout=subprocess.PIPE, text=True,
        cwd=Path(__file__).resolve().parents[1], env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    announced: list[int] = []
    try:
        for line in proc.stdout:
            announced.append(int(line.split()[1]))
            if len(announced) >= after:
                break
        proc.send_signal(signal.SIGKILL)  # mid-stream: more events are queued and being written
    finally:
        proc.kill()
        proc.wait(30)
    assert len(announced) >= after, "the writer died before it committed anything"
    with sqlite3.connect(path) as conn:
        stored = {r[0] for r in conn.execute("SELECT seq FROM events WHERE call_id = 'killed'")}
        turns = conn.execute("SELECT COUNT(*) FROM turns WHERE call_id = 'killed'").fetchone()[0]
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    missing = sorted(set(announced) - stored)
    assert not missing, f"reported committed but lost by kill -9: {missing[:10]}"
    assert turns == len(stored)  # derived rows commit with their event, never apart

"""Run `voicebot serve` as a child process for benchmarks and end-to-end tests.

The server is started on a free port (``--port 0``) with its call store in a
temporary folder, and is ready when it prints its ``voicebot ready: ...
http://HOST:PORT/`` line (printed only after every model has loaded). It is
stopped with SIGINT, the same graceful path as Ctrl+C, and killed only if it
does not exit in time.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

_READY = re.compile(r"voicebot ready: .*?http://([^:/\s]+):(\d+)/")


class ServerProcess:
    """``with ServerProcess() as server: ... server.url, server.pid``."""

    def __init__(self, extra_args: Sequence[str] = (), env: dict[str, str] | None = None,
                 ready_timeout: float = 300.0) -> None:
        self.extra_args = list(extra_args)
        self.env = env or {}
        self.ready_timeout = ready_timeout
        self.proc: subprocess.Popen[str] | None = None
        self.host = ""
        self.port = 0
        self.output: list[str] = []
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise RuntimeError("server not started")
        return self.proc.pid

    @property
    def url(self) -> str:
        """The native caller websocket."""
        return f"ws://{self.host}:{self.port}/v1/call"

    def start(self) -> ServerProcess:
        self._tmp = tempfile.TemporaryDirectory(prefix="voicebot-bench-")
        env = {**os.environ, "VOICEBOT_STORE__PATH": str(Path(self._tmp.name) / "calls.sqlite3"), **self.env}
        env.setdefault("PYTHONUNBUFFERED", "1")
        cmd = [sys.executable, "-m", "voicebot.cli.main", "serve", "--host", "127.0.0.1", "--port", "0",
               *self.extra_args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        ready = threading.Event()

        def pump() -> None:
            # Keep reading for the server's whole life, so a full pipe never blocks it.
            assert self.proc is not None and self.proc.stdout is not None
            for line in self.proc.stdout:
                self.output.append(line.rstrip())
                if len(self.output) > 400:
                    del self.output[:200]
                match = _READY.search(line)
                if match and not ready.is_set():
                    self.host, self.port = match.group(1), int(match.group(2))
                    ready.set()

        threading.Thread(target=pump, name="voicebot-serve-output", daemon=True).start()
        deadline = time.monotonic() + self.ready_timeout
        while not ready.wait(0.2):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                tail = "\n".join(self.output[-20:])
                self.stop()
                raise RuntimeError(f"`voicebot serve` did not become ready:\n{tail}")
        return self

    def stop(self, timeout: float = 20.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
        return self.proc.returncode

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

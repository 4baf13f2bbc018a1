"""Test helpers for the server: settings for the real call core on fake engines, an
in-process live server, a healthy background call, and a `voicebot serve` subprocess.

``fake_settings`` runs the real ``CallSession`` (stages, policy, player, barge-in) on
the fake engines of ``fake_engines.py`` (energy VAD, scripted ASR and intent, tone
TTS), so protocol, hub, store and agent tests run in seconds without models. The
real models are tested end to end in ``test_server_e2e.py``.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from voicebot.config import Settings

# ---------------------------------------------------------------------------- live server


def fake_settings(
    tmp_path: Path, *, tts: dict[str, Any] | None = None, telephony: dict[str, Any] | None = None,
    engines_loader: str = "fake_engines:load_fake_engines", **server: Any,
) -> Settings:
    """Settings for an in-process server running the real call core on fake engines
    (``fake_engines.py``), with a store under ``tmp_path``. ``tts``: overrides of the tts section."""
    base = Settings()
    # Fake engines cost no CPU: server.max_calls (sized for real models on a small box) would only make a test that
    # opens its next call while the server still closes the last one see a 503. Tests of the limit set it.
    server.setdefault("max_calls", 16)
    return replace(
        base,
        store=replace(base.store, path=tmp_path / "calls.sqlite3"),
        vad=replace(base.vad, end_silence_ms=500),
        tts=replace(base.tts, **(tts or {})),
        telephony=replace(base.telephony, **(telephony or {})),
        server=replace(base.server, port=0, agent_tokens="test-token", engines_loader=engines_loader, **server),
    )


class LiveServer:
    """The real app on a real socket (uvicorn in a thread), so backpressure and closes are real."""

    def __init__(self, settings: Settings) -> None:
        import uvicorn

        from voicebot.cli.serve_cmd import DrainingServer
        from voicebot.server.app import ServerRuntime, create_app

        self.settings = settings
        self.runtime = ServerRuntime(settings)
        config = uvicorn.Config(
            create_app(self.runtime), host="127.0.0.1", port=0, lifespan="on", log_config=None,
            access_log=False, ws_max_size=max(4 * settings.server.max_frame_bytes, 1 << 20),
            ws_per_message_deflate=False,
        )
        self.server = DrainingServer(config, self.runtime)
        self.thread = threading.Thread(target=self.server.run, name="live-server", daemon=True)
        self.port = 0

    def __enter__(self) -> LiveServer:
        from test_protocol_wire import install_wire_check

        install_wire_check()  # every JSON message a test receives must match `voicebot protocol schema`
        self.thread.start()
        deadline = time.monotonic() + 20
        while not (self.server.started and self.runtime.state == "ready"):
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError(f"live server did not start (state {self.runtime.state})")
            time.sleep(0.02)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(30)

    def ws_url(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    def http_url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


# ---------------------------------------------------------------------------- clients


def tone(rate: int, seconds: float, amplitude: int = 6000) -> np.ndarray:
    """A loud 220 Hz tone: "speech" to the fake session's energy detector."""
    t = np.arange(int(rate * seconds)) / rate
    return (amplitude * np.sin(2 * np.pi * 220.0 * t)).astype(np.int16)


def encode_frames(pcm: np.ndarray, encoding: str, rate: int, frame_ms: int = 20) -> list[bytes]:
    from voicebot.audio.codecs import encode

    step = rate * frame_ms // 1000
    return [encode(pcm[i : i + step], encoding) for i in range(0, len(pcm), step)]


def send_paced(send: Any, frames: list[bytes], frame_ms: int = 20) -> None:
    """Send frames as a real caller does: one per ``frame_ms`` of wall time (the call core's
    partial transcripts and barge-in timing depend on audio arriving as it happens)."""
    next_at = time.monotonic()
    for frame in frames:
        send(frame)
        next_at += frame_ms / 1000
        delay = next_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)  # pacing a real-time source, not waiting for a condition


class HealthyCall(threading.Thread):
    """A well-behaved native call running beside a misbehaving client.

    Opens the call at once, waits for ``go()``, then speaks one turn (paced in real
    time, as a phone would), collects events and bot audio, and hangs up.
    ``check()`` asserts it got everything a caller should.
    """

    def __init__(self, url: str, encoding: str = "mulaw", rate: int = 8000) -> None:
        super().__init__(daemon=True)
        self.url, self.encoding, self.rate = url, encoding, rate
        self.events: list[dict[str, Any]] = []
        self.audio = 0
        self.error: BaseException | None = None
        self.opened = threading.Event()
        self._go = threading.Event()
        self.start()
        if not self.opened.wait(10):
            raise RuntimeError(f"healthy call did not open: {self.error!r}")

    def go(self) -> None:
        self._go.set()

    def run(self) -> None:
        import json

        from websockets.sync.client import connect

        try:
            with connect(self.url, open_timeout=10) as ws:
                ws.send(json.dumps({"type": "start", "encoding": self.encoding, "sample_rate": self.rate}))
                self._recv_until(ws, "call.started", 5)
                self.opened.set()
                self._go.wait(30)
                pcm = np.concatenate([tone(self.rate, 1.0), np.zeros(int(self.rate * 0.7), np.int16)])
                send_paced(ws.send, encode_frames(pcm, self.encoding, self.rate))
                self._recv_until(ws, "bot.audio.end", 10, after="intent")
                ws.send(json.dumps({"type": "stop"}))
                self._recv_until(ws, "call.end", 10)
        except BaseException as exc:  # noqa: BLE001 - reported by check()
            self.error = exc
            self.opened.set()

    def _recv_until(self, ws: Any, etype: str, timeout: float, after: str | None = None) -> None:
        import json

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = ws.recv(timeout=max(0.01, deadline - time.monotonic()))
            if isinstance(message, bytes):
                self.audio += len(message)
                continue
            event = json.loads(message)
            self.events.append(event)
            if event["type"] == etype and (after is None or any(e["type"] == after for e in self.events)):
                return
        raise TimeoutError(f"no {etype} within {timeout} s; got {[e['type'] for e in self.events]}")

    def check(self) -> None:
        self.go()
        self.join(30)
        assert self.error is None, f"the healthy call failed: {self.error!r}"
        types = [e["type"] for e in self.events]
        for expected in ("call.started", "transcript.partial", "transcript.final", "intent", "bot.utterance"):
            assert expected in types, f"healthy call missed {expected}: {types}"
        assert types[-1] == "call.end" and self.events[-1]["reason"] == "completed"
        assert not [e for e in self.events if e["type"] == "error"], "the healthy call got an error"
        assert self.audio > self.rate * 0.5, "the healthy call got (almost) no bot audio"


# ---------------------------------------------------------------------------- `voicebot serve` subprocess


class ServeProcess:
    """`voicebot serve` as a real subprocess on a free loopback port, ready when it says so."""

    def __init__(self, tmp_path: Path, env: dict[str, str] | None = None, wait: float | None = 300.0) -> None:
        import socket
        import subprocess
        import sys

        from test_protocol_wire import install_wire_check

        install_wire_check()  # every JSON message a test receives must match `voicebot protocol schema`
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.store_path = tmp_path / "calls.sqlite3"
        self.token = "e2e-token"
        full_env = {**os.environ, "VOICEBOT_STORE__PATH": str(self.store_path),
                    "VOICEBOT_SERVER__AGENT_TOKENS": self.token, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.log_path = tmp_path / "serve.log"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "voicebot.cli.main", "serve", "--port", str(self.port)],
            stdout=subprocess.PIPE, stderr=self.log_path.open("w"), text=True, env=full_env,
            cwd=Path(__file__).resolve().parents[1],
        )
        self.ready_line = ""
        self._lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        if wait is not None:
            self.wait_ready(wait)

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self.ready_line:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"voicebot serve did not get ready:\n{self.log_path.read_text()[-3000:]}")
            time.sleep(0.1)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.append(line)
            if line.startswith("voicebot ready:"):
                self.ready_line = line.strip()

    def ws_url(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    def http_url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self, timeout: float = 30.0) -> int:
        """SIGINT (Ctrl+C), as an operator would; returns the exit code."""
        import signal

        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except Exception:  # noqa: BLE001 - a hung server must not hang the test run
                self.proc.kill()
                self.proc.wait(5)
        return int(self.proc.returncode)


def recv_events(ws: Any, timeout: float = 5.0) -> tuple[list[dict[str, Any]], int | None]:
    """Every JSON message until the server closes (or ``timeout``), and the close code (None: still open)."""
    from websockets.exceptions import ConnectionClosed

    events: list[dict[str, Any]] = []
    try:
        while True:
            message = ws.recv(timeout=timeout)
            if isinstance(message, str):
                events.append(json.loads(message))
    except ConnectionClosed as exc:
        return events, exc.rcvd.code if exc.rcvd else None
    except TimeoutError:
        return events, None


# ---------------------------------------------------------------------------- agent link


class QueuedAgent:
    """An agent link (``voicebot.server.hub.AgentLink``) that queues what it is sent, for hub tests."""

    agent_id = "anna"

    def __init__(self, *subscriptions: str) -> None:
        self.subscriptions: set[str] = set(subscriptions or ("*",))
        self.inbox: asyncio.Queue[Any] = asyncio.Queue()

    def deliver(self, message: Any) -> bool:
        self.inbox.put_nowait(message)
        return True

    def close(self, code: int, reason: str) -> None:
        pass

    async def until(self, match: Any) -> Any:
        async with asyncio.timeout(10.0):
            while not match(message := await self.inbox.get()):
                pass
        return message

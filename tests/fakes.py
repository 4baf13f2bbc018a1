"""Test doubles for the server: a scripted call session and an in-process live server.

``FakeSession`` has the ``CallSession`` interface and emits a realistic event
sequence with real timings (an energy detector stands in for VAD, canned text
for ASR), so protocol, hub, store and agent tests run in milliseconds without
models. The real pipeline is tested end to end in ``test_server_e2e.py``.

Scripts, chosen by the caller metadata the client sends (``caller.fake``):
``normal`` (default), ``flood`` (bursts 20 MB of bot audio at once, for the
slow-consumer test), ``hangup`` (the bot ends the call after the first turn).
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from voicebot.config import Settings
from voicebot.frames import AudioFrame, BotAudio

TEXT = "Ich habe eine Frage zu meiner Rechnung, meine Kundennummer ist 12345678."
GREETING = "Guten Tag, Sie sprechen mit dem automatischen Assistenten."
ANSWER = "Es geht also um Ihre Rechnung. Ich verbinde Sie mit der Buchhaltung."


class FakeEngines:
    """Nothing to load; ``encoder`` None makes the knowledge base use TF-IDF."""

    encoder = None
    load_seconds = {"fake": 0.0}

    async def start(self) -> None: ...

    async def aclose(self) -> None: ...


class FakeSession:
    """Scripted stand-in for ``voicebot.dialog.session.CallSession``."""

    def __init__(
        self, engines: Any, settings: Settings, call_id: str, *,
        emit: Callable[[dict[str, Any]], Awaitable[None]], send_audio: Callable[[BotAudio], Awaitable[None]],
        out_rate: int, realtime: bool = True, metadata: dict[str, Any] | None = None,
    ) -> None:
        self.call_id = call_id
        self.emit = emit
        self.send_audio = send_audio
        self.out_rate = out_rate
        self.realtime = realtime
        self.metadata = metadata or {}
        caller = self.metadata.get("caller") or {}
        self.script = caller.get("fake", "normal")
        self.text = caller.get("say", TEXT)
        self.state = "bot"
        self._t = 0.0
        self._in_speech = False
        self._voiced = 0.0
        self._silence = 0.0
        self._since_partial = 0.0
        self._speech_end_at = 0.0
        self._speaker: asyncio.Task[None] | None = None
        self.frames_received = 0

    @classmethod
    def load_engines(cls, settings: Settings) -> FakeEngines:
        time.sleep(float(os.environ.get("VOICEBOT_FAKE_LOAD_S", "0")))  # lets tests see /readyz say 503
        return FakeEngines()

    async def start(self) -> None:
        await self.emit({"type": "call.start", "metadata": self.metadata})
        await self.emit({"type": "bot.utterance", "text": GREETING, "action": "greet"})
        if self.script == "flood":
            await self.emit({"type": "bot.audio.start"})
            chunk = np.full(self.out_rate, 1000, dtype=np.int16)  # 1 s per frame
            for _ in range(20_000_000 // (2 * self.out_rate) + 1):
                await self.send_audio(BotAudio(chunk, self.out_rate))
                await asyncio.sleep(0.001)  # a fast producer, but one that lets the sender run
            await self.emit({"type": "bot.audio.end", "completed": True})
            return
        self._speak(0.6)

    async def push_audio(self, frame: AudioFrame) -> None:
        if self.state == "ended":
            return
        self.frames_received += 1
        dur = frame.duration
        self._t += dur
        loud = frame.pcm.size > 0 and float(np.sqrt(np.mean(frame.pcm.astype(np.float64) ** 2))) > 300.0
        if loud:
            self._silence = 0.0
            if not self._in_speech:
                self._in_speech, self._voiced, self._since_partial = True, 0.0, 0.0
                await self.emit({"type": "speech.started", "t": round(self._t, 3)})
                if self._speaker is not None and not self._speaker.done():
                    self._speaker.cancel()
                    await self.emit({"type": "bargein", "t": round(self._t, 3), "action": "stopped"})
            self._voiced += dur
            self._since_partial += dur
            if self._since_partial >= 0.4:
                self._since_partial = 0.0
                words = self.text.split()
                n = max(1, min(len(words) - 1, int(self._voiced / 0.3)))
                await self.emit({"type": "transcript.partial", "text": " ".join(words[:n]), "confidence": 0.8,
                                 "committed": " ".join(words[: max(0, n - 1)])})
        elif self._in_speech:
            self._silence += dur
            if self._silence >= 0.5:
                self._in_speech = False
                await self._end_turn()

    async def _end_turn(self) -> None:
        started = time.perf_counter()
        await self.emit({"type": "speech.ended", "t": round(self._t, 3), "start": round(self._t - self._voiced, 3)})
        await asyncio.sleep(0.05)  # "decoding"
        await self.emit({"type": "transcript.final", "text": self.text, "confidence": 0.91,
                         "start": round(self._t - self._voiced, 3), "end": round(self._t, 3), "words": []})
        if self.state != "bot":
            return
        asr_ms = (time.perf_counter() - started) * 1000
        await self.emit({"type": "intent", "label": "rechnung", "confidence": 0.87,
                         "alternatives": [{"label": "bestellung", "confidence": 0.06},
                                          {"label": "sonstiges", "confidence": 0.03}],
                         "slots": {"customer_number": "12345678"}})
        await self.emit({"type": "route", "route": "buchhaltung", "intent": "rechnung"})
        await self.emit({"type": "bot.utterance", "text": ANSWER, "action": "route"})
        await self.emit({"type": "latency", "endpoint_ms": 500.0, "asr_ms": round(asr_ms, 1), "intent_ms": 5.0,
                         "tts_first_audio_ms": 20.0, "voice_to_voice_ms": round(525.0 + asr_ms, 1)})
        self._speak(0.8, end_after=self.script == "hangup")

    def _speak(self, seconds: float, end_after: bool = False) -> None:
        self._speaker = asyncio.create_task(self._play(seconds, end_after))

    async def _play(self, seconds: float, end_after: bool) -> None:
        await self.emit({"type": "bot.audio.start"})
        frame = int(self.out_rate * 0.02)
        t = np.arange(frame) / self.out_rate
        tone = (3000 * np.sin(2 * np.pi * 400.0 * t)).astype(np.int16)  # 8 whole cycles per 20 ms frame
        try:
            for _ in range(int(seconds / 0.02)):
                if self.state != "bot":
                    break
                await self.send_audio(BotAudio(tone, self.out_rate))
                if self.realtime:
                    await asyncio.sleep(0.02)
        except asyncio.CancelledError:
            await self.emit({"type": "bot.audio.end", "completed": False})  # barge-in, as the real player does
            raise
        await self.emit({"type": "bot.audio.end", "completed": self.state == "bot"})
        if end_after:
            await self.end("completed")

    async def take_over(self, agent_id: str) -> None:
        if self.state != "bot":
            return
        self.state = "human"
        if self._speaker is not None:
            self._speaker.cancel()
        await self.emit({"type": "agent.takeover", "agent_id": agent_id})

    async def release(self, agent_id: str) -> None:
        if self.state != "human":
            return
        self.state = "bot"
        await self.emit({"type": "agent.release", "agent_id": agent_id})

    async def end(self, reason: str = "completed") -> None:
        if self.state == "ended":
            return
        self.state = "ended"
        if self._speaker is not None and self._speaker is not asyncio.current_task():
            self._speaker.cancel()
            await asyncio.gather(self._speaker, return_exceptions=True)  # its bot.audio.end comes first
        await self.emit({"type": "call.end", "reason": reason})


# ---------------------------------------------------------------------------- live server


def fake_settings(tmp_path: Path, **server: Any) -> Settings:
    """Settings for an in-process server on the fake session, with a store under ``tmp_path``."""
    base = Settings()
    return replace(
        base,
        store=replace(base.store, path=tmp_path / "calls.sqlite3"),
        dialog=replace(base.dialog, domain=tmp_path / "domain"),
        server=replace(base.server, port=0, agent_tokens="test-token", session_factory="fakes:FakeSession",
                       **server),
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


class HealthyCall(threading.Thread):
    """A well-behaved native call running beside a misbehaving client.

    Opens the call at once, waits for ``go()``, then speaks one turn (not paced:
    the fake session counts stream time), collects events and bot audio, and
    hangs up. ``check()`` asserts it got everything a caller should.
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
                pcm = np.concatenate([tone(self.rate, 0.8), np.zeros(int(self.rate * 0.7), np.int16)])
                for frame in encode_frames(pcm, self.encoding, self.rate):
                    ws.send(frame)
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

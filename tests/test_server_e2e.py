"""End to end: `voicebot serve` as a subprocess with the real pipeline, real German speech streamed
in real time over the native websocket (16 kHz PCM) and the Twilio endpoint (8 kHz µ-law).

Checks partial and final transcripts, the intent, the bot's audio coming back in the caller's
format, what agents see, and the call as stored in SQLite.
"""

from __future__ import annotations

import base64
import importlib
import json
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fakes import ServeProcess
from websockets.sync.client import ClientConnection, connect

from voicebot.audio.codecs import decode, encode
from voicebot.audio.io import read_audio
from voicebot.audio.resample import resample
from voicebot.config import Settings
from voicebot.store.sqlite import get_call

pytestmark = pytest.mark.slow

NATIVE_CLIP = ("clips/emodb_03b03Nb.flac", "An den Wochenenden bin ich jetzt immer nach Hause gefahren")
TWILIO_CLIP = ("clips/emodb_09b03Nb.flac", "An den Wochenenden bin ich jetzt immer nach Hause gefahren")
PIPELINE_MODULES = ("voicebot.engines", "voicebot.dialog.session", "voicebot.asr.factory", "voicebot.asr.streaming",
                    "voicebot.tts.playback", "voicebot.nlu.intent", "voicebot.dialog.policy")


def _pipeline_missing() -> str | None:
    for name in PIPELINE_MODULES:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            return f"the real pipeline is not complete yet ({name}: {exc})"
    settings = Settings()
    for model in ("whisper-base", "pico-de", "e5-small"):
        if not (settings.models.dir / model).is_dir():
            return f"model {model} not provisioned: run `voicebot models pull`"
    from voicebot.nlu.intent import CALIBRATION_FILE, intent_model_dir

    trained = [intent_model_dir(ref, settings) for ref in (settings.nlu.intent_model, settings.nlu.fallback) if ref]
    if not any((d / CALIBRATION_FILE).is_file() for d in trained):
        return "no intent model trained: run `voicebot train intent`"
    return None


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    missing = _pipeline_missing()
    if missing:
        pytest.skip(missing)
    srv = ServeProcess(tmp_path_factory.mktemp("e2e"))
    yield srv
    assert srv.stop() in (0, 130, -2)


def speech(speech_dir: Path, clip: str, rate: int) -> np.ndarray:
    pcm, src = read_audio(speech_dir / clip)
    return resample(pcm, src, rate)


class PhoneLine(threading.Thread):
    """A phone line: 20 ms frames in real time, silence whenever the caller is not speaking.

    Telephony never stops sending audio, and the pipeline relies on it (results of background
    decodes come out with the next frames), so neither does this test.
    """

    def __init__(self, send: Any, rate: int, encoding: str) -> None:
        super().__init__(daemon=True)
        self.send, self.rate, self.encoding = send, rate, encoding
        self.step = rate // 50
        self.pending = np.zeros(0, np.int16)
        self.lock = threading.Lock()
        self.running = True
        self.start()

    def say(self, pcm: np.ndarray) -> float:
        """Queue speech; returns its duration in seconds."""
        with self.lock:
            self.pending = np.concatenate([self.pending, pcm])
        return len(pcm) / self.rate

    def run(self) -> None:
        started, i = time.monotonic(), 0
        silence = np.zeros(self.step, np.int16)
        while self.running:
            with self.lock:
                frame, self.pending = self.pending[: self.step], self.pending[self.step :]
            frame = np.concatenate([frame, silence[: self.step - len(frame)]])
            try:
                self.send(encode(frame, self.encoding))
            except Exception:  # noqa: BLE001 - the call is over
                return
            i += 1
            time.sleep(max(0.0, started + i * 0.02 - time.monotonic()))

    def hang_up(self) -> None:
        self.running = False
        self.join(2)


def words(text: str) -> set[str]:
    return set(re.findall(r"\w+", text.lower()))


class Agent(threading.Thread):
    """An agent subscribed to every call, collecting what it sees."""

    def __init__(self, server: ServeProcess) -> None:
        super().__init__(daemon=True)
        self.ws = connect(server.ws_url(f"/v1/agent?token={server.token}")).__enter__()
        self.events: list[dict[str, Any]] = []
        self.ws.send(json.dumps({"type": "subscribe", "call_id": "*"}))
        self.start()

    def run(self) -> None:
        try:
            for message in self.ws:
                self.events.append(json.loads(message))
        except Exception:  # noqa: BLE001 - the socket closes at the end of the test
            return

    def of(self, call_id: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("call_id") == call_id]


def wait_for(ws: ClientConnection, etype: str, timeout: float, sink: list[dict[str, Any]]) -> bytes:
    """Receive until an event of ``etype``; returns the binary audio received meanwhile."""
    audio = bytearray()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = ws.recv(timeout=deadline - time.monotonic())
        if isinstance(message, bytes):
            audio += message
            continue
        sink.append(json.loads(message))
        if sink[-1].get("type") == etype:
            return bytes(audio)
    raise TimeoutError(f"no {etype} in {timeout} s: {[e.get('type') for e in sink]}")


def test_native_call_with_real_speech(server: ServeProcess, speech_dir: Path) -> None:
    clip, expected = NATIVE_CLIP
    pcm = speech(speech_dir, clip, 16000)
    events: list[dict[str, Any]] = []
    with connect(server.ws_url("/v1/call")) as ws:
        ws.send(json.dumps({"type": "start", "protocol": "voicebot.v1", "encoding": "pcm_s16le",
                            "sample_rate": 16000, "call_id": "e2e-native", "caller": {"name": "E2E"}}))
        wait_for(ws, "call.started", 10, events)
        line = PhoneLine(ws.send, 16000, "pcm_s16le")
        greeting_audio = wait_for(ws, "bot.audio.end", 90, events)  # the caller listens to the whole greeting
        line.say(pcm)
        wait_for(ws, "transcript.final", 60, events)
        reply_audio = wait_for(ws, "bot.audio.start", 60, events)
        reply_audio += wait_for(ws, "bot.audio.end", 90, events)
        line.hang_up()
        ws.send(json.dumps({"type": "stop"}))
        wait_for(ws, "call.end", 30, events)
    types = [e["type"] for e in events]
    assert len(decode(greeting_audio, "pcm_s16le")) > 16000, "the greeting is spoken"
    assert "transcript.partial" in types and types.index("transcript.partial") < types.index("transcript.final")
    final = next(e for e in events if e["type"] == "transcript.final")
    assert len(words(final["text"]) & words(expected)) >= len(words(expected)) // 2, final["text"]
    intent = next(e for e in events if e["type"] == "intent")
    assert intent["label"] and 0.0 <= intent["confidence"] <= 1.0 and isinstance(intent["alternatives"], list)
    assert "bot.utterance" in types[types.index("transcript.final"):]
    reply = decode(reply_audio, "pcm_s16le")
    assert len(reply) > 0.5 * 16000 and np.abs(reply).max() > 1000, "the bot answers with audible speech"
    assert any(e["type"] == "latency" for e in events)
    time.sleep(0.5)  # the writer thread commits within milliseconds
    record = get_call(server.store_path, "e2e-native")
    assert record is not None and record["status"] == "completed" and record["protocol"] == "voicebot.v1"
    caller_turns = [t for t in record["turns_list"] if t["speaker"] == "caller"]
    assert caller_turns and caller_turns[0]["text"] == final["text"]
    assert record["intents"][0]["label"] == intent["label"]
    assert [e["type"] for e in record["events"]][:2] == ["call.started", "call.start"]


def test_twilio_call_with_real_speech(server: ServeProcess, speech_dir: Path) -> None:
    clip, expected = TWILIO_CLIP
    pcm = speech(speech_dir, clip, 8000)
    agent = Agent(server)
    messages: list[dict[str, Any]] = []
    with connect(server.ws_url("/v1/twilio")) as ws:
        ws.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
        ws.send(json.dumps({"event": "start", "sequenceNumber": "1", "streamSid": "MZe2e", "start": {
            "streamSid": "MZe2e", "callSid": "CAe2e", "accountSid": "ACe2e", "tracks": ["inbound"],
            "customParameters": {"from": "+4930123456789"},
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}}))
        receiver = threading.Thread(target=lambda: _drain(ws, messages), daemon=True)
        receiver.start()
        seq = iter(range(2, 10**6))
        line = PhoneLine(lambda b: ws.send(json.dumps({
            "event": "media", "sequenceNumber": str(next(seq)), "streamSid": "MZe2e",
            "media": {"track": "inbound", "payload": base64.b64encode(b).decode()}})), 8000, "mulaw")
        # This caller does not wait: they speak two seconds into the greeting (barge-in).
        _wait(lambda: sum(m["event"] == "media" for m in messages) >= 100, 30)
        line.say(pcm)
        _wait(lambda: any(m["event"] == "clear" for m in messages), 30)
        _wait(lambda: _follows([e["type"] for e in agent.of("CAe2e")], "intent", "bot.audio.end"), 120)
        line.hang_up()
        ws.send(json.dumps({"event": "stop", "sequenceNumber": "9999", "streamSid": "MZe2e",
                            "stop": {"accountSid": "ACe2e", "callSid": "CAe2e"}}))
        receiver.join(30)
    seen = agent.of("CAe2e")
    agent.ws.close()
    types = [e["type"] for e in seen]
    assert "transcript.partial" in types and "transcript.final" in types and "intent" in types
    assert "bargein" in types and "suggestions" in types
    final = next(e for e in seen if e["type"] == "transcript.final")
    assert len(words(final["text"]) & words(expected)) >= len(words(expected)) // 2, final["text"]
    media = b"".join(base64.b64decode(m["media"]["payload"]) for m in messages if m["event"] == "media")
    assert len(media) > 3 * 8000, "greeting and reply come back as µ-law at 8 kHz"
    assert [m["event"] for m in messages].count("mark") >= 2, "a mark after each bot utterance"
    assert np.abs(decode(media, "mulaw")).max() > 1000
    assert all(m["streamSid"] == "MZe2e" for m in messages)
    time.sleep(0.5)
    record = get_call(server.store_path, "CAe2e")
    assert record["protocol"] == "twilio" and record["status"] == "completed"
    assert record["caller"]["from"].endswith("89") and "123456" not in record["caller"]["from"]
    assert any(t["speaker"] == "caller" for t in record["turns_list"]) and record["intents"]


def _drain(ws: ClientConnection, sink: list[dict[str, Any]]) -> None:
    try:
        for message in ws:
            sink.append(json.loads(message))
    except Exception:  # noqa: BLE001 - ends when the server closes the stream
        return


def _follows(types: list[str], first: str, then: str) -> bool:
    """Whether ``then`` occurs after the first ``first`` (e.g. the reply's audio ended after the intent)."""
    return first in types and then in types[types.index(first):]


def _wait(condition: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(0.05)

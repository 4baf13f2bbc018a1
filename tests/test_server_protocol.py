"""The caller protocols and the server's life, with the scripted fake session in-process.

What is checked here is the server's side: message shapes, audio in the caller's
encoding and rate, ordering, the store, metrics, readiness and shutdown. The real
pipeline (speech in, transcripts out) is in test_server_e2e.py.
"""

from __future__ import annotations

import base64
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fakes import LiveServer, encode_frames, fake_settings, send_paced, tone
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from voicebot.audio.codecs import decode
from voicebot.store.sqlite import get_call


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with LiveServer(fake_settings(tmp_path_factory.mktemp("proto"), max_calls=8)) as srv:  # 8 calls at once
        yield srv


def collect(ws: ClientConnection, until: str, timeout: float = 10.0) -> tuple[list[dict[str, Any]], bytes]:
    """Events (JSON) and concatenated binary audio until an event of type ``until``."""
    events: list[dict[str, Any]] = []
    audio = bytearray()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = ws.recv(timeout=deadline - time.monotonic())
        if isinstance(message, bytes):
            audio += message
            continue
        events.append(json.loads(message))
        if events[-1].get("type", events[-1].get("event")) == until:
            return events, bytes(audio)
    raise TimeoutError(f"no {until}: {[e.get('type') for e in events]}")


def http_get(server: LiveServer, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(server.http_url(path), timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.mark.parametrize(("encoding", "rate"), [("mulaw", 8000), ("alaw", 8000), ("pcm_s16le", 16000)])
def test_native_call_round_trip(server: LiveServer, encoding: str, rate: int) -> None:
    with connect(server.ws_url("/v1/call")) as ws:
        ws.send(json.dumps({"type": "start", "protocol": "voicebot.v1", "encoding": encoding, "sample_rate": rate,
                            "call_id": f"rt-{encoding}", "caller": {"name": "Test"}}))
        events, _ = collect(ws, "call.started")
        assert events[0] == {**events[0], "type": "call.started", "call_id": f"rt-{encoding}",
                             "encoding": encoding, "sample_rate": rate, "protocol": "voicebot.v1", "seq": 0}
        send_paced(ws.send, encode_frames(np.concatenate([tone(rate, 1.0), np.zeros(rate, np.int16)]), encoding, rate))
        events, audio = collect(ws, "latency")
        more, audio2 = collect(ws, "bot.audio.end")  # the answer, spoken in full
        events, audio = events + more, audio + audio2
        ws.send(json.dumps({"type": "stop"}))
        tail, audio_tail = collect(ws, "call.end")
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000
    types = [e["type"] for e in events + tail]
    for expected in ("transcript.partial", "transcript.final", "intent", "bot.utterance", "bot.audio.start"):
        assert expected in types
    assert types.index("transcript.partial") < types.index("transcript.final") < types.index("intent")
    seqs = [e["seq"] for e in events + tail]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    # Bot audio comes back in the caller's own encoding and rate: a 400 Hz tone at `rate`.
    pcm = decode(audio + audio_tail, encoding).astype(np.float64)
    assert len(pcm) > 0.3 * rate
    spectrum = np.abs(np.fft.rfft(pcm[: rate // 2]))
    assert abs(np.argmax(spectrum) * rate / (2 * len(spectrum) - 2) - 400.0) < 5.0
    assert tail[-1]["reason"] == "completed"
    server.runtime.store.flush()
    record = get_call(server.settings.store.path, f"rt-{encoding}")
    assert record["status"] == "completed" and record["last_intent"] == "rechnung"
    assert [t["speaker"] for t in record["turns_list"]] == ["bot", "caller", "bot"]


def test_dropped_connection_is_recorded_as_interrupted(server: LiveServer) -> None:
    with connect(server.ws_url("/v1/call")) as ws:
        ws.send(json.dumps({"type": "start", "encoding": "pcm_s16le", "sample_rate": 16000, "call_id": "dropped"}))
        collect(ws, "call.started")
        pcm = np.concatenate([tone(16000, 1.0), np.zeros(12000, np.int16)])
        for frame in encode_frames(pcm, "pcm_s16le", 16000):
            ws.send(frame)
        collect(ws, "intent")
        ws.socket.shutdown(2)  # no stop, no close handshake: the line just drops
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and "dropped" in server.runtime.hub.calls:
        time.sleep(0.05)
    server.runtime.store.flush()
    record = get_call(server.settings.store.path, "dropped")
    assert record["status"] == "interrupted"
    assert record["last_intent"] == "rechnung" and record["turns"] >= 2  # everything up to the drop is kept


def test_twilio_media_stream(server: LiveServer) -> None:
    with connect(server.ws_url("/v1/twilio")) as ws:
        ws.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
        ws.send(json.dumps({"event": "start", "sequenceNumber": "1", "streamSid": "MZ1", "start": {
            "streamSid": "MZ1", "callSid": "CA-twilio-1", "accountSid": "AC1", "tracks": ["inbound"],
            "customParameters": {"from": "+4917112345678"},
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}}))
        pcm = np.concatenate([tone(8000, 1.0), np.zeros(8000, np.int16)])
        send_paced(ws.send, [
            json.dumps({"event": "media", "sequenceNumber": str(i + 2), "streamSid": "MZ1",
                        "media": {"track": "inbound", "chunk": str(i + 1), "timestamp": str(20 * i),
                                  "payload": base64.b64encode(frame).decode()}})
            for i, frame in enumerate(encode_frames(pcm, "mulaw", 8000))])
        messages: list[dict[str, Any]] = []
        # Until the answer has been played: a mark after the barge-in's clear and the answer's audio.
        while not (messages and messages[-1]["event"] == "mark" and "clear" in [m["event"] for m in messages]
                   and messages[-2]["event"] == "media"):
            messages.append(json.loads(ws.recv(timeout=10)))
        ws.send(json.dumps({"event": "mark", "streamSid": "MZ1", "mark": {"name": messages[-1]["mark"]["name"]}}))
        ws.send(json.dumps({"event": "stop", "streamSid": "MZ1", "stop": {"callSid": "CA-twilio-1"}}))
        with pytest.raises(ConnectionClosed):
            while True:
                messages.append(json.loads(ws.recv(timeout=5)))
    kinds = [m["event"] for m in messages]
    assert set(kinds) <= {"media", "mark", "clear"}, "only Twilio's own messages go to Twilio"
    assert "clear" in kinds  # the caller spoke over the greeting
    media = [m for m in messages if m["event"] == "media"]
    assert all(m["streamSid"] == "MZ1" for m in messages)
    audio = b"".join(base64.b64decode(m["media"]["payload"]) for m in media)
    assert len(audio) > 0.5 * 8000  # µ-law: one byte per sample at 8 kHz
    marks = [m["mark"]["name"] for m in messages if m["event"] == "mark"]
    assert marks == [f"bot-{i + 1}" for i in range(len(marks))] and marks  # one per bot utterance
    server.runtime.store.flush()
    record = get_call(server.settings.store.path, "CA-twilio-1")
    assert record["protocol"] == "twilio" and record["status"] == "completed"
    masked = record["caller"]["from"]  # personal data is redacted before storage
    assert masked.startswith("+49*") and masked.endswith("78") and "1234" not in masked
    assert "playback.mark" in [e["type"] for e in record["events"]]


def test_health_and_metrics(server: LiveServer) -> None:
    assert http_get(server, "/healthz")[0] == 200
    status, body = http_get(server, "/readyz")
    assert status == 200 and json.loads(body)["status"] == "ready"
    status, body = http_get(server, "/metrics")
    text = body.decode()
    assert status == 200
    for name in ("voicebot_active_calls", "voicebot_calls_total", "voicebot_turns_total", "voicebot_intents_total",
                 "voicebot_handoffs_total", "voicebot_eos_to_final_seconds_bucket",
                 "voicebot_eos_to_intent_seconds_bucket", "voicebot_eos_to_first_audio_seconds_bucket"):
        assert name in text, name
    assert 'voicebot_intents_total{label="rechnung"}' in text
    assert "python_gc" not in text, "the per-app registry must not carry the global collectors"
    assert http_get(server, "/")[0] == 200 and http_get(server, "/phone")[0] == 200
    assert http_get(server, "/static/agent.js")[0] == 200


def test_not_ready_while_loading_then_graceful_shutdown(tmp_path: Path) -> None:
    os.environ["VOICEBOT_FAKE_LOAD_S"] = "1.5"
    try:
        srv = LiveServer(fake_settings(tmp_path))
        srv.thread.start()
        while not srv.server.started:
            time.sleep(0.02)
        srv.port = srv.server.servers[0].sockets[0].getsockname()[1]
        assert http_get(srv, "/readyz")[0] == 503
        with connect(srv.ws_url("/v1/call")) as ws:
            ws.send(json.dumps({"type": "start", "encoding": "mulaw", "sample_rate": 8000}))
            event = json.loads(ws.recv(timeout=5))
            assert event["code"] == "not_ready"
        while srv.runtime.state != "ready":
            time.sleep(0.05)
    finally:
        os.environ.pop("VOICEBOT_FAKE_LOAD_S", None)
    with connect(srv.ws_url("/v1/call")) as ws:
        ws.send(json.dumps({"type": "start", "encoding": "mulaw", "sample_rate": 8000, "call_id": "in-flight"}))
        collect(ws, "call.started")
        srv.__exit__()  # graceful stop with a call in progress
        events, _ = collect(ws, "call.end")
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
    assert events[-1]["reason"] == "shutdown" and closed.value.rcvd.code == 1001
    record = get_call(tmp_path / "calls.sqlite3", "in-flight")
    assert record["status"] == "shutdown" and record["events"][-1]["type"] == "call.end"


def test_many_concurrent_calls(server: LiveServer) -> None:
    from fakes import HealthyCall

    calls = [HealthyCall(server.ws_url("/v1/call"), *fmt) for fmt in
             [("mulaw", 8000), ("alaw", 8000), ("pcm_s16le", 16000), ("pcm_s16le", 48000)] * 2]
    assert len(server.runtime.hub.calls) >= len(calls)
    for call in calls:
        call.go()
    for call in calls:
        call.check()
    ids = {e["call_id"] for call in calls for e in call.events}
    assert len(ids) == len(calls), "every caller hears only its own call"

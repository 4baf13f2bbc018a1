"""Bad input on the caller endpoints: each case gets an error event with a code (and a clean close
where the stream cannot go on), while a concurrent healthy call on the same server is unaffected.

The server runs in-process on a real socket with the scripted fake session (tests/fakes.py).
"""

from __future__ import annotations

import base64
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fakes import HealthyCall, LiveServer, fake_settings, recv_events
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

MAX_FRAME = 8000


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings = fake_settings(tmp_path_factory.mktemp("bad"), max_frame_bytes=MAX_FRAME, send_queue_max=32,
                             send_timeout_s=2.0, max_calls=8)
    with LiveServer(settings) as srv:
        yield srv


@pytest.fixture
def healthy(server: LiveServer) -> Iterator[HealthyCall]:
    call = HealthyCall(server.ws_url("/v1/call"))
    yield call
    call.check()


def first_error(ws: ClientConnection, timeout: float = 5.0) -> dict[str, Any]:
    while True:
        message = ws.recv(timeout=timeout)
        if isinstance(message, str):
            event = json.loads(message)
            if event.get("type") == "error":
                return event


def start(ws: ClientConnection, **fields: Any) -> dict[str, Any]:
    ws.send(json.dumps({"type": "start", "encoding": "pcm_s16le", "sample_rate": 16000, **fields}))
    while True:
        message = ws.recv(timeout=5)
        if isinstance(message, str) and json.loads(message)["type"] == "call.started":
            return json.loads(message)


def assert_still_open(ws: ClientConnection) -> None:
    ws.send(json.dumps({"type": "ping", "id": 7}))
    while True:
        message = ws.recv(timeout=5)
        if isinstance(message, str) and json.loads(message)["type"] == "pong":
            return


# ---------------------------------------------------------------------------- native protocol


def test_bad_json_is_reported_and_the_call_goes_on(server: LiveServer, healthy: HealthyCall) -> None:
    with connect(server.ws_url("/v1/call")) as ws:
        ws.send("{this is not json")
        error = first_error(ws)
        assert error["code"] == "bad_json" and error["fatal"] is False
        ws.send(json.dumps([1, 2, 3]))
        assert first_error(ws)["code"] == "bad_json"
        assert_still_open(ws)


def test_unknown_message_type(server: LiveServer, healthy: HealthyCall) -> None:
    with connect(server.ws_url("/v1/call")) as ws:
        start(ws)
        ws.send(json.dumps({"type": "dance"}))
        error = first_error(ws)
        assert error["code"] == "unknown_type" and "dance" in error["message"]
        ws.send(json.dumps({"no": "type"}))
        assert first_error(ws)["code"] == "unknown_type"
        assert_still_open(ws)


def test_unsupported_encoding_closes_cleanly(server: LiveServer, healthy: HealthyCall) -> None:
    with connect(server.ws_url("/v1/call")) as ws:
        ws.send(json.dumps({"type": "start", "encoding": "opus", "sample_rate": 16000}))
        events, code = recv_events(ws)
    assert [e["code"] for e in events if e["type"] == "error"] == ["unsupported_encoding"]
    assert "pcm_s16le" in events[-1]["message"] and code == 1003


def test_unsupported_rate_closes_cleanly(server: LiveServer, healthy: HealthyCall) -> None:
    with connect(server.ws_url("/v1/call")) as ws:
        ws.send(json.dumps({"type": "start", "encoding": "mulaw", "sample_rate": 11025}))
        events, code = recv_events(ws)
    assert [e["code"] for e in events if e["type"] == "error"] == ["unsupported_rate"] and code == 1003


def test_audio_before_start(server: LiveServer, healthy: HealthyCall) -> None:
    with connect(server.ws_url("/v1/call")) as ws:
        ws.send(b"\x00\x01" * 160)
        assert first_error(ws)["code"] == "audio_before_start"
        start(ws)  # the connection is still usable
        assert_still_open(ws)


def test_garbage_audio_bytes(server: LiveServer, healthy: HealthyCall) -> None:
    with connect(server.ws_url("/v1/call")) as ws:
        start(ws)
        ws.send(b"\x13\x37\x42")  # odd length: not 16-bit PCM
        error = first_error(ws)
        assert error["code"] == "bad_audio" and "even number" in error["message"]
        assert_still_open(ws)


def test_oversized_frame(server: LiveServer, healthy: HealthyCall) -> None:
    with connect(server.ws_url("/v1/call")) as ws:
        start(ws)
        ws.send(b"\x00" * (MAX_FRAME + 2))
        events, code = recv_events(ws)
    errors = [e for e in events if e["type"] == "error"]
    assert errors[0]["code"] == "frame_too_large" and errors[0]["fatal"] is True
    assert events[-1]["type"] == "call.end" and code == 1009


def test_duplicate_call_id(server: LiveServer, healthy: HealthyCall) -> None:
    with connect(server.ws_url("/v1/call")) as first:
        start(first, call_id="same-id")
        with connect(server.ws_url("/v1/call")) as second:
            second.send(json.dumps({"type": "start", "encoding": "pcm_s16le", "sample_rate": 16000,
                                    "call_id": "same-id"}))
            events, code = recv_events(second)
        assert events[0]["code"] == "duplicate_call_id" and code == 1008
        assert_still_open(first)


@pytest.fixture(scope="module")
def flood_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server whose (fake) voice makes every bot sentence 20 MB of audio."""
    settings = fake_settings(tmp_path_factory.mktemp("flood"), tts={"voice": "fake-flood", "playback_lead_ms": 700_000},
                             max_frame_bytes=MAX_FRAME, send_queue_max=32, send_timeout_s=2.0, max_calls=8)
    with LiveServer(settings) as srv:
        yield srv


def test_slow_consumer_is_dropped(flood_server: LiveServer) -> None:
    # A client that stops reading: a tiny receive buffer and a websocket client that pauses
    # reading after 2 queued frames, against a greeting of 20 MB of bot audio.
    server = flood_server  # (no healthy call beside it here: on this server every greeting floods)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    with connect(server.ws_url("/v1/call"), sock=sock, max_queue=2) as ws:
        ws.send(json.dumps({"type": "start", "encoding": "pcm_s16le", "sample_rate": 16000}))
        import time

        time.sleep(1.0)  # not reading while the server floods (it gives up after ~0.3 s)
        received = 0
        events: list[dict[str, Any]] = []
        try:
            while True:
                message = ws.recv(timeout=10)
                if isinstance(message, bytes):
                    received += len(message)
                else:
                    events.append(json.loads(message))
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd else None
    assert received < 20_000_000, "the server should have given up before sending everything"
    assert any(e["type"] == "error" and e["code"] == "slow_consumer" for e in events), events[-3:]
    assert code == 1008


# ---------------------------------------------------------------------------- twilio protocol


def twilio_start(ws: ClientConnection, **media_format: Any) -> None:
    fmt = {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1, **media_format}
    ws.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
    ws.send(json.dumps({"event": "start", "sequenceNumber": "1", "streamSid": "MZbad",
                        "start": {"streamSid": "MZbad", "callSid": "CAbad" + str(id(ws))[-6:],
                                  "tracks": ["inbound"], "mediaFormat": fmt}}))


def test_twilio_bad_base64_and_media_before_start(server: LiveServer, healthy: HealthyCall) -> None:
    with connect(server.ws_url("/v1/twilio")) as ws:
        ws.send(json.dumps({"event": "media", "media": {"payload": base64.b64encode(b"\xff" * 160).decode()}}))
        error = first_error(ws)
        assert error["event"] == "error" and error["code"] == "audio_before_start"
        twilio_start(ws)
        ws.send(json.dumps({"event": "media", "streamSid": "MZbad", "media": {"payload": "%%% not base64 %%%"}}))
        error = first_error(ws)
        assert error["code"] == "bad_audio" and error["streamSid"] == "MZbad"
        ws.send(json.dumps({"event": "nonsense"}))
        assert first_error(ws)["code"] == "unknown_type"
        ws.send("garbage")
        assert first_error(ws)["code"] == "bad_json"


def test_twilio_unsupported_encoding(server: LiveServer, healthy: HealthyCall) -> None:
    with connect(server.ws_url("/v1/twilio")) as ws:
        twilio_start(ws, encoding="audio/opus")
        events, code = recv_events(ws)
    assert events[0]["code"] == "unsupported_encoding" and code == 1003


def test_errors_are_recorded_with_the_call(server: LiveServer, tmp_path: Path) -> None:
    with connect(server.ws_url("/v1/call")) as ws:
        call_id = start(ws)["call_id"]
        ws.send(b"\x01")
        first_error(ws)
        ws.send(json.dumps({"type": "stop"}))
        recv_events(ws)
    server.runtime.store.flush()
    from voicebot.store.sqlite import get_call

    record = get_call(server.settings.store.path, call_id)
    assert record is not None and record["status"] == "completed"
    assert [e["code"] for e in record["events"] if e["type"] == "error"] == ["bad_audio"]
    assert b"voicebot_errors_total{code=\"bad_audio\"}" in _metrics(server)


def _metrics(server: LiveServer) -> bytes:
    import urllib.request

    with urllib.request.urlopen(server.http_url("/metrics"), timeout=5) as response:
        return response.read()


# ---------------------------------------------------------------------------- valid JSON of the wrong shape


def test_deeply_nested_json_is_refused_before_parsing(server: LiveServer, healthy: HealthyCall) -> None:
    with connect(server.ws_url("/v1/call")) as ws:
        ws.send("[" * 5000)
        error = first_error(ws)
        assert error["code"] == "bad_json" and "nested" in error["message"] and error["fatal"] is False
        deep_caller = '{"type": "start", "encoding": "mulaw", "sample_rate": 8000, "caller": ' + \
            '{"a": ' * 900 + "1" + "}" * 900 + "}"
        ws.send(deep_caller)
        assert first_error(ws)["code"] == "bad_json"
        start(ws, caller={"name": "Erika"})  # the connection is still usable
        assert_still_open(ws)


@pytest.mark.parametrize("payload", [
    {"type": "start", "encoding": ["mulaw"], "sample_rate": 8000},
    {"type": "start", "encoding": "mulaw", "sample_rate": "8000"},
    {"type": "start", "encoding": "mulaw", "sample_rate": 8000, "channels": "1"},
    {"type": "start", "encoding": "mulaw", "sample_rate": 8000, "call_id": 5},
    {"type": "start", "encoding": "mulaw", "sample_rate": 8000, "caller": "Erika"},
    {"type": "start", "protocol": 2, "encoding": "mulaw", "sample_rate": 8000},
])
def test_native_start_of_the_wrong_shape(server: LiveServer, payload: dict[str, Any]) -> None:
    with connect(server.ws_url("/v1/call")) as ws:
        ws.send(json.dumps(payload))
        events, code = recv_events(ws)
    errors = [e for e in events if e["type"] == "error"]
    assert len(errors) == 1 and errors[0]["fatal"] is True, events
    assert errors[0]["code"] in ("unsupported_encoding", "unsupported_rate", "unsupported_channels", "bad_start",
                                 "unsupported_protocol")
    assert code in (1003, 1008)


def test_twilio_messages_of_the_wrong_shape(server: LiveServer, healthy: HealthyCall) -> None:
    with connect(server.ws_url("/v1/twilio")) as ws:
        ws.send("[" * 5000)
        assert first_error(ws)["code"] == "bad_json"
        twilio_start(ws)
        ws.send(json.dumps({"event": "mark", "streamSid": "MZbad", "mark": "bot-1"}))
        error = first_error(ws)
        assert error["code"] == "bad_message" and error["event"] == "error" and error["streamSid"] == "MZbad"
        ws.send(json.dumps({"event": "mark", "streamSid": "MZbad", "mark": {"name": 17}}))
        assert first_error(ws)["code"] == "bad_message"
        ws.send(json.dumps({"event": "dtmf", "streamSid": "MZbad", "dtmf": ["1"]}))
        assert first_error(ws)["code"] == "bad_message"
        ws.send(json.dumps({"event": "dtmf", "streamSid": "MZbad", "dtmf": {"digit": {"x": 1}}}))
        assert first_error(ws)["code"] == "bad_message"
        ws.send(json.dumps({"event": "media", "streamSid": "MZbad", "media": {"payload": 12}}))
        assert first_error(ws)["code"] == "bad_audio"
        ws.send(json.dumps({"event": "start", "start": {"mediaFormat": "audio/x-mulaw"}}))
        assert first_error(ws)["code"] == "already_started"  # the call goes on
        ws.send(json.dumps({"event": "stop"}))
        events, code = recv_events(ws)
    assert code == 1000


def test_twilio_start_with_a_string_media_format(server: LiveServer, healthy: HealthyCall) -> None:
    with connect(server.ws_url("/v1/twilio")) as ws:
        ws.send(json.dumps({"event": "start", "streamSid": "MZfmt",
                            "start": {"streamSid": "MZfmt", "callSid": "CAfmt", "mediaFormat": "audio/x-mulaw"}}))
        events, code = recv_events(ws)
    assert [e["code"] for e in events if e.get("event") == "error"] == ["bad_start"] and code == 1008


def test_agent_messages_of_the_wrong_shape(server: LiveServer) -> None:
    with connect(server.ws_url("/v1/agent?token=test-token")) as ws:
        ws.send("[" * 5000)
        assert first_error(ws)["code"] == "bad_json"
        ws.send(json.dumps({"type": "subscribe", "call_id": ["x"]}))
        assert first_error(ws)["code"] == "unknown_call"
        ws.send(json.dumps({"type": "takeover"}))
        assert first_error(ws)["code"] == "unknown_call"
        ws.send(json.dumps({"type": "ping", "id": 1}))
        while json.loads(ws.recv(timeout=5))["type"] != "pong":
            pass
    with connect(server.ws_url("/v1/agent")) as ws:
        ws.send('{"type": "auth", "token": ' + "[" * 900 + "]" * 900 + "}")
        events, code = recv_events(ws)
    assert events[-1]["code"] == "unauthorized" and code == 4401

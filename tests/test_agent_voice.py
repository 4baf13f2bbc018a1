"""The agent's own voice on ``/v1/agent``: after a takeover, ``audio.start`` opens binary audio both
ways; the agent's microphone reaches the caller in the caller line's codec and rate (native mulaw
8 kHz and Twilio), the caller's audio reaches the agent in the agent's format, the agent's words are
transcribed with ``speaker: "agent"``, the bot stays silent, release hands the call back, and bad
input gets error events. Orchestration on the fake engines (``fake_engines.py``); the real models
carry the same audio in ``test_agent_voice_browser.py``.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from fakes import LiveServer, encode_frames, fake_settings, send_paced, tone
from test_server_agent import agent, caller, next_of
from websockets.sync.client import ClientConnection, connect

from voicebot.audio.codecs import decode


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with LiveServer(fake_settings(tmp_path_factory.mktemp("agent-voice"))) as srv:
        yield srv


def pitch(pcm: np.ndarray, rate: int) -> float:
    """The strongest frequency of a stretch of audio (Hz)."""
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64) * np.hanning(len(pcm))))
    return float(np.argmax(spectrum) * rate / len(pcm))


def collect(ws: ClientConnection, until: str, timeout: float = 15.0, **match: Any) -> tuple[list[dict], bytes]:
    """Messages and binary audio until a message of type ``until`` (matching ``match``) arrives."""
    events: list[dict] = []
    audio = bytearray()
    deadline = time.monotonic() + timeout
    while True:
        message = ws.recv(timeout=max(0.01, deadline - time.monotonic()))
        if isinstance(message, bytes):
            audio += message
            continue
        event = json.loads(message)
        events.append(event)
        if event.get("type", event.get("event")) == until and all(event.get(k) == v for k, v in match.items()):
            return events, bytes(audio)


def agent_speaks(ws: ClientConnection, seconds: float = 1.2, hz: float = 440.0) -> None:
    """A 440 Hz "voice" at 16 kHz in 20 ms frames, then silence (the recognizer ends the turn)."""
    t = np.arange(int(16000 * seconds)) / 16000
    voice = (7000 * np.sin(2 * np.pi * hz * t)).astype(np.int16)
    send_paced(ws.send, encode_frames(np.concatenate([voice, np.zeros(16000, np.int16)]), "pcm_s16le", 16000))


def test_agent_talks_to_a_mulaw_caller_and_hears_them(server: LiveServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    with connect(server.ws_url("/v1/call")) as call:
        call.send(json.dumps({"type": "start", "encoding": "mulaw", "sample_rate": 8000, "call_id": "voice-1",
                              "caller": {"name": "Erika"}}))
        collect(call, "bot.audio.end")  # the greeting is over
        with agent(server) as ws:
            ws.send(json.dumps({"type": "subscribe", "call_id": "voice-1"}))
            next_of(ws, "replay", call_id="voice-1")
            # Audio without a takeover, or before audio.start, is refused with an error event.
            ws.send(json.dumps({"type": "audio.start", "call_id": "voice-1", "sample_rate": 16000}))
            assert next_of(ws, "error")["code"] == "not_taken_over"
            ws.send(b"\x00\x00" * 160)
            assert next_of(ws, "error")["code"] == "audio_before_start"

            ws.send(json.dumps({"type": "takeover", "call_id": "voice-1"}))
            next_of(ws, "ack", action="takeover")
            ws.send(json.dumps({"type": "audio.start", "call_id": "voice-1", "sample_rate": 44100}))
            started = next_of(ws, "audio.started")
            assert started["sample_rate"] == 44100 and started["encoding"] == "pcm_s16le"
            assert (started["caller_encoding"], started["caller_sample_rate"]) == ("mulaw", 8000)
            ws.send(json.dumps({"type": "audio.start", "call_id": "voice-1", "sample_rate": 16000}))
            assert next_of(ws, "audio.stopped")["reason"] == "stopped"  # one channel at a time
            assert next_of(ws, "audio.started")["sample_rate"] == 16000

            # Bad input: a wrong rate, an odd byte count, an oversized frame; the channel stays.
            ws.send(json.dumps({"type": "audio.start", "call_id": "voice-1", "sample_rate": 12345}))
            assert next_of(ws, "error")["code"] == "unsupported_rate"
            ws.send(b"\x00" * 321)
            assert next_of(ws, "error")["code"] == "bad_audio"
            ws.send(b"\x00\x00" * 16000)  # 1 s in one frame
            assert next_of(ws, "error")["code"] == "frame_too_large"

            # The agent's voice reaches the caller as mulaw 8 kHz; the bot says nothing meanwhile.
            agent_speaks(ws)
            events: list[dict] = []
            heard = b""
            deadline = time.monotonic() + 10
            while len(heard) < 8000 and time.monotonic() < deadline:
                message = call.recv(timeout=5)
                if isinstance(message, bytes):
                    heard += message
                else:
                    events.append(json.loads(message))
            assert len(heard) >= 8000, "the caller got the agent's audio"
            pcm = decode(heard[1000:8000], "mulaw")
            assert abs(pitch(pcm, 8000) - 440.0) < 10.0, "the caller hears the agent's 440 Hz, resampled to 8 kHz"
            assert not [e for e in events if e["type"].startswith("bot.")], "the bot is silent"

            # The agent's words are transcribed as the agent's; the caller's stay the caller's.
            own = next_of(ws, "transcript.final", speaker="agent")
            assert own["text"] and own["call_id"] == "voice-1"
            assert "Kundennummer" in own["text"] and "12345678" not in own["text"]  # masked as the caller's are

            # The caller's audio reaches the agent at the agent's 16 kHz.
            send_paced(call.send, encode_frames(np.concatenate([tone(8000, 1.0), np.zeros(6000, np.int16)]), "mulaw",
                                                8000))
            seen, to_agent = collect(ws, "transcript.final", speaker="caller")
            assert not [e for e in seen if e["type"] in ("bargein", "bot.utterance")], "no barge-in, no bot answer"
            assert len(to_agent) >= 16000 * 2 * 0.8
            assert abs(pitch(np.frombuffer(to_agent[3200:28800], np.int16), 16000) - 220.0) < 10.0

            ws.send(json.dumps({"type": "release", "call_id": "voice-1"}))
            assert next_of(ws, "audio.stopped")["reason"] == "released"
            next_of(ws, "agent.release")
            ws.send(b"\x00\x00" * 160)
            assert next_of(ws, "error")["code"] == "audio_before_start"
            # Released: the bot answers the caller's next turn again.
            send_paced(call.send, encode_frames(np.concatenate([tone(8000, 1.0), np.zeros(6000, np.int16)]),
                                                "mulaw", 8000))
            assert next_of(call, "bot.utterance")["text"]
        call.send(json.dumps({"type": "stop"}))
        next_of(call, "call.end")
    assert "Traceback" not in caplog.text


def test_agent_voice_on_a_twilio_stream(server: LiveServer) -> None:
    with connect(server.ws_url("/v1/twilio")) as call:
        call.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
        call.send(json.dumps({"event": "start", "sequenceNumber": "1", "streamSid": "MZvoice", "start": {
            "streamSid": "MZvoice", "callSid": "CAvoice1", "tracks": ["inbound"],
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}}))
        collect(call, "mark")  # the greeting has been sent
        with agent(server) as ws:
            ws.send(json.dumps({"type": "list"}))
            call_id = next(c["call_id"] for c in next_of(ws, "calls")["calls"] if c["protocol"] == "twilio"
                           and c["state"] != "ended")
            ws.send(json.dumps({"type": "takeover", "call_id": call_id}))
            next_of(ws, "ack", action="takeover")
            ws.send(json.dumps({"type": "audio.start", "call_id": call_id, "sample_rate": 48000}))
            assert next_of(ws, "audio.started")["caller_sample_rate"] == 8000
            t = np.arange(48000) / 48000
            send_paced(ws.send, encode_frames((7000 * np.sin(2 * np.pi * 440.0 * t)).astype(np.int16), "pcm_s16le",
                                              48000))
            heard = bytearray()
            while len(heard) < 6000:
                message = json.loads(call.recv(timeout=10))
                if message["event"] == "media":
                    heard += base64.b64decode(message["media"]["payload"])
            assert abs(pitch(decode(bytes(heard[800:6000]), "mulaw"), 8000) - 440.0) < 10.0
        # The agent's connection closed: its channel is gone, the call goes on.
        call.send(json.dumps({"event": "stop", "streamSid": "MZvoice"}))


def test_wrapup_is_published_and_stored(server: LiveServer) -> None:
    with caller(server, "wrap-1") as call, agent(server) as ws:
        ws.send(json.dumps({"type": "subscribe", "call_id": "wrap-1"}))
        next_of(ws, "replay", call_id="wrap-1")
        ws.send(json.dumps({"type": "wrapup", "call_id": "wrap-1", "code": "geloest"}))
        assert next_of(ws, "error")["code"] == "not_taken_over"
        ws.send(json.dumps({"type": "takeover", "call_id": "wrap-1"}))
        next_of(ws, "ack", action="takeover")
        call.send(json.dumps({"type": "stop"}))
        next_of(ws, "call.end", call_id="wrap-1")
        ws.send(json.dumps({"type": "wrapup", "call_id": "wrap-1", "code": "gibt-es-nicht"}))
        assert next_of(ws, "error")["code"] == "bad_message"
        ws.send(json.dumps({"type": "wrapup", "call_id": "wrap-1", "code": "rueckruf",
                            "note": "Rückruf unter 0171 2345678 morgen"}))
        next_of(ws, "ack", action="wrapup")
        event = next_of(ws, "wrapup")  # after its commit
        assert event["label"] == "Rückruf vereinbart" and "2345678" not in event["note"]  # masked
    server.runtime.store.flush()
    from voicebot.store.sqlite import get_call

    record = get_call(server.settings.store.path, "wrap-1")
    stored = [e for e in record["events"] if e["type"] == "wrapup"]
    assert stored and stored[0]["code"] == "rueckruf" and "2345678" not in json.dumps(stored)

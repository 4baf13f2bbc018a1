"""Backchannels over the bot on both caller protocols: the bot pauses, resumes, and keeps talking.

The real server and call core on fake engines (``fake_engines.py``): a caller says "mhm"
(0.3 s of voice) while the greeting plays, in real time. Expected: a ``bargein`` event
``paused`` then ``resumed`` (no ``stopped``), bot audio goes on arriving after the resume,
and the "mhm" is not answered as a turn. On Twilio the pause sends ``clear`` (audio runs ahead of
real time, ``tts.playback_lead_ms``) and the bot sends what Twilio dropped again on resume.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fakes import LiveServer, encode_frames, fake_settings, tone
from websockets.sync.client import connect

from voicebot.dialog.domain import load_domain
from voicebot.protocol.events import parse_call_event
from voicebot.tts.base import split_sentences


@pytest.fixture
def server(tmp_path: Path):  # type: ignore[no-untyped-def]
    with LiveServer(fake_settings(tmp_path)) as live:
        yield live


class Caller(threading.Thread):
    """Plays µ-law audio in real time (20 ms frames): silence, a "mhm" once ``go`` is set, silence."""

    def __init__(self, send: Any) -> None:
        super().__init__(daemon=True)
        self.send_frame = send
        self.go = threading.Event()
        self.done = threading.Event()
        self.mhm = encode_frames(tone(8000, 0.3), "mulaw", 8000)
        self.quiet = encode_frames(np.zeros(160, np.int16), "mulaw", 8000)[0]

    def run(self) -> None:
        queue: list[bytes] = []
        sent_mhm = False
        deadline = time.monotonic() + 15
        next_at = time.monotonic()
        while not self.done.is_set() and time.monotonic() < deadline:
            if self.go.is_set() and not sent_mhm:
                queue, sent_mhm = list(self.mhm), True
            self.send_frame(queue.pop(0) if queue else self.quiet)
            next_at += 0.02
            self.done.wait(max(0.0, next_at - time.monotonic()))


def _check(events: list[dict[str, Any]], audio_after_resume: int) -> None:
    for event in events:
        parse_call_event(event)  # every event is a valid voicebot.v1 call event
    actions = [e["action"] for e in events if e["type"] == "bargein"]
    assert actions[:1] == ["paused"] and "resumed" in actions and "stopped" not in actions, actions
    assert audio_after_resume > 0, "no bot audio after the resume"
    assert not any(e["type"] == "intent" for e in events), "a backchannel is not a turn"


def test_backchannel_on_native_call(server: LiveServer) -> None:
    events: list[dict[str, Any]] = []
    audio_after_resume = 0
    with connect(server.ws_url("/v1/call")) as ws:
        ws.send(json.dumps({"type": "start", "encoding": "mulaw", "sample_rate": 8000, "call_id": "bc-native"}))
        caller = Caller(ws.send)
        caller.start()
        resumed = False
        while not (resumed and audio_after_resume >= 10):
            message = ws.recv(timeout=10)
            if isinstance(message, bytes):
                audio_after_resume += resumed
                continue
            event = json.loads(message)
            events.append(event)
            if event["type"] == "bot.audio.start":
                caller.go.set()
            resumed = resumed or (event["type"] == "bargein" and event["action"] == "resumed")
        caller.done.set()
        ws.send(json.dumps({"type": "stop"}))
        caller.join()
    _check(events, audio_after_resume)


def test_backchannel_on_twilio_stream(server: LiveServer) -> None:
    messages: list[dict[str, Any]] = []
    with connect(server.ws_url("/v1/twilio")) as ws:
        ws.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
        ws.send(json.dumps({"event": "start", "sequenceNumber": "1", "streamSid": "MZbc", "start": {
            "streamSid": "MZbc", "callSid": "CA-bc", "accountSid": "AC1", "tracks": ["inbound"],
            "customParameters": {}, "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}}))
        lock = threading.Lock()
        chunk = iter(range(10**6))

        def send_media(frame: bytes) -> None:
            with lock:
                ws.send(json.dumps({"event": "media", "streamSid": "MZbc", "media": {
                    "track": "inbound", "chunk": str(next(chunk)), "payload": base64.b64encode(frame).decode()}}))

        caller = Caller(send_media)
        caller.start()
        caller.go.set()  # Twilio sees no events: the "mhm" starts with the greeting
        while not messages or messages[-1]["event"] != "mark":  # the greeting was played to its end
            messages.append(json.loads(ws.recv(timeout=10)))
        caller.done.set()
        ws.send(json.dumps({"event": "stop", "streamSid": "MZbc", "stop": {"callSid": "CA-bc"}}))
        caller.join()
    kinds = [m["event"] for m in messages]
    assert "clear" in kinds and "media" in kinds[kinds.index("clear"):], "cleared on the pause, then resumed"
    greeting = load_domain(server.settings.dialog.domain).prompt("greeting")
    greeting_s = len(split_sentences(greeting)) * 0.3  # the fake voice: 0.3 s a sentence
    media_s = sum(len(base64.b64decode(m["media"]["payload"])) for m in messages if m["event"] == "media") / 8000
    lead_s = server.settings.tts.playback_lead_ms / 1000
    # All of the greeting arrived; what was sent ahead of the caller at the pause came again.
    assert greeting_s - 0.01 <= media_s <= greeting_s + lead_s + 0.05, (media_s, greeting_s)
    server.runtime.store.flush()
    events = [e for e in server.runtime.store.get_call("CA-bc")["events"]]
    actions = [e["action"] for e in events if e["type"] == "bargein"]
    assert actions[:1] == ["paused"] and "resumed" in actions and "stopped" not in actions, actions
    assert not any(e["type"] == "intent" for e in events), "a backchannel is not a turn"

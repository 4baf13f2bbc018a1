"""A handoff reaches a human for real: the signed webhook, the native `transfer`, the Twilio redirect.

The real server and call core on fake engines whose caller asks for a person ("Mitarbeiter"),
against a real local webhook receiver and a local fake of Twilio's REST API
(``telephony_servers.py``).
"""

from __future__ import annotations

import base64
import json
import threading
from pathlib import Path
from typing import Any

import numpy as np
from fakes import LiveServer, encode_frames, fake_settings, tone
from telephony_servers import FakeTwilio, WebhookReceiver
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

SECRET = "hook-secret"
HUMAN = "fake_engines:load_fake_engines_asking_for_a_human"


def _play(send: Any, stop: threading.Event, encode: Any) -> threading.Thread:
    """The caller's turn in real time: 1.2 s of voice, then silence, until ``stop``."""
    frames = encode_frames(np.concatenate([tone(8000, 1.2), np.zeros(8000 * 8, np.int16)]), "mulaw", 8000)

    def run() -> None:
        for frame in frames:
            if stop.wait(0.02):
                return
            try:
                send(encode(frame))
            except Exception:  # noqa: BLE001 - the server closed the stream: the transfer's doing
                return

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_native_handoff_sends_a_signed_webhook_and_a_transfer(tmp_path: Path) -> None:
    with WebhookReceiver(SECRET) as hook:
        settings = fake_settings(tmp_path, engines_loader=HUMAN, telephony={
            "handoff_webhook": hook.url("/hook"), "webhook_secret": SECRET, "handoff_queue": "zentrale"})
        with LiveServer(settings) as server, connect(server.ws_url("/v1/call")) as ws:
            ws.send(json.dumps({"type": "start", "encoding": "mulaw", "sample_rate": 8000, "call_id": "ho-native"}))
            stop = threading.Event()
            _play(ws.send, stop, lambda frame: frame)
            events: list[dict[str, Any]] = []
            try:
                while True:
                    message = ws.recv(timeout=15)
                    if isinstance(message, str):
                        events.append(json.loads(message))
                        if events[-1]["type"] == "handoff":
                            received = hook.wait_for(1, timeout=1.0)  # the webhook is there within 1 s
            except ConnectionClosed as closed:
                assert closed.rcvd is not None and closed.rcvd.code == 1000  # the stream ends cleanly
            stop.set()
    types = [e["type"] for e in events]
    assert types.index("handoff") < types.index("transfer") < types.index("call.end")
    assert types.index("bot.audio.end", types.index("handoff")) < types.index("transfer")  # after the phrase
    transfer = next(e for e in events if e["type"] == "transfer")
    assert transfer["target"] == {"kind": "queue", "value": "zentrale"} and transfer["ends_stream"] is True
    assert events[-1]["type"] == "call.end" and events[-1]["reason"] == "transferred"
    assert received[0].verdict == "ok", "the webhook's HMAC-SHA256 signature checks out"
    body = json.loads(received[0].body)
    assert body["call_id"] == "ho-native" and body["reason"] and body["target"]["value"] == "zentrale"
    stored = server.runtime.store.get_call("ho-native")
    result = next(e for e in stored["events"] if e["type"] == "transfer.result")
    assert result["ok"] and result["webhook"]["outcome"] == "delivered"


def test_twilio_handoff_redirects_the_live_call(tmp_path: Path) -> None:
    account, token = "AC0123456789", "twilio-token"
    with WebhookReceiver(SECRET) as hook, FakeTwilio(account, token, {"CAho1"}) as twilio:
        settings = fake_settings(tmp_path, engines_loader=HUMAN, telephony={
            "handoff_webhook": hook.url("/hook"), "webhook_secret": SECRET, "handoff_queue": "zentrale",
            "twilio_api_base": twilio.url(), "twilio_account_sid": account, "twilio_auth_token": token})
        with LiveServer(settings) as server, connect(server.ws_url("/v1/twilio")) as ws:
            ws.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
            ws.send(json.dumps({"event": "start", "streamSid": "MZho", "start": {
                "streamSid": "MZho", "callSid": "CAho1", "accountSid": account, "customParameters": {},
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}}))
            stop = threading.Event()
            lock = threading.Lock()

            def media(frame: bytes) -> str:
                return json.dumps({"event": "media", "streamSid": "MZho",
                                   "media": {"payload": base64.b64encode(frame).decode()}})

            def send(text: str) -> None:
                with lock:
                    ws.send(text)

            _play(send, stop, media)
            webhook = hook.wait_for(1, timeout=20)
            redirect = twilio.wait_for(1, timeout=20)  # after the handover phrase was played
            stop.set()
            send(json.dumps({"event": "stop", "streamSid": "MZho", "stop": {"callSid": "CAho1"}}))  # as Twilio does
    assert webhook[0].verdict == "ok" and json.loads(webhook[0].body)["call_id"] == "CAho1"
    assert redirect[0].verdict == "ok" and redirect[0].path.endswith(f"/Accounts/{account}/Calls/CAho1.json")
    assert "<Enqueue>zentrale</Enqueue>" in redirect[0].form["Twiml"]

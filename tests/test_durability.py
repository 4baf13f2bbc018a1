"""kill -9 loses nothing a client has seen: every event is committed before it is sent.

A real `voicebot serve` process (the real call core on fake engines) is killed with
SIGKILL at scripted moments of a call: right after the caller received a final, right
after an intent, and during bot audio. Everything the caller received must be in the
store, and the call must be closed as interrupted when the server comes back.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fakes import ServeProcess, encode_frames, tone
from websockets.sync.client import connect

from voicebot.store.sqlite import CallStore, get_call

TESTS = Path(__file__).resolve().parent
ENV = {"VOICEBOT_SERVER__ENGINES_LOADER": "fake_engines:load_fake_engines",
       "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}


def _kill_after(tmp_path: Path, moment: str) -> tuple[list[dict[str, Any]], ServeProcess]:
    """Play one caller turn in real time; SIGKILL the server the moment ``moment`` has been received."""
    server = ServeProcess(tmp_path, env=ENV, wait=120)
    received: list[dict[str, Any]] = []
    try:
        with connect(server.ws_url("/v1/call")) as ws:
            ws.send(json.dumps({"type": "start", "encoding": "pcm_s16le", "sample_rate": 16000,
                                "call_id": f"kill-{moment}"}))
            stop = threading.Event()
            frames = encode_frames(np.concatenate([tone(16000, 1.2), np.zeros(16000 * 3, np.int16)]),
                                   "pcm_s16le", 16000)

            def caller() -> None:
                for frame in frames:
                    if stop.wait(0.02):
                        return
                    try:
                        ws.send(frame)
                    except Exception:  # noqa: BLE001 - the server is gone: the test's own doing
                        return

            threading.Thread(target=caller, daemon=True).start()
            audio_after_answer = 0
            answered = False
            while True:
                message = ws.recv(timeout=20)
                if isinstance(message, bytes):
                    audio_after_answer += answered
                    if moment == "bot-audio" and audio_after_answer >= 5:
                        break
                    continue
                event = json.loads(message)
                received.append(event)
                answered = answered or (event["type"] == "bot.utterance" and event["action"] != "greet")
                if (moment == "final" and event["type"] == "transcript.final") or (
                        moment == "intent" and event["type"] == "intent"):
                    break
            os.kill(server.proc.pid, signal.SIGKILL)  # no chance to flush anything
            stop.set()
    finally:
        server.proc.wait(30)
    return received, server


@pytest.mark.parametrize("moment", ["final", "intent", "bot-audio"])
def test_sigkill_loses_no_event_the_caller_saw(tmp_path: Path, moment: str) -> None:
    received, server = _kill_after(tmp_path, moment)
    store_path = server.store_path
    call_id = received[0]["call_id"]
    record = get_call(store_path, call_id)
    assert record is not None
    stored = {e["seq"]: e for e in record["events"]}
    for event in received:
        assert event["seq"] in stored, f"{event['type']} #{event['seq']} was sent but is not in the store"
        assert stored[event["seq"]]["type"] == event["type"]
    # The same worker restarted (same host and port) closes its own dead call as interrupted,
    # every event intact. (Another worker would wait for the dead one's lease to expire.)
    store = CallStore(store_path, worker_id=f"{socket.gethostname()}:{server.port}")
    store.recover_interrupted().result(10)
    store.close()
    after = get_call(store_path, call_id)
    assert after is not None and after["status"] == "interrupted"
    assert len(after["events"]) == len(record["events"])

"""`voicebot serve` as a subprocess: readiness, the ready line, serving, graceful Ctrl+C.

The session is the scripted fake (no models), so this checks the command itself in
seconds; test_server_e2e.py does the same with the real pipeline and real speech.
"""

from __future__ import annotations

import json
import os
import re
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
from fakes import ServeProcess, encode_frames, tone
from websockets.sync.client import connect

from voicebot.store.sqlite import get_call, list_calls

TESTS = Path(__file__).resolve().parent


def status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def test_serve_lifecycle(tmp_path: Path) -> None:
    env = {"VOICEBOT_SERVER__ENGINES_LOADER": "fake_engines:load_fake_engines", "VOICEBOT_FAKE_LOAD_S": "2",
           "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    server = ServeProcess(tmp_path, env=env, wait=None)
    try:
        seen = set()
        deadline = time.monotonic() + 60
        while not server.ready_line and time.monotonic() < deadline:
            seen.add(status(server.http_url("/readyz")))
            time.sleep(0.1)
        server.wait_ready(5)
        assert 503 in seen, "readyz must say 503 while the models load"
        assert status(server.http_url("/readyz")) == 200 and status(server.http_url("/healthz")) == 200
        host = f"http://127.0.0.1:{server.port}"
        assert re.fullmatch(
            rf"voicebot ready: agent page {host}/ , softphone {host}/phone, agent token from config \(sha256 \w{{8}}\)",
            server.ready_line,
        ), server.ready_line

        with connect(server.ws_url("/v1/call")) as ws:
            ws.send(json.dumps({"type": "start", "encoding": "mulaw", "sample_rate": 8000, "call_id": "sub-1"}))
            for frame in encode_frames(np.concatenate([tone(8000, 1.0), np.zeros(8000, np.int16)]), "mulaw", 8000):
                ws.send(frame)
            types: list[str] = []
            while "intent" not in types:
                message = ws.recv(timeout=10)
                if isinstance(message, str):
                    types.append(json.loads(message)["type"])
            # Ctrl+C with the call in progress: it is ended cleanly and recorded.
            code = server.stop()
            while True:
                message = ws.recv(timeout=10)
                if isinstance(message, str) and json.loads(message)["type"] == "call.end":
                    assert json.loads(message)["reason"] == "shutdown"
                    break
    finally:
        server.stop()
    assert code in (0, 130, -2), server.log_path.read_text()[-2000:]
    record = get_call(server.store_path, "sub-1")
    assert record is not None and record["status"] == "shutdown" and record["last_intent"] == "rechnung"
    assert [c["call_id"] for c in list_calls(server.store_path)] == ["sub-1"]
    log = server.log_path.read_text()
    assert "call=sub-1" in log and "e2e-token" not in log

"""A full server refuses new calls before they start (HTTP 503 on the upgrade), and the calls
it carries go on undisturbed; once a line is free, the next call is taken."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from fakes import LiveServer, fake_settings
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from voicebot.eval.load import _is_refusal, _retry_after


@pytest.fixture
def server(tmp_path: Path):  # type: ignore[no-untyped-def]
    with LiveServer(fake_settings(tmp_path, max_calls=1)) as live:
        yield live


def _start(ws, call_id: str) -> dict:  # type: ignore[no-untyped-def]
    ws.send(json.dumps({"type": "start", "encoding": "pcm_s16le", "sample_rate": 16000, "call_id": call_id}))
    while True:
        message = ws.recv(timeout=10)
        if isinstance(message, str):
            return json.loads(message)


@pytest.mark.parametrize("path", ["/v1/call", "/v1/twilio"])
def test_a_full_server_refuses_the_upgrade_with_503(server: LiveServer, path: str) -> None:
    with connect(server.ws_url("/v1/call")) as first:
        assert _start(first, "line-1")["type"] == "call.started"
        with pytest.raises(InvalidStatus) as refused:
            connect(server.ws_url(path), open_timeout=10).close()
        response = refused.value.response
        assert response.status_code == 503 and response.headers["Retry-After"].isdigit()
        # The load benchmark's callers read it as a refusal, and how long the server asks them to wait.
        assert _is_refusal(refused.value) and _retry_after(refused.value) == float(response.headers["Retry-After"])
        body = json.loads(response.body)
        assert body["type"] == "error" and body["code"] == "busy" and body["fatal"] is True
        # The call on the line is undisturbed: it still gets its events.
        first.send(json.dumps({"type": "ping", "id": 7}))
        while True:
            message = first.recv(timeout=10)
            if isinstance(message, str) and json.loads(message)["type"] == "pong":
                break
        first.send(json.dumps({"type": "stop"}))
        while True:
            message = first.recv(timeout=10)
            if isinstance(message, str) and json.loads(message)["type"] == "call.end":
                break
    # The line is free again: the next caller gets through.
    with connect(server.ws_url("/v1/call")) as second:
        assert _start(second, "line-2")["type"] == "call.started"


def test_an_upgraded_socket_holds_the_line_until_it_starts_or_leaves(server: LiveServer) -> None:
    """Two callers racing for the last line are told apart at the upgrade (503), never by a ``busy``
    error after it: a socket holds its line from the upgrade; one that leaves without a call frees it."""
    with connect(server.ws_url("/v1/call")) as first:  # upgraded, no "start" yet
        with pytest.raises(InvalidStatus) as refused:
            connect(server.ws_url("/v1/call"), open_timeout=10).close()
        assert refused.value.response.status_code == 503
        assert _start(first, "held-1")["type"] == "call.started"
        first.send(json.dumps({"type": "stop"}))
        while True:
            message = first.recv(timeout=10)
            if isinstance(message, str) and json.loads(message)["type"] == "call.end":
                break
    with connect(server.ws_url("/v1/call")):
        pass  # leaves without a call
    deadline = time.monotonic() + 10
    while server.runtime.reserved_lines and time.monotonic() < deadline:
        time.sleep(0.01)  # the server notices the close on its own loop
    with connect(server.ws_url("/v1/call")) as again:  # the line it held is free again
        assert _start(again, "held-2")["type"] == "call.started"

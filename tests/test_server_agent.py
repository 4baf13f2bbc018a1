"""The agents' websocket: authentication, call list, replay, live events, takeover, suggestions."""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fakes import LiveServer, encode_frames, fake_settings, send_paced, tone
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

TOKEN = "test-token"
@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    tmp = tmp_path_factory.mktemp("agent")
    with LiveServer(fake_settings(tmp)) as srv:  # the default domain and its knowledge base
        yield srv


@contextlib.contextmanager
def agent(server: LiveServer, query: str = f"?token={TOKEN}&agent=anna") -> Iterator[ClientConnection]:
    with connect(server.ws_url("/v1/agent" + query)) as ws:
        assert next_of(ws, "auth.ok")["agent_id"] == "anna"
        yield ws


def next_of(ws: ClientConnection, etype: str, timeout: float = 10.0, **match: Any) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = ws.recv(timeout=deadline - time.monotonic())
        if isinstance(message, bytes):
            continue  # bot audio on a caller's socket
        event = json.loads(message)
        if event["type"] == etype and all(event.get(k) == v for k, v in match.items()):
            return event
    raise TimeoutError(etype)


@contextlib.contextmanager
def caller(server: LiveServer, call_id: str) -> Iterator[ClientConnection]:
    with connect(server.ws_url("/v1/call")) as ws:
        ws.send(json.dumps({"type": "start", "encoding": "pcm_s16le", "sample_rate": 16000, "call_id": call_id,
                            "caller": {"name": "Erika", "phone": "0171 2345678"}}))
        next_of(ws, "call.started")
        yield ws


def speak(ws: ClientConnection) -> None:
    send_paced(ws.send, encode_frames(np.concatenate([tone(16000, 1.0), np.zeros(12000, np.int16)]), "pcm_s16le",
                                      16000))


def test_missing_or_wrong_token_is_refused_with_4401(server: LiveServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    for query, first in (("?token=wrong-secret", None), ("", {"type": "auth", "token": "also-wrong"}), ("", "junk")):
        with connect(server.ws_url("/v1/agent" + query)) as ws:
            if first is not None:
                ws.send(first if isinstance(first, str) else json.dumps(first))
            event = json.loads(ws.recv(timeout=5))
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=5)
        assert event["type"] == "error" and event["code"] == "unauthorized"
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
    assert "wrong-secret" not in caplog.text and "also-wrong" not in caplog.text
    assert "sha256" in caplog.text


def test_auth_by_first_message(server: LiveServer) -> None:
    with connect(server.ws_url("/v1/agent")) as ws:
        ws.send(json.dumps({"type": "auth", "token": TOKEN, "agent": "bernd"}))
        assert next_of(ws, "auth.ok")["agent_id"] == "bernd"
        assert isinstance(next_of(ws, "calls")["calls"], list)


def test_live_view_replay_takeover_and_release(server: LiveServer) -> None:
    with caller(server, "agent-call-1") as call:
        _live_view(server, call)
        call.send(json.dumps({"type": "stop"}))
        next_of(call, "call.end")
    server.runtime.store.flush()
    from voicebot.store.sqlite import get_call

    record = get_call(server.settings.store.path, "agent-call-1")
    assert record["handled_by"] == "human" and record["agent_id"] == "anna"


def _live_view(server: LiveServer, call: ClientConnection) -> None:
    speak(call)
    next_of(call, "intent")
    with agent(server) as ws:
        listed = next_of(ws, "calls")["calls"]
        row = next(c for c in listed if c["call_id"] == "agent-call-1")
        assert row["state"] == "bot" and row["caller"]["phone"] == "**** *****78"  # masked for agents
        ws.send(json.dumps({"type": "subscribe", "call_id": "agent-call-1"}))
        replay = next_of(ws, "replay", call_id="agent-call-1")
        types = [e["type"] for e in replay["events"]]
        assert types[0] == "call.started" and "transcript.final" in types and "intent" in types
        final = next(e for e in replay["events"] if e["type"] == "transcript.final")
        assert "12345678" not in final["text"] and final["text"].endswith("******78.")
        intent = next(e for e in replay["events"] if e["type"] == "intent")
        assert intent["slots"] == {"customer_number": "******78"}

        # Suggestions from the knowledge base, boosted for the intent, with its next steps.
        suggestions = next(e for e in replay["events"] if e["type"] == "suggestions") if "suggestions" in types \
            else next_of(ws, "suggestions")
        assert suggestions["intent"] == "rechnung" and len(suggestions["items"]) == 3
        assert [s["intent"] for s in suggestions["items"][:2]] == ["rechnung", "rechnung"]
        from voicebot.dialog.domain import load_domain

        expected = list(load_domain(server.settings.dialog.domain).intent("rechnung").next_steps)
        assert expected and suggestions["next_steps"] == expected

        # Live events flow after the replay; the caller keeps the unmasked text.
        speak(call)
        live = next_of(ws, "transcript.final")
        assert live["call_id"] == "agent-call-1" and "******78" in live["text"]
        own = next_of(call, "transcript.final")
        assert "12345678" in own["text"]

        ws.send(json.dumps({"type": "takeover", "call_id": "agent-call-1"}))
        takeover = next_of(ws, "agent.takeover")
        assert takeover["agent_id"] == "anna"
        assert next_of(ws, "call.update")["call"]["state"] == "human"
        next_of(call, "agent.takeover")  # the caller's side learns it too
        # Policy paused: the caller's next turn gets a transcript but no bot answer.
        speak(call)
        next_of(ws, "transcript.final")
        ws.send(json.dumps({"type": "release", "call_id": "agent-call-1"}))
        assert next_of(ws, "agent.release")["agent_id"] == "anna"


def test_subscribe_all_sees_new_calls_and_their_end(server: LiveServer) -> None:
    with agent(server) as ws:
        ws.send(json.dumps({"type": "subscribe", "call_id": "*"}))
        next_of(ws, "subscribed", call_id="*")
        with caller(server, "agent-call-2") as call:
            assert next_of(ws, "call.update")["call"]["call_id"] == "agent-call-2"
            assert next_of(ws, "call.started")["call_id"] == "agent-call-2"
            call.send(json.dumps({"type": "stop"}))
            assert next_of(ws, "call.end", call_id="agent-call-2")["reason"] == "completed"
            update = next_of(ws, "call.update")
            assert update["call"]["state"] == "ended" and update["call"]["end_reason"] == "completed"
        ws.send(json.dumps({"type": "list"}))
        ended = next(c for c in next_of(ws, "calls")["calls"] if c["call_id"] == "agent-call-2")
        assert ended["state"] == "ended"  # recent calls stay visible


def test_agent_bad_requests(server: LiveServer) -> None:
    with agent(server) as ws:
        ws.send("not json")
        assert next_of(ws, "error")["code"] == "bad_json"
        ws.send(json.dumps({"type": "fly"}))
        assert next_of(ws, "error")["code"] == "unknown_type"
        ws.send(json.dumps({"type": "takeover", "call_id": "no-such-call"}))
        assert next_of(ws, "error")["code"] == "unknown_call"
        ws.send(json.dumps({"type": "subscribe", "call_id": "no-such-call"}))
        assert next_of(ws, "error")["code"] == "unknown_call"
        ws.send(json.dumps({"type": "ping", "id": 1}))
        assert next_of(ws, "pong")["id"] == 1


def test_agent_metrics_gauge(server: LiveServer, tmp_path: Path) -> None:
    with agent(server):
        text = server.runtime.metrics.render()[0].decode()
        assert "voicebot_agents_connected 1.0" in text

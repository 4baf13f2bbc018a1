"""Access to the server (issue 17, findings 6 and 7; "Secrets and access"): caller tokens on
`/v1/call`, Twilio's request signature on `/v1/twilio`, the Origin allow-list, the start timeout,
`/metrics` behind a token, security headers on the pages, `max_errors` on the agents' bad JSON,
`shutting_down` during a drain, and the throttle on failed agent logins.

Every check is off by default (the other server tests run with the defaults); here the real server
runs on fake engines (tests/fakes.py) with the checks switched on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fakes import LiveServer, fake_settings, recv_events
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from voicebot.server.access import twilio_signature

CALLER_TOKEN = "caller-s3cret-token"
TWILIO_KEY = "twilio-auth-t0ken"
PUBLIC_URL = "wss://bot.example.com"
ALLOWED = "https://agents.example.com"
METRICS_TOKEN = "metrics-s3cret"


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings = fake_settings(
        tmp_path_factory.mktemp("secured"), telephony={"twilio_auth_token": TWILIO_KEY},
        caller_tokens=f"other-token, {CALLER_TOKEN}", twilio_validate=True, public_url=PUBLIC_URL,
        allowed_origins=f"{ALLOWED}, https://phone.example.com", metrics_token=METRICS_TOKEN,
    )
    with LiveServer(settings) as srv:
        yield srv


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The defaults, but for a small max_errors and a short start timeout."""
    with LiveServer(fake_settings(tmp_path_factory.mktemp("plain"), max_errors=3, start_timeout_s=0.3)) as srv:
        yield srv


def next_of(ws: ClientConnection, etype: str, timeout: float = 5.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        message = ws.recv(timeout=max(0.01, deadline - time.monotonic()))
        if isinstance(message, str) and json.loads(message).get("type") == etype:
            return json.loads(message)


def wait_for(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


START = {"type": "start", "encoding": "pcm_s16le", "sample_rate": 16000}


# ---------------------------------------------------------------------------- caller tokens on /v1/call


def test_caller_token_from_header_or_start(secured: LiveServer) -> None:
    with connect(secured.ws_url("/v1/call"), additional_headers={"Authorization": f"Bearer {CALLER_TOKEN}"}) as ws:
        ws.send(json.dumps({**START, "call_id": "tok-header"}))
        assert next_of(ws, "call.started")["call_id"] == "tok-header"
        ws.send(json.dumps({"type": "stop"}))
        assert recv_events(ws)[1] == 1000
    with connect(secured.ws_url("/v1/call")) as ws:
        ws.send(json.dumps({**START, "call_id": "tok-start", "token": CALLER_TOKEN, "caller": {"name": "Erika"}}))
        assert next_of(ws, "call.started")["call_id"] == "tok-start"
        ws.send(json.dumps({"type": "stop"}))
        assert recv_events(ws)[1] == 1000
    assert CALLER_TOKEN not in stored_text(secured) and "tok-start" in stored_text(secured)


def stored_text(server: LiveServer) -> str:
    """Everything the store holds, as text (read beside the server, read-only)."""
    import sqlite3

    path = server.settings.store.path
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return "\n".join(str(row) for t in tables for row in db.execute(f'SELECT * FROM "{t}"'))


@pytest.mark.parametrize("how", ["missing", "wrong in start", "wrong header", "only in the URL"])
def test_caller_without_a_valid_token_is_refused_with_4401(
    secured: LiveServer, how: str, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    headers = {"Authorization": "Bearer wrong-caller-token"} if how == "wrong header" else {}
    path = f"/v1/call?token={CALLER_TOKEN}" if how == "only in the URL" else "/v1/call"
    start = {**START, "call_id": f"refused-{how.replace(' ', '-')}"}
    if how == "wrong in start":
        start["token"] = "wrong-caller-token"
    with connect(secured.ws_url(path), additional_headers=headers) as ws:
        if how != "wrong header":  # a wrong header is refused before any message
            ws.send(json.dumps(start))
        events, code = recv_events(ws)
    assert [(e["type"], e["code"], e["fatal"]) for e in events] == [("error", "unauthorized", True)]
    assert code == 4401
    assert secured.runtime.hub.find(start["call_id"]) is None, "no call is opened"
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("voicebot"))
    assert "refused" in ours and "wrong-caller-token" not in ours and CALLER_TOKEN not in ours


# ---------------------------------------------------------------------------- Twilio's signature on /v1/twilio


def test_twilio_signature_is_twilios_algorithm() -> None:
    # The worked example of Twilio's "Webhook security" page: URL + sorted POST parameters, HMAC-SHA1, base64.
    params = {"CallSid": "CA1234567890ABCDE", "Caller": "+12349013030", "Digits": "1234", "From": "+12349013030",
              "To": "+18005551212"}
    assert twilio_signature("12345", "https://mycompany.com/myapp.php?foo=1&bar=2", params) == \
        "0/KCTR6DLpKmkAf8muzZqo1nDgQ="


def twilio_call(ws: ClientConnection, call_sid: str) -> None:
    ws.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
    ws.send(json.dumps({"event": "start", "streamSid": "MZ" + call_sid, "start": {
        "streamSid": "MZ" + call_sid, "callSid": call_sid, "tracks": ["inbound"],
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}}))


@pytest.mark.parametrize("signature", [None, "bm90IHRoZSByaWdodCBvbmU=", "signed for another URL"])
def test_twilio_stream_without_a_valid_signature_is_refused(secured: LiveServer, signature: str | None) -> None:
    if signature == "signed for another URL":
        signature = twilio_signature(TWILIO_KEY, "wss://evil.example.com/v1/twilio")
    headers = {"X-Twilio-Signature": signature} if signature else {}
    call_sid = f"CAunsigned{abs(hash(signature)) % 10000}"
    with connect(secured.ws_url("/v1/twilio"), additional_headers=headers) as ws:
        with contextlib.suppress(ConnectionClosed):  # the server may have closed already
            twilio_call(ws, call_sid)
        events, code = recv_events(ws)
    assert [(e["event"], e["code"], e["fatal"]) for e in events] == [("error", "unauthorized", True)]
    assert code == 4401
    assert secured.runtime.hub.find(call_sid) is None


@pytest.mark.parametrize("signed_url", [f"{PUBLIC_URL}/v1/twilio", "wss://bot.example.com:443/v1/twilio"])
def test_twilio_stream_with_a_valid_signature_is_taken(secured: LiveServer, signed_url: str) -> None:
    call_sid = "CAsigned" + str(len(signed_url))
    headers = {"X-Twilio-Signature": twilio_signature(TWILIO_KEY, signed_url)}
    with connect(secured.ws_url("/v1/twilio"), additional_headers=headers) as ws:
        twilio_call(ws, call_sid)
        wait_for(lambda: secured.runtime.hub.find(call_sid) is not None)
        ws.send(json.dumps({"event": "stop", "streamSid": "MZ" + call_sid}))
        events, code = recv_events(ws)
    assert code == 1000 and not [e for e in events if e.get("event") == "error"]


# ---------------------------------------------------------------------------- Origins, pages, metrics


def test_foreign_origins_are_refused_with_403(secured: LiveServer) -> None:
    for path in ("/v1/call", "/v1/agent", "/v1/twilio"):
        with pytest.raises(InvalidStatus) as refused:
            connect(secured.ws_url(path), origin="https://evil.example.com").close()  # type: ignore[arg-type]
        assert refused.value.response.status_code == 403
    for path in ("/", "/phone", "/static/agent.js"):
        response = httpx.get(secured.http_url(path), headers={"Origin": "https://evil.example.com"})
        assert response.status_code == 403, path
        assert httpx.get(secured.http_url(path), headers={"Origin": ALLOWED}).status_code == 200
        assert httpx.get(secured.http_url(path)).status_code == 200  # a navigation carries no Origin
    # Listed and same-origin browsers get through (the agent page talks to its own server).
    with connect(secured.ws_url("/v1/agent?token=test-token"), origin=ALLOWED) as ws:  # type: ignore[arg-type]
        assert next_of(ws, "auth.ok")
    own = f"http://127.0.0.1:{secured.port}"
    with connect(secured.ws_url("/v1/agent?token=test-token"), origin=own) as ws:  # type: ignore[arg-type]
        assert next_of(ws, "auth.ok")


def test_metrics_behind_a_token(secured: LiveServer, plain: LiveServer) -> None:
    assert httpx.get(secured.http_url("/metrics")).status_code == 401
    wrong = httpx.get(secured.http_url("/metrics"), headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    right = httpx.get(secured.http_url("/metrics"), headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert right.status_code == 200 and "voicebot_active_calls" in right.text
    assert httpx.get(plain.http_url("/metrics")).status_code == 200  # off by default


@pytest.mark.parametrize("path", ["/", "/phone", "/static/agent.js", "/static/phone-worklet.js"])
def test_security_headers_on_the_pages(plain: LiveServer, path: str) -> None:
    response = httpx.get(plain.http_url(path))
    assert response.status_code == 200
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-frame-options"] == "DENY"
    csp = {d.split()[0]: d.split()[1:] for d in response.headers["content-security-policy"].split("; ")}
    assert csp["script-src"] == ["'self'"], "only the pages' own scripts (and the audio worklet)"
    assert csp["default-src"] == ["'self'"] and csp["object-src"] == ["'none'"]
    assert csp["frame-ancestors"] == ["'none'"]
    assert f"ws://127.0.0.1:{plain.port}" in csp["connect-src"], "the pages' websockets"
    assert not any("unsafe-eval" in v for values in csp.values() for v in values)


# ---------------------------------------------------------------------------- the start timeout


@pytest.mark.parametrize("path", ["/v1/call", "/v1/twilio"])
def test_a_socket_that_never_starts_is_closed(plain: LiveServer, path: str) -> None:
    with connect(plain.ws_url(path)) as ws:
        events, code = recv_events(ws, timeout=10)
    errors = [e for e in events if e.get("code")]
    assert [(e["code"], e["fatal"]) for e in errors] == [("start_timeout", True)]
    assert code == 1008


# ---------------------------------------------------------------------------- agents


def test_agent_bad_json_counts_toward_max_errors(plain: LiveServer) -> None:
    with connect(plain.ws_url("/v1/agent?token=test-token")) as ws:
        next_of(ws, "auth.ok")
        for _ in range(5):
            try:
                ws.send("{not json")
            except ConnectionClosed:
                break
        events, code = recv_events(ws)
    assert [e["code"] for e in events if e["type"] == "error"][:4] == ["bad_json"] * 4
    assert code == 1008


def test_failed_agent_logins_are_throttled(plain: LiveServer) -> None:
    throttle = plain.runtime.access.logins
    now = [1000.0]
    original = throttle.clock
    throttle.clock = lambda: now[0]
    try:
        for _ in range(5):
            with connect(plain.ws_url("/v1/agent?token=wrong")) as ws:
                events, code = recv_events(ws)
            assert events[-1]["code"] == "unauthorized" and code == 4401
            now[0] += 5  # five failures within a minute
        with connect(plain.ws_url("/v1/agent?token=test-token")) as ws:  # even the right token, for now
            events, code = recv_events(ws)
        assert [(e["code"], e["fatal"]) for e in events] == [("too_many_attempts", True)] and code == 4429
        now[0] += 61  # after the cool-down
        with connect(plain.ws_url("/v1/agent?token=test-token")) as ws:
            assert next_of(ws, "auth.ok")
    finally:
        throttle.clock = original


# ---------------------------------------------------------------------------- a call during the drain


def test_a_call_started_during_a_drain_gets_shutting_down(tmp_path: Path) -> None:
    with LiveServer(fake_settings(tmp_path)) as srv:
        with connect(srv.ws_url("/v1/call")) as ws:
            loop = srv.server.servers[0].get_loop()
            asyncio.run_coroutine_threadsafe(srv.runtime.drain(), loop).result(10)
            ws.send(json.dumps(START))
            events, code = recv_events(ws)
    assert [(e["code"], e["fatal"]) for e in events if e["type"] == "error"] == [("shutting_down", True)]
    assert code == 1013


def test_twilio_validation_without_the_auth_token_is_a_settings_error(tmp_path: Path) -> None:
    from voicebot.config import SettingsError
    from voicebot.server.runtime import ServerRuntime

    with pytest.raises(SettingsError, match="twilio_auth_token"):
        ServerRuntime(fake_settings(tmp_path, twilio_validate=True))

"""No secret in any log line, no forged log lines: the log hygiene filter, alone and in `voicebot serve`."""

from __future__ import annotations

import io
import json
import logging
import os
import urllib.parse
from pathlib import Path

from fakes import ServeProcess
from websockets.sync.client import connect

from voicebot.server.logs import JsonFormatter, LogHygiene, escape_controls, install_log_hygiene, scrub_secrets

TESTS = Path(__file__).resolve().parent


def _capture(name: str, *, json_lines: bool = False) -> tuple[logging.Logger, io.StringIO, logging.Handler]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if json_lines else logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.addFilter(LogHygiene())
    logger = logging.getLogger(name)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger, stream, handler


def test_tokens_and_authorization_are_scrubbed() -> None:
    assert scrub_secrets('1.2.3.4:5 - "WebSocket /v1/agent?token=abc123&agent=anna" [accepted]') == \
        '1.2.3.4:5 - "WebSocket /v1/agent?token=***&agent=anna" [accepted]'
    assert scrub_secrets("/v1/agent?agent=anna&token=abc123") == "/v1/agent?agent=anna&token=***"
    assert scrub_secrets("Authorization: Bearer abc.def-123") == "Authorization: ***"
    assert scrub_secrets('{"type": "auth", "token": "abc123"}') == '{"type": "auth", "token": "***"}'
    assert scrub_secrets("X-Twilio-Signature: c2lnbmF0dXJl") == "X-Twilio-Signature: ***"
    ordinary = "agent anna connected from 127.0.0.1:5555 (token sha256 1a2b3c4d)"
    assert scrub_secrets(ordinary) == ordinary


def test_control_characters_cannot_forge_lines() -> None:
    assert escape_controls("anna\n2026-01-01 INFO forged") == "anna\\n2026-01-01 INFO forged"
    assert escape_controls("a\r\x1b[31mb\u2028c\x00") == "a\\r\\x1b[31mb\\u2028c\\x00"
    assert escape_controls("Grüße\tok") == "Grüße\tok"


def test_the_filter_rewrites_arguments_and_tracebacks() -> None:
    logger, stream, handler = _capture("test.hygiene")
    try:
        logger.info("agent %s from %s", "evil\nINFO voicebot: forged line", "/v1/agent?token=s3cr3t-value")
        try:
            raise ValueError("bad url /v1/agent?token=s3cr3t-value")
        except ValueError:
            logger.exception("failed")
        logger.info("x" * 10_000)
    finally:
        logger.removeHandler(handler)
    out = stream.getvalue()
    assert "s3cr3t-value" not in out
    lines = out.splitlines()
    assert lines[0] == "INFO test.hygiene: agent evil\\nINFO voicebot: forged line from /v1/agent?token=***"
    assert not any(line.startswith("INFO voicebot: forged") for line in lines)
    assert len(lines[-1]) < 4100


def test_json_lines_are_clean_too() -> None:
    logger, stream, handler = _capture("test.hygiene.json", json_lines=True)
    try:
        logger.warning("WebSocket %s", "/v1/agent?token=s3cr3t-value")
    finally:
        logger.removeHandler(handler)
    record = json.loads(stream.getvalue())
    assert record["message"] == "WebSocket /v1/agent?token=***"


def test_install_is_idempotent() -> None:
    root = logging.getLogger("test.hygiene.root")
    root.addHandler(logging.NullHandler())
    try:
        install_log_hygiene(root)
        install_log_hygiene(root)
        assert sum(isinstance(f, LogHygiene) for f in root.handlers[0].filters) == 1
        assert any(isinstance(f, LogHygiene) for f in logging.getLogger("uvicorn.error").filters)
    finally:
        root.handlers.clear()


def test_serve_never_logs_a_token(tmp_path: Path) -> None:
    """The real `voicebot serve`: agents with the token in the URL, right and wrong; grep all output."""
    wrong = "wrong-Secret-4711"
    env = {"VOICEBOT_SERVER__ENGINES_LOADER": "fake_engines:load_fake_engines",  # the real server, no models
           "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    server = ServeProcess(tmp_path, env=env, wait=120)
    forged = "anna\n2026-01-01 00:00:00,000 INFO voicebot.server.agent: forged"
    try:
        query = urllib.parse.urlencode({"token": server.token, "agent": forged})
        with connect(server.ws_url(f"/v1/agent?{query}"), open_timeout=10) as ws:
            assert json.loads(ws.recv(timeout=10))["type"] == "auth.ok"
        with connect(server.ws_url(f"/v1/agent?token={wrong}"), open_timeout=10) as ws:
            assert json.loads(ws.recv(timeout=10))["code"] == "unauthorized"
        with connect(server.ws_url("/v1/agent"), open_timeout=10,
                     additional_headers={"Authorization": f"Bearer {wrong}"}) as ws:
            ws.send(json.dumps({"type": "auth", "token": wrong}))
            assert json.loads(ws.recv(timeout=10))["code"] == "unauthorized"
    finally:
        code = server.stop()
    output = server.log_path.read_text() + "".join(server._lines)  # noqa: SLF001 - stdout, all of it
    assert code in (0, 130, -2), output[-2000:]
    assert "WebSocket /v1/agent?token=***" in output, output[-2000:]  # uvicorn's line, scrubbed
    assert server.token not in output and wrong not in output
    assert "anna\\n2026-01-01" in output  # the agent name, escaped on its own line
    assert not [line for line in output.splitlines() if line.startswith("2026-01-01 00:00:00,000 INFO")]

"""The signed handoff webhook against a real local receiver that checks the signature itself."""

from __future__ import annotations

import json
import logging
import socket

import httpx
import pytest
from telephony_servers import STALL, WebhookReceiver

from voicebot.telephony import SignatureError, TransferRequest, TransferTarget, sign, verify_webhook
from voicebot.telephony.http_retry import RetryPolicy, safe_url
from voicebot.telephony.webhook import HandoffWebhook

SECRET = "whsec-test-7f3a9"

NATIVE = TransferRequest(
    call_id="call-42", protocol="voicebot.v1", reason="caller_request", route="pannendienst",
    summary="Panne auf der A9, Kundennummer ******78", slots={"customer_number": "******78", "place": "A9"},
    next_steps=("Standort bestätigen", "Abschleppwagen schicken"), priority=True)
TWILIO = TransferRequest(
    call_id="CA" + "a" * 32, protocol="twilio", reason="no_understanding", route="mensch",
    twilio_call_sid="CA" + "a" * 32, twilio_account_sid="AC" + "b" * 32)
QUEUE = TransferTarget("queue", "pannendienst")

# Every wait in these modules is bounded by design; a hang is a failure, not a stuck run.
pytestmark = pytest.mark.timeout(60)


def fast(attempts: int = 3, timeout_s: float = 2.0) -> RetryPolicy:
    return RetryPolicy(attempts=attempts, timeout_s=timeout_s, backoff_s=0.01)


@pytest.fixture
def receiver():
    with WebhookReceiver(SECRET) as server:
        yield server


async def send(url: str, request: TransferRequest, policy: RetryPolicy, secret: str = SECRET):
    async with httpx.AsyncClient() as client:
        return await HandoffWebhook(url, secret, policy, client).send(request, QUEUE, "d-1")


@pytest.mark.parametrize("request_", [NATIVE, TWILIO], ids=["native", "twilio"])
async def test_signed_webhook_is_received_and_verified(receiver: WebhookReceiver, request_: TransferRequest) -> None:
    result = await send(receiver.url("/hook"), request_, fast())
    assert result.ok and result.attempts == 1 and result.status == 200
    [got] = receiver.wait_for(1)
    assert got.verdict == "ok"  # the receiver's own HMAC over the raw body matched
    assert got.headers["content-type"].startswith("application/json")
    payload = json.loads(got.body)
    assert got.headers["x-voicebot-timestamp"] == str(payload["timestamp"])
    assert got.headers["x-voicebot-delivery"] == payload["delivery_id"] == "d-1"
    assert payload["type"] == "handoff" and payload["version"] == 1
    assert payload["call_id"] == request_.call_id and payload["reason"] == request_.reason
    assert payload["route"] == request_.route and payload["target"] == {"kind": "queue", "value": "pannendienst"}
    assert payload["slots"] == request_.slots and payload["next_steps"] == list(request_.next_steps)
    if request_.protocol == "twilio":
        assert payload["twilio"] == {"call_sid": TWILIO.twilio_call_sid, "account_sid": TWILIO.twilio_account_sid}
    else:
        assert payload["twilio"] is None and payload["priority"] is True
    # The library's own check agrees with the receiver's.
    assert verify_webhook(SECRET, got.body, got.headers)["call_id"] == request_.call_id


async def test_retries_a_500_then_succeeds_with_the_same_delivery(receiver: WebhookReceiver) -> None:
    receiver.script = [500, 503]
    result = await send(receiver.url("/hook"), NATIVE, fast(attempts=4))
    assert result.ok and result.attempts == 3
    got = receiver.wait_for(3)
    assert [r.headers["x-voicebot-attempt"] for r in got] == ["1", "2", "3"]
    assert {json.loads(r.body)["delivery_id"] for r in got} == {"d-1"}  # receivers can de-duplicate
    assert all(r.verdict == "ok" for r in got)  # every attempt is signed anew


async def test_gives_up_after_the_configured_attempts(receiver: WebhookReceiver) -> None:
    receiver.script = [500, 500, 500, 500]
    result = await send(receiver.url("/hook"), NATIVE, fast(attempts=3))
    assert not result.ok and result.outcome == "failed"
    assert result.attempts == 3 and result.status == 500 and "HTTP 500" in result.error
    assert len(receiver.received) == 3


async def test_a_client_error_is_not_retried(receiver: WebhookReceiver) -> None:
    result = await send(receiver.url("/hook"), NATIVE, fast(), secret="the-wrong-secret")
    assert result.outcome == "failed" and result.attempts == 1 and result.status == 401
    assert receiver.received[0].verdict == "bad signature"


async def test_a_stalled_receiver_costs_bounded_attempts(receiver: WebhookReceiver) -> None:
    receiver.script = [STALL, STALL]
    result = await send(receiver.url("/hook"), NATIVE, fast(attempts=2, timeout_s=0.3))
    assert result.outcome == "failed" and result.attempts == 2 and "timed out" in result.error
    assert len(receiver.wait_for(2)) == 2


async def test_nobody_listening_is_a_reported_failure() -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: connection refused
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = await send(f"http://127.0.0.1:{port}/hook", NATIVE, fast(attempts=2))
    assert result.outcome == "failed" and result.attempts == 2 and "cannot connect" in result.error


async def test_without_a_secret_the_webhook_goes_out_unsigned(receiver: WebhookReceiver) -> None:
    await send(receiver.url("/hook"), NATIVE, fast(), secret="")
    [got] = receiver.wait_for(1)
    assert "x-voicebot-signature" not in got.headers


async def test_secrets_never_reach_the_logs(receiver: WebhookReceiver, caplog: pytest.LogCaptureFixture) -> None:
    receiver.script = [500, 500]
    caplog.set_level(logging.DEBUG)
    url = receiver.url("/hook?token=query-secret-99")
    result = await send(url, NATIVE, fast(attempts=2))
    assert not result.ok
    ours = [r for r in caplog.records if r.name.startswith(("voicebot", "httpx"))]  # not the receiver's
    text = "\n".join(r.getMessage() for r in ours) + repr(result)
    assert "failed after 2 attempt(s)" in text and any(r.name == "httpx" for r in ours)
    for secret in (SECRET, "query-secret-99", sign(SECRET, b"")[7:]):
        assert secret not in text
    assert safe_url("https://user:pw@hooks.example/h?token=x") == "https://hooks.example/h"


def test_verify_rejects_forgeries_and_replays() -> None:
    body = json.dumps({"type": "handoff", "timestamp": 1_000_000}).encode()
    headers = {"X-Voicebot-Signature": sign(SECRET, body), "X-Voicebot-Timestamp": "1000000"}
    assert verify_webhook(SECRET, body, headers, now=1_000_010)["type"] == "handoff"
    with pytest.raises(SignatureError, match="does not match"):
        verify_webhook(SECRET, body.replace(b"handoff", b"handover"), headers, now=1_000_010)
    with pytest.raises(SignatureError, match="does not match"):
        verify_webhook("another-secret", body, headers, now=1_000_010)
    with pytest.raises(SignatureError, match="replay"):
        verify_webhook(SECRET, body, headers, now=1_000_000 + 3600)
    with pytest.raises(SignatureError, match="differs"):
        verify_webhook(SECRET, body, {**headers, "X-Voicebot-Timestamp": "999"}, now=1_000_010)

"""HandoffTransfer end to end: a real policy's handoff, the signed webhook and the Twilio redirect."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import xml.etree.ElementTree as ET

import pytest
from telephony_servers import FakeTwilio, WebhookReceiver

from voicebot.config import REPO_ROOT, SettingsError, TelephonySettings, load_settings
from voicebot.dialog.domain import load_domain
from voicebot.dialog.policy import CallPolicy
from voicebot.telephony import (
    HandoffTransfer,
    TransferConfigError,
    TransferRequest,
    TransferTarget,
    parse_route_targets,
    transfer_event,
)

SECRET = "whsec-transfer-11"
ACCOUNT = "AC" + "4" * 32
TOKEN = "tw-token-77"
CALL = "CA" + "5" * 32

# Every wait in these modules is bounded by design; a hang is a failure, not a stuck run.
pytestmark = pytest.mark.timeout(60)


def escalation_context() -> dict:
    """A real handoff: the caller gave numbers, then asked for a human (the keyword safety net)."""
    policy = CallPolicy(load_domain(REPO_ROOT / "pipelines" / "default"), "call-7")
    policy.start()
    policy.on_turn("Mein Auto ist liegen geblieben, Kundennummer 12345678", 0.9, None,
                   {"customer_number": "12345678", "iban": "DE89370400440532013000"})
    step = policy.on_turn("Ich will sofort mit einem Mitarbeiter sprechen", 0.9, None, {})
    assert step.handoff is not None
    return step.handoff.context


def settings_for(receiver: WebhookReceiver | None, twilio: FakeTwilio | None, **extra) -> TelephonySettings:
    return dataclasses.replace(
        TelephonySettings(),
        handoff_webhook=receiver.url("/hook") if receiver else "", webhook_secret=SECRET,
        webhook_backoff_s=0.01, twilio_api_base=twilio.url() if twilio else "https://api.twilio.com",
        twilio_account_sid=ACCOUNT if twilio else "", twilio_auth_token=TOKEN if twilio else "", **extra)


@pytest.fixture
def receiver():
    with WebhookReceiver(SECRET) as server:
        yield server


@pytest.fixture
def twilio():
    with FakeTwilio(ACCOUNT, TOKEN, live_calls={CALL}) as server:
        yield server


def test_from_handoff_masks_personal_data() -> None:
    request = TransferRequest.from_handoff("call-7", "voicebot.v1", "mitarbeiter", escalation_context())
    assert request.route == "mensch" and request.next_steps and request.reason == "mitarbeiter"
    assert request.slots == {"customer_number": "******78", "iban": "DE89 **** **** **** **** 00"}
    assert "12345678" not in request.summary and "DE89370400440532013000" not in request.summary
    assert "Kundennummer" in request.summary


async def test_native_handoff_sends_the_signed_webhook_and_no_redirect(receiver: WebhookReceiver) -> None:
    request = TransferRequest.from_handoff("call-7", "voicebot.v1", "mitarbeiter", escalation_context())
    async with HandoffTransfer(settings_for(receiver, None, handoff_queue="zentrale")) as transfer:
        result = await transfer.transfer(request)
    assert result.ok and result.webhook.ok and result.redirect.outcome == "skipped"
    assert result.target == TransferTarget("queue", "zentrale")
    [got] = receiver.wait_for(1)
    assert got.verdict == "ok"
    payload = receiver.payloads()[0]
    assert payload["call_id"] == "call-7" and payload["delivery_id"] == result.delivery_id
    assert payload["slots"]["iban"] == "DE89 **** **** **** **** 00"
    assert transfer_event(request, result.target) == {
        "type": "transfer", "call_id": "call-7", "target": {"kind": "queue", "value": "zentrale"},
        "route": "mensch", "reason": "mitarbeiter", "priority": False, "announce": ""}
    event = result.to_event()
    assert event["type"] == "transfer.result" and event["ok"] and event["webhook"]["outcome"] == "delivered"
    assert event["redirect"] == {"outcome": "skipped", "attempts": 0, "status": None,
                                 "error": "native call: the gateway transfers it (transfer event)"}


async def test_twilio_handoff_sends_the_webhook_and_redirects_the_call(receiver: WebhookReceiver,
                                                                       twilio: FakeTwilio) -> None:
    request = TransferRequest.from_handoff("call-7", "twilio", "mitarbeiter", escalation_context(),
                                           announce="Einen Moment bitte.", twilio_call_sid=CALL,
                                           twilio_account_sid=ACCOUNT)
    settings = settings_for(receiver, twilio, handoff_targets="mensch=+49 30 9876543, schaden=queue:schaden")
    async with HandoffTransfer(settings) as transfer:
        result = await transfer.transfer(request)
    assert result.ok and result.webhook.ok and result.redirect.ok
    assert result.target == TransferTarget("number", "+49309876543")
    assert receiver.wait_for(1)[0].verdict == "ok"
    assert receiver.payloads()[0]["twilio"] == {"call_sid": CALL, "account_sid": ACCOUNT}
    [redirect] = twilio.wait_for(1)
    assert redirect.verdict == "ok" and redirect.path.endswith(f"/Calls/{CALL}.json")
    twiml = ET.fromstring(redirect.form["Twiml"])
    assert twiml.find("Say").text == "Einen Moment bitte." and twiml.find("Say").get("language") == "de-DE"
    assert twiml.find("Dial/Number").text == "+49309876543"


async def test_the_redirect_waits_for_the_handover_phrase(receiver: WebhookReceiver, twilio: FakeTwilio) -> None:
    request = TransferRequest("CA-call", "twilio", "mitarbeiter", route="mensch", twilio_call_sid=CALL)
    spoken = asyncio.Event()
    async with HandoffTransfer(settings_for(receiver, twilio)) as transfer:
        task = asyncio.create_task(transfer.transfer(request, spoken=spoken))
        await asyncio.to_thread(receiver.wait_for, 1)  # the agent's desk hears at once...
        assert twilio.received == [] and not task.done()  # ...the call moves only once the phrase is out
        spoken.set()
        result = await task
    assert result.ok and result.redirect.ok and len(twilio.wait_for(1)) == 1


async def test_a_dead_webhook_does_not_stop_the_redirect(twilio: FakeTwilio) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}/hook"
    settings = dataclasses.replace(settings_for(None, twilio), handoff_webhook=dead, webhook_retries=1)
    request = TransferRequest("CA-call", "twilio", "notfall", route="notfall", priority=True, twilio_call_sid=CALL)
    async with HandoffTransfer(settings) as transfer:
        result = await transfer.transfer(request)
    assert result.webhook.outcome == "failed" and result.webhook.attempts == 2
    assert result.redirect.ok and not result.ok
    # No configured target: the call is queued under its route's name.
    assert ET.fromstring(twilio.wait_for(1)[0].form["Twiml"]).find("Enqueue").text == "notfall"


async def test_nothing_configured_skips_everything() -> None:
    request = TransferRequest("CA-call", "twilio", "notfall", route="notfall", twilio_call_sid=CALL)
    async with HandoffTransfer(TelephonySettings()) as transfer:
        result = await transfer.transfer(request)
    assert result.ok and result.webhook.outcome == "skipped" and result.redirect.outcome == "skipped"


def test_target_order_and_bad_targets() -> None:
    transfer = HandoffTransfer(dataclasses.replace(
        TelephonySettings(), handoff_targets="technik=sip:tech@pbx.example", handoff_queue="zentrale"))
    assert transfer.target_for("technik") == TransferTarget("sip", "sip:tech@pbx.example")
    assert transfer.target_for("vertrieb") == TransferTarget("queue", "zentrale")
    assert HandoffTransfer(TelephonySettings()).target_for("") is None
    assert parse_route_targets("a=queue:x, b=0301234567") == {
        "a": TransferTarget("queue", "x"), "b": TransferTarget("number", "0301234567")}
    with pytest.raises(TransferConfigError, match="route=target"):
        parse_route_targets("technik")
    with pytest.raises(TransferConfigError, match="queue"):
        parse_route_targets("a=" + "q" * 65)
    with pytest.raises(ValueError, match="twilio_call_sid"):
        TransferRequest("c", "twilio", "r", twilio_call_sid="CA/../../Accounts")


def test_settings_come_from_the_environment() -> None:
    settings = load_settings(environ={
        "VOICEBOT_TELEPHONY__HANDOFF_WEBHOOK": "https://desk.example/hook",
        "VOICEBOT_TELEPHONY__WEBHOOK_SECRET": "s3",
        "VOICEBOT_TELEPHONY__WEBHOOK_RETRIES": "5",
        "VOICEBOT_TELEPHONY__TWILIO_API_BASE": "http://127.0.0.1:9",
        "VOICEBOT_TELEPHONY__HANDOFF_TARGETS": "notfall=+4989112",
    })
    t = settings.telephony
    assert (t.handoff_webhook, t.webhook_secret, t.webhook_retries) == ("https://desk.example/hook", "s3", 5)
    assert t.twilio_api_base == "http://127.0.0.1:9" and t.handoff_targets == "notfall=+4989112"
    with pytest.raises(SettingsError):
        load_settings(environ={"VOICEBOT_TELEPHONY__WEBHOOK_TIMEOUT_S": "0"})

"""The Twilio call redirect against a local fake of Twilio's REST API (auth, form, TwiML, refusals)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import httpx
import pytest
from telephony_servers import STALL, FakeTwilio

from voicebot.telephony import TransferTarget
from voicebot.telephony.http_retry import RetryPolicy
from voicebot.telephony.twilio_rest import TwilioCalls, build_twiml

ACCOUNT = "AC" + "1" * 32
TOKEN = "tw-token-5e6f"
CALL = "CA" + "2" * 32
ANNOUNCE = "Ich verbinde Sie jetzt mit der Pannenhilfe & bleibe <dran>."

# Every wait in these modules is bounded by design; a hang is a failure, not a stuck run.
pytestmark = pytest.mark.timeout(60)


def policy(attempts: int = 3, timeout_s: float = 2.0) -> RetryPolicy:
    return RetryPolicy(attempts=attempts, timeout_s=timeout_s, backoff_s=0.01, retry_after_send=False)


@pytest.fixture
def twilio():
    with FakeTwilio(ACCOUNT, TOKEN, live_calls={CALL}) as server:
        yield server


async def redirect(server: FakeTwilio, twiml: str, *, token: str = TOKEN, call: str = CALL,
                   account: str | None = None, attempts: int = 3, timeout_s: float = 2.0):
    async with httpx.AsyncClient() as client:
        calls = TwilioCalls(server.url(), ACCOUNT, token, policy(attempts, timeout_s), client)
        return await calls.redirect(call, twiml, account)


def test_twiml_enqueues_for_a_queue_and_dials_a_number_or_sip() -> None:
    queue = ET.fromstring(build_twiml(TransferTarget("queue", "pannendienst"), ANNOUNCE))
    assert [child.tag for child in queue] == ["Say", "Enqueue"]
    assert queue[0].get("language") == "de-DE" and queue[0].text == ANNOUNCE  # escaped, and it round-trips
    assert queue[1].text == "pannendienst"
    number = build_twiml(TransferTarget.parse("+49 30 1234567"))
    assert number == "<Response><Dial><Number>+49301234567</Number></Dial></Response>"
    sip = build_twiml(TransferTarget.parse("sip:agent@pbx.example"), "Einen Moment.", language="de-AT")
    assert sip == ('<Response><Say language="de-AT">Einen Moment.</Say>'
                   "<Dial><Sip>sip:agent@pbx.example</Sip></Dial></Response>")


async def test_the_fake_rest_api_sees_the_redirect(twilio: FakeTwilio) -> None:
    twiml = build_twiml(TransferTarget("queue", "pannendienst"), ANNOUNCE)
    result = await redirect(twilio, twiml)
    assert result.ok and result.attempts == 1 and result.status == 200
    [got] = twilio.wait_for(1)
    assert got.verdict == "ok"  # basic auth = account SID + token, a form body
    assert got.path == f"/2010-04-01/Accounts/{ACCOUNT}/Calls/{CALL}.json"
    assert got.form == {"Twiml": twiml}
    assert ET.fromstring(got.form["Twiml"]).find("Enqueue").text == "pannendienst"


async def test_a_subaccount_call_uses_its_own_account_in_the_path(twilio: FakeTwilio) -> None:
    sub = "AC" + "3" * 32
    result = await redirect(twilio, "<Response/>", account=sub)
    assert result.ok
    assert twilio.wait_for(1)[0].path == f"/2010-04-01/Accounts/{sub}/Calls/{CALL}.json"


async def test_bad_credentials_fail_at_once_with_twilios_reason(twilio: FakeTwilio) -> None:
    result = await redirect(twilio, "<Response/>", token="wrong")
    assert result.outcome == "failed" and result.attempts == 1 and result.status == 401
    assert "Twilio 20003" in result.error and "wrong" not in result.error


async def test_an_ended_call_is_reported_not_retried(twilio: FakeTwilio) -> None:
    result = await redirect(twilio, "<Response/>", call="CA" + "9" * 32)
    assert result.outcome == "failed" and result.attempts == 1
    assert "21220" in result.error and "not in-progress" in result.error


async def test_a_twilio_5xx_is_retried(twilio: FakeTwilio) -> None:
    twilio.script = [503]
    result = await redirect(twilio, "<Response/>")
    assert result.ok and result.attempts == 2
    assert [r.verdict for r in twilio.wait_for(2)] == ["ok", "ok"]


async def test_a_timeout_after_sending_is_not_retried(twilio: FakeTwilio) -> None:
    # Twilio may have applied it: a second update would re-run the TwiML and re-queue the caller.
    twilio.script = [STALL]
    result = await redirect(twilio, "<Response/>", timeout_s=0.3)
    assert result.outcome == "failed" and result.attempts == 1 and "timed out" in result.error
    assert len(twilio.received) == 1


async def test_without_credentials_the_redirect_is_skipped() -> None:
    async with httpx.AsyncClient() as client:
        calls = TwilioCalls("https://api.twilio.com", "", "", policy(), client)
        result = await calls.redirect(CALL, "<Response/>")
    assert result.outcome == "skipped" and result.attempts == 0

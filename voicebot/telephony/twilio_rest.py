"""Redirect a live Twilio call through the REST API: the handoff leaves the media stream.

Updating a call with new TwiML (``POST /2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json``,
form field ``Twiml``) makes Twilio stop the running ``<Connect><Stream>`` at once (our
websocket gets ``stop``) and run the new document. For a queue the caller is put in it with
``<Enqueue>`` (agents take calls from it with ``<Dial><Queue>`` on their own leg); a number or
SIP URI is dialled with ``<Dial>``.

A call update is not idempotent (a second redirect restarts the TwiML and re-queues the
caller at the back), so only attempts that never reached Twilio, and its 5xx/429 answers,
are retried.
"""

from __future__ import annotations

import json
import logging
import xml.etree.ElementTree as ET
from urllib.parse import urlencode

import httpx

from voicebot.telephony.http_retry import RetryPolicy, post_with_retries
from voicebot.telephony.models import DeliveryResult, TransferTarget

log = logging.getLogger(__name__)


def build_twiml(target: TransferTarget, announce: str = "", language: str = "de-DE") -> str:
    """``<Response><Say language=..>announce</Say><Enqueue>queue</Enqueue></Response>`` or ``<Dial>``."""
    response = ET.Element("Response")
    if announce.strip():
        ET.SubElement(response, "Say", {"language": language}).text = announce.strip()
    if target.kind == "queue":
        ET.SubElement(response, "Enqueue").text = target.value
    else:
        dial = ET.SubElement(response, "Dial")
        ET.SubElement(dial, "Number" if target.kind == "number" else "Sip").text = target.value
    return ET.tostring(response, encoding="unicode")


class TwilioCalls:
    """The one call-update endpoint of Twilio's REST API we need, against any API base (tests: a fake)."""

    def __init__(self, api_base: str, account_sid: str, auth_token: str, policy: RetryPolicy,
                 client: httpx.AsyncClient, api_key_sid: str = "") -> None:
        if not api_base.startswith(("http://", "https://")):
            raise ValueError("telephony.twilio_api_base must be an http:// or https:// URL")
        self.api_base = api_base.rstrip("/")
        self.account_sid = account_sid
        self.policy = policy
        self._client = client
        # An API key (SK...) authenticates in place of the account SID; the token is then its secret.
        self._auth = httpx.BasicAuth(api_key_sid or account_sid, auth_token) if auth_token else None

    def __repr__(self) -> str:  # never the token
        return f"TwilioCalls(api_base={self.api_base!r}, account_sid={self.account_sid!r})"

    @property
    def configured(self) -> bool:
        return self._auth is not None and bool(self.account_sid)

    def call_url(self, call_sid: str, account_sid: str | None = None) -> str:
        # The call may live in a subaccount; the parent's credentials may act on it.
        return f"{self.api_base}/2010-04-01/Accounts/{account_sid or self.account_sid}/Calls/{call_sid}.json"

    async def redirect(self, call_sid: str, twiml: str, account_sid: str | None = None) -> DeliveryResult:
        """Replace the call's TwiML with ``twiml``; the outcome says whether Twilio accepted it."""
        if not self.configured:
            return DeliveryResult("skipped", error="twilio_account_sid / twilio_auth_token not set")
        body = urlencode({"Twiml": twiml}).encode("ascii")
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json",
                   "User-Agent": "voicebot-handoff/1"}
        result, response = await post_with_retries(self._client, self.call_url(call_sid, account_sid),
                                                    lambda _attempt: (body, headers), self.policy,
                                                    what="twilio call redirect", auth=self._auth)
        if not result.ok and response is not None:
            detail = _twilio_error(response)
            if detail:
                return DeliveryResult(result.outcome, result.attempts, result.status, f"{result.error}: {detail}")
        return result


def _twilio_error(response: httpx.Response) -> str:
    """Twilio's own words for a refusal (``{"code": 21220, "message": "Call is not in-progress..."}``)."""
    try:
        data = json.loads(response.content)
    except ValueError:
        return ""
    if not isinstance(data, dict):
        return ""
    code, message = data.get("code"), str(data.get("message") or "")[:200]
    return f"Twilio {code} {message}".strip() if code or message else ""

"""The signed handoff webhook: who gets told, with what, and how a receiver checks it.

Every handoff POSTs one JSON ``HandoffNotice``. The body is signed with HMAC-SHA256 under
``telephony.webhook_secret``; the signature covers the raw body bytes and the body carries
its own ``timestamp``, so a receiver that checks the signature and the timestamp's age
rejects both forgeries and replays. A ``delivery_id`` stays the same across retries, so a
receiver can drop a delivery it has already handled.

Headers: ``X-Voicebot-Signature: sha256=<hex>``, ``X-Voicebot-Timestamp: <unix seconds, the
body's>``, ``X-Voicebot-Delivery: <delivery_id>``, ``X-Voicebot-Attempt: <1..n>``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from voicebot.telephony.http_retry import RetryPolicy, post_with_retries, redact_httpx_logs
from voicebot.telephony.models import DeliveryResult, TransferRequest, TransferTarget

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Voicebot-Signature"
TIMESTAMP_HEADER = "X-Voicebot-Timestamp"
DELIVERY_HEADER = "X-Voicebot-Delivery"
ATTEMPT_HEADER = "X-Voicebot-Attempt"
NOTICE_VERSION = 1


@dataclass(frozen=True)
class HandoffNotice:
    """The webhook's JSON body (``type: "handoff"``)."""

    delivery_id: str
    timestamp: int
    call_id: str
    protocol: str
    reason: str
    route: str
    priority: bool
    target: TransferTarget | None
    summary: str
    slots: dict[str, str] = field(default_factory=dict)
    next_steps: tuple[str, ...] = ()
    twilio_call_sid: str | None = None
    twilio_account_sid: str | None = None

    @classmethod
    def from_request(cls, request: TransferRequest, target: TransferTarget | None, delivery_id: str,
                     timestamp: int) -> HandoffNotice:
        return cls(delivery_id=delivery_id, timestamp=timestamp, call_id=request.call_id,
                   protocol=request.protocol, reason=request.reason, route=request.route,
                   priority=request.priority, target=target, summary=request.summary, slots=dict(request.slots),
                   next_steps=request.next_steps, twilio_call_sid=request.twilio_call_sid,
                   twilio_account_sid=request.twilio_account_sid)

    def to_json(self) -> dict[str, Any]:
        twilio = None
        if self.protocol == "twilio":
            twilio = {"call_sid": self.twilio_call_sid, "account_sid": self.twilio_account_sid}
        return {
            "type": "handoff", "version": NOTICE_VERSION, "delivery_id": self.delivery_id,
            "timestamp": self.timestamp, "call_id": self.call_id, "protocol": self.protocol,
            "reason": self.reason, "route": self.route, "priority": self.priority,
            "target": self.target.to_dict() if self.target else None, "summary": self.summary,
            "slots": self.slots, "next_steps": list(self.next_steps), "twilio": twilio,
        }

    def body(self) -> bytes:
        return json.dumps(self.to_json(), ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def sign(secret: str, body: bytes) -> str:
    """The ``X-Voicebot-Signature`` value for ``body``."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


class SignatureError(ValueError):
    """A webhook delivery that must be rejected; the message says why (safe to log)."""


def verify_webhook(secret: str, body: bytes, headers: Mapping[str, str], *, now: float | None = None,
                   tolerance_s: float = 300.0) -> dict[str, Any]:
    """A receiver's check: signature, then freshness. Returns the parsed body.

    ``headers`` must look names up case-insensitively (Starlette's, httpx's, or lower-cased keys).
    """
    given = headers.get(SIGNATURE_HEADER) or headers.get(SIGNATURE_HEADER.lower()) or ""
    if not hmac.compare_digest(given.encode("ascii", "replace"), sign(secret, body).encode("ascii")):
        raise SignatureError("signature does not match the body")
    try:
        payload = json.loads(body)
        stamp = int(payload["timestamp"])
    except (ValueError, KeyError, TypeError) as exc:
        raise SignatureError("signed body has no timestamp") from exc
    header_stamp = headers.get(TIMESTAMP_HEADER) or headers.get(TIMESTAMP_HEADER.lower())
    if header_stamp is not None and header_stamp != str(stamp):
        raise SignatureError("timestamp header differs from the signed body")
    age = (time.time() if now is None else now) - stamp
    if abs(age) > tolerance_s:
        raise SignatureError(f"timestamp is {age:.0f} s off (tolerance {tolerance_s:g} s): a replay or a bad clock")
    return payload


class HandoffWebhook:
    """POSTs signed ``HandoffNotice``s to one URL, with bounded retries."""

    def __init__(self, url: str, secret: str, policy: RetryPolicy, client: httpx.AsyncClient,
                 clock: Callable[[], float] = time.time) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError("telephony.handoff_webhook must be an http:// or https:// URL")
        self.url, self._secret, self.policy, self._client, self._clock = url, secret, policy, client, clock
        redact_httpx_logs()
        if not secret:
            log.warning("telephony.webhook_secret is empty: handoff webhooks go out unsigned")

    def __repr__(self) -> str:  # keeps the secret out of any log line that prints the object
        return f"HandoffWebhook(url={self.url!r}, signed={bool(self._secret)})"

    async def send(self, request: TransferRequest, target: TransferTarget | None,
                   delivery_id: str) -> DeliveryResult:
        def build(attempt: int) -> tuple[bytes, dict[str, str]]:
            # A fresh timestamp per attempt keeps late retries inside the receiver's tolerance.
            notice = HandoffNotice.from_request(request, target, delivery_id, int(self._clock()))
            body = notice.body()
            headers = {"Content-Type": "application/json; charset=utf-8", TIMESTAMP_HEADER: str(notice.timestamp),
                       DELIVERY_HEADER: delivery_id, ATTEMPT_HEADER: str(attempt),
                       "User-Agent": "voicebot-handoff/1"}
            if self._secret:
                headers[SIGNATURE_HEADER] = sign(self._secret, body)
            return body, headers

        result, _ = await post_with_retries(self._client, self.url, build, self.policy, what="handoff webhook")
        return result

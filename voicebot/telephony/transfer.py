"""Transfer on handoff: tell the agents' side (webhook) and move the call (Twilio redirect).

``HandoffTransfer(settings.telephony)`` is made once per server; ``transfer(request)`` runs
per handoff as a background task (it never raises for network trouble, and every wait in
it is bounded by the retry policies). The webhook and the redirect run side by side, so a
slow webhook receiver never delays the caller's transfer.

Where a call goes (first match): the route's entry in ``handoff_targets``, then
``handoff_number``, then ``handoff_queue``, then a queue named after the route.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import TYPE_CHECKING, Any

import httpx

from voicebot.telephony.http_retry import RetryPolicy
from voicebot.telephony.models import (
    SKIPPED_NOT_CONFIGURED,
    DeliveryResult,
    TransferRequest,
    TransferResult,
    TransferTarget,
    parse_route_targets,
)
from voicebot.telephony.twilio_rest import TwilioCalls, build_twiml
from voicebot.telephony.webhook import HandoffWebhook

if TYPE_CHECKING:
    from voicebot.config import TelephonySettings

log = logging.getLogger(__name__)


class HandoffTransfer:
    """Webhook + Twilio redirect for one server; share it between calls, ``aclose()`` at shutdown."""

    def __init__(self, settings: TelephonySettings, http_client: httpx.AsyncClient | None = None) -> None:
        self.settings = settings
        self._own_client = http_client is None
        # Redirects are never followed: a 3xx from a webhook receiver is its misconfiguration.
        self._client = http_client or httpx.AsyncClient(follow_redirects=False)
        self._route_targets = parse_route_targets(settings.handoff_targets)
        number, queue = settings.handoff_number.strip(), settings.handoff_queue.strip()
        self._number = TransferTarget.parse(number) if number else None
        self._queue = TransferTarget("queue", queue) if queue else None
        self.webhook: HandoffWebhook | None = None
        if settings.handoff_webhook:
            self.webhook = HandoffWebhook(
                settings.handoff_webhook, settings.webhook_secret,
                RetryPolicy(attempts=1 + settings.webhook_retries, timeout_s=settings.webhook_timeout_s,
                            backoff_s=settings.webhook_backoff_s),
                self._client)
        self.twilio = TwilioCalls(
            settings.twilio_api_base, settings.twilio_account_sid, settings.twilio_auth_token,
            RetryPolicy(attempts=1 + settings.twilio_retries, timeout_s=settings.twilio_timeout_s,
                        backoff_s=settings.webhook_backoff_s, retry_after_send=False),
            self._client, api_key_sid=settings.twilio_api_key_sid)

    def __repr__(self) -> str:
        return f"HandoffTransfer(webhook={self.webhook!r}, twilio={self.twilio!r})"

    def target_for(self, route: str) -> TransferTarget | None:
        """Where a handoff on ``route`` goes; None when nothing is configured and the route is empty."""
        if route in self._route_targets:
            return self._route_targets[route]
        if self._number is not None:
            return self._number
        if self._queue is not None:
            return self._queue
        try:
            return TransferTarget("queue", route) if route else None
        except ValueError:  # a route name no queue may carry (too long, odd characters)
            return None

    async def notify(self, request: TransferRequest, target: TransferTarget | None,
                     delivery_id: str) -> DeliveryResult:
        """The signed webhook alone."""
        if self.webhook is None:
            return SKIPPED_NOT_CONFIGURED
        return await self.webhook.send(request, target, delivery_id)

    async def redirect(self, request: TransferRequest, target: TransferTarget | None) -> DeliveryResult:
        """The Twilio redirect alone (skipped for native calls: their gateway moves the call)."""
        if request.protocol != "twilio":
            return DeliveryResult("skipped", error="native call: the gateway transfers it (transfer event)")
        if not self.twilio.configured:
            return SKIPPED_NOT_CONFIGURED
        if not request.twilio_call_sid:
            return DeliveryResult("failed", error="twilio call without a call SID")
        if target is None:
            return DeliveryResult("failed", error=f"no handoff target for route {request.route!r}")
        twiml = build_twiml(target, request.announce, self.settings.handoff_language)
        return await self.twilio.redirect(request.twilio_call_sid, twiml, request.twilio_account_sid)

    async def transfer(self, request: TransferRequest, spoken: asyncio.Event | None = None) -> TransferResult:
        """Webhook and redirect side by side; the result says how each went.

        The webhook goes out at once (the agent's desk gets the context while the bot still
        talks). The redirect waits for ``spoken`` (set when the handover phrase has been played
        to the caller: redirecting cuts the stream and anything still unplayed), at most
        ``handover_max_wait_s``.
        """
        target = self.target_for(request.route)
        delivery_id = uuid.uuid4().hex

        async def redirect_when_spoken() -> DeliveryResult:
            if spoken is not None and not spoken.is_set():
                try:
                    async with asyncio.timeout(self.settings.handover_max_wait_s):
                        await spoken.wait()
                except TimeoutError:
                    log.info("call %s: handover phrase not confirmed played; transferring anyway", request.call_id)
            return await self.redirect(request, target)

        webhook, redirect = await asyncio.gather(self.notify(request, target, delivery_id), redirect_when_spoken())
        result = TransferResult(request.call_id, target, webhook, redirect, delivery_id)
        level = logging.INFO if result.ok else logging.WARNING
        log.log(level, "transfer of call %s to %s: webhook %s, redirect %s", request.call_id,
                f"{target.kind} {target.value}" if target else "nowhere", _describe(webhook), _describe(redirect))
        return result

    async def aclose(self) -> None:
        if self._own_client:
            await self._client.aclose()

    async def __aenter__(self) -> HandoffTransfer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _describe(result: DeliveryResult) -> str:
    text = f"{result.outcome} after {result.attempts} attempt(s)" if result.attempts else result.outcome
    return f"{text} ({result.error})" if result.error else text


def transfer_event(request: TransferRequest, target: TransferTarget | None) -> dict[str, Any]:
    """The native protocol's ``transfer`` event: tells the caller's gateway where the call goes."""
    return {"type": "transfer", "call_id": request.call_id,
            "target": target.to_dict() if target else None, "route": request.route,
            "reason": request.reason, "priority": request.priority, "announce": request.announce}

"""Handing a call over for real: on a handoff, tell the agents' side and move the call.

One ``Handover`` per caller connection watches the call's committed events. On the
first ``handoff`` it starts the server's ``HandoffTransfer`` (``voicebot.telephony``):
the signed webhook leaves at once; the Twilio redirect waits until the bot has said
its handover phrase (the next ``bot.audio.end``), because redirecting cuts the
stream. Native callers get a ``transfer`` event once the phrase is out; where the
operator configured a target (``telephony.handoff_targets`` / ``handoff_number`` /
``handoff_queue``) the stream then ends cleanly, otherwise the call stays on the
line for an agent to take over on the agent page. The outcome is published as a
``transfer.result`` event for agents and the store.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from voicebot.config import TelephonySettings
from voicebot.protocol.events import (
    BotAudioEndEvent,
    CallEvent,
    HandoffEvent,
    TransferEvent,
    TransferResultEvent,
    TransferTarget,
)
from voicebot.telephony.models import TransferRequest, TransferResult
from voicebot.telephony.transfer import HandoffTransfer

log = logging.getLogger(__name__)


def target_configured(settings: TelephonySettings) -> bool:
    """The operator said where handed-off calls go (else the call waits here for an agent)."""
    return bool(settings.handoff_targets or settings.handoff_number or settings.handoff_queue)


class Handover:
    def __init__(
        self, transfer: HandoffTransfer, call_id: str, protocol: str, *,
        publish: Callable[[CallEvent, bool], None], end_call: Callable[[str], Awaitable[None]],
        tasks: set[asyncio.Task[None]],
        twilio_call_sid: str | None = None, twilio_account_sid: str | None = None,
    ) -> None:
        self.transfer = transfer
        self.call_id = call_id
        self.protocol = "twilio" if protocol == "twilio" else "voicebot.v1"
        self.publish = publish  # (event, to the caller too?)
        self.end_call = end_call
        self.tasks = tasks  # the server's: a transfer outlives its call (bounded by its retry policies)
        self.twilio_call_sid = twilio_call_sid
        self.twilio_account_sid = twilio_account_sid
        self.spoken = asyncio.Event()
        self._request: TransferRequest | None = None
        self._task: asyncio.Task[None] | None = None

    def on_event(self, event: CallEvent) -> None:
        """Each committed call event, in order."""
        if isinstance(event, HandoffEvent) and self._task is None:
            self._request = TransferRequest.from_handoff(
                self.call_id, self.protocol, event.reason, event.context,  # type: ignore[arg-type]
                twilio_call_sid=self.twilio_call_sid, twilio_account_sid=self.twilio_account_sid)
            task = asyncio.create_task(self._run(self._request), name=f"handover-{self.call_id}")
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
            self._task = task
        elif isinstance(event, BotAudioEndEvent) and self._request is not None and not self.spoken.is_set():
            self.spoken.set()  # the handover phrase is out
            if self.protocol == "voicebot.v1":
                self._tell_gateway(self._request)

    def _tell_gateway(self, request: TransferRequest) -> None:
        target = self.transfer.target_for(request.route)
        ends = target_configured(self.transfer.settings)
        self.publish(TransferEvent(
            target=TransferTarget(kind=target.kind, value=target.value) if target else None,  # type: ignore[arg-type]
            route=request.route, reason=request.reason, priority=request.priority, ends_stream=ends), True)
        if ends:
            asyncio.get_running_loop().create_task(self.end_call("transferred"))

    async def _run(self, request: TransferRequest) -> None:
        result: TransferResult = await self.transfer.transfer(request, spoken=self.spoken)
        target = result.target
        self.publish(TransferResultEvent(
            ok=result.ok, target=TransferTarget(kind=target.kind, value=target.value) if target else None,  # type: ignore[arg-type]
            webhook=result.webhook.to_dict(), redirect=result.redirect.to_dict(), delivery_id=result.delivery_id),
            False)
        # A Twilio call that was redirected ends by Twilio's own ``stop`` on the stream.

"""Telephony side of a handoff: the signed webhook, the Twilio call redirect, and the transfer that runs both."""

from voicebot.telephony.models import (
    DeliveryResult,
    TransferConfigError,
    TransferRequest,
    TransferResult,
    TransferTarget,
    parse_route_targets,
)
from voicebot.telephony.transfer import HandoffTransfer, transfer_event
from voicebot.telephony.webhook import SignatureError, sign, verify_webhook

__all__ = [
    "DeliveryResult", "HandoffTransfer", "SignatureError", "TransferConfigError", "TransferRequest",
    "TransferResult", "TransferTarget", "parse_route_targets", "sign", "transfer_event", "verify_webhook",
]

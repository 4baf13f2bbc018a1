"""Typed messages of a transfer: where a call goes, what is sent about it, and how it went.

A ``TransferRequest`` is built once per handoff (``from_handoff`` masks personal data)
and handed to ``HandoffTransfer``; nothing here does I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

from voicebot.assist.redact import mask_slot, redact_text

CallProtocol = Literal["voicebot.v1", "twilio"]
TargetKind = Literal["queue", "number", "sip"]

# Twilio SIDs are two letters and 32 hex digits; anything URL-safe of sane length is accepted
# so gateways with their own ids work, and nothing can escape the REST path.
_SID = re.compile(r"^[A-Za-z0-9]{2,64}$")
_NUMBER = re.compile(r"^\+?[0-9]{3,20}$")
_QUEUE = re.compile(r"^[^\s<>&\"']{1,64}$")  # Twilio: a queue name has at most 64 characters


class TransferConfigError(ValueError):
    """A handoff target in the settings cannot be read."""


@dataclass(frozen=True)
class TransferTarget:
    """Where a call is handed: a named queue (``<Enqueue>``), a phone number or a SIP URI (``<Dial>``)."""

    kind: TargetKind
    value: str

    def __post_init__(self) -> None:
        ok = {"queue": _QUEUE.match(self.value), "number": _NUMBER.match(self.value),
              "sip": self.value.startswith("sip:") and len(self.value) <= 255 and not re.search(r"[\s<>]", self.value)}
        if not ok.get(self.kind):
            raise TransferConfigError(f"not a valid {self.kind} target: {self.value!r}")

    @classmethod
    def parse(cls, text: str) -> TransferTarget:
        """``+4930123456`` / ``030 123456`` -> number, ``sip:agent@pbx`` -> sip, ``queue:name`` or a name -> queue."""
        text = text.strip()
        if text.startswith("sip:"):
            return cls("sip", text)
        if text.startswith("queue:"):
            return cls("queue", text[len("queue:"):].strip())
        compact = re.sub(r"[ /()-]", "", text)
        if _NUMBER.match(compact):
            return cls("number", compact)
        return cls("queue", text)

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "value": self.value}


def parse_route_targets(text: str) -> dict[str, TransferTarget]:
    """``"pannendienst=+498912345,schaden=queue:schaden,technik=sip:tech@pbx"`` -> route -> target."""
    targets: dict[str, TransferTarget] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        route, sep, target = item.partition("=")
        if not sep or not route.strip() or not target.strip():
            raise TransferConfigError(f"telephony.handoff_targets: expected route=target, got {item!r}")
        targets[route.strip()] = TransferTarget.parse(target)
    return targets


@dataclass(frozen=True)
class TransferRequest:
    """One handoff, as the transfer sees it. ``slots`` and ``summary`` must already be masked."""

    call_id: str
    protocol: CallProtocol
    reason: str
    route: str = ""
    summary: str = ""
    slots: dict[str, str] = field(default_factory=dict)
    next_steps: tuple[str, ...] = ()
    priority: bool = False
    # Spoken by Twilio (<Say>) right before the call is connected; empty when the bot has
    # already said its handover phrase on the stream.
    announce: str = ""
    twilio_call_sid: str | None = None
    twilio_account_sid: str | None = None

    def __post_init__(self) -> None:
        if self.protocol not in ("voicebot.v1", "twilio"):
            raise ValueError(f"unknown protocol {self.protocol!r}")
        if not self.call_id:
            raise ValueError("a transfer needs a call_id")
        for name in ("twilio_call_sid", "twilio_account_sid"):
            value = getattr(self, name)
            if value is not None and not _SID.match(value):
                raise ValueError(f"{name} must be 2-64 letters or digits, got {value!r}")
        object.__setattr__(self, "next_steps", tuple(self.next_steps))

    @classmethod
    def from_handoff(cls, call_id: str, protocol: CallProtocol, reason: str, context: dict[str, Any], *,
                     announce: str = "", twilio_call_sid: str | None = None,
                     twilio_account_sid: str | None = None) -> TransferRequest:
        """From a ``Handoff`` frame's context (``CallPolicy.handoff_context``): masks slots and summary."""
        slots = context.get("slots") or {}
        return cls(
            call_id=call_id, protocol=protocol, reason=reason,
            route=str(context.get("route") or ""),
            summary=redact_text(str(context.get("summary") or "")),
            slots={str(k): mask_slot(str(k), str(v)) for k, v in slots.items()},
            next_steps=tuple(str(s) for s in context.get("next_steps") or ()),
            priority=bool(context.get("priority")),
            announce=announce, twilio_call_sid=twilio_call_sid, twilio_account_sid=twilio_account_sid,
        )


Outcome = Literal["delivered", "failed", "skipped"]


@dataclass(frozen=True)
class DeliveryResult:
    """How one outbound HTTP action went (the webhook, or the Twilio redirect)."""

    outcome: Outcome
    attempts: int = 0
    status: int | None = None  # the last HTTP status seen
    error: str = ""  # why it failed or was skipped; never holds secrets

    @property
    def ok(self) -> bool:
        return self.outcome == "delivered"

    def to_dict(self) -> dict[str, Any]:
        return {"outcome": self.outcome, "attempts": self.attempts, "status": self.status, "error": self.error}


SKIPPED_NOT_CONFIGURED = DeliveryResult("skipped", error="not configured")


@dataclass(frozen=True)
class TransferResult:
    """What a transfer did: the webhook, the redirect (Twilio calls) and the target it chose."""

    call_id: str
    target: TransferTarget | None
    webhook: DeliveryResult
    redirect: DeliveryResult
    delivery_id: str = ""

    @property
    def ok(self) -> bool:
        """Nothing that was configured failed."""
        return self.webhook.outcome != "failed" and self.redirect.outcome != "failed"

    def to_event(self) -> dict[str, Any]:
        """A ``transfer.result`` event for agents and the call store."""
        return {"type": "transfer.result", "call_id": self.call_id, "ok": self.ok,
                "target": self.target.to_dict() if self.target else None,
                "webhook": self.webhook.to_dict(), "redirect": self.redirect.to_dict(),
                "delivery_id": self.delivery_id}

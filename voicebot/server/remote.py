"""A call held by another worker, as this worker's agents see it (the federation keeps it).

Its events come from the bus as they happen and from the store for what came
before (a worker that started later, a lost bus message): both are merged by the
event's ``seq``, so an event is never shown twice. Its row in the agents' list is
the owning worker's own ``CallSummary`` (sent on the bus with every change), or,
until one arrives, one derived here from the stored call and its events.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from voicebot.protocol.agent import CallSummary
from voicebot.protocol.events import (
    AgentReleaseEvent,
    AgentTakeoverEvent,
    CallEndEvent,
    CallEvent,
    HandoffEvent,
    IntentEvent,
    TranscriptFinalEvent,
    TranscriptPartialEvent,
    parse_call_event,
)


@dataclass
class RemoteCall:
    """The mirror of one call another worker (``worker_id``) holds."""

    call_id: str
    worker_id: str
    row: CallSummary | None = None  # None until the owner's summary or the store's row is known
    events: dict[int, CallEvent] = field(default_factory=dict)
    heard: set[int] = field(default_factory=set)  # seqs that came over the bus (shown live to agents)
    loaded: bool = False  # the store's record has been merged in

    @property
    def live(self) -> bool:
        return self.row is None or self.row.state != "ended"

    def summary(self) -> CallSummary:
        return self.row if self.row is not None else CallSummary(call_id=self.call_id, protocol="?", started_at=0.0)

    def hear(self, event: CallEvent) -> bool:
        """Merge one event heard on the bus; False if it was heard before (then it is not shown again).

        One the store's record already had is still new live: the owner commits before it
        publishes, so a read may get ahead of the bus (an agent subscribing in that moment
        sees it in the replay and live, with the same ``seq``).
        """
        if event.seq is None or event.seq in self.heard:
            return False
        self.heard.add(event.seq)
        self.events.setdefault(event.seq, event)
        return True

    def replay(self, limit: int) -> list[CallEvent]:
        """What a subscribing agent gets first: the events in order, only the newest partial transcript."""
        ordered = [self.events[s] for s in sorted(self.events)]
        last_partial = next((i for i in range(len(ordered) - 1, -1, -1)
                             if isinstance(ordered[i], TranscriptPartialEvent) and _caller(ordered[i])), None)
        stale = last_partial is not None and any(isinstance(e, TranscriptFinalEvent) and _caller(e)
                                                 for e in ordered[last_partial:])  # a final came after it
        kept = [e for i, e in enumerate(ordered)
                if not isinstance(e, TranscriptPartialEvent) or (i == last_partial and not stale)]
        return kept[-limit:]

    def end(self, reason: str, ended_at: float) -> None:
        """The store says the call is closed (its worker died, or its end was missed on the bus)."""
        base = self.summary()
        self.row = base.model_copy(update={"state": "ended", "end_reason": base.end_reason or reason,
                                           "ended_at": round(ended_at, 3)})

    def load(self, stored: dict[str, Any], events: list[dict[str, Any]], redact: Any) -> None:
        """Merge the store's record (``redact``: event -> the agents' view of it); derive a row if none yet."""
        for data in events:
            try:
                event = redact(parse_call_event(data))
            except ValidationError:
                continue  # an event type this version does not know: not worth failing the replay for
            if event.seq is not None:
                self.events.setdefault(event.seq, event)
        self.loaded = True
        if self.row is None:
            self.row = summarize(stored, [self.events[s] for s in sorted(self.events)])


def summarize(stored: dict[str, Any], events: list[CallEvent]) -> CallSummary:
    """The agents' row of a call from its stored row and events (as the owning hub tracks it)."""
    row = CallSummary(call_id=str(stored["call_id"]), protocol=str(stored.get("protocol") or "?"),
                      caller=dict(stored.get("caller") or {}), started_at=round(_epoch(stored.get("started_at")), 3))
    update: dict[str, Any] = {}
    for event in events:
        if isinstance(event, TranscriptFinalEvent) and event.text.strip() and _caller(event):
            update["turns"] = update.get("turns", 0) + 1
        elif isinstance(event, IntentEvent):
            update.update(intent=event.label, confidence=event.confidence)
        elif isinstance(event, HandoffEvent):
            update["handoff"] = event.reason
        elif isinstance(event, AgentTakeoverEvent):
            update.update(state="human", agent_id=event.agent_id)
        elif isinstance(event, AgentReleaseEvent):
            update["state"] = "bot"
        elif isinstance(event, CallEndEvent):
            update.update(end_reason=event.reason or "completed")
    if stored.get("ended_at"):
        update.update(state="ended", ended_at=round(_epoch(stored["ended_at"]), 3),
                      end_reason=update.get("end_reason") or stored.get("status") or "interrupted")
    return row.model_copy(update=update)


def _caller(event: CallEvent) -> bool:
    """A transcript of the caller's words (not an agent's own, after a takeover)."""
    return getattr(event, "speaker", "caller") == "caller"


def _epoch(value: Any) -> float:
    if isinstance(value, (int, float)):
        return float(value)
    return datetime.fromisoformat(str(value)).timestamp() if value else 0.0

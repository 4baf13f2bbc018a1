"""The record observer: what the call has said and decided so far, for summaries and ``voicebot call``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from voicebot.call.bus import FrameBus
from voicebot.frames import BotUtterance, Handoff, Intent, Route, TurnDecided, UserTurn


@dataclass
class CallRecord:
    transcript: list[dict[str, Any]] = field(default_factory=list)
    turns: list[dict[str, Any]] = field(default_factory=list)
    route: str | None = None
    handoff: dict[str, Any] | None = None
    first_intent: str | None = None


class RecordObserver:
    def __init__(self, bus: FrameBus) -> None:
        self.record = CallRecord()
        bus.subscribe(self.on_frame, UserTurn, Intent, Route, Handoff, TurnDecided, BotUtterance)

    async def on_frame(self, frame: object) -> None:
        record = self.record
        if isinstance(frame, UserTurn):
            for part in frame.parts or (frame.transcript,):
                record.transcript.append({"speaker": "caller", "text": part.text, "t": part.start})
        elif isinstance(frame, Intent):
            if record.first_intent is None:
                record.first_intent = frame.label
        elif isinstance(frame, Route):
            record.route = frame.route
        elif isinstance(frame, Handoff):
            record.handoff = {"type": "handoff", "reason": frame.reason, "context": frame.context}
            if record.route is None:
                record.route = "mensch"
        elif isinstance(frame, TurnDecided):
            record.turns.append({
                "caller": frame.caller, "asr_confidence": frame.asr_confidence, "intent": frame.intent,
                "confidence": frame.confidence, "slots": frame.slots, "bot": frame.say, "action": frame.action,
                "route": record.route,
            })
        elif isinstance(frame, BotUtterance):
            record.transcript.append({"speaker": "bot", "text": frame.text})

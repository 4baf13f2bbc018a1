"""The event observer: the frames the outside world sees, as typed wire events.

Every call event (``voicebot.protocol.events``) is made here and nowhere else in
the call core, and handed to the call's event sink (the transport, which passes
it to the hub, the store and the agents).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from voicebot.call.bus import FrameBus
from voicebot.call.latency import LatencyObserver
from voicebot.frames import (
    AgentReleased,
    AgentTookOver,
    BargeIn,
    BotSpeechEnded,
    BotSpeechStarted,
    BotUtterance,
    EndOfCall,
    Error,
    Handoff,
    Intent,
    Route,
    SessionStarted,
    SpeechEnded,
    SpeechStarted,
    Transcript,
    TurnLatency,
)
from voicebot.protocol import events as ev

log = logging.getLogger(__name__)

EventSink = Callable[[ev.CallEvent], Awaitable[None]]


def _r(value: float, digits: int = 3) -> float:
    return round(float(value), digits)


class EventObserver:
    def __init__(self, bus: FrameBus, call_id: str, sink: EventSink, latency: LatencyObserver) -> None:
        self.call_id = call_id
        self.sink = sink
        self.latency = latency
        bus.subscribe(
            self.on_frame, SessionStarted, SpeechStarted, SpeechEnded, Transcript, Intent, Route, Handoff,
            BotUtterance, BotSpeechStarted, BotSpeechEnded, BargeIn, TurnLatency, AgentTookOver, AgentReleased,
            EndOfCall, Error,
        )

    async def on_frame(self, frame: Any) -> None:
        event = self.event_of(frame)
        if event is None:
            return
        event.call_id = self.call_id
        try:
            await self.sink(event)
        except Exception:  # noqa: BLE001 - a broken sink must not kill the call's pipeline
            log.exception("call %s: event sink failed for %s", self.call_id, event.type)

    def event_of(self, frame: Any) -> ev.CallEvent | None:  # noqa: PLR0911 - one branch per frame type
        if isinstance(frame, Transcript):
            return self._transcript(frame)
        if isinstance(frame, SpeechStarted):
            return ev.SpeechStartedEvent(t=_r(frame.t))
        if isinstance(frame, SpeechEnded):
            return ev.SpeechEndedEvent(t=_r(frame.t), start=_r(frame.start))
        if isinstance(frame, Intent):
            return ev.IntentEvent(
                label=frame.label, confidence=_r(frame.confidence, 4), slots=dict(frame.slots),
                alternatives=[ev.IntentAlternative(label=label, confidence=_r(p, 4))
                              for label, p in frame.alternatives],
            )
        if isinstance(frame, Route):
            return ev.RouteEvent(route=frame.route, intent=frame.intent)
        if isinstance(frame, Handoff):
            return ev.HandoffEvent(reason=frame.reason, context=frame.context)
        if isinstance(frame, BotUtterance):
            return ev.BotUtteranceEvent(text=frame.text, action=frame.action)
        if isinstance(frame, BotSpeechStarted):
            return ev.BotAudioStartEvent()
        if isinstance(frame, BotSpeechEnded):
            return ev.BotAudioEndEvent(completed=frame.completed, seconds=frame.seconds)
        if isinstance(frame, BargeIn):
            return ev.BargeInEvent(action=frame.action, t=frame.t, text=frame.text or None)  # type: ignore[arg-type]
        if isinstance(frame, TurnLatency):
            return ev.LatencyEvent(
                endpoint_ms=frame.endpoint_ms, asr_ms=frame.asr_ms, intent_ms=frame.intent_ms,
                tts_first_audio_ms=frame.tts_first_audio_ms, voice_to_voice_ms=frame.voice_to_voice_ms,
            )
        if isinstance(frame, SessionStarted):
            return ev.CallStartEvent(metadata=dict(frame.metadata), realtime=frame.realtime)
        if isinstance(frame, AgentTookOver):
            return ev.AgentTakeoverEvent(agent_id=frame.agent_id)
        if isinstance(frame, AgentReleased):
            return ev.AgentReleaseEvent(agent_id=frame.agent_id)
        if isinstance(frame, EndOfCall):
            return ev.CallEndEvent(reason=frame.reason, route=frame.route, handoff=frame.handoff)
        if isinstance(frame, Error):
            return ev.ErrorEvent(code=frame.code, message=frame.text)
        return None

    def _transcript(self, frame: Transcript) -> ev.CallEvent:
        if not frame.is_final:
            return ev.TranscriptPartialEvent(
                text=frame.text, confidence=_r(frame.confidence, 4), start=_r(frame.start), end=_r(frame.end),
                committed=frame.committed,
            )
        return ev.TranscriptFinalEvent(
            text=frame.text, confidence=_r(frame.confidence, 4), start=_r(frame.start), end=_r(frame.end),
            words=[ev.WordTiming(text=w.text, start=_r(w.start), end=_r(w.end), p=_r(w.probability, 4))
                   for w in frame.words],
            latency_ms=self.latency.asr_ms(),
        )

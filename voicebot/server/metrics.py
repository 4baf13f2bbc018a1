"""Prometheus metrics of one server, on its own registry (never the process-global one).

A registry per app keeps tests (and several apps in one process) independent,
and keeps library metrics that other code might register out of our page.
Everything is derived from the call events the hub sees, so the numbers
cannot drift from what the store records.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from voicebot.protocol.events import (
    AgentTakeoverEvent,
    BargeInEvent,
    CallEvent,
    ErrorEvent,
    HandoffEvent,
    IntentEvent,
    LatencyEvent,
    TranscriptFinalEvent,
)

# End-of-speech latencies: a good turn is under a second, a bad one several.
_LATENCY_BUCKETS = (0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)


class ServerMetrics:
    """The server's counters, gauges and latency histograms."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.active_calls = Gauge("voicebot_active_calls", "Calls in progress", registry=r)
        self.agents_connected = Gauge("voicebot_agents_connected", "Authenticated agent connections", registry=r)
        self.calls = Counter("voicebot_calls", "Calls started", ["protocol"], registry=r)
        self.calls_ended = Counter("voicebot_calls_ended", "Calls ended, by reason", ["reason"], registry=r)
        self.turns = Counter("voicebot_turns", "Caller turns (final transcripts)", registry=r)
        self.intents = Counter("voicebot_intents", "Intent decisions, by label", ["label"], registry=r)
        self.handoffs = Counter("voicebot_handoffs", "Handoffs to a human, by reason", ["reason"], registry=r)
        self.takeovers = Counter("voicebot_takeovers", "Calls taken over by an agent", registry=r)
        self.bargeins = Counter("voicebot_bargeins", "Caller barge-ins, by outcome", ["action"], registry=r)
        self.errors = Counter("voicebot_errors", "Error events, by code", ["code"], registry=r)
        self.eos_to_final = Histogram(
            "voicebot_eos_to_final_seconds", "Caller end of speech to final transcript",
            buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.eos_to_intent = Histogram(
            "voicebot_eos_to_intent_seconds", "Caller end of speech to intent decision",
            buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.eos_to_first_audio = Histogram(
            "voicebot_eos_to_first_audio_seconds", "Caller end of speech to the first byte of bot audio",
            buckets=_LATENCY_BUCKETS, registry=r,
        )

    def observe(self, event: CallEvent) -> None:
        """Count one call event (called by the hub for every event it publishes)."""
        if isinstance(event, TranscriptFinalEvent) and event.text.strip() and event.speaker == "caller":
            self.turns.inc()
        elif isinstance(event, IntentEvent):
            self.intents.labels(event.label).inc()
        elif isinstance(event, HandoffEvent):
            self.handoffs.labels(event.reason).inc()
        elif isinstance(event, AgentTakeoverEvent):
            self.takeovers.inc()
        elif isinstance(event, BargeInEvent):
            self.bargeins.labels(event.action).inc()
        elif isinstance(event, ErrorEvent):
            self.errors.labels(event.code).inc()
        elif isinstance(event, LatencyEvent):
            self._observe_latency(event)

    def _observe_latency(self, event: LatencyEvent) -> None:
        # The session's per-turn breakdown (milliseconds, -1 = not measured):
        # endpoint_ms (speech end -> endpoint), asr_ms (-> final), intent_ms (-> intent),
        # voice_to_voice_ms (speech end -> first bot audio).
        def ms(value: float) -> float | None:
            return value if value >= 0 else None

        endpoint, asr, intent = ms(event.endpoint_ms), ms(event.asr_ms), ms(event.intent_ms)
        v2v = ms(event.voice_to_voice_ms)
        if endpoint is not None and asr is not None:
            self.eos_to_final.observe((endpoint + asr) / 1000.0)
            if intent is not None:
                self.eos_to_intent.observe((endpoint + asr + intent) / 1000.0)
        if v2v is not None:
            self.eos_to_first_audio.observe(v2v / 1000.0)

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type, for ``/metrics``."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

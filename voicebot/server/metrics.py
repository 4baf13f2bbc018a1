"""Prometheus metrics of one server, on its own registry (never the process-global one).

A registry per app keeps tests (and several apps in one process) independent,
and keeps library metrics that other code might register out of our page.
Everything is derived from the call events the hub sees, so the numbers
cannot drift from what the store records.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

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

    def observe(self, event: dict[str, Any]) -> None:
        """Count one call event (called by the hub for every event it publishes)."""
        etype = event.get("type")
        if etype == "transcript.final" and str(event.get("text", "")).strip():
            self.turns.inc()
        elif etype == "intent":
            self.intents.labels(str(event.get("label", "unknown"))).inc()
        elif etype == "handoff":
            self.handoffs.labels(str(event.get("reason", "unknown"))).inc()
        elif etype == "agent.takeover":
            self.takeovers.inc()
        elif etype == "bargein":
            self.bargeins.labels(str(event.get("action", "paused"))).inc()
        elif etype == "error":
            self.errors.labels(str(event.get("code", "unknown"))).inc()
        elif etype == "latency":
            self._observe_latency(event)

    def _observe_latency(self, event: dict[str, Any]) -> None:
        # The session's per-turn breakdown (milliseconds, -1 = not measured):
        # endpoint_ms (speech end -> endpoint), asr_ms (-> final), intent_ms (-> intent),
        # voice_to_voice_ms (speech end -> first bot audio).
        def ms(key: str) -> float | None:
            value = event.get(key)
            return float(value) if isinstance(value, (int, float)) and value >= 0 else None

        endpoint, asr, intent, v2v = ms("endpoint_ms"), ms("asr_ms"), ms("intent_ms"), ms("voice_to_voice_ms")
        if endpoint is not None and asr is not None:
            self.eos_to_final.observe((endpoint + asr) / 1000.0)
            if intent is not None:
                self.eos_to_intent.observe((endpoint + asr + intent) / 1000.0)
        if v2v is not None:
            self.eos_to_first_audio.observe(v2v / 1000.0)

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type, for ``/metrics``."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

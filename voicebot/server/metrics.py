"""Prometheus metrics of one server, on its own registry (never the process-global one).

A registry per app keeps tests (and several apps in one process) independent,
and keeps library metrics that other code might register out of our page.
Everything is derived from the call events the hub sees, so the numbers
cannot drift from what the store records.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

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
# How late the event loop runs (LoopLag ticks every 50 ms): a few ms is healthy, 100 ms is felt.
_LAG_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


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
        self.loop_lag = Histogram(
            "voicebot_loop_lag_seconds", "How much later than asked the server's event loop woke (50 ms ticks)",
            buckets=_LAG_BUCKETS, registry=r,
        )
        self._engines: _EngineCollector | None = None

    def watch_engines(self, clients: Any) -> None:
        """Expose the engine clients' thread pools (queue wait, run, CPU per kind of job) and the ASR
        scheduler's queue (wait and decode per kind), read at each scrape. Remote clients expose what they have."""
        if self._engines is None:
            self._engines = _EngineCollector(clients)
            self.registry.register(self._engines)

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


class _EngineCollector(Collector):
    """Where the engines' time goes, read from the clients at scrape time."""

    def __init__(self, clients: Any) -> None:
        self.clients = clients

    def collect(self) -> Iterator[Metric]:
        profile: Callable[[], list[Any]] | None = getattr(self.clients, "profile", None)
        rows = profile() if profile is not None else []
        jobs = CounterMetricFamily("voicebot_pool_jobs", "Engine jobs run, by pool and kind", labels=["pool", "kind"])
        busy = CounterMetricFamily("voicebot_pool_busy_seconds", "Wall seconds engine jobs ran",
                                   labels=["pool", "kind"])
        cpu = CounterMetricFamily("voicebot_pool_cpu_seconds", "CPU seconds of the pool thread running the jobs",
                                  labels=["pool", "kind"])
        wait = GaugeMetricFamily("voicebot_pool_wait_ms", "Recent jobs' wait for a pool thread",
                                 labels=["pool", "kind", "quantile"])
        run = GaugeMetricFamily("voicebot_pool_run_ms", "Recent jobs' run time", labels=["pool", "kind", "quantile"])
        for t in rows:
            jobs.add_metric([t.pool, t.kind], t.jobs)
            busy.add_metric([t.pool, t.kind], t.busy_s)
            cpu.add_metric([t.pool, t.kind], t.cpu_s)
            for q, w, r in (("0.5", t.wait_p50_ms, t.run_p50_ms), ("0.95", t.wait_p95_ms, t.run_p95_ms)):
                wait.add_metric([t.pool, t.kind, q], w)
                run.add_metric([t.pool, t.kind, q], r)
        yield from (jobs, busy, cpu, wait, run)
        cache = getattr(getattr(self.clients, "speech", None), "cache", None)
        if cache is not None:  # the synthesized sentences shared by all calls (voicebot/tts/cache.py)
            tts = GaugeMetricFamily("voicebot_tts_cache", "Sentence cache: hits, misses, bytes held", labels=["stat"])
            for stat, value in (("hits", cache.hits), ("misses", cache.misses), ("bytes", cache.bytes)):
                tts.add_metric([stat], float(value))
            yield tts
        stats_fn: Callable[[], dict[str, Any]] | None = getattr(getattr(self.clients, "asr", None), "stats", None)
        if stats_fn is None:
            return
        stats = stats_fn()
        asr = GaugeMetricFamily("voicebot_asr_scheduler", "ASR scheduler state (queues, decode seconds, counts)",
                                labels=["name"])
        for name in ("queue_depth", "queued_finals", "finals_hurried", "partials_skipped", "partial_decode_s",
                     "final_decode_s", "calls_making_partials", "busy_seconds", "utilization", "audio_seconds",
                     "fallback_decodes", "fallback_rounds"):
            if isinstance(stats.get(name), int | float):
                asr.add_metric([name], float(stats[name]))
        yield asr
        spent = GaugeMetricFamily("voicebot_asr_decode_seconds", "Decode seconds by what became of the decode "
                                  "(final, speculative, partial, discarded)", labels=["use"])
        for use, seconds in (stats.get("decode_seconds") or {}).items():
            spent.add_metric([use], float(seconds))
        yield spent
        kinds = GaugeMetricFamily("voicebot_asr_request_seconds", "ASR requests: queue wait, decode and latency",
                                  labels=["kind", "stat"])
        for kind in ("final", "partial"):
            for stat, value in (stats.get(kind) or {}).items():
                if isinstance(value, int | float):
                    kinds.add_metric([kind, stat], float(value))
        yield kinds

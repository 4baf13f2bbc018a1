"""A call worker's engines when ``engines.backend = "ray"``: handles to the cluster's deployments,
plus the small models that stay in the worker.

VAD runs on every 20 ms frame and end of turn on every pause (Smart Turn ~70 ms, the text model
sub-millisecond): a network round trip would cost more than they do. The agents' knowledge base
needs the text encoder in the worker too. ASR, intent and TTS (the heavy models) live on Ray.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from voicebot.config import Settings
from voicebot.engines_ray import cluster

if TYPE_CHECKING:
    from voicebot.engines_ray.clients import RayEngineClients

log = logging.getLogger(__name__)
READY_TIMEOUT_S = 120.0  # a freshly deployed app may still be loading its models


@dataclass
class RayEngines:
    settings: Settings
    asr_handle: Any
    intent_handle: Any
    speech_handle: Any
    sample_rate: int
    vad_model: Any = None
    encoder: Any = None
    smart_turn: Any = None
    text_turn: Any = None
    load_seconds: dict[str, float] = field(default_factory=dict)

    @classmethod
    def load(cls, settings: Settings, *, with_encoder: bool = True) -> RayEngines:
        """Connect to the cluster, find the engines app, load the worker-side models.

        Raises ``RayUnavailableError`` (one line) when the cluster or the app is missing.
        """
        from voicebot.engines import LoadTimer, WorkerModels

        timings: dict[str, float] = {}
        timed = LoadTimer(timings)

        def reach() -> tuple[Any, Any, Any, int]:
            cluster.connect(settings)
            asr, intent, speech = cluster.handles(settings)
            # The first answer also waits for the replicas to be up.
            rate = int(speech.sample_rate.remote().result(timeout_s=READY_TIMEOUT_S))
            return asr, intent, speech, rate

        asr, intent, speech, rate = timed("ray", reach)
        local = WorkerModels.load(settings, timed, with_encoder=with_encoder)
        log.info("ray engines: %s", ", ".join(f"{k} {v:.1f}s" for k, v in timings.items()))
        return cls(settings, asr, intent, speech, rate, local.vad_model, local.encoder, local.smart_turn,
                   local.text_turn, timings)

    def clients(self) -> RayEngineClients:
        from voicebot.engines_ray.clients import RayEngineClients

        return RayEngineClients.of(self, self.settings)

"""A call worker's engines when ``engines.backend = "ray"``: handles to the cluster's deployments,
plus the small models that stay in the worker.

VAD runs on every 20 ms frame and end of turn on every pause (Smart Turn ~70 ms, the text model
sub-millisecond): a network round trip would cost more than they do. The agents' knowledge base
needs the text encoder in the worker too. ASR, intent and TTS (the heavy models) live on Ray.
"""

from __future__ import annotations

import logging
import time
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
        from voicebot.nlu.encoder import TextEncoder
        from voicebot.vad.silero import SileroVadModel

        timings: dict[str, float] = {}

        def timed(name: str, build: Any) -> Any:
            started = time.perf_counter()
            value = build()
            timings[name] = time.perf_counter() - started
            return value

        def reach() -> tuple[Any, Any, Any, int]:
            cluster.connect(settings)
            asr, intent, speech = cluster.handles(settings)
            # The first answer also waits for the replicas to be up.
            rate = int(speech.sample_rate.remote().result(timeout_s=READY_TIMEOUT_S))
            return asr, intent, speech, rate

        asr, intent, speech, rate = timed("ray", reach)
        vad_model = None
        if settings.vad.detector == "silero":
            path = settings.models.dir / "silero-vad" / "silero_vad_v6.onnx"
            vad_model = timed("vad", lambda: SileroVadModel(path if path.is_file() else None).load())
        encoder = timed("encoder", lambda: TextEncoder(settings.nlu, settings.models).load()) if with_encoder else None
        smart_turn, text_turn = None, None
        if settings.turn.detector != "silence":
            from voicebot.turn.text_eou import TextTurnModel

            text_turn = timed("turn-text", lambda: TextTurnModel.load(settings.models.dir))
        if settings.turn.detector == "smart+text":
            from voicebot.turn.smart_turn import SmartTurnModel

            smart_turn = timed("turn-audio", lambda: SmartTurnModel.from_settings(
                settings.models, settings.turn.smart_turn_threads).load())
        log.info("ray engines: %s", ", ".join(f"{k} {v:.1f}s" for k, v in timings.items()))
        return cls(settings, asr, intent, speech, rate, vad_model, encoder, smart_turn, text_turn, timings)

    def clients(self) -> RayEngineClients:
        from voicebot.engines_ray.clients import RayEngineClients

        return RayEngineClients.of(self, self.settings)

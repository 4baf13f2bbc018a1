"""The engines as Ray Serve deployments: ASR (batched across calls and workers), intent, TTS.

Each replica loads its model once, exactly as ``voicebot.engines.Engines.load`` does in a
single process; the call workers reach the replicas through deployment handles
(``voicebot.engines_ray.clients``). The ASR deployment batches with ``@serve.batch``: the
decode requests of every call on every worker that arrive within ``engines.asr_batch_wait_ms``
go to ``Transcriber.transcribe_batch`` together (grouped by beam, word timings and prompt,
which one engine batch must share).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
from ray import serve

from voicebot.config import Settings

if TYPE_CHECKING:
    from ray.serve import Application

    from voicebot.asr.transcriber import TranscriptionResult
    from voicebot.nlu.intent import IntentPrediction
    from voicebot.tts.base import SynthesizedAudio

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AsrRequest:
    """One decode, as a call worker sends it (audio is 16 kHz mono int16 or float32)."""

    audio: np.ndarray
    final: bool
    beam_size: int
    word_timestamps: bool
    initial_prompt: str | None
    offset: float


class AsrDeployment:
    """whisper (``asr.*`` settings) in one replica; ``transcribe`` batches across calls."""

    def __init__(self, settings: Settings) -> None:
        from voicebot.asr.factory import make_transcriber

        self.settings = settings
        self.transcriber = make_transcriber(settings).load()
        # serve.batch's knobs are per replica; set from the settings the app was built with.
        self.transcribe_many.set_max_batch_size(settings.engines.asr_max_batch)  # type: ignore[attr-defined]
        self.transcribe_many.set_batch_wait_timeout_s(  # type: ignore[attr-defined]
            settings.engines.asr_batch_wait_ms / 1000.0)

    async def transcribe(self, request: AsrRequest) -> TranscriptionResult:
        return await self.transcribe_many(request)

    @serve.batch(max_batch_size=4, batch_wait_timeout_s=0.01)
    async def transcribe_many(self, requests: list[AsrRequest]) -> list[TranscriptionResult]:
        # The decode runs in a thread so the replica keeps accepting (and batching) requests.
        return await asyncio.to_thread(self._decode, requests)

    def _decode(self, requests: list[AsrRequest]) -> list[TranscriptionResult]:
        from voicebot.asr.transcriber import ASR_SAMPLE_RATE, NATIVE_WINDOW_S, WINDOW_MARGIN_S

        results: list[TranscriptionResult | None] = [None] * len(requests)
        groups: dict[tuple[int, bool, str | None], list[int]] = {}
        for i, r in enumerate(requests):
            if len(r.audio) / ASR_SAMPLE_RATE + WINDOW_MARGIN_S > NATIVE_WINDOW_S:  # too long for one window
                results[i] = self.transcriber.transcribe(
                    r.audio, beam_size=r.beam_size, word_timestamps=r.word_timestamps,
                    initial_prompt=r.initial_prompt, offset=r.offset)
            else:
                groups.setdefault((r.beam_size, r.word_timestamps, r.initial_prompt), []).append(i)
        for (beam, words, prompt), idx in groups.items():
            out = self.transcriber.transcribe_batch(
                [requests[i].audio for i in idx], beam_size=beam, word_timestamps=words, initial_prompt=prompt,
                offsets=[requests[i].offset for i in idx])
            for i, result in zip(idx, out, strict=True):
                results[i] = replace(result, extra={**result.extra, "served_batch": float(len(requests))})
        return [r for r in results if r is not None]


class IntentDeployment:
    """The intent classifier (``nlu.*`` settings; the trained e5 model or its fallback)."""

    def __init__(self, settings: Settings) -> None:
        from voicebot.nlu.intent import load_intent_classifier

        self.model = load_intent_classifier(settings)

    async def predict(self, text: str) -> IntentPrediction:
        return await asyncio.to_thread(self.model.predict, text)


class SpeechDeployment:
    """The synthesizer (``tts.*`` settings); one sentence per request."""

    def __init__(self, settings: Settings) -> None:
        from voicebot.tts import make_synthesizer

        self.synthesizer = make_synthesizer(settings.tts, settings.models).load()

    async def sample_rate(self) -> int:
        return int(self.synthesizer.sample_rate)

    async def synthesize(self, sentence: str) -> SynthesizedAudio:
        return await asyncio.to_thread(self.synthesizer.synthesize, sentence)


class EnginesIngress:
    """The application's ingress: holds the three deployments so one ``serve.run`` deploys them all."""

    def __init__(self, asr: Any, intent: Any, speech: Any) -> None:
        self.handles = (asr, intent, speech)

    async def ready(self) -> bool:
        return True


def build_app(settings: Settings) -> Application:
    """The Serve application of ``settings.engines`` (names, replicas, CPUs, batch size)."""
    eng = settings.engines
    asr = serve.deployment(
        name=eng.asr_deployment, num_replicas=eng.asr_replicas,
        max_ongoing_requests=max(8, 2 * eng.asr_max_batch), ray_actor_options={"num_cpus": eng.asr_cpus},
    )(AsrDeployment).bind(settings)
    intent = serve.deployment(
        name=eng.intent_deployment, num_replicas=eng.intent_replicas, ray_actor_options={"num_cpus": eng.intent_cpus},
    )(IntentDeployment).bind(settings)
    speech = serve.deployment(
        name=eng.tts_deployment, num_replicas=eng.tts_replicas, ray_actor_options={"num_cpus": eng.tts_cpus},
    )(SpeechDeployment).bind(settings)
    return serve.deployment(name="Engines", ray_actor_options={"num_cpus": 0})(EnginesIngress).bind(
        asr, intent, speech)

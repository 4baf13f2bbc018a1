"""Engine clients: how the call core reaches the models, always asynchronously.

Engines (``voicebot.engines.Engines``) hold the loaded models and nothing else.
A call reaches them only through these clients, so the same call core runs with
the models in this process (``LocalEngineClients``: one shared executor, and the
ASR scheduler that orders finals before partials on it) or, later, with remote
deployments behind the same three interfaces.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from voicebot.call.pools import EnginePool, KindTimes
from voicebot.config import Settings
from voicebot.tts.cache import SentenceCache

if TYPE_CHECKING:
    from voicebot.asr.transcriber import TranscriptionResult
    from voicebot.engines import Engines
    from voicebot.nlu.intent import IntentPrediction
    from voicebot.tts.base import SynthesizedAudio
    from voicebot.vad.silero import SileroVadModel


# Threads for the light models: a Smart Turn check (what ends a turn) need not wait behind another
# call's sentence of speech or intent. Each job is 30-250 ms; decodes run on a pool of their own.
LIGHT_WORKERS = 2


class AsrClient(Protocol):
    """Speech recognition shared by all calls (``voicebot.asr.scheduler.AsrScheduler`` locally).

    Optionally ``partial_interval_ms(base_ms) -> int | None``: the load-adapted partial rate the
    recognizer asks for before each partial (``None``: finals wait, no partial now); a client
    without it gets partials at the fixed ``asr.partial_interval_ms``."""

    async def transcribe(
        self, audio16k: np.ndarray, *, call_id: str, final: bool, offset: float = 0.0
    ) -> TranscriptionResult | None: ...

    def cancel_partials(self, call_id: str) -> None: ...

    @property
    def queued_finals(self) -> int: ...

    async def start(self) -> Any: ...

    async def aclose(self) -> None: ...


class IntentClient(Protocol):
    async def predict(self, text: str) -> IntentPrediction: ...


class SpeechClient(Protocol):
    @property
    def sample_rate(self) -> int: ...

    async def synthesize(self, sentence: str) -> SynthesizedAudio: ...


class LocalIntentClient:
    """The intent classifier of this process, run on the light-model pool."""

    def __init__(self, model: Any, pool: EnginePool) -> None:
        self.model = model
        self.pool = pool

    async def predict(self, text: str) -> IntentPrediction:
        return await self.pool.run("intent", self.model.predict, text)


class LocalSpeechClient:
    """The synthesizer of this process, run on the light-model pool (Pico holds the GIL per sentence).
    ``cache``: sentences already spoken (by any call) come back from it without a synthesis."""

    def __init__(self, synthesizer: Any, pool: EnginePool, cache: SentenceCache | None = None) -> None:
        self.synthesizer = synthesizer
        self.pool = pool
        self.cache = cache
        self.voice = str(getattr(synthesizer, "name", type(synthesizer).__name__))

    @property
    def sample_rate(self) -> int:
        return int(self.synthesizer.sample_rate)

    async def synthesize(self, sentence: str) -> SynthesizedAudio:
        if self.cache is not None and (cached := self.cache.get(self.voice, sentence)) is not None:
            return cached
        audio: SynthesizedAudio = await self.pool.run("tts", self.synthesizer.synthesize, sentence)
        if self.cache is not None:
            self.cache.put(self.voice, sentence, audio)
        return audio


class EndOfTurnClient:
    """The end-of-turn models: Smart Turn on the turn's audio (a pool thread; ~70 ms CPU), the German
    text model on its words (sub-millisecond, run inline). Either may be absent. ``pool``: an
    ``EnginePool`` (or a plain executor, as the Ray worker passes)."""

    def __init__(self, smart_turn: Any, text_turn: Any, pool: Any) -> None:
        self.smart_turn = smart_turn
        self.text_turn = text_turn
        self.pool = pool if isinstance(pool, EnginePool) else None
        self.executor = None if self.pool is not None else pool

    async def audio_complete(self, audio16k: np.ndarray) -> float | None:
        if self.smart_turn is None or len(audio16k) == 0:
            return None
        if self.pool is not None:
            return await self.pool.run("smart_turn", self.smart_turn.predict, audio16k)
        return await asyncio.get_running_loop().run_in_executor(self.executor, self.smart_turn.predict, audio16k)

    def text_complete(self, text: str) -> float | None:
        if self.text_turn is None or not text.strip():
            return None
        return float(self.text_turn.predict(text))


@dataclass
class EngineClients:
    """What a call needs of the engines. ``vad_model`` runs in the call's own recognizer (0.1 ms a frame)."""

    asr: AsrClient
    intent: IntentClient
    speech: SpeechClient
    vad_model: SileroVadModel | None
    encoder: Any = None  # the text encoder, for the agents' knowledge base
    load_seconds: dict[str, float] | None = None
    end_of_turn: EndOfTurnClient | None = None  # None: the endpointer's silence alone ends turns
    executor: Any = None  # an executor of the clients' own (the Ray clients'), shut down at aclose
    pools: list[EnginePool] = field(default_factory=list)  # the local clients' thread pools

    async def start(self) -> None:
        await self.asr.start()

    async def aclose(self) -> None:
        await self.asr.aclose()
        if self.executor is not None:
            self.executor.shutdown(wait=False, cancel_futures=True)
            self.executor = None
        for pool in self.pools:
            pool.shutdown()
        self.pools = []

    def profile(self) -> list[KindTimes]:
        """Per pool and kind of job: queue wait, run time and thread CPU (empty for remote engines)."""
        return [t for pool in self.pools for t in pool.stats()]


class LocalEngineClients(EngineClients):
    """Clients over the models of this process: ``asr.decode_workers`` ASR decodes at a time on
    the decode pool, beside the light models (Smart Turn, intent, speech) on a pool of their own."""

    @classmethod
    def of(cls, engines: Engines, settings: Settings) -> LocalEngineClients:
        from voicebot.asr.scheduler import AsrScheduler

        decode = EnginePool("asr-decode", settings.asr.decode_workers)
        light = EnginePool("engine-light", LIGHT_WORKERS)
        return cls(
            asr=AsrScheduler(engines.transcriber, settings.asr, executor=decode.executor),
            intent=LocalIntentClient(engines.intent, light),
            speech=LocalSpeechClient(engines.synthesizer, light, cache=(
                SentenceCache(settings.tts.cache_mb * 1_000_000) if settings.tts.cache_mb > 0 else None)),
            vad_model=engines.vad_model,
            encoder=engines.encoder,
            load_seconds=dict(engines.load_seconds),
            end_of_turn=(EndOfTurnClient(engines.smart_turn, engines.text_turn, light)
                         if engines.smart_turn is not None or engines.text_turn is not None else None),
            pools=[decode, light],
        )

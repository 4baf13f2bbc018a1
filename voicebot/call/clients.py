"""Engine clients: how the call core reaches the models, always asynchronously.

Engines (``voicebot.engines.Engines``) hold the loaded models and nothing else.
A call reaches them only through these clients, so the same call core runs with
the models in this process (``LocalEngineClients``: one shared executor, and the
ASR scheduler that orders finals before partials on it) or, later, with remote
deployments behind the same three interfaces.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from voicebot.config import Settings

if TYPE_CHECKING:
    from voicebot.asr.transcriber import TranscriptionResult
    from voicebot.engines import Engines
    from voicebot.nlu.intent import IntentPrediction
    from voicebot.tts.base import SynthesizedAudio
    from voicebot.vad.silero import SileroVadModel


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
    """The intent classifier of this process, run on the shared executor."""

    def __init__(self, model: Any, executor: ThreadPoolExecutor) -> None:
        self.model = model
        self.executor = executor

    async def predict(self, text: str) -> IntentPrediction:
        return await asyncio.get_running_loop().run_in_executor(self.executor, self.model.predict, text)


class LocalSpeechClient:
    """The synthesizer of this process, run on the shared executor (Pico holds the GIL per sentence)."""

    def __init__(self, synthesizer: Any, executor: ThreadPoolExecutor) -> None:
        self.synthesizer = synthesizer
        self.executor = executor

    @property
    def sample_rate(self) -> int:
        return int(self.synthesizer.sample_rate)

    async def synthesize(self, sentence: str) -> SynthesizedAudio:
        return await asyncio.get_running_loop().run_in_executor(self.executor, self.synthesizer.synthesize, sentence)


class EndOfTurnClient:
    """The end-of-turn models: Smart Turn on the turn's audio (executor; ~70 ms CPU), the German
    text model on its words (sub-millisecond, run inline). Either may be absent."""

    def __init__(self, smart_turn: Any, text_turn: Any, executor: ThreadPoolExecutor) -> None:
        self.smart_turn = smart_turn
        self.text_turn = text_turn
        self.executor = executor

    async def audio_complete(self, audio16k: np.ndarray) -> float | None:
        if self.smart_turn is None or len(audio16k) == 0:
            return None
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
    executor: ThreadPoolExecutor | None = None  # the local clients' shared executor, shut down at aclose

    async def start(self) -> None:
        await self.asr.start()

    async def aclose(self) -> None:
        await self.asr.aclose()
        if self.executor is not None:
            self.executor.shutdown(wait=False, cancel_futures=True)
            self.executor = None


class LocalEngineClients(EngineClients):
    """Clients over the models of this process, sharing one executor (``asr.decode_workers`` ASR
    decodes at a time, beside an intent or a sentence of speech)."""

    @classmethod
    def of(cls, engines: Engines, settings: Settings) -> LocalEngineClients:
        from voicebot.asr.scheduler import AsrScheduler

        # The ASR scheduler's decodes (asr.decode_workers at once) beside an intent or a sentence of speech.
        executor = ThreadPoolExecutor(max_workers=settings.asr.decode_workers + 1, thread_name_prefix="engine")
        return cls(
            asr=AsrScheduler(engines.transcriber, settings.asr, executor=executor),
            intent=LocalIntentClient(engines.intent, executor),
            speech=LocalSpeechClient(engines.synthesizer, executor),
            vad_model=engines.vad_model,
            encoder=engines.encoder,
            load_seconds=dict(engines.load_seconds),
            end_of_turn=(EndOfTurnClient(engines.smart_turn, engines.text_turn, executor)
                         if engines.smart_turn is not None or engines.text_turn is not None else None),
            executor=executor,
        )

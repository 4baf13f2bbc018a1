"""Every model a process needs, loaded once and shared by all calls.

``Engines.load(settings)`` is what `voicebot serve`, `voicebot call` and the
evaluations use; the server reports ready only after it returns. Engines hold
the models only: calls reach them through engine clients
(``voicebot.call.clients``), and the domain config is loaded and passed apart.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from voicebot.config import Settings

if TYPE_CHECKING:
    from voicebot.asr.transcriber import Transcriber
    from voicebot.nlu.encoder import TextEncoder
    from voicebot.nlu.intent import IntentClassifier
    from voicebot.tts.base import Synthesizer
    from voicebot.turn.smart_turn import SmartTurnModel
    from voicebot.turn.text_eou import TextTurnModel
    from voicebot.vad.silero import SileroVadModel

log = logging.getLogger(__name__)


class LoadTimer:
    """``timed(name, build)``: build a model and record its load time under ``name``."""

    def __init__(self, timings: dict[str, float]) -> None:
        self.timings = timings

    def __call__(self, name: str, build: Any) -> Any:
        started = time.perf_counter()
        value = build()
        self.timings[name] = time.perf_counter() - started
        return value


@dataclass
class WorkerModels:
    """The models every call worker loads itself, whatever runs ASR, intent and TTS: VAD (every
    20 ms frame), the end-of-turn models (every pause) and the knowledge base's text encoder."""

    vad_model: SileroVadModel | None = None
    encoder: TextEncoder | None = None
    smart_turn: SmartTurnModel | None = None
    text_turn: TextTurnModel | None = None

    @classmethod
    def load(cls, settings: Settings, timed: LoadTimer, *, with_encoder: bool = True) -> WorkerModels:
        from voicebot.nlu.encoder import TextEncoder
        from voicebot.vad.silero import SileroVadModel

        models = cls()
        if settings.vad.detector == "silero":
            path = settings.models.dir / "silero-vad" / "silero_vad_v6.onnx"
            models.vad_model = timed("vad", lambda: SileroVadModel(path if path.is_file() else None).load())
        if with_encoder:
            models.encoder = timed("encoder", lambda: TextEncoder(settings.nlu, settings.models).load())
        if settings.turn.detector != "silence":
            from voicebot.turn.text_eou import TextTurnModel

            models.text_turn = timed("turn-text", lambda: TextTurnModel.load(settings.models.dir))
        if settings.turn.detector == "smart+text":
            from voicebot.turn.smart_turn import SmartTurnModel

            models.smart_turn = timed("turn-audio", lambda: SmartTurnModel.from_settings(
                settings.models, settings.turn.smart_turn_threads).load())
        return models


@dataclass
class Engines:
    settings: Settings
    transcriber: Transcriber
    vad_model: SileroVadModel | None
    synthesizer: Synthesizer
    intent: IntentClassifier
    encoder: TextEncoder | None = None
    load_seconds: dict[str, float] = field(default_factory=dict)
    # End-of-turn models (settings.turn.detector); None: the endpointer's silence alone.
    smart_turn: SmartTurnModel | None = None
    text_turn: TextTurnModel | None = None

    @classmethod
    def load(cls, settings: Settings, *, with_encoder: bool = True) -> Engines:
        """Load every engine. Raises ModelNotProvisionedError with a one-line hint if a model is missing."""
        from voicebot.asr.factory import make_transcriber
        from voicebot.nlu.intent import load_intent_classifier
        from voicebot.tts import make_synthesizer

        timings: dict[str, float] = {}
        timed = LoadTimer(timings)
        transcriber = timed("asr", lambda: make_transcriber(settings).load())
        synthesizer = timed("tts", lambda: make_synthesizer(settings.tts, settings.models).load())
        intent = timed("intent", lambda: load_intent_classifier(settings))
        local = WorkerModels.load(settings, timed, with_encoder=with_encoder)
        vad_model, encoder, smart_turn, text_turn = local.vad_model, local.encoder, local.smart_turn, local.text_turn
        log.info("engines loaded: %s", ", ".join(f"{k} {v:.1f}s" for k, v in timings.items()))
        return cls(
            settings=settings,
            transcriber=transcriber,
            vad_model=vad_model,
            synthesizer=synthesizer,
            intent=intent,
            encoder=encoder,
            load_seconds=timings,
            smart_turn=smart_turn,
            text_turn=text_turn,
        )

    def clients(self) -> Any:
        """Local engine clients over these models (``voicebot.call.clients.LocalEngineClients``)."""
        from voicebot.call.clients import LocalEngineClients

        return LocalEngineClients.of(self, self.settings)

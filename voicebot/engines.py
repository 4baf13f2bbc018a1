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
        serve_threads(settings)
        return models


def serve_threads(settings: Settings) -> None:
    """torch's intra-op threads for serving (``nlu.serve_threads``), set after every model has loaded:
    loading the intent model sets the training figure (``nlu.threads``), and the setting is process-wide.
    numpy's BLAS threads likewise (``engines.blas_threads``)."""
    import sys

    if "torch" in sys.modules and settings.nlu.device != "cuda":
        import torch

        torch.set_num_threads(settings.nlu.serve_threads)
    if settings.engines.blas_threads > 0:
        # Process-wide and kept (not a context): every later numpy product runs at this many BLAS threads.
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=settings.engines.blas_threads, user_api="blas")


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
        from voicebot.call.pools import native_thread_named, renice_threads
        from voicebot.nlu.intent import load_intent_classifier
        from voicebot.tts import make_synthesizer

        timings: dict[str, float] = {}
        timed = LoadTimer(timings)
        # Threads a model starts at load (CTranslate2's workers) inherit the loading thread's name:
        # per-thread CPU (/proc/<pid>/task, top -H, scripts/profile_server.py) then says whose they are.
        with native_thread_named("asr-ct2"):
            transcriber = timed("asr", lambda: make_transcriber(settings).load())
        # Decodes yield the cores to the event loop and the light models (asr.decode_nice).
        reniced = renice_threads("asr-ct2", settings.asr.decode_nice) if settings.asr.device == "cpu" else 0
        if reniced:
            log.info("asr: %d decode threads at nice +%d", reniced, settings.asr.decode_nice)
        with native_thread_named("models"):
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

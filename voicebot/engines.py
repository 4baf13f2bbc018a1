"""Every model a process needs, loaded once and shared by all calls.

``Engines.load(settings)`` is what `voicebot serve`, `voicebot call` and the
evaluations use; the server reports ready only after it returns.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from voicebot.config import Settings

if TYPE_CHECKING:
    from voicebot.asr.scheduler import AsrScheduler
    from voicebot.asr.transcriber import Transcriber
    from voicebot.dialog.domain import Domain
    from voicebot.nlu.encoder import TextEncoder
    from voicebot.nlu.intent import IntentClassifier
    from voicebot.tts.base import Synthesizer
    from voicebot.vad.silero import SileroVadModel

log = logging.getLogger(__name__)


@dataclass
class Engines:
    settings: Settings
    transcriber: Transcriber
    scheduler: AsrScheduler
    vad_model: SileroVadModel | None
    synthesizer: Synthesizer
    intent: IntentClassifier
    domain: Domain
    encoder: TextEncoder | None = None
    load_seconds: dict[str, float] = field(default_factory=dict)

    @classmethod
    def load(cls, settings: Settings, *, with_encoder: bool = True) -> Engines:
        """Load every engine. Raises ModelNotProvisionedError with a one-line hint if a model is missing."""
        from voicebot.asr.factory import make_transcriber
        from voicebot.asr.scheduler import AsrScheduler
        from voicebot.dialog.domain import load_domain
        from voicebot.nlu.encoder import TextEncoder
        from voicebot.nlu.intent import load_intent_classifier
        from voicebot.tts import make_synthesizer
        from voicebot.vad.silero import SileroVadModel

        timings: dict[str, float] = {}

        def timed(name: str, build: Any) -> Any:
            started = time.perf_counter()
            value = build()
            timings[name] = time.perf_counter() - started
            return value

        transcriber = timed("asr", lambda: make_transcriber(settings).load())
        vad_model = None
        if settings.vad.detector == "silero":
            path = settings.models.dir / "silero-vad" / "silero_vad_v6.onnx"
            vad_model = timed("vad", lambda: SileroVadModel(path if path.is_file() else None).load())
        synthesizer = timed("tts", lambda: make_synthesizer(settings.tts, settings.models).load())
        intent = timed("intent", lambda: load_intent_classifier(settings))
        domain = timed("domain", lambda: load_domain(settings.dialog.domain))
        encoder = None
        if with_encoder:
            encoder = timed("encoder", lambda: TextEncoder(settings.nlu, settings.models).load())
        log.info("engines loaded: %s", ", ".join(f"{k} {v:.1f}s" for k, v in timings.items()))
        return cls(
            settings=settings,
            transcriber=transcriber,
            scheduler=AsrScheduler(transcriber, settings.asr),
            vad_model=vad_model,
            synthesizer=synthesizer,
            intent=intent,
            domain=domain,
            encoder=encoder,
            load_seconds=timings,
        )

    async def start(self) -> None:
        await self.scheduler.start()

    async def aclose(self) -> None:
        await self.scheduler.aclose()

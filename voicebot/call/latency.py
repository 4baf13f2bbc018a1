"""The latency observer: each turn's spans, measured where they happen.

* endpoint: the caller's last voiced audio arrived → the endpointer closed the turn
* asr: end of turn → final transcript
* intent: final transcript → the dialog decided (intent, slots, policy)
* tts_first_audio: decided → the first bot audio frame left for the caller
* voice_to_voice: last voiced audio → first bot audio (the caller's wait)

All marks are ``time.perf_counter()`` taken on arrival of the frame that marks
them; nothing is derived from configuration. One ``TurnLatency`` frame per
answered turn, published at its first bot audio.
"""

from __future__ import annotations

import time

from voicebot.call.bus import FrameBus
from voicebot.frames import (
    BotFirstAudio,
    SpeechEnded,
    SpeechStarted,
    Transcript,
    TurnDecided,
    TurnLatency,
    VoiceActivity,
)


def _ms(a: float, b: float) -> float:
    return round((b - a) * 1000.0, 1) if a and b and b >= a else -1.0


class LatencyObserver:
    def __init__(self, bus: FrameBus) -> None:
        self.bus = bus
        self.last_voiced = 0.0  # wall time of the newest voiced caller audio
        self.speech_end = 0.0
        self.endpoint = 0.0
        self.final = 0.0
        self.decided = 0.0
        bus.subscribe(self.on_frame, VoiceActivity, SpeechStarted, SpeechEnded, Transcript, TurnDecided, BotFirstAudio)

    def asr_ms(self) -> float | None:
        """End of turn → final, for the final being published now (None outside a turn)."""
        return _ms(self.endpoint, self.final) if self.endpoint and self.final else None

    async def on_frame(self, frame: object) -> None:
        now = time.perf_counter()
        if isinstance(frame, VoiceActivity):
            if frame.voiced:
                self.last_voiced = frame.wall
        elif isinstance(frame, SpeechStarted):
            self.final = 0.0
        elif isinstance(frame, SpeechEnded):
            self.speech_end = self.last_voiced or now
            self.endpoint = now
            self.final = self.decided = 0.0
        elif isinstance(frame, Transcript) and frame.is_final:
            self.final = now
        elif isinstance(frame, TurnDecided):
            self.decided = frame.wall
        elif isinstance(frame, BotFirstAudio) and self.decided:
            spans = TurnLatency(
                endpoint_ms=_ms(self.speech_end, self.endpoint),
                asr_ms=_ms(self.endpoint, self.final),
                intent_ms=_ms(self.final, self.decided),
                tts_first_audio_ms=_ms(self.decided, frame.wall),
                voice_to_voice_ms=_ms(self.speech_end, frame.wall),
            )
            self.decided = 0.0
            await self.bus.publish(spans)

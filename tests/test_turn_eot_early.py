"""The end-of-turn stage asks its models before the decision is due (``turn.model_silence_ms``).

The real CallSession on the fake engines of ``tests/fake_engines.py`` with the real German text
end-of-turn model; the caller's audio goes in at the speed of speech (the partials that feed the
text model arrive as in a call); the silences are stream time, so what is asserted does not depend
on the machine's speed.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from fake_engines import fake_engines

from voicebot.config import Settings
from voicebot.dialog.domain import load_domain
from voicebot.dialog.session import CallSession
from voicebot.frames import AudioFrame, BotAudio
from voicebot.protocol.events import CallEvent, dump

RATE = 16000
FRAME = RATE // 50  # 20 ms
SAID = "Ich möchte bitte sofort mit einem Mitarbeiter sprechen."


def _tone(seconds: float) -> np.ndarray:
    t = np.arange(int(RATE * seconds)) / RATE
    return (6000 * np.sin(2 * np.pi * 220.0 * t)).astype(np.int16)


async def _one_turn(settings: Settings) -> tuple[list[float], list[str], list[str]]:
    """A finished sentence, then silence until the intent; the silences the models were asked at,
    the stage's decisions and the event types."""
    from voicebot.turn.text_eou import TextTurnModel

    events: list[dict[str, Any]] = []

    async def emit(event: CallEvent) -> None:
        events.append(dump(event))

    async def audio(_frame: BotAudio) -> None:
        return None

    clients = fake_engines(settings, text=SAID, text_turn=TextTurnModel.load(settings.models.dir)).clients()
    await clients.start()
    session = CallSession(clients, settings, "eot-early", domain=load_domain(settings.dialog.domain),
                          emit=emit, send_audio=audio, out_rate=RATE, realtime=False)
    await session.start()
    try:
        await session.wait_idle()
        t = 0.0
        pcm = np.concatenate([_tone(1.6), np.zeros(int(RATE * 1.0), dtype=np.int16)])
        for i in range(0, len(pcm), FRAME):
            await session.push_audio(AudioFrame(pcm[i : i + FRAME], RATE, t))
            t += FRAME / RATE
            await asyncio.sleep(FRAME / RATE)
            if any(e["type"] == "speech.ended" for e in events):
                break
        await session.wait_idle()
        assert session.end_of_turn is not None
        return session.end_of_turn.asked_at_ms, session.end_of_turn.decisions, [e["type"] for e in events]
    finally:
        await session.end("completed")
        await clients.aclose()


@pytest.mark.parametrize("model_silence_ms", [0.0, 100.0])
def test_models_are_asked_at_model_silence_ms_and_the_turn_ends_at_min_silence_ms(model_silence_ms: float) -> None:
    base = Settings()
    settings = replace(base, turn=replace(base.turn, min_silence_ms=200.0, model_silence_ms=model_silence_ms))
    asked, decisions, types = asyncio.run(_one_turn(settings))
    assert decisions == ["confident"], types
    assert "speech.ended" in types
    (at,) = asked
    if model_silence_ms:
        assert model_silence_ms <= at < 200.0, asked
    else:
        assert at >= 200.0, asked

"""A confident end of turn waits out this caller's own pauses (``turn.adaptive_wait_ms``, voicebot.turn.pauses).

The rule itself, and the real CallSession on the fake engines of ``tests/fake_engines.py`` with the real
German text end-of-turn model: a caller who went on after a 0.6 s pause is not answered again within
that pause. Silences are stream time; nothing depends on the machine's speed.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from fake_engines import fake_engines

from voicebot.config import Settings
from voicebot.turn.pauses import CallerPauses

RATE = 16000
FRAME = RATE // 50  # 20 ms
SAID = "Ich möchte bitte sofort mit einem Mitarbeiter sprechen."


def test_the_wait_follows_the_longest_recent_pause_within_the_cap() -> None:
    pauses = CallerPauses(cap_ms=900.0)
    assert pauses.wait_ms() == 0.0  # nothing learned yet: the plain decision
    pauses.went_on(450.0)
    assert pauses.wait_ms() == pytest.approx(550.0)
    pauses.went_on(2500.0)  # a new turn after the bot spoke, not a pause
    pauses.went_on(1200.0)
    assert pauses.recent == (450.0, 1200.0) and pauses.wait_ms() == 900.0
    assert CallerPauses(cap_ms=0.0).wait_ms() == 0.0
    with pytest.raises(ValueError):
        CallerPauses(cap_ms=-1.0)


def _tone(seconds: float) -> np.ndarray:
    t = np.arange(int(RATE * seconds)) / RATE
    return (6000 * np.sin(2 * np.pi * 220.0 * t)).astype(np.int16)


async def _call(settings: Settings, pcm: np.ndarray) -> Any:
    from voicebot.dialog.domain import load_domain
    from voicebot.dialog.session import CallSession
    from voicebot.frames import AudioFrame, BotAudio
    from voicebot.protocol.events import CallEvent
    from voicebot.turn.text_eou import TextTurnModel

    async def emit(_event: CallEvent) -> None:
        return None

    async def audio(_frame: BotAudio) -> None:
        return None

    clients = fake_engines(settings, text=SAID, text_turn=TextTurnModel.load(settings.models.dir)).clients()
    await clients.start()
    session = CallSession(clients, settings, "eot-pauses", domain=load_domain(settings.dialog.domain),
                          emit=emit, send_audio=audio, out_rate=RATE, realtime=False)
    await session.start()
    try:
        await session.wait_idle()
        t = 0.0
        for i in range(0, len(pcm), FRAME):
            await session.push_audio(AudioFrame(pcm[i : i + FRAME], RATE, t))
            t += FRAME / RATE
            await asyncio.sleep(FRAME / RATE)  # speech's own pace: partials and models answer between frames
        await session.wait_idle()
        return session.end_of_turn
    finally:
        await session.end("completed")
        await clients.aclose()


@pytest.mark.parametrize("adaptive_wait_ms", [0.0, 900.0])
def test_a_caller_who_went_on_after_a_pause_is_not_cut_in_on_within_it(adaptive_wait_ms: float) -> None:
    silence = np.zeros(int(RATE * 0.6), dtype=np.int16)
    pcm = np.concatenate([_tone(1.6), silence, _tone(1.6), silence, _tone(1.6), np.zeros(int(RATE * 1.6), np.int16)])
    base = Settings()
    settings = replace(base, turn=replace(base.turn, adaptive_wait_ms=adaptive_wait_ms))
    stage = asyncio.run(_call(settings, pcm))
    assert stage is not None
    first, *later = stage.ended_silence_ms
    assert first < 600.0  # the first sentence end looked final: ended within the pause
    if adaptive_wait_ms:
        (pause,) = stage.pauses.recent[:1]
        assert 400.0 <= pause <= 800.0, stage.pauses.recent
        assert later and all(s >= pause + 100.0 for s in later), (stage.ended_silence_ms, stage.pauses.recent)
    else:
        assert len(stage.ended_silence_ms) == 3 and all(s < 600.0 for s in later)

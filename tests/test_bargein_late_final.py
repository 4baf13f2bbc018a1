"""A backchannel whose final comes after the barge-in's transcript timeout (a loaded machine takes
seconds for it): the bot resumed without it, and the late "Mhm." must not become a turn that
interrupts the bot with an answer (``scripts/bench_bargein.py`` saw "Ja." answered by a reask).

The real call core on the fake engines (``fake_engines.py``), finals taking 2 s to decode.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

from test_call_core import Call, _tone

from voicebot.config import Settings


def test_a_late_backchannel_final_is_not_answered() -> None:
    base = Settings()
    settings = replace(base, vad=replace(base.vad, end_silence_ms=400), tts=replace(base.tts, voice="fake-long"))

    async def run() -> Call:
        async with Call(settings, decode_s=2.0) as call:
            await call.until(lambda: call.audio_frames > 10)  # the greeting is playing
            await call.say(_tone(0.3))  # "mhm"
            await call.until(lambda: any(e["type"] == "transcript.final" for e in call.events))
            frames = call.audio_frames
            await call.until(lambda: call.audio_frames > frames + 10)  # the bot goes on speaking
        return call

    call = asyncio.run(run())
    final = next(e for e in call.events if e["type"] == "transcript.final")
    assert final["text"] == "Mhm."
    bargeins = [e for e in call.events if e["type"] == "bargein"]
    # Resumed on the timeout, before the final; the final's own decision names it.
    assert [e["action"] for e in bargeins] == ["paused", "resumed", "resumed"], bargeins
    assert call.events.index(bargeins[1]) < call.events.index(final) and bargeins[2]["text"] == "Mhm."
    assert not any(e["type"] == "intent" for e in call.events), "a backchannel is not a turn"
    assert [e["action"] for e in call.events if e["type"] == "bot.utterance"] == ["greet"]

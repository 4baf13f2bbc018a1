"""The turn-taker holds a final while the caller's voice is back but not yet a turn (``voice_pending``).

Orchestration only (no model is under test here; the endpointer's ``voice_pending`` on real German
speech through Silero is tests/test_vad_pending.py): the real TurnTaker on a real FrameBus, with the
caller's live state scripted.
"""

from __future__ import annotations

import asyncio

from voicebot.call.bus import FrameBus
from voicebot.call.turns import TurnTaker
from voicebot.frames import SpeechEnded, SpeechStarted, Transcript, UserTurn, VoiceActivity


def _final(text: str) -> Transcript:
    return Transcript(text=text, is_final=True, confidence=0.9)


async def _run(pending_then: list[bool]) -> list[UserTurn]:
    bus = FrameBus("hold")
    state = {"pending": True}
    turns: list[UserTurn] = []

    async def on_turn(turn: UserTurn) -> None:
        turns.append(turn)

    TurnTaker(bus, max_turn_s=20.0, caller_speaking=lambda: state["pending"])
    bus.subscribe(on_turn, UserTurn)
    await bus.publish(SpeechStarted(t=0.0))
    await bus.publish(SpeechEnded(t=1.0, start=0.0))
    await bus.publish(_final("Meine Bestellung ist nicht gekommen."))  # the caller's voice is back: held
    assert turns == []
    for pending in pending_then:
        state["pending"] = pending
        await bus.publish(VoiceActivity(t=1.5, probability=0.9 if pending else 0.0, voiced=pending, wall=0.0))
    return turns


def test_a_final_waits_while_the_callers_voice_is_pending_and_a_blip_releases_it() -> None:
    turns = asyncio.run(_run([True, True, False]))
    assert [t.transcript.text for t in turns] == ["Meine Bestellung ist nicht gekommen."]


def test_a_caller_who_goes_on_gets_one_answer_for_both_sentences() -> None:
    async def go_on() -> list[UserTurn]:
        bus = FrameBus("hold")
        state = {"pending": True}
        turns: list[UserTurn] = []

        async def on_turn(turn: UserTurn) -> None:
            turns.append(turn)

        TurnTaker(bus, max_turn_s=20.0, caller_speaking=lambda: state["pending"])
        bus.subscribe(on_turn, UserTurn)
        await bus.publish(SpeechStarted(t=0.0))
        await bus.publish(SpeechEnded(t=1.0, start=0.0))
        await bus.publish(_final("Meine Bestellung ist nicht gekommen."))
        state["pending"] = False  # the candidate became a turn
        await bus.publish(SpeechStarted(t=1.6))
        await bus.publish(VoiceActivity(t=1.7, probability=0.9, voiced=True, wall=0.0))
        assert turns == []
        await bus.publish(SpeechEnded(t=3.0, start=1.6))
        await bus.publish(_final("Ich habe sie vor zwei Wochen bestellt."))
        return turns

    (turn,) = asyncio.run(go_on())
    assert turn.transcript.text == "Meine Bestellung ist nicht gekommen. Ich habe sie vor zwei Wochen bestellt."


def test_voice_frames_between_a_continuation_and_its_final_do_not_split_the_concern() -> None:
    """The continuation's decode takes a moment after its SpeechEnded; the silent frames meanwhile release nothing."""

    async def go_on() -> list[UserTurn]:
        bus = FrameBus("hold")
        speaking = {"now": True}
        turns: list[UserTurn] = []

        async def on_turn(turn: UserTurn) -> None:
            turns.append(turn)

        TurnTaker(bus, max_turn_s=20.0, caller_speaking=lambda: speaking["now"])
        bus.subscribe(on_turn, UserTurn)
        await bus.publish(SpeechStarted(t=0.0))
        await bus.publish(SpeechEnded(t=1.0, start=0.0))
        await bus.publish(_final("Meine Bestellung ist nicht gekommen."))  # voice back: held
        await bus.publish(SpeechStarted(t=1.6))  # ... and it is a turn
        await bus.publish(SpeechEnded(t=3.0, start=1.6))
        speaking["now"] = False
        for i in range(10):  # 200 ms of silent frames while the continuation is decoded
            await bus.publish(VoiceActivity(t=3.0 + i * 0.02, probability=0.0, voiced=False, wall=0.0))
        assert turns == []
        await bus.publish(_final("Ich habe sie vor zwei Wochen bestellt."))
        return turns

    (turn,) = asyncio.run(go_on())
    assert turn.transcript.text == "Meine Bestellung ist nicht gekommen. Ich habe sie vor zwei Wochen bestellt."

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

FIRST = "Meine Bestellung ist nicht gekommen."
SECOND = "Ich habe sie vor zwei Wochen bestellt."


def _final(text: str) -> Transcript:
    return Transcript(text=text, is_final=True, confidence=0.9)


def _silent(t: float) -> VoiceActivity:
    return VoiceActivity(t=t, probability=0.0, voiced=False, wall=0.0)


async def _first_turn_held(speaking: dict[str, bool]) -> tuple[FrameBus, list[UserTurn]]:
    """A TurnTaker whose caller's state is ``speaking["now"]``, after a first turn whose final came while the
    caller's voice was back (so it is held)."""
    bus = FrameBus("hold")
    turns: list[UserTurn] = []

    async def on_turn(turn: UserTurn) -> None:
        turns.append(turn)

    TurnTaker(bus, max_turn_s=20.0, caller_speaking=lambda: speaking["now"])
    bus.subscribe(on_turn, UserTurn)
    await bus.publish(SpeechStarted(t=0.0))
    await bus.publish(SpeechEnded(t=1.0, start=0.0))
    await bus.publish(_final(FIRST))
    assert turns == []
    return bus, turns


def test_a_final_waits_while_the_callers_voice_is_pending_and_a_blip_releases_it() -> None:
    async def blip() -> list[UserTurn]:
        speaking = {"now": True}
        bus, turns = await _first_turn_held(speaking)
        for pending in (True, True, False):
            speaking["now"] = pending
            await bus.publish(VoiceActivity(t=1.5, probability=0.9 if pending else 0.0, voiced=pending, wall=0.0))
        return turns

    assert [t.transcript.text for t in asyncio.run(blip())] == [FIRST]


def test_a_caller_who_goes_on_gets_one_answer_for_both_sentences() -> None:
    async def go_on() -> list[UserTurn]:
        speaking = {"now": True}
        bus, turns = await _first_turn_held(speaking)
        speaking["now"] = False  # the candidate became a turn
        await bus.publish(SpeechStarted(t=1.6))
        await bus.publish(VoiceActivity(t=1.7, probability=0.9, voiced=True, wall=0.0))
        assert turns == []
        await bus.publish(SpeechEnded(t=3.0, start=1.6))
        await bus.publish(_final(SECOND))
        return turns

    (turn,) = asyncio.run(go_on())
    assert turn.transcript.text == f"{FIRST} {SECOND}"


def test_voice_frames_between_a_continuation_and_its_final_do_not_split_the_concern() -> None:
    """The continuation's decode takes a moment after its SpeechEnded; the silent frames meanwhile release nothing."""

    async def go_on() -> list[UserTurn]:
        speaking = {"now": True}
        bus, turns = await _first_turn_held(speaking)
        await bus.publish(SpeechStarted(t=1.6))  # the voice is a turn
        await bus.publish(SpeechEnded(t=3.0, start=1.6))
        speaking["now"] = False
        for i in range(10):  # 200 ms of silent frames while the continuation is decoded
            await bus.publish(_silent(3.0 + i * 0.02))
        assert turns == []
        await bus.publish(_final(SECOND))
        return turns

    (turn,) = asyncio.run(go_on())
    assert turn.transcript.text == f"{FIRST} {SECOND}"

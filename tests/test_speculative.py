"""Speculative answers on the real call core (CallSession, recognizer, scheduler, policy, player) with fake engines.

A speculation starts at the caller's first pause: the turn's final decode, the intent, the policy
step on a fork of the policy and the first sentence's synthesis. These tests hold the caller at that
pause until the speculative answer is ready (a condition, not a sleep), then either confirm the turn
or let the caller go on.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import pytest
from fake_engines import TEXT
from test_call_core import Call, _tone

from voicebot.config import Settings
from voicebot.dialog.session import CallSession


def _final_decodes(call: Call) -> int:
    """Final-quality decodes the call's scheduler served so far (the fake engines share one scheduler per call)."""
    return int(call.clients.asr.stats()["final"]["served"])  # type: ignore[attr-defined]


@pytest.fixture
def settings() -> Settings:
    base = Settings()
    return replace(base, vad=replace(base.vad, end_silence_ms=400),
                   turn=replace(base.turn, speculate=True, speculate_after_ms=100.0))


async def _answer_ready(session: CallSession) -> None:
    """Wait (on the bus, no sleeps) until a speculation is held and its answer is prepared."""
    spec = session.speculation
    assert spec is not None
    async with asyncio.timeout(20):
        while spec.pending is None:
            await session.bus.wait_change()
    task = spec.pending
    await asyncio.wait({task})
    assert task.result() is not None


def _policy_state(session: CallSession) -> dict[str, Any]:
    return {k: repr(v) for k, v in vars(session.policy).items() if k != "domain"}


def test_a_confirmed_speculation_is_released_without_a_second_final_decode(settings: Settings) -> None:
    from voicebot.turn.text_eou import TextTurnModel

    said = "Ich möchte bitte sofort mit einem Mitarbeiter sprechen."

    async def run() -> tuple[Call, int, int]:
        async with Call(settings, text=said, text_turn=TextTurnModel.load(settings.models.dir)) as call:
            await call.session.wait_idle()
            finals_before = _final_decodes(call)
            await call.say(_tone(1.6))
            await call.silence(0.14)  # the first pause: the speculation starts (the end of turn is not decided yet)
            await _answer_ready(call.session)
            frames_held = call.audio_frames
            assert not any(e["type"] in ("transcript.final", "intent") for e in call.events)
            await call.until(lambda: any(e["type"] == "bot.audio.end" for e in call.events[-5:])
                             and call.audio_frames > frames_held)
            await call.session.wait_idle()
            finals = _final_decodes(call) - finals_before
        return call, finals, frames_held

    call, finals, frames_held = asyncio.run(run())
    session = call.session
    assert session.end_of_turn is not None and session.end_of_turn.decisions == ["confident"]
    assert finals == 1, "the speculative decode is the final: no second decode"
    assert session.recognizer.speculation == {"used": 1, "wasted": 0}
    assert session.speculation is not None
    assert (session.speculation.stats.committed, session.speculation.stats.discarded) == (1, 0)
    assert [e["text"] for e in call.events if e["type"] == "transcript.final"] == [said]
    assert [e["label"] for e in call.events if e["type"] == "intent"] == ["mitarbeiter"]
    assert call.audio_frames > frames_held  # held until the turn was confirmed, then heard


def test_the_caller_going_on_discards_the_speculation_unheard(settings: Settings) -> None:
    async def run() -> tuple[Call, dict[str, Any], dict[str, Any], int, int, int]:
        async with Call(settings) as call:
            await call.session.wait_idle()
            finals_before = _final_decodes(call)
            before = _policy_state(call.session)
            frames_before = call.audio_frames
            await call.say(_tone(0.5))  # "Ich habe eine" ...
            await call.silence(0.14)
            await _answer_ready(call.session)  # intent, policy fork and first sentence ready, held
            await call.say(_tone(1.0))  # ... the caller goes on
            spec = call.session.speculation
            assert spec is not None
            await call.until(lambda: spec.stats.discarded == 1)
            during = _policy_state(call.session)
            frames_after_discard = call.audio_frames
            await call.silence(0.6)
            await call.until(lambda: any(e["type"] == "intent" for e in call.events))
            await call.session.wait_idle()
        return call, before, during, frames_before, frames_after_discard, _final_decodes(call) - finals_before

    call, before, during, frames_before, frames_after_discard, finals = asyncio.run(run())
    session = call.session
    assert during == before, "a discarded speculation does not advance the dialog state"
    assert frames_after_discard == frames_before, "nothing of the speculative answer was heard"
    finals_published = [e["text"] for e in call.events if e["type"] == "transcript.final"]
    assert finals_published == [TEXT], "the speculative 'Ich habe eine' was never published as a final"
    assert [e["label"] for e in call.events if e["type"] == "intent"] == ["rechnung"]
    assert session.recognizer.speculation["wasted"] == 1
    assert session.speculation is not None and session.speculation.stats.discarded == 1
    assert session.speculation.stats.committed + session.recognizer.speculation["used"] >= 1
    assert finals == 2  # the discarded speculation's decode, and the whole turn's (used as the final)
    assert [t["caller"] for t in session.record.turns] == [TEXT]


def test_speculation_gives_the_same_final_intent_and_answer_as_without(settings: Settings) -> None:
    async def one(speculate: bool) -> Call:
        s = replace(settings, turn=replace(settings.turn, speculate=speculate))
        async with Call(s) as call:
            await call.session.wait_idle()
            await call.say(_tone(1.6))
            if speculate:
                await call.silence(0.14)
                await _answer_ready(call.session)
            await call.silence(0.6)
            await call.until(lambda: any(e["type"] == "intent" for e in call.events))
            await call.session.wait_idle()
        return call

    async def run() -> tuple[Call, Call]:
        return await one(True), await one(False)

    fast, plain = asyncio.run(run())
    assert fast.session.speculation is not None and fast.session.speculation.stats.committed == 1
    assert plain.session.speculation is None

    def outcome(call: Call) -> list[tuple[str, Any]]:
        keep = {"transcript.final": "text", "intent": "label", "bot.utterance": "text"}
        return [(e["type"], e[keep[e["type"]]]) for e in call.events if e["type"] in keep]

    assert outcome(fast) == outcome(plain)
    assert fast.session.record.turns == plain.session.record.turns

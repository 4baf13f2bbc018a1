"""No input: a caller who stays silent after the bot's question is asked again, then handed to a human.

The policy path with real IntentPredictions (the policy is pure), then the call core: the real
CallSession, stages and policy on the fake engines of ``fake_engines`` (scripted timings), with a
short ``dialog.no_input_s``. Nothing here times the bot; it waits for events with generous limits.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest
from fake_engines import TEXT
from test_call_core import Call, _tone
from test_policy import prediction, turn

from voicebot.call.bus import FrameBus
from voicebot.call.dialog import DialogStage
from voicebot.call.no_input import NoInputStage
from voicebot.config import REPO_ROOT, Settings, SettingsError, load_settings
from voicebot.dialog.domain import Domain, DomainError, load_domain
from voicebot.dialog.policy import CallPolicy
from voicebot.frames import BotSpeechEnded, BotUtterance, SpeechStarted, Transcript, UserTurn, VoiceActivity

NO_INPUT_S = 0.3


@pytest.fixture(scope="module")
def domain() -> Domain:
    return load_domain(REPO_ROOT / "pipelines" / "default")


# ---------------------------------------------------------------- policy
def test_silence_after_the_greeting_asks_for_the_concern_again_then_hands_over(domain: Domain) -> None:
    policy = CallPolicy(domain, "n1")
    policy.start()
    step = policy.on_no_input()
    assert step.action == "no_input" and step.handoff is None and not step.end_call
    assert step.say == domain.prompt("no_input_concern")  # not the greeting's "Automatischer Assistent hier, ..."
    step = policy.on_no_input()
    assert step.action == "handoff" and step.end_call and policy.state == "done"
    assert step.handoff is not None and step.handoff.reason == "no_input"
    assert step.handoff.context["reason"] == "no_input" and step.handoff.context["call_id"] == "n1"
    assert policy.on_no_input().say == ""  # done: nothing more happens


def test_the_open_question_is_asked_again_without_what_came_before_it(domain: Domain) -> None:
    policy = CallPolicy(domain)
    policy.start()
    turn(policy, domain, "Da stimmt was mit dem Geld nicht.", "rechnung", 0.6, "confirm")
    step = policy.on_no_input()
    assert step.say == f"{domain.prompt('no_input')} Es geht also um Ihre Rechnung, richtig?"

    policy = CallPolicy(domain)
    policy.start()
    asked = turn(policy, domain, "Ich habe eine Reklamation.", "reklamation", 0.98, "act")
    retry = turn(policy, domain, "Äh, das Wetter ist schön.")  # not an answer: "Entschuldigung, ... <question>"
    assert retry.action == "ask_slot" and retry.say != asked.say
    step = policy.on_no_input()
    assert step.action == "no_input" and step.say == f"{domain.prompt('no_input')} {asked.say}"

    policy = CallPolicy(domain)
    policy.start()
    turn(policy, domain, "Ich will mein Abo kündigen.", "kuendigung", 0.98, "act")
    read_back = turn(policy, domain, "Kundennummer vier sieben eins eins zwei.")
    assert policy.state == "confirm_slot"
    step = policy.on_no_input()
    assert step.say == f"{domain.prompt('no_input')} {read_back.say}"
    step = turn(policy, domain, "Ja.")  # the read-back still stands: the caller confirms it
    assert step.action == "route" and policy.slots["customer_number"] == "47112"


def test_a_caller_turn_resets_the_count(domain: Domain) -> None:
    policy = CallPolicy(domain)
    policy.start()
    assert policy.on_no_input().action == "no_input"
    step = turn(policy, domain, "Da stimmt was mit dem Geld nicht.", "rechnung", 0.6, "confirm")
    assert step.action == "confirm"
    assert policy.on_no_input().action == "no_input"  # a first silence again, not the second
    assert policy.on_no_input().action == "handoff"


def test_nothing_happens_before_the_greeting_or_after_the_call_is_decided(domain: Domain) -> None:
    policy = CallPolicy(domain)
    assert policy.on_no_input().say == ""  # start: nothing asked yet
    policy.start()
    step = policy.on_turn("Ich will mein Abo kündigen.", 0.9, prediction(domain, "kuendigung", 0.98, "act"), {})
    step = turn(policy, domain, "Die weiß ich nicht.")
    assert step.action == "route" and policy.state == "done"
    step = policy.on_no_input()
    assert step.say == "" and step.handoff is None and step.route is None


def test_a_domain_without_the_prompts_keeps_loading_and_never_asks_again(tmp_path: Path) -> None:
    source = (REPO_ROOT / "pipelines" / "default" / "domain.toml").read_text(encoding="utf-8")
    lines = source.splitlines(keepends=True)
    without = "".join(line for line in lines if not line.startswith("no_input"))
    (tmp_path / "domain.toml").write_text(without, encoding="utf-8")
    domain = load_domain(tmp_path)
    assert not domain.asks_on_no_input
    policy = CallPolicy(domain)
    policy.start()
    assert policy.on_no_input().say == "" and policy.on_no_input().handoff is None and policy.state == "concern"
    half = "".join(line for line in lines if not line.startswith("no_input_concern"))
    (tmp_path / "domain.toml").write_text(half, encoding="utf-8")
    with pytest.raises(DomainError, match="no_input"):  # half of the pair is a typo, not a choice
        load_domain(tmp_path)


def test_the_wait_is_a_setting() -> None:
    assert Settings().dialog.no_input_s == 8.0
    assert load_settings(environ={"VOICEBOT_DIALOG__NO_INPUT_S": "0"}).dialog.no_input_s == 0.0
    with pytest.raises(SettingsError, match="no_input_s"):
        load_settings(environ={"VOICEBOT_DIALOG__NO_INPUT_S": "-1"})


# ---------------------------------------------------------------- call core
@pytest.fixture
def settings() -> Settings:
    base = Settings()
    return replace(base, vad=replace(base.vad, end_silence_ms=400),
                   dialog=replace(base.dialog, no_input_s=NO_INPUT_S))


def _actions(call: Call) -> list[str]:
    return [e["action"] for e in call.events if e["type"] == "bot.utterance"]


async def _quiet(call: Call, predicate: object, limit_s: float = 20.0) -> None:
    """Wait for a condition on the events while the caller sends nothing at all (a browser's silent caller)."""
    async with asyncio.timeout(limit_s):
        while not predicate():  # type: ignore[operator]
            await call.session.bus.wait_change()


def test_a_silent_caller_is_asked_again_then_handed_to_a_human(settings: Settings) -> None:
    async def run() -> Call:
        async with Call(settings) as call:
            await _quiet(call, lambda: "no_input" in _actions(call))
            await _quiet(call, lambda: any(e["type"] == "handoff" for e in call.events))
            await call.session.wait_idle()
        return call

    call = asyncio.run(run())
    assert _actions(call) == ["greet", "no_input", "handoff"]
    types = call.types()
    # Each prompt was spoken to its end before the next came: the wait starts when the bot is quiet.
    ends = [i for i, t in enumerate(types) if t == "bot.audio.end"]
    utterances = [i for i, t in enumerate(types) if t == "bot.utterance"]
    assert ends[0] < utterances[1] and ends[1] < utterances[2]
    handoff = next(e for e in call.events if e["type"] == "handoff")
    assert handoff["reason"] == "no_input" and handoff["context"]["reason"] == "no_input"
    assert call.session.record.handoff is not None and call.session.no_input.fired >= 2
    assert not any(e["type"] == "intent" for e in call.events[: utterances[1]]), "a silence is not a caller turn"


def test_a_silent_line_with_audio_gets_the_same(settings: Settings) -> None:
    """A phone line sends its silence as audio frames: unvoiced frames do not count as the caller."""
    async def run() -> Call:
        async with Call(settings) as call:
            await call.until(lambda: any(e["type"] == "handoff" for e in call.events))
        return call

    call = asyncio.run(run())
    assert _actions(call)[:3] == ["greet", "no_input", "handoff"]


def test_caller_speech_before_the_wait_is_over_is_answered_not_reprompted(settings: Settings) -> None:
    slow = replace(settings, dialog=replace(settings.dialog, no_input_s=3.0))

    async def run() -> Call:
        async with Call(slow) as call:
            await call.until(lambda: "bot.audio.end" in call.types())  # the greeting is over
            await call.say(_tone(1.6))
            await call.until(lambda: any(e["type"] == "intent" for e in call.events))
            await call.session.wait_idle()
            call.no_input_armed_after_answer = call.session.no_input.armed
            call.session.no_input.disarm()  # the answer's own wait is not what this test is about
        return call

    call = asyncio.run(run())
    assert "no_input" not in _actions(call)
    assert call.session.no_input.fired == 0
    assert call.session.record.turns[0]["caller"] == TEXT
    assert call.no_input_armed_after_answer  # the bot asked something new: the wait starts again


def test_no_reprompt_while_a_human_has_the_call(settings: Settings) -> None:
    async def run() -> Call:
        async with Call(settings) as call:
            await call.until(lambda: call.audio_frames > 5)  # the greeting is playing
            await call.session.take_over("agent-3")
            await call.session.wait_idle()
            await call.silence(NO_INPUT_S * 4)  # well past the wait, with nobody speaking
        return call

    call = asyncio.run(run())
    assert _actions(call) == ["greet"]
    assert call.session.no_input.fired == 0 and not call.session.no_input.armed


def test_zero_turns_it_off(settings: Settings) -> None:
    off = replace(settings, dialog=replace(settings.dialog, no_input_s=0.0))

    async def run() -> Call:
        async with Call(off) as call:
            await call.session.wait_idle()
            await call.silence(0.6)
        return call

    call = asyncio.run(run())
    assert _actions(call) == ["greet"] and not call.session.no_input.enabled



class _CountingDialog(DialogStage):
    """The real dialog stage, counting the no-input steps the timer asks for (no policy step is applied here)."""

    def __init__(self, bus: FrameBus) -> None:
        super().__init__(CallPolicy(load_domain(REPO_ROOT / "pipelines" / "default")), None, bus,  # type: ignore[arg-type]
                         bot_active=lambda: True)
        self.asked = 0

    def no_input(self) -> bool:
        self.asked += 1
        return True


def test_after_the_bot_says_it_waits_the_wait_is_the_hold_one() -> None:
    """After "Gern, ich warte." (action hold) the caller looks a number up: the timer waits ``hold_s``."""
    async def run() -> tuple[int, int]:
        bus = FrameBus("hold")
        dialog = _CountingDialog(bus)
        stage = NoInputStage(bus, dialog, 0.05, hold_s=5.0)
        await bus.publish(BotUtterance("Gern, ich warte.", "hold"))
        await bus.publish(BotSpeechEnded(True, 1.0))
        await asyncio.sleep(0.4)
        after_hold = dialog.asked
        stage.disarm()
        await bus.publish(BotUtterance("Wie lautet Ihre Kundennummer?", "ask_slot"))
        await bus.publish(BotSpeechEnded(True, 1.0))
        await asyncio.sleep(0.4)
        return after_hold, dialog.asked

    assert asyncio.run(run()) == (0, 1)


def test_a_caller_sound_without_words_restarts_the_wait_instead_of_ending_it() -> None:
    """A cough, a door or line noise after the question: the VAD hears a voice, the recognizer no words (an empty
    turn, which the dialog does not answer). The wait starts again from that sound; it does not stop for good."""
    async def run() -> tuple[int, int, int, int]:
        bus = FrameBus("cough")
        dialog = _CountingDialog(bus)
        stage = NoInputStage(bus, dialog, 0.3)
        await bus.publish(BotUtterance("Wie lautet Ihre Kundennummer?", "ask_slot"))
        await bus.publish(BotSpeechEnded(True, 1.0))
        await asyncio.sleep(0.2)
        await bus.publish(SpeechStarted(5.0))
        await bus.publish(VoiceActivity(5.02, 0.9, True, 0.0))
        await bus.publish(UserTurn(Transcript("", True, 0.0)))  # the recognizer heard no words
        await asyncio.sleep(0.2)  # 0.4 s after the bot, 0.2 s after the sound
        pushed_on = dialog.asked
        await asyncio.sleep(0.3)
        asked_later = dialog.asked
        await bus.publish(BotSpeechEnded(True, 1.0))
        await bus.publish(UserTurn(Transcript("Vier sieben eins eins.", True, 0.9)))  # words: the dialog answers it
        await asyncio.sleep(0.5)
        return pushed_on, asked_later, dialog.asked, stage.fired

    assert asyncio.run(run()) == (0, 1, 1, 1)

"""The call core's orchestration: the real CallSession, stages and policy on fake engines with scripted timings."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from fake_engines import TEXT, fake_engines

from voicebot.config import Settings
from voicebot.dialog.domain import load_domain
from voicebot.dialog.session import CallSession
from voicebot.frames import AudioFrame, BotAudio
from voicebot.protocol.events import CallEvent, dump, parse_call_event

RATE = 16000
FRAME = RATE // 50  # 20 ms


def _tone(seconds: float, amplitude: int = 6000) -> np.ndarray:
    t = np.arange(int(RATE * seconds)) / RATE
    return (amplitude * np.sin(2 * np.pi * 220.0 * t)).astype(np.int16)


class Call:
    """One CallSession with recording sinks and a caller that plays audio in real time."""

    def __init__(self, settings: Settings, realtime: bool = True, decode_s: float = 0.02, **fakes: Any) -> None:
        self.events: list[dict[str, Any]] = []
        self.audio_frames = 0
        self.t = 0.0
        engines = fake_engines(settings, decode_s=decode_s, **fakes)
        self.clients = engines.clients()
        self.session = CallSession(self.clients, settings, "core-test", domain=load_domain(settings.dialog.domain),
                                   emit=self._emit, send_audio=self._audio, out_rate=RATE, realtime=realtime)

    async def _emit(self, event: CallEvent) -> None:
        data = dump(event)
        assert parse_call_event(data) == event  # every event the core makes is a valid wire event
        self.events.append(data)

    async def _audio(self, audio: BotAudio) -> None:
        self.audio_frames += 1

    async def __aenter__(self) -> Call:
        await self.clients.start()
        await self.session.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.session.end("completed")
        await self.clients.aclose()

    async def say(self, pcm: np.ndarray, realtime: bool = True) -> None:
        for i in range(0, len(pcm), FRAME):
            chunk = pcm[i : i + FRAME]
            await self.session.push_audio(AudioFrame(chunk, RATE, self.t))
            self.t += len(chunk) / RATE
            if realtime:
                await asyncio.sleep(len(chunk) / RATE)
            else:
                await asyncio.sleep(0)

    async def silence(self, seconds: float, realtime: bool = True) -> None:
        await self.say(np.zeros(int(RATE * seconds), dtype=np.int16), realtime)

    def types(self) -> list[str]:
        return [e["type"] for e in self.events]

    async def until(self, predicate: Any, limit_s: float = 20.0) -> None:
        """Wait for a condition on the events (not a fixed sleep), feeding silence meanwhile."""
        for _ in range(int(limit_s / 0.02)):
            if predicate():
                return
            await self.silence(0.02)
        raise AssertionError(f"condition not met; events: {self.types()}")


@pytest.fixture
def settings() -> Settings:
    base = Settings()
    return replace(base, vad=replace(base.vad, end_silence_ms=400))


def test_a_turn_gets_intent_route_answer_and_measured_latency(settings: Settings) -> None:
    async def run() -> Call:
        async with Call(settings, realtime=False) as call:
            await call.session.wait_idle()
            await call.silence(0.3, realtime=False)
            await call.say(_tone(1.6), realtime=False)
            await call.silence(1.0, realtime=False)
            await call.session.flush()
        return call

    call = asyncio.run(run())
    types = call.types()
    assert types[0] == "call.start" and types[-1] == "call.end"
    final = next(e for e in call.events if e["type"] == "transcript.final")
    assert final["text"] == TEXT
    intent = next(e for e in call.events if e["type"] == "intent")
    assert intent["label"] == "rechnung"
    # Causal order: the turn's final, its intent, then the answer and its audio, then the latency.
    answer = max(i for i, t in enumerate(types) if t == "bot.utterance")
    assert types.index("transcript.final") < types.index("intent") < answer < types.index("latency")
    latency = next(e for e in call.events if e["type"] == "latency")
    for span in ("endpoint_ms", "asr_ms", "intent_ms", "tts_first_audio_ms", "voice_to_voice_ms"):
        assert latency[span] >= 0.0, span  # measured, not -1
    assert latency["voice_to_voice_ms"] >= latency["asr_ms"]
    assert call.session.record.first_intent == "rechnung"
    assert call.session.record.turns[0]["caller"] == TEXT


def test_backchannel_over_the_bot_resumes_and_is_not_a_turn(settings: Settings) -> None:
    async def run() -> Call:
        async with Call(settings) as call:
            await call.until(lambda: call.audio_frames > 10)  # the greeting is playing
            await call.say(_tone(0.3))  # "mhm"
            await call.until(lambda: any(e["type"] == "bargein" and e["action"] == "resumed" for e in call.events))
            frames_at_resume = call.audio_frames
            await call.until(lambda: call.audio_frames > frames_at_resume + 10)  # the bot goes on speaking
        return call

    call = asyncio.run(run())
    actions = [e["action"] for e in call.events if e["type"] == "bargein"]
    assert actions[0] == "paused" and "resumed" in actions and "stopped" not in actions
    assert not any(e["type"] == "intent" for e in call.events), "a backchannel is not a turn"
    assert [e["action"] for e in call.events if e["type"] == "bot.utterance"] == ["greet"]


def test_real_words_over_the_bot_stop_it_and_are_answered(settings: Settings) -> None:
    async def run() -> Call:
        async with Call(settings) as call:
            await call.until(lambda: call.audio_frames > 10)
            await call.say(_tone(1.6))
            await call.until(lambda: any(e["type"] == "intent" for e in call.events))
        return call

    call = asyncio.run(run())
    actions = [e["action"] for e in call.events if e["type"] == "bargein"]
    assert actions[0] == "paused" and "stopped" in actions and "resumed" not in actions
    ends = [e for e in call.events if e["type"] == "bot.audio.end"]
    assert ends[0]["completed"] is False  # the greeting was cut off
    assert next(e for e in call.events if e["type"] == "intent")["label"] == "rechnung"


def test_a_concern_said_with_a_pause_is_one_turn(settings: Settings) -> None:
    async def run() -> Call:
        # Finals take 0.6 s to decode: the caller goes on before the first part's final is there.
        async with Call(settings, decode_s=0.6) as call:
            await call.session.wait_idle()
            await call.say(_tone(1.4))
            await call.silence(0.45)  # the endpointer closes the first part here
            await call.say(_tone(1.4))  # ... and the caller goes on before the answer
            await call.silence(1.0)
            await call.session.flush()
        return call

    call = asyncio.run(run())
    finals = [e for e in call.events if e["type"] == "transcript.final"]
    assert len(finals) == 2
    assert len(call.session.record.turns) == 1
    assert call.session.record.turns[0]["caller"] == f"{TEXT} {TEXT}"


def test_takeover_silences_the_bot_and_release_gives_it_back(settings: Settings) -> None:
    async def run() -> Call:
        async with Call(settings) as call:
            await call.until(lambda: call.audio_frames > 5)
            await call.session.take_over("agent-7")
            await call.say(_tone(1.6))
            await call.silence(1.0)
            await call.session.wait_idle()
            assert not any(e["type"] == "intent" for e in call.events), "the bot does not answer while a human has it"
            await call.session.release("agent-7")
            await call.say(_tone(1.6))
            await call.until(lambda: any(e["type"] == "intent" for e in call.events))
        return call

    call = asyncio.run(run())
    types = call.types()
    assert types.index("agent.takeover") < types.index("agent.release") < types.index("intent")
    assert call.events[-1]["type"] == "call.end"


def test_the_end_of_turn_model_ends_a_finished_sentence_early(settings: Settings) -> None:
    from voicebot.turn.text_eou import TextTurnModel

    said = "Ich möchte bitte sofort mit einem Mitarbeiter sprechen."

    async def run() -> Call:
        async with Call(settings, text=said, text_turn=TextTurnModel.load(settings.models.dir)) as call:
            await call.session.wait_idle()
            await call.say(_tone(1.6))
            # Less silence than the endpointer's fallback (turn.max_silence_ms): only the model can end it.
            await call.silence(0.7)
            ended = any(e["type"] == "speech.ended" for e in call.events)
            await call.until(lambda: any(e["type"] == "intent" for e in call.events))
        call.ended_early = ended
        return call

    call = asyncio.run(run())
    assert call.session.end_of_turn is not None
    assert call.session.end_of_turn.decisions == ["confident"]
    assert call.ended_early, "the turn was still open after 0.7 s of silence"
    assert next(e for e in call.events if e["type"] == "intent")["label"] == "mitarbeiter"


def _continuation_call(settings: Settings, wait_s: float) -> Call:
    """The caller interrupts the greeting with a concern, the bot answers, and ``wait_s`` after the
    answer's first audio the caller talks over it (a long fake voice: the answer is still playing)."""
    long_voice = replace(settings, tts=replace(settings.tts, voice="fake-long"))

    async def run() -> Call:
        async with Call(long_voice) as call:
            await call.until(lambda: call.audio_frames > 5)
            await call.say(_tone(1.6))
            await call.until(lambda: call.types().count("bot.audio.start") == 2)  # the answer's first audio
            if wait_s:
                await call.silence(wait_s)
            await call.say(_tone(1.6))
            await call.until(lambda: call.types().count("intent") == 2)
        return call

    return asyncio.run(run())


def test_an_answer_the_caller_talks_over_at_once_is_taken_back_and_both_parts_are_one_turn(
        settings: Settings) -> None:
    call = _continuation_call(settings, wait_s=0.0)
    turns = call.session.record.turns
    assert turns[0]["action"] == turns[1]["action"], turns  # the merged turn is answered from the same state
    assert turns[1]["caller"] == f"{TEXT} {TEXT}"
    assert call.session.continuations.taken_back == 1
    actions = [e["action"] for e in call.events if e["type"] == "bargein"]
    assert actions.count("stopped") == 2  # the greeting, then the answer


def test_a_caller_who_heard_the_answer_first_starts_a_new_turn(settings: Settings) -> None:
    call = _continuation_call(settings, wait_s=1.6)  # past turn.continuation_ms (1.2 s)
    turns = call.session.record.turns
    assert turns[1]["caller"] == TEXT
    assert call.session.continuations.taken_back == 0


def test_restore_policy_puts_the_shared_policy_back_in_place(settings: Settings) -> None:
    from voicebot.call.continuation import restore_policy
    from voicebot.call.speculation import fork_policy
    from voicebot.dialog.policy import CallPolicy
    from voicebot.nlu.intent import IntentPrediction

    policy = CallPolicy(load_domain(settings.dialog.domain), "c")
    policy.start()
    before = fork_policy(policy)
    labels = ("rechnung", "sonstiges")
    prediction = IntentPrediction.from_probabilities(labels, np.array([0.97, 0.03]), "act")
    policy.on_turn("Ich habe eine Frage zu meiner Rechnung.", 0.9, prediction, {})
    assert policy.state != before.state
    shared = policy
    restore_policy(policy, before)
    assert shared is policy and policy.state == before.state and policy.intent_label == before.intent_label

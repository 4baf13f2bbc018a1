"""The speaker stage: the bot's utterances out as audio, and barge-in.

A ``BotUtterance`` is spoken by the call's ``TtsPlayer`` in a task of its own (a
new utterance stops the one before). The ``BargeInController`` hears the caller's
side (voice activity, speech start/end, transcripts) and pauses, resumes or stops
playback; each decision is published as a ``BargeIn`` frame. Nothing is decided
while a human agent has the call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from voicebot.call.bus import FrameBus
from voicebot.frames import (
    BargeIn,
    BotAudio,
    BotFirstAudio,
    BotSpeechEnded,
    BotSpeechStarted,
    BotUtterance,
    SpeechEnded,
    SpeechStarted,
    Transcript,
    VoiceActivity,
)
from voicebot.tts.bargein import BargeInAction, BargeInController
from voicebot.tts.playback import TtsPlayer

log = logging.getLogger(__name__)
AudioSink = Callable[[BotAudio], Awaitable[None]]


class SpeakerStage:
    def __init__(
        self, player_factory: Callable[[AudioSink], TtsPlayer], bargein: BargeInController, bus: FrameBus,
        send_audio: AudioSink, *, bot_active: Callable[[], bool], voice_threshold: Callable[[], float] | None = None,
    ) -> None:
        """``voice_threshold``: the caller VAD's speech threshold now (the recognizer's; lower on a phone
        line, where Silero is far less sure of speech): the early pause uses the same bar."""
        self.voice_threshold = voice_threshold
        self.player = player_factory(self._on_audio)
        self.bargein = bargein
        self.bus = bus
        self.send_audio = send_audio
        self.bot_active = bot_active
        self._task: asyncio.Task[None] | None = None
        self._first_sent = True
        self._now = 0.0  # caller stream time, from the recognizer's voice activity
        # Barge-in first: its decision on a final must reach the turn-taker before the final does.
        bus.subscribe(self._on_caller, VoiceActivity, SpeechStarted, SpeechEnded, Transcript)
        bus.subscribe(self._on_utterance, BotUtterance)

    @property
    def busy(self) -> bool:
        return self._task is not None and not self._task.done()

    # ------------------------------------------------------------------ speaking
    async def _on_utterance(self, utterance: BotUtterance) -> None:
        if not utterance.text or not self.bot_active():
            return  # a turn decided just before an agent took over must not talk over the agent
        await self.stop()
        self._task = asyncio.create_task(self._play(utterance.text), name=f"speak-{self.bus.call_id}")
        self._task.add_done_callback(self._played)

    def _played(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("call %s: bot speech failed", self.bus.call_id, exc_info=task.exception())
        self.bus.poke()  # wait_idle sleeps on the bus

    async def _play(self, text: str) -> None:
        await self.bus.publish(BotSpeechStarted())
        self._first_sent = False
        self.bargein.playback_started()
        try:
            result = await self.player.speak(text)
        finally:
            self.bargein.playback_finished()
        await self.bus.publish(BotSpeechEnded(completed=result.completed, seconds=round(result.seconds, 3)))

    async def _on_audio(self, audio: BotAudio) -> None:
        if not self._first_sent:
            self._first_sent = True
            await self.bus.publish(BotFirstAudio(wall=time.perf_counter()))
        await self.send_audio(audio)

    async def stop(self) -> None:
        """Stop the utterance being spoken and wait until it has ended."""
        if self._task is not None and not self._task.done():
            self.player.stop()
            await asyncio.gather(self._task, return_exceptions=True)

    # ------------------------------------------------------------------ barge-in
    async def _on_caller(self, frame: object) -> None:
        bargein = self.bargein
        if isinstance(frame, VoiceActivity):
            self._now = frame.t
            if self.voice_threshold is not None:
                bargein.voice_threshold = self.voice_threshold()
            if self.player.speaking and self.bot_active():
                await self._act(bargein.on_voice(frame.t, frame.probability))  # the early pause
            await self._act(bargein.tick(frame.t))
        elif isinstance(frame, SpeechStarted):
            await self._act(bargein.on_speech_started(frame.t))
        elif isinstance(frame, SpeechEnded):
            await self._act(bargein.on_speech_ended(frame.t, frame.start))
        elif isinstance(frame, Transcript):
            await self._act(bargein.on_transcript(frame.text, frame.is_final), frame.text)

    async def _act(self, action: BargeInAction, text: str = "") -> None:
        if action is BargeInAction.NONE or not self.bot_active():
            return
        self.player.apply(action)
        await self.bus.publish(BargeIn(action=action.value, t=round(self._now, 3), text=text))

    async def aclose(self) -> None:
        self.player.stop()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

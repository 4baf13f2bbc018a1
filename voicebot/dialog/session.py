"""One call through the whole pipeline, assembled from the call core's stages.

``CallSession`` builds the call's frame bus (``voicebot.call``) and connects,
in this order: the end-of-turn stage (where the models are loaded), the speaker
(barge-in decides before the turn-taker sees a final), the turn-taker, the dialog,
the no-input timer, then the observers (latency, record, wire events). Caller
audio goes in through ``push_audio``; every event leaves as a typed ``CallEvent``
through ``emit``, bot audio through ``send_audio``. The transports (native websocket, Twilio,
``voicebot call``, evaluations) differ only in those two sinks.

Path of one caller audio frame: ``push_audio`` → recognizer stage
(``StreamingRecognizer``: resample, VAD/endpointer, ASR scheduler) → bus →
turn-taker → dialog (intent client, policy) → speaker (TTS client, player) →
``send_audio``; the event observer hands each event to ``emit`` on the way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from functools import partial
from typing import Any

from voicebot.call.bus import FrameBus
from voicebot.call.clients import EngineClients
from voicebot.call.continuation import ContinuationTracker
from voicebot.call.dialog import DialogStage
from voicebot.call.eot import EndOfTurnStage
from voicebot.call.events import EventObserver, EventSink
from voicebot.call.latency import LatencyObserver
from voicebot.call.no_input import NoInputStage
from voicebot.call.recognizer import RecognizerStage
from voicebot.call.record import CallRecord, RecordObserver
from voicebot.call.speaker import SpeakerStage
from voicebot.call.speculation import PrimedSpeech, SpeculationStage
from voicebot.call.turns import TurnTaker
from voicebot.config import Settings
from voicebot.dialog.domain import Domain
from voicebot.dialog.policy import CallPolicy
from voicebot.frames import (
    AgentReleased,
    AgentTookOver,
    AudioFrame,
    BotAudio,
    EndOfCall,
    SessionStarted,
    Transcript,
)
from voicebot.tts.bargein import BargeInController
from voicebot.tts.playback import TtsPlayer
from voicebot.turn.decision import TurnEndDecider

log = logging.getLogger(__name__)

AudioSink = Callable[[BotAudio], Awaitable[None]]
__all__ = ["AudioSink", "CallRecord", "CallSession", "EventSink"]


class CallSession:
    def __init__(
        self,
        clients: EngineClients,
        settings: Settings,
        call_id: str,
        *,
        domain: Domain,
        emit: EventSink,
        send_audio: AudioSink,
        out_rate: int,
        realtime: bool = True,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        from voicebot.asr.streaming import StreamingRecognizer

        self.clients = clients
        self.settings = settings
        self.call_id = call_id
        self.metadata = metadata or {}
        self.realtime = realtime
        self.state = "bot"  # bot | human | ended
        self.bus = FrameBus(call_id)
        self.policy = CallPolicy(domain, call_id)
        recognizer_settings = settings
        if clients.end_of_turn is not None:
            # The end-of-turn stage ends confident turns early; the endpointer's silence is the fallback.
            recognizer_settings = replace(
                settings, vad=replace(settings.vad, end_silence_ms=int(settings.turn.max_silence_ms)))
        self.recognizer = StreamingRecognizer(  # type: ignore[arg-type]
            clients.asr, recognizer_settings, call_id, clients.vad_model)
        self.recognizer_stage = RecognizerStage(self.recognizer, self.bus)
        self.end_of_turn = (EndOfTurnStage(self.bus, self.recognizer_stage, clients.end_of_turn,
                                           TurnEndDecider(settings.turn), concern=self._concern_so_far)
                            if clients.end_of_turn is not None else None)
        # The player synthesizes through PrimedSpeech: a speculative answer's first sentence is held there.
        self.speech = PrimedSpeech(clients.speech)
        player = partial(TtsPlayer, self.speech, out_rate, frame_ms=settings.tts.frame_ms, realtime=realtime,
                         lead_ms=settings.tts.playback_lead_ms)
        self.speaker = SpeakerStage(player, BargeInController.from_settings(settings.tts), self.bus,
                                    send_audio, bot_active=self._bot_active,
                                    voice_threshold=lambda: self.recognizer.endpointer.settings.threshold)
        # Voice heard but not yet a turn counts as speaking: an answer released then cuts in (about half the bot's
        # cut-ins on the phone bench came 0.14-0.34 s after the caller had spoken again).
        self.turns = TurnTaker(
            self.bus, settings.vad.max_turn_s,
            caller_speaking=lambda: self.recognizer.in_speech or self.recognizer.endpointer.voice_pending)
        self.speculation = (SpeculationStage(self.policy, clients.intent, self.speech, self.bus,
                                             can_speculate=self._can_speculate, concern=self._concern_so_far)
                            if settings.turn.speculate else None)
        self.continuations = ContinuationTracker(self.bus, settings.turn.continuation_ms / 1000.0)
        self.dialog = DialogStage(self.policy, clients.intent, self.bus, bot_active=self._bot_active,
                                  speculation=self.speculation, continuations=self.continuations)
        # A caller silent after the bot's question is asked again, then handed to a person.
        self.no_input = NoInputStage(
            self.bus, self.dialog, settings.dialog.no_input_s, hold_s=settings.dialog.no_input_hold_s,
            caller_pending=lambda: self.recognizer_stage.in_speech or self.turns.in_speech or self.turns.busy)
        self.latency = LatencyObserver(self.bus)
        self._record = RecordObserver(self.bus)
        self.events = EventObserver(self.bus, call_id, emit, self.latency)

    def _bot_active(self) -> bool:
        return self.state == "bot"

    def _log_speculation(self) -> None:
        """One line per call: how many speculations were used and what the discarded ones cost."""
        assert self.speculation is not None
        st, asr = self.speculation.stats, self.recognizer.speculation
        log.info("call %s: speculation turns=%d answered=%d committed=%d discarded=%d discarded_s=%.3f "
                 "asr_used=%d asr_wasted=%d asr_wasted_s=%.3f", self.call_id, len(self.record.turns), st.started,
                 st.committed, st.discarded, st.discarded_seconds, asr["used"], asr["wasted"],
                 self.recognizer.wasted_seconds)

    def _can_speculate(self) -> bool:
        """A speculative answer could be this turn's: the bot has the call, no other turn is being answered.
        Finals held for the rest of the concern are answered with it (``_concern_so_far``)."""
        return self._bot_active() and not self.dialog.busy

    def _concern_so_far(self) -> tuple[Transcript, ...]:
        """The finals of the caller's concern said before the ongoing turn: an answer the caller talked over
        at once (taken back and answered with this turn) and the finals the turn-taker holds for it."""
        return (*self.continuations.talked_over(), *self.turns.held)

    @property
    def record(self) -> CallRecord:
        return self._record.record

    @property
    def player(self) -> TtsPlayer:
        return self.speaker.player

    # ------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        await self.bus.publish(SessionStarted(metadata=self.metadata, realtime=self.realtime))
        self.recognizer_stage.start()
        self.dialog.start()
        await self.dialog.greet()

    async def push_audio(self, frame: AudioFrame) -> None:
        """Feed caller audio (any supported rate). Returns quickly; turns are handled in the background."""
        if self.state == "ended" or len(frame.pcm) == 0:
            return
        await self.recognizer_stage.push(frame)

    async def flush(self) -> None:
        """End of caller input: close an open turn and wait until it is handled."""
        await self.recognizer_stage.flush()
        await self.wait_idle()

    @property
    def busy(self) -> bool:
        return (self.recognizer_stage.in_speech or self.turns.busy or self.dialog.busy or self.speaker.busy)

    async def wait_idle(self, limit_s: float = 120.0) -> None:
        """Wait until no turn is pending and the bot has finished speaking (offline simulation)."""
        try:
            async with asyncio.timeout(limit_s):
                while self.busy:
                    await self.bus.wait_change()
        except TimeoutError:
            raise TimeoutError(f"call {self.call_id}: not idle after {limit_s} s") from None

    async def take_over(self, agent_id: str) -> None:
        if self.state != "bot":
            return
        self.state = "human"
        self.speaker.player.stop()
        await self.bus.publish(AgentTookOver(agent_id))

    async def release(self, agent_id: str) -> None:
        if self.state != "human":
            return
        self.state = "bot"
        await self.bus.publish(AgentReleased(agent_id))

    async def end(self, reason: str = "completed") -> None:
        if self.state == "ended":
            return
        self.state = "ended"
        await self.speaker.aclose()
        if self.speculation is not None:
            await self.speculation.aclose()
            self._log_speculation()
        if self.end_of_turn is not None:
            await self.end_of_turn.aclose()
        await self.dialog.aclose()
        await self.recognizer_stage.aclose()
        record = self.record
        await self.bus.publish(EndOfCall(reason=reason, route=record.route, handoff=bool(record.handoff)))

"""One call through the whole pipeline: audio → VAD/ASR → intent → policy → TTS.

A ``CallSession`` is fed caller audio and emits every event (dicts with a ``type``)
to an async sink, and bot audio to another. The transports (native websocket,
Twilio, `voicebot call`, evaluations) differ only in those two sinks.

Turns are handled in a background task, one at a time, so caller audio keeps
flowing (and barge-in keeps working) while the bot thinks and speaks.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from voicebot.config import Settings
from voicebot.dialog.policy import CallPolicy, PolicyStep
from voicebot.engines import Engines
from voicebot.frames import AudioFrame, BotAudio, SpeechEnded, SpeechStarted, Transcript
from voicebot.nlu.slots import extract_slots
from voicebot.tts.bargein import BargeInAction, BargeInController
from voicebot.tts.playback import TtsPlayer

log = logging.getLogger(__name__)

POLL_INTERVAL_S = 0.05
EventSink = Callable[[dict[str, Any]], Awaitable[None]]
AudioSink = Callable[[BotAudio], Awaitable[None]]


@dataclass
class TurnTiming:
    """Wall-clock marks of one caller turn (seconds, time.perf_counter)."""

    speech_end: float = 0.0  # when the caller's last speech sample arrived
    endpoint: float = 0.0  # when the endpointer closed the turn
    final: float = 0.0  # final transcript ready
    intent: float = 0.0  # intent + policy decided
    first_audio: float = 0.0  # first bot audio frame sent

    def breakdown(self) -> dict[str, float]:
        def ms(a: float, b: float) -> float:
            return round((b - a) * 1000.0, 1) if a and b else -1.0

        return {
            "endpoint_ms": ms(self.speech_end, self.endpoint),
            "asr_ms": ms(self.endpoint, self.final),
            "intent_ms": ms(self.final, self.intent),
            "tts_first_audio_ms": ms(self.intent, self.first_audio),
            "voice_to_voice_ms": ms(self.speech_end, self.first_audio),
        }


@dataclass
class CallRecord:
    """What the session knows about the call so far (for summaries and `voicebot call`)."""

    transcript: list[dict[str, Any]] = field(default_factory=list)
    turns: list[dict[str, Any]] = field(default_factory=list)
    route: str | None = None
    handoff: dict[str, Any] | None = None
    first_intent: str | None = None


class CallSession:
    def __init__(
        self,
        engines: Engines,
        settings: Settings,
        call_id: str,
        *,
        emit: EventSink,
        send_audio: AudioSink,
        out_rate: int,
        realtime: bool = True,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        from voicebot.asr.streaming import StreamingRecognizer

        self.engines = engines
        self.settings = settings
        self.call_id = call_id
        self.metadata = metadata or {}
        self.realtime = realtime
        self.state = "bot"  # bot | human | ended
        self.record = CallRecord()
        self._emit_sink = emit
        self._send_audio_sink = send_audio
        self.policy = CallPolicy(engines.domain, call_id)
        self.recognizer = StreamingRecognizer(engines.scheduler, settings, call_id, engines.vad_model)
        self.player = TtsPlayer(
            engines.synthesizer,
            out_rate,
            self._on_bot_audio,
            frame_ms=settings.tts.frame_ms,
            realtime=realtime,
        )
        self._turns: asyncio.Queue[Transcript | None] = asyncio.Queue()
        self._turn_task: asyncio.Task[None] | None = None
        self._poll_task: asyncio.Task[None] | None = None
        self._speech_task: asyncio.Task[None] | None = None
        self._timing = TurnTiming()
        self.bargein = BargeInController(settings.tts.backchannel_max_ms)
        self._idle = asyncio.Event()
        self._idle.set()

    # ---------------------------------------------------------------- events
    async def emit(self, event: dict[str, Any]) -> None:
        event.setdefault("call_id", self.call_id)
        event.setdefault("ts", time.time())
        try:
            await self._emit_sink(event)
        except Exception:  # noqa: BLE001 - a broken sink must not kill the call's pipeline
            log.exception("call %s: event sink failed for %s", self.call_id, event.get("type"))

    async def _on_bot_audio(self, audio: BotAudio) -> None:
        if self._timing.intent and not self._timing.first_audio:
            self._timing.first_audio = time.perf_counter()
            await self.emit({"type": "latency", **self._timing.breakdown()})
        await self._send_audio_sink(audio)

    # ------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        await self.emit({"type": "call.start", "metadata": self.metadata, "realtime": self.realtime})
        self._turn_task = asyncio.create_task(self._turn_loop(), name=f"turns-{self.call_id}")
        self._poll_task = asyncio.create_task(self._poll_loop(), name=f"poll-{self.call_id}")
        await self._apply(self.policy.start())

    async def push_audio(self, frame: AudioFrame) -> None:
        """Feed caller audio (any supported rate). Returns quickly; turns are handled in the background."""
        if self.state == "ended":
            return
        if len(frame.pcm) == 0:
            return
        arrived = time.perf_counter()
        # The recognizer resamples to 16 kHz itself and picks the narrowband VAD threshold for 8 kHz callers.
        for out in await self.recognizer.push(frame):
            await self._on_recognizer_frame(out, arrived)
        for out in await self.recognizer.poll():
            await self._on_recognizer_frame(out, arrived)
        if self.player.playing and self.state == "bot":
            # The early pause: per-frame voice probability, before the endpointer confirms a turn.
            endpointer = self.recognizer.endpointer
            await self._bargein(self.bargein.on_voice(endpointer.time, endpointer.last_probability))
        await self._bargein(self.bargein.tick(self.recognizer.endpointer.time))

    async def _on_recognizer_frame(self, frame: Any, arrived: float) -> None:
        if isinstance(frame, SpeechStarted):
            self._idle.clear()
            await self.emit(frame.to_event())
            await self._bargein(self.bargein.on_speech_started(frame.t))
        elif isinstance(frame, SpeechEnded):
            self._timing = TurnTiming(endpoint=arrived)
            # The caller's last speech sample arrived end_silence_ms before the endpointer closed the turn.
            silence = self.settings.vad.end_silence_ms / 1000.0
            self._timing.speech_end = arrived - silence if self.realtime else arrived
            await self.emit(frame.to_event())
            await self._bargein(self.bargein.on_speech_ended(frame.t, frame.start))
        elif isinstance(frame, Transcript):
            action = self.bargein.on_transcript(frame.text, frame.is_final)
            await self._bargein(action, frame.text)
            if frame.is_final:
                self._timing.final = time.perf_counter()
                event = frame.to_event()
                event["latency_ms"] = self._timing.breakdown()["asr_ms"]
                await self.emit(event)
                if action is BargeInAction.RESUME:
                    return  # a backchannel ("mhm", "ja") while the bot speaks: not a turn
                self.record.transcript.append({"speaker": "caller", "text": frame.text, "t": frame.start})
                await self._turns.put(frame)
            else:
                await self.emit(frame.to_event())

    async def _bargein(self, action: BargeInAction, text: str = "") -> None:
        if action is BargeInAction.NONE or self.state != "bot":
            return
        self.player.apply(action)
        t = round(self.recognizer.endpointer.time, 3)
        event: dict[str, Any] = {"type": "bargein", "action": action.value, "t": t}
        if text:
            event["text"] = text
        await self.emit(event)

    async def _poll_loop(self) -> None:
        """Collect decodes that finish while no audio arrives (a browser may send nothing during silence)."""
        while self.state != "ended":
            await asyncio.sleep(POLL_INTERVAL_S)
            for out in await self.recognizer.poll():
                await self._on_recognizer_frame(out, time.perf_counter())

    async def flush(self) -> None:
        """End of caller input: close an open turn and wait until it is handled."""
        for out in await self.recognizer.flush():
            await self._on_recognizer_frame(out, time.perf_counter())
        await self.wait_idle()

    async def wait_idle(self, limit_s: float = 120.0) -> None:
        """Wait until no turn is pending and the bot has finished speaking (for offline simulation)."""
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            for out in await self.recognizer.poll():
                await self._on_recognizer_frame(out, time.perf_counter())
            busy = (
                not self._turns.empty()
                or not self._idle.is_set()
                or self.recognizer.in_speech
                or (self._speech_task is not None and not self._speech_task.done())
            )
            if not busy:
                return
            await asyncio.sleep(0.02)
        raise TimeoutError(f"call {self.call_id}: not idle after {limit_s} s")

    async def take_over(self, agent_id: str) -> None:
        if self.state != "bot":
            return
        self.state = "human"
        self.player.stop()
        await self.emit({"type": "agent.takeover", "agent_id": agent_id})

    async def release(self, agent_id: str) -> None:
        if self.state != "human":
            return
        self.state = "bot"
        await self.emit({"type": "agent.release", "agent_id": agent_id})

    async def end(self, reason: str = "completed") -> None:
        if self.state == "ended":
            return
        self.state = "ended"
        self.player.stop()
        await self._turns.put(None)
        for task in (self._turn_task, self._speech_task, self._poll_task):
            if task is not None and not task.done():
                task.cancel()
                try:
                    await task
                except (asyncio.CancelledError, Exception):  # noqa: BLE001 - shutting down
                    pass
        await self.emit({"type": "call.end", "reason": reason, "route": self.record.route,
                         "handoff": bool(self.record.handoff)})

    # ----------------------------------------------------------------- turns
    async def _turn_loop(self) -> None:
        while True:
            first = await self._turns.get()
            if first is None:
                return
            transcript = await self._collect_turn(first)
            try:
                await self._handle_turn(transcript)
            except Exception as exc:  # noqa: BLE001 - one bad turn must not end the call
                log.exception("call %s: turn failed", self.call_id)
                await self.emit({"type": "error", "code": "turn_failed", "message": str(exc)})
            finally:
                if self._turns.empty() and not self.recognizer.in_speech:
                    self._idle.set()

    async def _collect_turn(self, first: Transcript) -> Transcript:
        """Merge finals of one concern said with pauses ("Meine Bestellung fehlt. ... Sie sollte
        letzte Woche kommen."): while the caller is speaking again before the bot has answered,
        wait for that part too, so the concern is one turn and not two."""
        parts = [first]
        deadline = time.monotonic() + self.settings.vad.max_turn_s
        while time.monotonic() < deadline:
            if not self._turns.empty():
                following = self._turns.get_nowait()
                if following is None:
                    self._turns.put_nowait(None)  # the call is ending: answer what we have
                    break
                parts.append(following)
                continue
            if not self.recognizer.in_speech:
                break
            await asyncio.sleep(0.02)
        if len(parts) == 1:
            return first
        texts = [p.text.strip() for p in parts if p.text.strip()]
        spoken = [p for p in parts if p.text.strip()] or parts
        return Transcript(
            text=" ".join(texts),
            is_final=True,
            confidence=min(p.confidence for p in spoken),
            words=tuple(w for p in parts for w in p.words),
            start=parts[0].start,
            end=parts[-1].end,
        )

    async def _handle_turn(self, transcript: Transcript) -> None:
        if self.state != "bot" or not transcript.text.strip():
            return
        loop = asyncio.get_running_loop()
        text = transcript.text
        prediction = await loop.run_in_executor(None, self.engines.intent.predict, text)
        slots = extract_slots(text)
        step = self.policy.on_turn(text, transcript.confidence, prediction, slots)
        self._timing.intent = time.perf_counter()
        turn = {"caller": text, "asr_confidence": round(transcript.confidence, 4), "intent": prediction.label,
                "confidence": round(prediction.confidence, 4), "slots": slots}
        if self.record.first_intent is None and step.intent is not None:
            self.record.first_intent = step.intent.label
        await self._apply(step, turn)

    async def _apply(self, step: PolicyStep, turn: dict[str, Any] | None = None) -> None:
        if step.intent is not None:
            await self.emit(step.intent.to_event())
        if step.route is not None:
            self.record.route = step.route.route
            await self.emit(step.route.to_event())
        if step.handoff is not None:
            self.record.handoff = step.handoff.to_event()
            if step.route is None and self.record.route is None:
                self.record.route = "mensch"
            await self.emit(step.handoff.to_event())
        if turn is not None:
            turn.update({"bot": step.say, "action": step.action, "route": self.record.route})
            self.record.turns.append(turn)
        if step.say:
            self.record.transcript.append({"speaker": "bot", "text": step.say})
            await self.emit({"type": "bot.utterance", "text": step.say, "action": step.action})
            await self._speak(step.say)
        # step.end_call is not acted on here yet: the transport (or the agent) ends the call, so a
        # routed caller is never cut off by the bot before the transfer happens.

    async def _speak(self, text: str) -> None:
        if self._speech_task is not None and not self._speech_task.done():
            self.player.stop()
            await asyncio.gather(self._speech_task, return_exceptions=True)
        self._speech_task = asyncio.create_task(self._play(text), name=f"speak-{self.call_id}")

    async def _play(self, text: str) -> None:
        await self.emit({"type": "bot.audio.start"})
        self.bargein.playback_started()
        try:
            result = await self.player.speak(text)
        finally:
            self.bargein.playback_finished()
        await self.emit({"type": "bot.audio.end", "completed": result.completed, "seconds": round(result.seconds, 3)})

"""The turn-taker: where a caller's turn ends.

It listens to the recognizer's frames and publishes one ``UserTurn`` per
concern. A concern said with pauses ("Meine Bestellung fehlt. ... Sie sollte
letzte Woche kommen.") reaches it as several finals; while the caller is
speaking again, the finals so far wait for the next one, so the dialog answers
the whole concern once (bounded by ``vad.max_turn_s``). A backchannel that only
resumed the bot's speech ("mhm" over the bot) is not a turn.

The end-of-turn signal today is the endpointer's silence; the end-of-turn models
(``voicebot.turn``) plug in here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from voicebot.call.bus import FrameBus
from voicebot.frames import BargeIn, SpeechEnded, SpeechStarted, Transcript, UserTurn, VoiceActivity


class TurnTaker:
    def __init__(self, bus: FrameBus, max_turn_s: float, caller_speaking: Callable[[], bool]) -> None:
        """``caller_speaking``: the recognizer's live state. A final reaches us in stream order, so
        the caller may already be speaking again although that ``SpeechStarted`` is still queued
        behind the final."""
        self.bus = bus
        self.max_turn_s = max_turn_s
        self.caller_speaking = caller_speaking
        self.in_speech = False
        self._parts: list[Transcript] = []
        self._backchannel: str | None = None
        self._deadline: asyncio.TimerHandle | None = None
        # Finals held only because the caller's voice was back but not yet a turn (``caller_speaking`` while no
        # turn is open): if that voice never becomes one (a cough, a click), the next silent frame releases them.
        self._held_for_voice = False
        bus.subscribe(self.on_frame, SpeechStarted, SpeechEnded, Transcript, BargeIn, VoiceActivity)

    @property
    def busy(self) -> bool:
        """Finals wait for the rest of the concern."""
        return bool(self._parts)

    @property
    def held(self) -> tuple[Transcript, ...]:
        """The finals waiting for the rest of the concern, in order."""
        return tuple(self._parts)

    async def on_frame(self, frame: object) -> None:
        if isinstance(frame, SpeechStarted):
            self.in_speech = True
            self._held_for_voice = False  # it became a turn: its final comes and joins the held ones
        elif isinstance(frame, SpeechEnded):
            self.in_speech = False
        elif isinstance(frame, BargeIn):
            # The speaker decided on this transcript before us (it subscribed first).
            self._backchannel = frame.text if frame.action == "resumed" else None
        elif isinstance(frame, Transcript) and frame.is_final:
            await self._on_final(frame)
        elif isinstance(frame, VoiceActivity):
            if self._held_for_voice and self._parts and not self.in_speech and not self.caller_speaking():
                await self.release()

    async def _on_final(self, final: Transcript) -> None:
        if self._backchannel is not None and final.text == self._backchannel:
            self._backchannel = None
            return  # "mhm" while the bot speaks: the bot goes on, nothing to answer
        self._backchannel = None
        self._parts.append(final)
        if self.in_speech or self.caller_speaking():
            self._held_for_voice = not self.in_speech
            if self._deadline is None:
                self._deadline = asyncio.get_running_loop().call_later(
                    self.max_turn_s, lambda: asyncio.ensure_future(self.release()))
            return
        await self.release()

    async def release(self) -> None:
        """Publish the finals gathered so far as one turn."""
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        parts, self._parts = self._parts, []
        self._held_for_voice = False
        if parts:
            await self.bus.publish(UserTurn(transcript=merge(parts), parts=tuple(parts)))


def merge(parts: list[Transcript]) -> Transcript:
    """One final of several: texts joined, the weakest confidence, all words."""
    if len(parts) == 1:
        return parts[0]
    spoken = [p for p in parts if p.text.strip()] or parts
    return Transcript(
        text=" ".join(p.text.strip() for p in spoken if p.text.strip()),
        is_final=True,
        confidence=min(p.confidence for p in spoken),
        words=tuple(w for p in parts for w in p.words),
        start=parts[0].start,
        end=parts[-1].end,
    )

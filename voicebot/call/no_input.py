"""No input: the caller says nothing after the bot's question.

Every IVR handles it: the line went quiet, the caller is confused or has walked off.
Without it the bot waits forever. When the bot has finished speaking (``BotSpeechEnded``)
a wait of ``dialog.no_input_s`` starts. A caller turn (``UserTurn``) ends it, and so do new bot
speech (``BotSpeechStarted``), a human on the call (``AgentTookOver`` until ``AgentReleased``) and
the end of the call. A caller's sound (``SpeechStarted``, voiced ``VoiceActivity``, a turn without words)
only starts the wait again from that sound: a cough, a door or a burst of line noise that the
recognizer hears no words in must not leave the bot waiting forever.
After the bot's "Gern, ich warte." (action ``hold``: the caller looks a number up) the wait is
``dialog.no_input_hold_s`` instead. When it runs out, the dialog stage applies the policy's no-input
step on its own task (``DialogStage.no_input``): the question again, and after a second silence in a row the
call goes to a human (handoff reason ``no_input``). Nothing happens while a caller turn
is on its way (the dialog has one, the turn-taker holds finals, the caller is mid-speech):
its answer comes anyway.

The wait is measured on the wall clock: a browser sends no audio while the caller is
quiet, so the caller's stream clock would stand still. A server too far behind the
caller's audio to see their speech within ``no_input_s`` would ask again; such a server
has failed the call already.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from voicebot.call.bus import FrameBus
from voicebot.call.dialog import DialogStage
from voicebot.frames import (
    AgentReleased,
    AgentTookOver,
    BotSpeechEnded,
    BotSpeechStarted,
    BotUtterance,
    EndOfCall,
    SpeechStarted,
    UserTurn,
    VoiceActivity,
)


def _never() -> bool:
    return False


class NoInputStage:
    def __init__(
        self, bus: FrameBus, dialog: DialogStage, timeout_s: float, *, caller_pending: Callable[[], bool] = _never,
        hold_s: float | None = None,
    ) -> None:
        """``timeout_s``: caller silence after the bot spoke before the policy's no-input step (0 = off).
        ``hold_s``: the same after the bot said it waits (``hold``; default ``timeout_s``).
        ``caller_pending``: a caller turn is under way outside the dialog (speech, finals held for more)."""
        self.dialog = dialog
        self.timeout_s = timeout_s
        self.hold_s = timeout_s if hold_s is None else hold_s
        self._last_action = ""  # the action of the bot's last utterance
        self.caller_pending = caller_pending
        self.fired = 0  # no-input steps queued in this call (observability)
        self._timer: asyncio.TimerHandle | None = None
        self._wait = 0.0  # the wait in force while armed
        self._deadline = 0.0  # loop time it runs out: pushed on by each caller sound
        self._human = False
        self._ended = False
        if self.enabled:
            bus.subscribe(self._on_frame, BotSpeechEnded, BotSpeechStarted, SpeechStarted, VoiceActivity, UserTurn,
                          AgentTookOver, AgentReleased, EndOfCall)
            bus.subscribe(self._on_utterance, BotUtterance)

    @property
    def enabled(self) -> bool:
        return self.timeout_s > 0

    @property
    def armed(self) -> bool:
        return self._timer is not None

    async def _on_utterance(self, frame: BotUtterance) -> None:
        self._last_action = frame.action

    async def _on_frame(self, frame: object) -> None:
        if isinstance(frame, VoiceActivity) and not frame.voiced:
            return  # the line's silence (or hiss) is what the timer waits through
        wordless = isinstance(frame, UserTurn) and not frame.transcript.text.strip()  # the dialog answers no such turn
        if isinstance(frame, (SpeechStarted, VoiceActivity)) or wordless:
            if self.armed:  # the caller made a sound: the wait counts from it (see the module docstring)
                self._deadline = asyncio.get_running_loop().time() + self._wait
            return
        if isinstance(frame, AgentTookOver):
            self._human = True
        elif isinstance(frame, AgentReleased):
            self._human = False
        elif isinstance(frame, EndOfCall):
            self._ended = True
        self.disarm()
        if isinstance(frame, BotSpeechEnded) and not self._human and not self._ended:
            self._arm(self.hold_s if self._last_action == "hold" else self.timeout_s)

    def _arm(self, wait: float) -> None:
        loop = asyncio.get_running_loop()
        self._wait, self._deadline = wait, loop.time() + wait
        self._timer = loop.call_at(self._deadline, self._expired)

    def disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expired(self) -> None:
        loop = asyncio.get_running_loop()
        if loop.time() < self._deadline:  # a caller sound pushed the wait on
            self._timer = loop.call_at(self._deadline, self._expired)
            return
        self._timer = None
        if self._human or self._ended:
            return
        if self.caller_pending():  # a turn is on its way; if it comes to nothing, wait for the caller again
            self._arm(self._wait)
            return
        if self.dialog.no_input():
            self.fired += 1

"""Continuations: the caller was not done, and the bot's answer is taken back.

Callers pause between the sentences of one concern ("Meine Bestellung ist nicht
gekommen. [0.5 s] Ich habe sie vor zwei Wochen aufgegeben."). The end of a complete
sentence often looks like the end of the turn to the end-of-turn models, so the bot
may start its answer in that pause, and the caller talks on over it. Barge-in stops
the bot's audio; without this module the rest of the concern would then be answered
as a turn of its own ("Ich habe sie vor zwei Wochen aufgegeben." alone: a re-ask),
and the policy would already have moved on the first half.

``ContinuationTracker`` remembers the last answer that can be taken back (one that
neither routes nor hands off: those are already on their way to a person) with the
policy state from before it. If the caller's voice comes within ``window_s`` of that
answer's first audio and stops it (a real turn, not a backchannel), the caller had not
heard the question: they were still talking. The dialog stage then restores the
policy and answers both parts as one turn. A caller who answers the bot's question
speaks after hearing it, later than the window.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from voicebot.call.bus import FrameBus
from voicebot.call.speculation import fork_policy
from voicebot.call.turns import merge
from voicebot.dialog.policy import CallPolicy, PolicyStep
from voicebot.frames import BargeIn, BotFirstAudio, Transcript, UserTurn


@dataclass
class _Answer:
    """An answer that can still be taken back, with the policy state from before its turn."""

    turn: UserTurn
    before: CallPolicy
    first_audio: float | None = None  # monotonic time its first audio left, once it has
    paused_early: bool = False  # the caller's voice paused it within the window
    interrupted: bool = False  # ... and then stopped it: the caller was still talking


def can_take_back(step: PolicyStep) -> bool:
    """Routes and handoffs are on their way to a person; a re-ask, a confirmation or a slot question are not."""
    return step.route is None and step.handoff is None and not step.end_call and bool(step.say)


def restore_policy(policy: CallPolicy, before: CallPolicy) -> None:
    """Put ``policy`` back into the state of ``before`` (a ``fork_policy`` copy), in place: the
    session, speculation and dialog stages share the one policy object."""
    for name, value in vars(fork_policy(before)).items():
        if name != "domain":
            setattr(policy, name, value)


class ContinuationTracker:
    def __init__(self, bus: FrameBus, window_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.window_s = window_s
        self.clock = clock
        self._answer: _Answer | None = None
        self.taken_back = 0  # answers taken back in this call (observability)
        if self.enabled:
            bus.subscribe(self._on_frame, BotFirstAudio, BargeIn)

    @property
    def enabled(self) -> bool:
        return self.window_s > 0

    def answered(self, turn: UserTurn, before: CallPolicy, step: PolicyStep) -> None:
        """The dialog answered ``turn``; ``before`` is the policy state from before it."""
        self._answer = _Answer(turn, before) if self.enabled and can_take_back(step) else None

    def talked_over(self) -> tuple[Transcript, ...]:
        """The parts of the answered turn the caller talked over (``take_back`` will join them to the next
        turn); empty when there is none."""
        answer = self._answer
        if answer is None or not answer.interrupted:
            return ()
        return answer.turn.parts or (answer.turn.transcript,)

    def forget(self) -> None:
        self._answer = None

    async def _on_frame(self, frame: object) -> None:
        answer = self._answer
        if answer is None:
            return
        if isinstance(frame, BotFirstAudio):
            if answer.first_audio is None:
                answer.first_audio = self.clock()
        elif isinstance(frame, BargeIn):
            if frame.action == "paused":
                started = answer.first_audio
                answer.paused_early = started is None or self.clock() - started <= self.window_s
            elif frame.action == "resumed":
                answer.paused_early = False  # a backchannel: the bot went on
            elif frame.action == "stopped":
                answer.interrupted = answer.paused_early

    def take_back(self, turn: UserTurn, policy: CallPolicy) -> UserTurn:
        """``turn`` itself, or, when it continues an answer the caller talked over, both turns as one
        with ``policy`` restored to before the first."""
        answer, self._answer = self._answer, None
        if answer is None or not answer.interrupted:
            return turn
        restore_policy(policy, answer.before)
        self.taken_back += 1
        parts = [*(answer.turn.parts or (answer.turn.transcript,)), *(turn.parts or (turn.transcript,))]
        return UserTurn(transcript=merge(parts), parts=tuple(parts))

"""The dialog stage: a caller turn in, what the bot understood and does out.

Turns are handled one at a time by the stage's own task (the intent model runs on
an engine client), so caller audio and barge-in keep flowing while the bot thinks.
For each turn it publishes, in order: ``Intent``, ``Route``, ``Handoff`` (as the
policy decides), ``TurnDecided`` (the turn's record), then the ``BotUtterance``
for the speaker. The greeting is the policy's first step. A turn that a speculation
(``voicebot.call.speculation``) already answered takes its intent and slots from it;
the policy step is applied here, on commit, and only here. An answer the caller talked
over because they were not done yet is taken back (``voicebot.call.continuation``): the
policy returns to before it and both parts are answered as one turn. A caller who stays
silent after the bot's question (``voicebot.call.no_input``) is answered on the same task,
in turn order, so it never races a turn (``no_input``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from voicebot.call.bus import FrameBus
from voicebot.call.clients import IntentClient
from voicebot.call.continuation import ContinuationTracker
from voicebot.call.speculation import SpeculationStage, fork_policy
from voicebot.dialog.policy import CallPolicy, PolicyStep
from voicebot.frames import BotUtterance, Error, TurnDecided, UserTurn
from voicebot.nlu.slots import extract_slots

log = logging.getLogger(__name__)


class DialogStage:
    def __init__(
        self, policy: CallPolicy, intent: IntentClient, bus: FrameBus, *, bot_active: Callable[[], bool],
        speculation: SpeculationStage | None = None, continuations: ContinuationTracker | None = None,
    ) -> None:
        self.policy = policy
        self.speculation = speculation
        self.continuations = continuations
        self.intent = intent
        self.bus = bus
        self.bot_active = bot_active  # False while a human has the call
        self._turns: asyncio.Queue[UserTurn | None] = asyncio.Queue()  # None: the caller stayed silent
        self._handling = False
        self._task: asyncio.Task[None] | None = None
        bus.subscribe(self._on_turn, UserTurn)

    @property
    def busy(self) -> bool:
        return self._handling or not self._turns.empty()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"dialog-{self.bus.call_id}")

    async def greet(self) -> None:
        await self.apply(self.policy.start())

    async def _on_turn(self, turn: UserTurn) -> None:
        self._turns.put_nowait(turn)

    def no_input(self) -> bool:
        """Queue the policy's step for a caller who stayed silent; False (nothing queued) while a turn is handled
        or waits: its answer is on the way."""
        if self.busy:
            return False
        self._turns.put_nowait(None)
        return True

    async def _run(self) -> None:
        while True:
            turn = await self._turns.get()
            self._handling = True
            try:
                await (self._handle(turn) if turn is not None else self._no_input())
            except Exception as exc:  # noqa: BLE001 - one bad turn must not end the call
                log.exception("call %s: turn failed", self.bus.call_id)
                await self.bus.publish(Error("turn_failed", str(exc)))
            finally:
                self._handling = False
                self.bus.poke()

    async def _handle(self, turn: UserTurn) -> None:
        if self.continuations is not None:
            turn = self.continuations.take_back(turn, self.policy)
        transcript = turn.transcript
        text = transcript.text
        answer = await self.speculation.take(transcript) if self.speculation is not None else None
        if not self.bot_active() or not text.strip():
            return
        if answer is not None:
            prediction, slots = answer.prediction, answer.slots
        else:
            prediction = await self.intent.predict(text)
            slots = extract_slots(text)
        # The state to go back to if this answer is talked over (a copy per turn, only when it can be taken back).
        continuations = self.continuations if self.continuations is not None and self.continuations.enabled else None
        before = fork_policy(self.policy) if continuations is not None else None
        step = self.policy.on_turn(text, transcript.confidence, prediction, slots)
        if continuations is not None and before is not None:
            continuations.answered(turn, before, step)
        decided = TurnDecided(
            caller=text, asr_confidence=round(transcript.confidence, 4), intent=prediction.label,
            confidence=round(prediction.confidence, 4), slots=slots, say=step.say, action=step.action,
            wall=time.perf_counter(),
        )
        await self.apply(step, decided)

    async def _no_input(self) -> None:
        if not self.bot_active() or not self._turns.empty():
            return  # a human has the call, or the caller spoke after all
        if self.continuations is not None:
            self.continuations.forget()  # the question asked again is not an answer to take back
        await self.apply(self.policy.on_no_input())

    async def apply(self, step: PolicyStep, decided: TurnDecided | None = None) -> None:
        for frame in (step.intent, step.route, step.handoff, decided):
            if frame is not None:
                await self.bus.publish(frame)
        if step.say:
            await self.bus.publish(BotUtterance(step.say, step.action))
        # step.end_call is not acted on here: the transport (or the agent) ends the call, so a
        # routed caller is never cut off by the bot before the transfer happens.

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

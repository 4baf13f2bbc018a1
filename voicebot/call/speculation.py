"""Speculative answers: the bot's reply prepared at the caller's first pause, released on confirmation.

At the first pause (``turn.speculate_after_ms`` of silence) the recognizer decodes the turn
at final quality and publishes a ``SpeculativeFinal``. This stage then runs, in a task of
its own, what the dialog would do with that final: the intent, the slots, the policy step
(on a *fork* of the policy, so the call's dialog state does not move) and the synthesis
of the answer's first sentence, which is held in ``PrimedSpeech``, never sent.

* Confirmed (the end-of-turn model or the endpointer closes the turn with no speech since):
  the speculative decode IS the final (``StreamingRecognizer``: no second decode); the
  dialog stage asks ``take(transcript)``, gets the intent and slots already computed, applies
  the step to the real policy (the only place state advances) and the speaker finds the
  first sentence already synthesized.
* The caller goes on (``SpeculationDropped``): the task is cancelled and the held audio
  thrown away; nothing of it was heard, published or applied. The next pause speculates again.
* The rest of a concern (finals said before this turn wait for it, ``concern``): the speculation
  answers the whole concern, as the dialog will (the held finals and this one, merged).

Nothing here is a wire event; ``stats`` counts speculations committed and discarded and the
seconds spent on discarded ones (observability, the load benchmark).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from voicebot.call.bus import FrameBus
from voicebot.call.clients import IntentClient, SpeechClient
from voicebot.call.turns import merge
from voicebot.dialog.policy import CallPolicy
from voicebot.frames import SpeculationDropped, SpeculativeFinal, Transcript
from voicebot.nlu.slots import extract_slots
from voicebot.tts.base import split_sentences

if TYPE_CHECKING:
    from voicebot.nlu.intent import IntentPrediction
    from voicebot.tts.base import SynthesizedAudio

log = logging.getLogger(__name__)


class PrimedSpeech:
    """A ``SpeechClient`` that can synthesize a sentence ahead of time and hand it out once.

    The speaker's player asks ``synthesize(sentence)`` as always; a primed sentence comes
    from the held synthesis (awaited if still running) instead of a second one.
    """

    def __init__(self, inner: SpeechClient) -> None:
        self.inner = inner
        self._primed: dict[str, asyncio.Future[SynthesizedAudio]] = {}

    @property
    def sample_rate(self) -> int:
        return self.inner.sample_rate

    def prime(self, sentence: str) -> asyncio.Future[SynthesizedAudio]:
        self.drop()  # at most one held sentence: the newest speculation's
        future = asyncio.ensure_future(self.inner.synthesize(sentence))
        self._primed[sentence] = future
        return future

    def drop(self) -> None:
        """Throw away what is held (never heard)."""
        for future in self._primed.values():
            future.cancel()
        self._primed.clear()

    async def synthesize(self, sentence: str) -> SynthesizedAudio:
        future = self._primed.pop(sentence, None)
        if future is not None and not future.cancelled():
            with contextlib.suppress(Exception):  # a failed speculative synthesis: synthesize now
                return await asyncio.shield(future)
        return await self.inner.synthesize(sentence)


@dataclass(frozen=True)
class SpeculativeAnswer:
    """What the dialog would do with one speculative final (computed on a fork of the policy)."""

    prediction: IntentPrediction
    slots: dict[str, str]
    say: str


@dataclass
class SpeculationStats:
    started: int = 0  # speculative finals answered
    committed: int = 0  # ... whose answer the confirmed turn used
    discarded: int = 0  # ... thrown away (the caller went on, or the turn came out different)
    discarded_seconds: float = 0.0  # wall seconds of intent + synthesis spent on discarded ones
    answer_seconds: list[float] = field(default_factory=list)  # speculative final -> answer ready


@dataclass
class _Held:
    seq: int
    transcript: Transcript
    task: asyncio.Task[SpeculativeAnswer | None]
    started: float


def fork_policy(policy: CallPolicy) -> CallPolicy:
    """A copy of the policy whose state can advance without touching the call's (the domain is shared)."""
    clone = copy.copy(policy)
    for name, value in vars(policy).items():
        if name != "domain":
            setattr(clone, name, copy.deepcopy(value))
    return clone


class SpeculationStage:
    def __init__(
        self, policy: CallPolicy, intent: IntentClient, speech: PrimedSpeech, bus: FrameBus, *,
        can_speculate: Callable[[], bool], concern: Callable[[], Sequence[Transcript]] | None = None,
    ) -> None:
        """``can_speculate``: False while the answer could not be the turn's (a human has the call,
        the dialog is busy). ``concern``: the finals said before this turn that the dialog will answer
        with it (merged), in order."""
        self.policy = policy
        self.intent = intent
        self.speech = speech
        self.bus = bus
        self.can_speculate = can_speculate
        self.concern = concern or (lambda: ())
        self.stats = SpeculationStats()
        self._held: _Held | None = None
        bus.subscribe(self._on_frame, SpeculativeFinal, SpeculationDropped)

    @property
    def pending(self) -> asyncio.Task[SpeculativeAnswer | None] | None:
        """The held speculation's work (intent, policy fork, first sentence), if one is held."""
        return self._held.task if self._held is not None else None

    async def _on_frame(self, frame: object) -> None:
        if isinstance(frame, SpeculativeFinal):
            self.discard()
            if not frame.transcript.text.strip() or not self.can_speculate():
                return
            self.stats.started += 1
            earlier = tuple(self.concern())
            transcript = merge([*earlier, frame.transcript]) if earlier else frame.transcript
            task = asyncio.create_task(self._answer(transcript), name=f"speculate-{self.bus.call_id}")
            self._held = _Held(frame.seq, transcript, task, time.perf_counter())
        elif isinstance(frame, SpeculationDropped) and self._held is not None and self._held.seq == frame.seq:
            self.discard()

    async def _answer(self, transcript: Transcript) -> SpeculativeAnswer | None:
        started = time.perf_counter()
        prediction = await self.intent.predict(transcript.text)
        slots = extract_slots(transcript.text)
        step = fork_policy(self.policy).on_turn(transcript.text, transcript.confidence, prediction, slots)
        sentences = split_sentences(step.say)
        if sentences:
            await self.speech.prime(sentences[0])
        self.stats.answer_seconds.append(time.perf_counter() - started)
        return SpeculativeAnswer(prediction, slots, step.say)

    def discard(self) -> None:
        """Void the held speculation: cancel its work, drop its audio."""
        held, self._held = self._held, None
        if held is None:
            return
        self.stats.discarded += 1
        self.stats.discarded_seconds += time.perf_counter() - held.started
        held.task.cancel()
        self.speech.drop()

    async def take(self, transcript: Transcript) -> SpeculativeAnswer | None:
        """The answer prepared for this confirmed final, or None (then the dialog computes it).

        Only a speculation on exactly this transcript counts; its intent and slots depend on the
        text alone, and the policy step is recomputed on the real policy by the caller.
        """
        held, self._held = self._held, None
        if held is None:
            return None
        if (held.transcript.text, held.transcript.confidence) != (transcript.text, transcript.confidence):
            self._held = held
            self.discard()
            return None
        await asyncio.wait({held.task})  # the same work the dialog would start now, already under way
        answer = None
        if not held.task.cancelled():
            if (exc := held.task.exception()) is not None:  # the dialog computes it itself
                log.error("call %s: speculative answer failed", self.bus.call_id, exc_info=exc)
            else:
                answer = held.task.result()
        if answer is None:
            self.speech.drop()
            return None
        self.stats.committed += 1
        return answer

    async def aclose(self) -> None:
        held = self._held
        self.discard()
        if held is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await held.task

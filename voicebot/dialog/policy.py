"""The triage policy: a small explicit state machine, pure and synchronous.

States: ``start`` -> ``concern`` (what is the call about?) -> ``confirm_intent``
(middling confidence: "Es geht also um ..., richtig?") -> ``collect_slot`` /
``confirm_slot`` (ask for what the route needs, read it back) -> ``done``
(routed or handed to a human). Every turn first passes the safety check:
notfall, seelsorge and mitarbeiter escalate at once when their calibrated
score passes its operating point (fitted per safety intent at training time
for recall 1.0 on out-of-fold data, ``voicebot.nlu.safety``), or when the
keyword safety net fires, exactly or up to recognition errors. A safety top-1
below its operating point is not escalated (nonsense often lands there) but
re-asked: a false crisis escalation is the second-worst error.
Then low ASR confidence asks for a repeat instead of guessing, except for a slot answer that the
read-back will check anyway. Around the states: "Wie bitte?" gets the open question again
(``say_again``), "Moment bitte" while a slot is asked gets a wait (``hold``), and a caller silent
after the bot's question is asked again, then handed over (``on_no_input``, ``voicebot.dialog.reprompt``).

The policy does no I/O and holds no models: the session classifies the turn
and extracts slots, and passes them in. Thresholds and wording come from the
domain config (``pipelines/<domain>/domain.toml``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from voicebot.dialog.answers import is_hold, is_say_again, is_skip, text_answer, yes_no
from voicebot.dialog.domain import (
    Domain,
    SlotQuestion,
    default_decision,
    normalize,
    safety_keyword,
)
from voicebot.dialog.escalation import any_safety_keyword, fuzzy_safety_keyword, safety_escalation
from voicebot.dialog.reprompt import WAITING_STATES, no_input_text, say_again_text
from voicebot.dialog.summary import agent_summary, spoken_value
from voicebot.frames import Handoff, Intent, Route
from voicebot.nlu.intent import IntentPrediction

__all__ = ["CallPolicy", "PolicyStep", "default_decision", "fuzzy_safety_keyword", "normalize", "safety_escalation",
           "safety_keyword"]


MAX_HOLDS = 2  # "Moment bitte" answers to one slot question the bot waits out before it counts them as tries


@dataclass(frozen=True)
class PolicyStep:
    """What the bot does after one turn.

    ``context`` is the handoff context for a *routed* call (the receiving team
    sees the same picture an escalation carries in ``handoff.context``).
    """

    say: str
    action: str
    intent: Intent | None = None
    route: Route | None = None
    handoff: Handoff | None = None
    end_call: bool = False
    context: dict[str, Any] | None = None


class CallPolicy:
    """One call's triage state machine: ``start()``, then ``on_turn(...)`` per caller turn."""

    def __init__(self, domain: Domain, call_id: str = "") -> None:
        self.domain = domain
        self.call_id = call_id
        self.state = "start"
        self.failures = 0
        self.asr_repeats = 0
        self.slots: dict[str, str] = {}
        self.confirmed: set[str] = set()
        self.transcript: list[dict[str, Any]] = []
        self.intent_label: str | None = None
        self.intent_prediction: IntentPrediction | None = None
        self.last_prediction: IntentPrediction | None = None
        self._pending_label: str | None = None
        self._pending_prediction: IntentPrediction | None = None
        self._pending_slots: list[str] = []
        self._questions: list[SlotQuestion] = []
        self._question_index = 0
        self._attempts = 0
        self._holds = 0  # "Moment bitte" answers to the current slot question
        self._trigger_phrase = ""
        self._no_inputs = 0  # silences after the bot's question in a row (on_no_input)

    # ---- public API -------------------------------------------------------------------------------------
    def start(self) -> PolicyStep:
        """The greeting, with the AI disclosure and the way to reach a person."""
        self.state = "concern"
        return self._say(self.domain.prompt("greeting"), "greet")

    def on_turn(
        self, text: str, asr_confidence: float, prediction: IntentPrediction | None, slots: dict[str, str]
    ) -> PolicyStep:
        """Advance the call by one caller turn (its final transcript, classification and slots)."""
        if self.state == "done":
            return PolicyStep("", "ended", end_call=True)
        if self.state == "start":
            self.state = "concern"
        self._no_inputs = 0  # the caller spoke: a later silence is a first one again
        text = text.strip()
        self.transcript.append({"speaker": "caller", "text": text, "asr_confidence": round(asr_confidence, 4),
                                "intent": prediction.label if prediction else None})
        if prediction is not None:
            self.last_prediction = prediction
        # "Wie bitte?": the question again, not a turn to understand (a safety keyword in it still escalates).
        if is_say_again(self.domain, text, slots) and any_safety_keyword(self.domain, text) is None:
            return self._say(say_again_text(self), "say_again", self._frame(prediction))
        label, trigger, phrase = safety_escalation(
            self.domain, text, prediction, midcall=self.state not in ("concern", "confirm_intent")
        )
        if label is not None:
            return self._escalate(label, trigger, phrase, prediction)
        unsure = asr_confidence < self.domain.policy.asr_min_confidence
        if not text or (unsure and not self._read_back_checks(text, slots)):
            self.asr_repeats += 1
            if self.asr_repeats > self.domain.policy.max_asr_repeats:
                return self._handoff("asr_failures")
            return self._say(self.domain.prompt("repeat"), "repeat", self._frame(prediction))
        self.asr_repeats = 0
        if self.state == "concern":
            return self._on_concern(text, prediction, slots)
        if self.state == "confirm_intent":
            return self._on_confirm_intent(text, prediction, slots)
        if self.state == "collect_slot":
            return self._on_slot_answer(text, slots)
        return self._on_slot_confirmation(text, slots)

    def on_no_input(self) -> PolicyStep:
        """The caller said nothing after the bot's question: ask it again, then a human (``voicebot.call.no_input``)."""
        if self.state not in WAITING_STATES or not self.domain.asks_on_no_input:
            return PolicyStep("", "none")  # nothing asked (start, done), or off for this domain
        self._no_inputs += 1
        return self._handoff("no_input") if self._no_inputs > 1 else self._say(no_input_text(self), "no_input")

    def handoff_context(self, reason: str) -> dict[str, Any]:
        """Everything gathered so far, for the agent who takes the call."""
        label = self.intent_label or self._pending_label or (self.last_prediction.label if self.last_prediction
                                                             else None)
        prediction = self.intent_prediction or self._pending_prediction or self.last_prediction
        confidence = prediction.probability(label) if prediction and label else None
        spec = self.domain.intent(label) if label else None
        caller_turns = [t["text"] for t in self.transcript if t["speaker"] == "caller"]
        missing = [q.id for q in self._questions if not self._answered(q)]
        return {
            "call_id": self.call_id,
            "reason": reason,
            "summary": agent_summary(self.domain, label, confidence, dict(self.slots), caller_turns, reason,
                                     self._trigger_phrase),
            "intent": None if prediction is None or label is None else {
                "label": label,
                "confidence": round(confidence or 0.0, 4),
                "decision": prediction.decision,
                "alternatives": [{"label": n, "confidence": round(p, 4)} for n, p in prediction.runners_up(3)],
            },
            "slots": dict(self.slots),
            "slots_confirmed": sorted(self.confirmed),
            "missing": missing,
            "route": spec.route if spec else self.domain.handoff_route,
            "priority": bool(spec and spec.priority),
            "next_steps": list(spec.next_steps) if spec else [],
            "failures": self.failures,
            "transcript": [dict(t) for t in self.transcript],
        }

    # ---- states -----------------------------------------------------------------------------------------
    def _on_concern(self, text: str, prediction: IntentPrediction | None, slots: dict[str, str]) -> PolicyStep:
        self._merge(slots)
        if prediction is None or prediction.label == self.domain.fallback_label:
            return self._fail("no_understanding", prediction)
        if prediction.label in self.domain.safety_labels:
            # A safety top-1 below its operating point (it did not escalate above): too weak
            # to act on or to confirm ("Es geht um einen Notfall?"), so ask again.
            return self._fail("no_understanding", prediction)
        decision = prediction.decision or default_decision(self.domain, prediction)
        if decision == "act":
            return self._accept(prediction.label, prediction)
        if decision == "confirm":
            self.state = "confirm_intent"
            self._pending_label, self._pending_prediction = prediction.label, prediction
            topic = self.domain.intent(prediction.label).topic
            return self._say(self.domain.prompt("confirm", topic=topic), "confirm", self._frame(prediction))
        return self._fail("no_understanding", prediction)

    def _on_confirm_intent(self, text: str, prediction: IntentPrediction | None, slots: dict[str, str]) -> PolicyStep:
        answer, rest = yes_no(self.domain, text)
        pending, pending_prediction = self._pending_label, self._pending_prediction
        if pending is None:  # cannot happen through the public API; recover rather than crash a call
            self.state = "concern"
            return self._on_concern(text, prediction, slots)
        if answer == "yes":
            self._merge(slots)
            return self._accept(pending, pending_prediction)
        new_concern = (
            prediction is not None and prediction.label not in (pending, self.domain.fallback_label)
            and len(rest.split()) >= 2
        )
        if answer == "no":
            self.failures += 1
            self._pending_label = self._pending_prediction = None
            self.state = "concern"
            if new_concern:  # "Nein, ich will kündigen": the correction is the new concern
                return self._on_concern(text, prediction, slots)
            if self.failures >= self.domain.policy.max_failures:
                return self._handoff("confirmation_rejected")
            return self._say(self.domain.prompt("reask_after_no"), "reask", self._frame(prediction))
        if new_concern and prediction is not None and (prediction.decision or "act") == "act":
            self.state = "concern"  # the caller ignored the question and said what they want
            return self._on_concern(text, prediction, slots)
        self.failures += 1
        if self.failures >= self.domain.policy.max_failures:
            return self._handoff("no_understanding")
        topic = self.domain.intent(pending).topic
        return self._say(self.domain.prompt("confirm_unclear", topic=topic), "confirm", self._frame(pending_prediction))

    def _on_slot_answer(self, text: str, slots: dict[str, str]) -> PolicyStep:
        question = self._questions[self._question_index]
        self._merge_extra(slots)
        found = self._answer_values(question, text, slots)
        if found:
            self.slots.update(found)
            return self._read_back(list(found))
        if is_skip(self.domain, text):  # "weiß ich nicht": the agent will ask
            return self._skip_question()
        if self._holds < MAX_HOLDS and is_hold(self.domain, text):  # "Moment, ich schaue nach": not a failed try
            self._holds += 1
            return self._say(self.domain.prompt("hold"), "hold", self._intent_frame())
        self._attempts += 1
        if self._attempts >= self.domain.policy.max_slot_attempts:
            return self._skip_question()
        return self._say(self.domain.prompt("slot_retry", question=question.ask), "ask_slot", self._intent_frame())

    def _on_slot_confirmation(self, text: str, slots: dict[str, str]) -> PolicyStep:
        answer, _rest = yes_no(self.domain, text)
        self._merge_extra(slots)
        question = self._questions[self._question_index] if self._question_index < len(self._questions) else None
        corrections = self._answer_values(question, text, slots, fallback=answer != "yes") if question else {}
        corrections.update({k: v for k, v in slots.items() if self._is_asked(k) and self.slots.get(k) != v})
        if corrections:
            # New values in the answer: a correction ("nein, vier sieben eins zwei") or the
            # next slot volunteered; either way the pending values count as accepted only
            # if they were not themselves corrected, and the new ones are read back.
            if answer != "no":
                self.confirmed.update(k for k in self._pending_slots if k not in corrections)
            self.slots.update(corrections)
            return self._read_back(list(corrections))
        if answer == "yes":
            self.confirmed.update(self._pending_slots)
            self._pending_slots = []
            return self._next_question()
        if answer == "no":
            for key in self._pending_slots:
                self.slots.pop(key, None)
            self._pending_slots = []
            self._attempts += 1
            if question is None or self._attempts >= self.domain.policy.max_slot_attempts:
                return self._skip_question()
            self.state = "collect_slot"
            return self._say(self.domain.prompt("slot_retry", question=question.ask), "ask_slot", self._intent_frame())
        # Neither yes nor no: ask once more, then keep the value unconfirmed (the agent sees it).
        self._attempts += 1
        if self._attempts >= self.domain.policy.max_slot_attempts:
            self._pending_slots = []
            return self._next_question()
        return self._say(self._read_back_text(self._pending_slots, "read_back_unclear"), "read_back",
                         self._intent_frame())

    # ---- transitions ------------------------------------------------------------------------------------
    def _accept(self, label: str, prediction: IntentPrediction | None) -> PolicyStep:
        self.intent_label, self.intent_prediction = label, prediction
        self._pending_label = self._pending_prediction = None
        self._questions = [self.domain.questions[q] for q in self.domain.intent(label).ask]
        self._question_index = 0
        known = [k for q in self._questions for k in q.accepts if k in self.slots]
        if known and self.domain.policy.confirm_slots:
            return self._read_back(known)  # slots said with the concern are checked before use
        return self._next_question()

    def _next_question(self, prefix: str = "") -> PolicyStep:
        while self._question_index < len(self._questions) and self._answered(self._questions[self._question_index]):
            self._question_index += 1
        if self._question_index >= len(self._questions):
            return self._route(prefix)
        self.state, self._attempts, self._holds = "collect_slot", 0, 0
        question = self._questions[self._question_index]
        say = (prefix + " " + self.domain.prompt("ask_slot", question=question.ask)).strip()
        return self._say(say, "ask_slot", self._intent_frame())

    def _skip_question(self) -> PolicyStep:
        self._question_index += 1
        self._pending_slots = []
        return self._next_question(self.domain.prompt("slot_skipped"))

    def _read_back(self, keys: list[str]) -> PolicyStep:
        if not self.domain.policy.confirm_slots:
            self._pending_slots = []
            return self._next_question(self._read_back_text(keys, "noted"))
        self.state, self._pending_slots, self._attempts = "confirm_slot", list(keys), 0
        return self._say(self._read_back_text(keys, "read_back"), "read_back", self._intent_frame())

    def _read_back_text(self, keys: list[str], prompt: str) -> str:
        items = [(self.domain.slot_name(k), spoken_value(self.domain.slot_kind(k), self.slots[k]))
                 for k in keys if k in self.slots]
        if len(items) == 1:
            return self.domain.prompt(prompt, slot=items[0][0], value=items[0][1])
        joined = ", ".join(f"{name} {value}" for name, value in items[:-1])
        return self.domain.prompt(prompt, slot=joined + ",", value=f"{items[-1][0]} {items[-1][1]}")

    def _fail(self, reason: str, prediction: IntentPrediction | None) -> PolicyStep:
        self.failures += 1
        self.state = "concern"
        if self.failures >= self.domain.policy.max_failures:
            return self._handoff(reason)
        return self._say(self.domain.prompt("reask"), "reask", self._frame(prediction))

    def _route(self, prefix: str = "") -> PolicyStep:
        spec = self.domain.intent(self.intent_label or self.domain.fallback_label)
        self.state = "done"
        say = (prefix + " " + self.domain.prompt("route", team=self.domain.routes[spec.route].team)).strip()
        self.transcript.append({"speaker": "bot", "text": say})
        return PolicyStep(say, "route", self._intent_frame(), Route(spec.route, spec.id), None, True,
                          self.handoff_context("routed"))

    def _handoff(self, reason: str) -> PolicyStep:
        self.state = "done"
        say = self.domain.prompt("handoff")
        self.transcript.append({"speaker": "bot", "text": say})
        label = self.intent_label or self._pending_label or self.domain.fallback_label
        return PolicyStep(say, "handoff", self._intent_frame() or self._frame(self.last_prediction),
                          Route(self.domain.handoff_route, label), Handoff(reason, self.handoff_context(reason)), True)

    def _escalate(self, label: str, trigger: str, phrase: str, prediction: IntentPrediction | None) -> PolicyStep:
        self.state = "done"
        self.intent_label, self.intent_prediction = label, prediction
        self._trigger_phrase = phrase
        spec = self.domain.intents[label]
        # A runner-up or an unsure top-1 still goes to a human at once, but in words that
        # do not presume a crisis the caller may not be in ("<label>_unsure" prompts).
        unsure = trigger == "score" or (trigger == "intent" and prediction is not None
                                            and prediction.decision not in ("", "act"))
        say = self.domain.prompts.get(f"{label}_unsure", "") if unsure else ""
        say = say or self.domain.prompt(label)
        self.transcript.append({"speaker": "bot", "text": say})
        context = self.handoff_context(label)
        context.update({"trigger": trigger, "trigger_phrase": phrase})
        confidence = prediction.probability(label) if prediction else 0.0
        alternatives = tuple((n, p) for n, p in (prediction.ranking if prediction else ()) if n != label)[:3]
        frame = Intent(label, confidence, alternatives, dict(self.slots))
        return PolicyStep(say, "escalate", frame, Route(spec.route, label), Handoff(label, context), True)

    # ---- helpers ----------------------------------------------------------------------------------------
    def _say(self, text: str, action: str, intent: Intent | None = None) -> PolicyStep:
        self.transcript.append({"speaker": "bot", "text": text})
        return PolicyStep(text, action, intent)

    def _frame(self, prediction: IntentPrediction | None) -> Intent | None:
        return prediction.to_intent(self.slots) if prediction is not None else None

    def _intent_frame(self) -> Intent | None:
        if self.intent_label is None:
            return None
        p = self.intent_prediction
        confidence = p.probability(self.intent_label) if p else 1.0
        alternatives = tuple((n, q) for n, q in (p.ranking if p else ()) if n != self.intent_label)[:3]
        return Intent(self.intent_label, confidence, alternatives, dict(self.slots))

    def _merge(self, slots: dict[str, str]) -> None:
        self.slots.update({k: v for k, v in slots.items() if k != "number"})

    def _merge_extra(self, slots: dict[str, str]) -> None:
        """Keep volunteered slots nobody asked for (the agent sees them), without reading them back."""
        self.slots.update({k: v for k, v in slots.items() if k != "number" and not self._is_asked(k)})

    def _is_asked(self, key: str) -> bool:
        return any(key in q.accepts for q in self._questions[self._question_index :])

    def _answered(self, question: SlotQuestion) -> bool:
        return any(k in self.slots for k in question.accepts)

    def _answer_values(
        self, question: SlotQuestion, text: str, slots: dict[str, str], fallback: bool = True
    ) -> dict[str, str]:
        """The values in this turn that answer ``question`` (or a later one)."""
        found = {k: v for k, v in slots.items() if self._is_asked(k)}
        if found or not fallback:
            return found
        return text_answer(self.domain, question, text, slots)

    def _read_back_checks(self, text: str, slots: dict[str, str]) -> bool:
        """An unsure slot answer that gives the asked value: its read-back checks it (the caller confirms or
        corrects), so it is not first asked again. Digits heard right often come unsure on the phone line."""
        if self.state != "collect_slot" or not self.domain.policy.confirm_slots:
            return False
        return bool(self._answer_values(self._questions[self._question_index], text, slots))

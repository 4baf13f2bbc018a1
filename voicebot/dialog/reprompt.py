"""What the bot says to a caller who stayed silent after its question (``CallPolicy.on_no_input``), or who asked
for it again ("Wie bitte?").

The question is asked again in the words the policy asks it, without what came before
it the first time ("Entschuldigung, das habe ich nicht verstanden." or "Kein Problem, das
klärt gleich ein Mitarbeiter mit Ihnen."): "Sind Sie noch da? Wie lautet Ihre Kundennummer?".
While the concern is open the greeting's question would not do ("Automatischer Assistent
hier, ..."), so the domain has a prompt of its own for it (``no_input_concern``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from voicebot.dialog.policy import CallPolicy

# States in which the bot has asked something and waits for the caller.
WAITING_STATES = ("concern", "confirm_intent", "collect_slot", "confirm_slot")


def open_question(policy: CallPolicy) -> str:
    """The question the caller has not answered yet, as the policy asks it; empty in the concern state."""
    domain = policy.domain
    if policy.state == "confirm_intent" and policy._pending_label is not None:
        return domain.prompt("confirm", topic=domain.intent(policy._pending_label).topic)
    if policy.state == "collect_slot" and policy._question_index < len(policy._questions):
        return domain.prompt("ask_slot", question=policy._questions[policy._question_index].ask)
    if policy.state == "confirm_slot" and any(k in policy.slots for k in policy._pending_slots):
        return policy._read_back_text(policy._pending_slots, "read_back")
    return ""


def no_input_text(policy: CallPolicy) -> str:
    """The re-prompt: ``no_input`` and the open question, or ``no_input_concern`` while the concern is open."""
    question = open_question(policy)
    if not question:
        return policy.domain.prompt("no_input_concern")
    return f"{policy.domain.prompt('no_input')} {question}"


def say_again_text(policy: CallPolicy) -> str:
    """The reply to "Wie bitte?": ``say_again`` and the open question, or ``say_again_concern`` while the concern
    is open."""
    question = open_question(policy)
    if not question:
        return policy.domain.prompt("say_again_concern")
    return f"{policy.domain.prompt('say_again')} {question}"

"""The end-of-turn models judge the caller's whole concern, not the fragment after an early end.

The real CallSession (recognizer, scheduler, end-of-turn stage, turn-taker, dialog) on the fake engines of
``tests/fake_engines.py`` with the real German text end-of-turn model; only the transcriber is scripted, and
its decodes take 0.6 s, so the first sentence's final arrives after the caller has gone on and the
turn-taker holds it. The text model is the real one, read through a subclass that writes down its inputs.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

from test_call_core import Call, _tone

from voicebot.config import Settings
from voicebot.turn.text_eou import TextTurnModel

SAID = "Ich möchte bitte sofort mit einem Mitarbeiter sprechen."


class ReadTextTurnModel(TextTurnModel):
    """The real text end-of-turn model, with the texts it was asked about."""

    def __init__(self, model: TextTurnModel) -> None:
        super().__init__(model.vectorizer, model.classifier, model.key)
        self.asked: list[str] = []

    def predict(self, text: str) -> float:
        self.asked.append(text)
        return super().predict(text)


def test_the_rest_of_a_concern_is_judged_with_the_held_sentence_before_it() -> None:
    base = Settings()
    settings = replace(base, turn=replace(base.turn, speculate=False))
    model = ReadTextTurnModel(TextTurnModel.load(settings.models.dir))

    async def run() -> Call:
        async with Call(settings, text=SAID, text_turn=model, decode_s=0.6) as call:
            await call.session.wait_idle()
            await call.say(_tone(1.6))
            await call.silence(0.45)  # the stage ends the turn at a confident 200 ms; its final is still decoding
            await call.say(_tone(1.2))  # the caller goes on: that final is held for the rest
            await call.until(lambda: any(e["type"] == "intent" for e in call.events))
            await call.session.wait_idle()
        return call

    call = asyncio.run(run())
    eot = call.session.end_of_turn
    assert eot is not None and len(eot.decisions) == 2, eot and eot.decisions
    first, *rest = model.asked
    assert first == SAID
    assert rest and all(text.startswith(f"{SAID} ") for text in rest), model.asked  # after the held first part
    turns = call.session.record.turns
    assert [t["caller"] for t in turns] == [f"{SAID} {SAID}"], "both parts answered once, as one turn"


def test_a_speculation_answers_the_held_finals_with_the_new_one() -> None:
    """The speculation on the rest of a concern prepares the answer to the whole concern, so the dialog
    (which answers the held finals merged with the new one) takes it instead of computing it again."""
    from fake_engines import fake_engines

    from voicebot.call.bus import FrameBus
    from voicebot.call.speculation import PrimedSpeech, SpeculationStage
    from voicebot.call.turns import merge
    from voicebot.dialog.domain import load_domain
    from voicebot.dialog.policy import CallPolicy
    from voicebot.frames import SpeculativeFinal, Transcript

    settings = Settings()
    held = (Transcript("Ich habe eine Frage zu meiner Rechnung.", True, 0.9, start=0.0, end=2.0),)
    rest = Transcript("Meine Kundennummer ist 12345678.", True, 0.8, start=2.5, end=4.0)

    async def run() -> tuple[str | None, int]:
        clients = fake_engines(settings).clients()
        await clients.start()
        try:
            bus = FrameBus("concern")
            stage = SpeculationStage(CallPolicy(load_domain(settings.dialog.domain), "concern"), clients.intent,
                                     PrimedSpeech(clients.speech), bus, can_speculate=lambda: True,
                                     concern=lambda: held)
            await bus.publish(SpeculativeFinal(1, rest))
            answer = await stage.take(merge([*held, rest]))  # the turn the dialog gets
            return (answer.prediction.label if answer is not None else None), stage.stats.committed
        finally:
            await clients.aclose()

    label, committed = asyncio.run(run())
    assert committed == 1, "the dialog's merged turn is the one the speculation answered"
    assert label == "rechnung"  # the bill is named in the held sentence, not in the new one

"""The triage policy, path by path, with real IntentPredictions built directly (the policy is pure)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest

from voicebot.config import REPO_ROOT
from voicebot.dialog.answers import is_skip, yes_no
from voicebot.dialog.domain import Domain, DomainError, load_domain
from voicebot.dialog.policy import CallPolicy, PolicyStep, safety_escalation
from voicebot.dialog.summary import spoken_date, spoken_digits, spoken_plate, spoken_time
from voicebot.nlu.intent import IntentPrediction
from voicebot.nlu.slots import extract_slots

TODAY = dt.date(2026, 3, 2)  # a Monday


@pytest.fixture(scope="module")
def domain() -> Domain:
    return load_domain(REPO_ROOT / "pipelines" / "default")


def prediction(domain: Domain, label: str, confidence: float, decision: str = "",
               **others: float) -> IntentPrediction:
    """A calibrated prediction: ``label`` at ``confidence``, ``others`` as named, the rest spread evenly."""
    labels = list(domain.intents)
    probs = np.zeros(len(labels))
    probs[labels.index(label)] = confidence
    for name, p in others.items():
        probs[labels.index(name)] = p
    rest = [i for i, name in enumerate(labels) if name != label and name not in others]
    probs[rest] = (1.0 - probs.sum()) / len(rest)
    return IntentPrediction.from_probabilities(labels, probs, decision)


def turn(policy: CallPolicy, domain: Domain, text: str, label: str = "sonstiges", confidence: float = 0.9,
         decision: str = "", asr: float = 0.9, **others: float) -> PolicyStep:
    return policy.on_turn(text, asr, prediction(domain, label, confidence, decision, **others),
                          extract_slots(text, TODAY))


def test_greeting_discloses_the_assistant_and_the_way_to_a_person(domain: Domain) -> None:
    step = CallPolicy(domain, "c1").start()
    assert step.action == "greet" and not step.end_call
    assert "Automatischer Assistent" in step.say  # the AI disclosure
    assert "sagen Sie Mitarbeiter" in step.say  # the way to a person, said the way the keyword net hears it


def test_act_collects_the_slot_with_a_digit_read_back_then_routes(domain: Domain) -> None:
    policy = CallPolicy(domain, "c2")
    policy.start()
    step = turn(policy, domain, "Ich habe eine Frage zu meiner Rechnung, der Betrag ist falsch.", "rechnung", 0.97,
                "act")
    assert step.action == "ask_slot" and "Rechnungsnummer" in step.say
    assert step.intent is not None and step.intent.label == "rechnung"
    step = turn(policy, domain, "Meine Kundennummer ist vier sieben eins eins.", "rechnung", 0.5)
    assert step.action == "read_back"
    assert "Kundennummer vier sieben eins eins" in step.say and step.say.endswith("Ist das richtig?")
    step = turn(policy, domain, "Ja, genau.")
    assert step.action == "route" and step.end_call and step.handoff is None
    assert step.route is not None and (step.route.route, step.route.intent) == ("buchhaltung", "rechnung")
    assert step.context is not None and step.context["slots"] == {"customer_number": "4711"}
    assert step.context["slots_confirmed"] == ["customer_number"]
    assert policy.state == "done"
    assert turn(policy, domain, "Hallo?").action == "ended"


def test_confirm_yes_accepts_the_intent(domain: Domain) -> None:
    policy = CallPolicy(domain)
    policy.start()
    step = turn(policy, domain, "Da stimmt was mit dem Geld nicht.", "rechnung", 0.6, "confirm")
    assert step.action == "confirm" and step.say == "Es geht also um Ihre Rechnung, richtig?"
    step = turn(policy, domain, "Ja, richtig.")
    assert step.action == "ask_slot" and policy.intent_label == "rechnung"


def test_confirm_no_then_second_failure_hands_over_with_everything(domain: Domain) -> None:
    policy = CallPolicy(domain, "c3")
    policy.start()
    turn(policy, domain, "Es geht um meine Kundennummer vier vier zwei null eins acht.", "stammdaten", 0.55,
         "confirm")
    step = turn(policy, domain, "Nein.")
    assert step.action == "reask" and policy.state == "concern"
    step = turn(policy, domain, "Das ist schwer zu erklären.", "sonstiges", 0.7, "confirm")
    assert step.action == "handoff" and step.end_call
    assert step.handoff is not None and step.handoff.reason == "no_understanding"
    assert step.route is not None and step.route.route == "mensch"
    context = step.handoff.context
    assert context["slots"] == {"customer_number": "442018"}
    assert context["failures"] == 2
    caller = [t["text"] for t in context["transcript"] if t["speaker"] == "caller"]
    assert caller == ["Es geht um meine Kundennummer vier vier zwei null eins acht.", "Nein.",
                      "Das ist schwer zu erklären."]
    assert context["intent"]["alternatives"] and "summary" in context
    sentences = [s for s in context["summary"].split(". ") if s]
    assert 2 <= len(sentences) <= 4 and "Kundennummer 442018" in context["summary"]


def test_no_followed_by_a_new_concern_is_handled(domain: Domain) -> None:
    policy = CallPolicy(domain)
    policy.start()
    turn(policy, domain, "Es geht um meinen Vertrag.", "beratung", 0.5, "confirm")
    step = turn(policy, domain, "Nein, ich möchte meinen Vertrag kündigen.", "kuendigung", 0.96, "act")
    assert step.action == "ask_slot" and policy.intent_label == "kuendigung"
    assert "Vertrags" in step.say


def test_unclear_confirmation_answer_asks_for_yes_or_no(domain: Domain) -> None:
    policy = CallPolicy(domain)
    policy.start()
    turn(policy, domain, "Wegen der Sache mit dem Paket.", "bestellung", 0.6, "confirm")
    step = turn(policy, domain, "Hm, also wissen Sie.", "sonstiges", 0.4, "reask")
    assert step.action == "confirm" and "ja oder nein" in step.say


def test_low_confidence_reasks_once_then_hands_over(domain: Domain) -> None:
    policy = CallPolicy(domain)
    policy.start()
    step = turn(policy, domain, "Äh, ja, also, wegen dem Ding.", "technik", 0.3, "reask")
    assert step.action == "reask" and step.handoff is None and not step.end_call
    step = turn(policy, domain, "Na das von neulich.", "bestellung", 0.25, "reask")
    assert step.action == "handoff" and step.handoff is not None
    assert step.handoff.reason == "no_understanding"


def test_sonstiges_is_never_acted_on(domain: Domain) -> None:
    policy = CallPolicy(domain)
    policy.start()
    step = turn(policy, domain, "Ich glaube, ich habe mich verwählt.", "sonstiges", 0.99, "act")
    assert step.action == "reask"


def test_default_thresholds_without_a_classifier_decision(domain: Domain) -> None:
    policy = CallPolicy(domain)
    policy.start()
    assert turn(policy, domain, "Mein Router blinkt rot.", "technik", 0.95).action == "ask_slot"
    policy = CallPolicy(domain)
    assert turn(policy, domain, "Das Internet.", "technik", 0.6).action == "confirm"


@pytest.mark.parametrize("label, wording", [
    ("notfall", "1 1 2"),
    ("seelsorge", "0800 111 0 111"),
    ("mitarbeiter", "verbinde Sie mit einem Mitarbeiter"),
])
def test_safety_intents_escalate_at_once_even_at_low_confidence(domain: Domain, label: str, wording: str) -> None:
    policy = CallPolicy(domain, "safe")
    policy.start()
    step = turn(policy, domain, "Bitte, es ist dringend.", label, 0.2, "reask")
    assert step.action == "escalate" and step.end_call
    assert wording in step.say
    assert step.handoff is not None and step.handoff.reason == label
    assert step.route is not None and step.route.route == "mensch"
    assert step.intent is not None and step.intent.label == label
    assert step.handoff.context["trigger"] == "intent"
    if label == "seelsorge":
        assert "0800 111 0 222" in step.say


OPERATING_POINTS = (("notfall", 0.1), ("seelsorge", 0.15), ("mitarbeiter", 0.2))


def with_points(p: IntentPrediction) -> IntentPrediction:
    """``p`` as a trained classifier hands it over: with its safety operating points."""
    return IntentPrediction(p.label, p.confidence, p.ranking, p.margin, p.decision, "e5", OPERATING_POINTS)


def test_a_lower_ranked_safety_intent_at_its_operating_point_escalates(domain: Domain) -> None:
    policy = CallPolicy(domain)
    policy.start()
    text = "Mein Mann ist gestürzt und die Rechnung ist auch falsch."
    p = with_points(prediction(domain, "rechnung", 0.8, "act", notfall=0.12))
    step = policy.on_turn(text, 0.9, p, {})
    assert step.action == "escalate" and step.handoff is not None and step.handoff.reason == "notfall"
    assert step.handoff.context["trigger"] == "score"
    assert step.say.startswith("Ich verbinde Sie sofort") and "1 1 2" in step.say  # no presumed emergency
    # Below the operating point the old fixed runner-up rule (>= 0.1) would have escalated; now it does not.
    p = with_points(prediction(domain, "rechnung", 0.8, "act", seelsorge=0.12))
    assert safety_escalation(domain, "Die Rechnung ist falsch und ich bin verzweifelt.", p)[0] is None

    policy = CallPolicy(domain)
    policy.start()
    step = turn(policy, domain, "Ich bin so allein.", "seelsorge", 0.97, "act")
    assert step.say.startswith("Das klingt, als ginge es Ihnen") and "0800 111 0 111" in step.say


def test_keyword_safety_net_overrides_a_confident_ordinary_intent(domain: Domain) -> None:
    policy = CallPolicy(domain)
    policy.start()
    step = turn(policy, domain, "Wegen der Rechnung, ehrlich gesagt will ich gar nicht mehr leben.", "rechnung",
                0.97, "act")
    assert step.action == "escalate" and step.handoff is not None and step.handoff.reason == "seelsorge"
    assert step.handoff.context["trigger"] == "keyword"
    assert "nicht mehr leben" in step.handoff.context["summary"]


def test_keyword_net_mid_call_and_numbers_that_are_not_emergencies(domain: Domain) -> None:
    policy = CallPolicy(domain)
    policy.start()
    turn(policy, domain, "Mein Internet geht nicht.", "technik", 0.97, "act")
    step = turn(policy, domain, "Die Kundennummer ist 112 45 78.", "notfall", 0.3)  # a number, not a 112 call
    assert step.action == "read_back"
    step = turn(policy, domain, "Ach, verbinden Sie mich einfach mit einem Mitarbeiter.", "technik", 0.5)
    assert step.action == "escalate" and step.handoff is not None and step.handoff.reason == "mitarbeiter"


def test_a_weak_safety_top1_is_reasked_not_escalated(domain: Domain) -> None:
    """Nonsense often lands on a safety intent with little mass ("Der Lappen liegt auf dem Eisschrank")."""
    policy = CallPolicy(domain)
    policy.start()
    p = with_points(prediction(domain, "notfall", 0.08, "reask"))
    step = policy.on_turn("Der Lappen liegt auf dem Eisschrank.", 0.9, p, {})
    assert step.action == "reask" and step.handoff is None


@pytest.mark.parametrize(("heard", "label"), [
    ("not arzt schnell bitte", "notfall"),
    ("rufen sie den notarz", "notfall"),
    ("mitarbeita", "mitarbeiter"),
    ("ich will einen mit arbeiter sprechen", "mitarbeiter"),
    ("ich will nich mehr lebn", "seelsorge"),
])
def test_the_keyword_net_hears_through_recognition_errors(domain: Domain, heard: str, label: str) -> None:
    p = with_points(prediction(domain, "sonstiges", 0.9, "act"))
    escalated, trigger, _ = safety_escalation(domain, heard, p)
    assert (escalated, trigger) == (label, "keyword")


@pytest.mark.parametrize("text", [
    "Ich kann die Rechnung nicht mehr lesen, die Schrift ist zu klein.",
    "Der Bus ist schon abgefahren und das Paket liegt noch in der Filiale.",
    "Ihre Mitarbeiterin am Telefon war gestern sehr unfreundlich.",
])
def test_the_fuzzy_net_does_not_fire_on_ordinary_words(domain: Domain, text: str) -> None:
    assert safety_escalation(domain, text, with_points(prediction(domain, "reklamation", 0.9, "act")))[0] is None


def test_ordinary_mention_of_staff_does_not_escalate(domain: Domain) -> None:
    label, _, _ = safety_escalation(domain, "Ihr Mitarbeiter war am Telefon sehr unfreundlich.",
                                    prediction(domain, "reklamation", 0.95, "act"))
    assert label is None
    assert safety_escalation(domain, "Mitarbeiter!", prediction(domain, "sonstiges", 0.9))[0] == "mitarbeiter"
    assert safety_escalation(domain, "Ich habe schon die 112 angerufen.", None)[0] == "notfall"


def test_low_asr_confidence_asks_to_repeat_instead_of_guessing(domain: Domain) -> None:
    policy = CallPolicy(domain)
    policy.start()
    step = turn(policy, domain, "Ich hab ne Frage zur Rechnung.", "rechnung", 0.99, "act", asr=0.2)
    assert step.action == "repeat" and policy.intent_label is None
    step = turn(policy, domain, "", asr=0.0)
    assert step.action == "repeat"
    step = turn(policy, domain, "Rechnung.", "rechnung", 0.99, "act", asr=0.1)
    assert step.action == "handoff" and step.handoff is not None and step.handoff.reason == "asr_failures"


def test_unsure_slot_answer_is_read_back_not_asked_again(domain: Domain) -> None:
    """A number heard at low confidence is read back (the caller confirms or corrects it); an unsure turn
    without a value for the asked slot, and an unsure yes/no to a read-back, are still asked again."""
    policy = CallPolicy(domain)
    policy.start()
    turn(policy, domain, "Ich habe eine Frage zu meiner Rechnung.", "rechnung", 0.99, "act")
    assert turn(policy, domain, "Hm, Moment, dings.", asr=0.2).action == "repeat"
    step = turn(policy, domain, "Meine Kundennummer ist 2, 8, 1, 4, 6.", asr=0.31)
    assert step.action == "read_back" and "zwei acht eins vier sechs" in step.say
    assert turn(policy, domain, "Ja.", asr=0.2).action == "repeat"  # a misheard "Nein" must not confirm it
    assert turn(policy, domain, "Ja.", asr=0.9).action == "route"


def test_low_asr_confidence_does_not_hide_an_emergency(domain: Domain) -> None:
    policy = CallPolicy(domain)
    policy.start()
    step = turn(policy, domain, "Notarzt, schnell!", "notfall", 0.4, asr=0.1)
    assert step.action == "escalate"


def test_read_back_correction_and_skip(domain: Domain) -> None:
    policy = CallPolicy(domain)
    policy.start()
    turn(policy, domain, "Ich will mein Abo kündigen.", "kuendigung", 0.98, "act")
    step = turn(policy, domain, "Kundennummer vier sieben eins eins zwei.")
    assert "vier sieben eins eins zwei" in step.say
    step = turn(policy, domain, "Nein, vier sieben eins eins drei.")
    assert step.action == "read_back" and "vier sieben eins eins drei" in step.say
    assert policy.slots["customer_number"] == "47113"
    step = turn(policy, domain, "Ja.")
    assert step.action == "route" and step.route is not None and step.route.route == "kundenbindung"

    policy = CallPolicy(domain)
    policy.start()
    turn(policy, domain, "Ich habe eine Reklamation.", "reklamation", 0.98, "act")
    step = turn(policy, domain, "Die weiß ich nicht.")
    assert step.action == "route" and step.say.startswith("Kein Problem")
    assert step.context is not None and step.context["missing"] == ["bestellnummer"]


def test_slot_not_understood_is_asked_again_then_left_to_the_agent(domain: Domain) -> None:
    policy = CallPolicy(domain)
    policy.start()
    turn(policy, domain, "Mein WLAN geht nicht.", "technik", 0.98, "act")
    step = turn(policy, domain, "Die steht doch auf dem Brief.")
    assert step.action == "ask_slot" and step.say.startswith("Entschuldigung")
    step = turn(policy, domain, "Ach, keine Ahnung wo die ist.")
    assert step.action == "route"


def test_slots_said_with_the_concern_are_read_back_and_next_slot_asked(domain: Domain) -> None:
    policy = CallPolicy(domain)
    policy.start()
    step = turn(policy, domain, "Ich möchte einen Termin am nächsten Dienstag.", "termin", 0.97, "act")
    assert step.action == "read_back" and "Datum Dienstag, der dritte März" in step.say
    step = turn(policy, domain, "Ja.")
    assert step.action == "ask_slot" and "Uhrzeit" in step.say
    step = turn(policy, domain, "Um vierzehn Uhr dreißig.")
    assert step.action == "read_back" and "vierzehn Uhr dreißig" in step.say
    step = turn(policy, domain, "Genau.")
    assert step.action == "route" and step.context is not None
    assert step.context["slots"] == {"date": "2026-03-03", "time": "14:30"}


def test_location_is_taken_as_free_text(domain: Domain) -> None:
    policy = CallPolicy(domain)
    policy.start()
    turn(policy, domain, "Mein Auto springt nicht an.", "pannenhilfe", 0.97, "act")
    step = turn(policy, domain, "Ich stehe auf der A sieben kurz vor Hannover.")
    assert step.action == "read_back" and "Standort auf der A sieben kurz vor Hannover" in step.say
    step = turn(policy, domain, "Ja, genau.")
    assert step.route is not None and step.route.route == "pannendienst"
    assert step.context is not None and step.context["priority"] is True


def test_spoken_read_backs() -> None:
    assert spoken_digits("4711") == "vier sieben eins eins"
    assert spoken_digits("A-0815") == "A null acht eins fünf"
    assert spoken_plate("M-AB 1234") == "M, A B, eins zwei drei vier"
    assert spoken_date("2026-03-03") == "Dienstag, der dritte März"
    assert spoken_time("14:30") == "vierzehn Uhr dreißig" and spoken_time("01:00") == "ein Uhr"


def test_domain_errors_name_the_problem(tmp_path: Path) -> None:
    source = (REPO_ROOT / "pipelines" / "default" / "domain.toml").read_text(encoding="utf-8")
    (tmp_path / "domain.toml").write_text(source.replace('route = "buchhaltung"', 'route = "buchhaltungg"'),
                                          encoding="utf-8")
    with pytest.raises(DomainError, match="buchhaltungg"):
        load_domain(tmp_path)
    with pytest.raises(DomainError, match="not found"):
        load_domain(tmp_path / "nowhere")
    (tmp_path / "domain.toml").write_text(source.replace('\nhold = "Gern, ich warte.', '\nunused = "Gern, ich warte.'),
                                          encoding="utf-8")
    with pytest.raises(DomainError, match="missing hold"):  # hold phrases need the bot's reply to them
        load_domain(tmp_path)


def test_knowledge_base_has_answers_for_every_intent(domain: Domain) -> None:
    assert set(domain.kb) == set(domain.intents)
    assert all(3 <= len(answers) <= 5 for answers in domain.kb.values())
    assert all(spec.next_steps for spec in domain.intents.values())


@pytest.mark.parametrize(
    ("text", "answer"),
    [("Ja, das ist richtig.", "yes"), ("In Ordnung.", "yes"), ("Einverstanden.", "yes"), ("Ich glaube schon.", "yes"),
     ("Okay.", "yes"), ("Nein, das stimmt so nicht.", "no"), ("Eher nicht.", "no"), ("Ich glaube nicht.", "no"),
     ("Das stimmt nicht.", "no"), ("Da stimmt der Betrag nicht.", None), ("Ich hab ne Frage.", None)],
)
def test_yes_and_no_as_callers_say_them(domain: Domain, text: str, answer: str | None) -> None:
    assert yes_no(domain, text)[0] == answer


@pytest.mark.parametrize(
    ("text", "skip"),
    [("Weiß ich nicht.", True), ("Die habe ich gerade nicht zur Hand.", True), ("Ich habe keine Kundennummer.", True),
     ("Ich finde sie gerade nicht.", True), ("Das kann ich Ihnen nicht sagen.", True), ("Ich bin kein Kunde.", True),
     ("Habe ich vergessen.", True), ("Meine Kundennummer ist 4711.", False), ("Die Nummer ist vier sieben.", False)],
)
def test_callers_who_cannot_give_a_value(domain: Domain, text: str, skip: bool) -> None:
    assert is_skip(domain, text) is skip


def test_caller_who_looks_the_number_up_is_waited_for(domain: Domain) -> None:
    """"Moment, ich schaue nach" is not a failed answer: the bot says it waits (twice at most per question)."""
    policy = CallPolicy(domain)
    policy.start()
    turn(policy, domain, "Ich habe eine Frage zu meiner Rechnung.", "rechnung", 0.99, "act")
    assert turn(policy, domain, "Einen Moment bitte, ich schaue nach.").action == "hold"
    assert turn(policy, domain, "Moment, ich muss suchen.").action == "hold"
    step = turn(policy, domain, "Meine Kundennummer ist vier sieben eins eins.")
    assert step.action == "read_back" and "vier sieben eins eins" in step.say
    policy = CallPolicy(domain)
    policy.start()
    turn(policy, domain, "Ich habe eine Frage zu meiner Rechnung.", "rechnung", 0.99, "act")
    for _ in range(2):
        assert turn(policy, domain, "Moment bitte.").action == "hold"
    assert turn(policy, domain, "Moment bitte.").action == "ask_slot"  # the third counts as a try


def test_wie_bitte_says_the_question_again(domain: Domain) -> None:
    """A caller who did not catch the bot's question asks for it again: no failure, no escalation (the classifier
    put "Noch einmal, bitte." on mitarbeiter), unless the turn also carries a safety keyword."""
    policy = CallPolicy(domain)
    policy.start()
    step = turn(policy, domain, "Noch einmal, bitte.", "mitarbeiter", 0.42)
    assert step.action == "say_again" and step.say == domain.prompt("say_again_concern")
    asked = turn(policy, domain, "Ich habe eine Frage zu meiner Rechnung.", "rechnung", 0.99, "act")
    step = turn(policy, domain, "Wie bitte?", asr=0.2)
    assert step.action == "say_again" and step.say == f"{domain.prompt('say_again')} {asked.say}"
    step = turn(policy, domain, "Können Sie das bitte noch einmal wiederholen?")
    assert step.action == "say_again" and policy.failures == 0 and policy.asr_repeats == 0
    assert turn(policy, domain, "Noch einmal: vier sieben eins eins.").action == "read_back"  # an answer, not a request
    policy = CallPolicy(domain)
    policy.start()
    assert turn(policy, domain, "Wie bitte? Mitarbeiter!", "mitarbeiter", 0.9).action == "escalate"
    policy = CallPolicy(domain)
    policy.start()
    step = turn(policy, domain, "Ich habe meine Rechnung nicht verstanden.", "rechnung", 0.99, "act")
    assert step.action == "ask_slot"  # a concern about a bill, not a request to repeat

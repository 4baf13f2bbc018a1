"""Knowledge-base suggestions are searched for the calls an agent watches, and caught up when one starts to.

The hub is real, and so is the knowledge base (its lexical index: the gating is under test
here, e5 retrieval in test_server_assist.py); the agent is a link that queues what it is sent.
"""

from __future__ import annotations

import tomllib
from typing import Any

from fakes import QueuedAgent

from voicebot.assist.kb import KnowledgeBase, parse_kb
from voicebot.config import Settings
from voicebot.protocol.events import IntentEvent, SuggestionsEvent, TranscriptFinalEvent
from voicebot.server.hub import CallHub
from voicebot.server.metrics import ServerMetrics

KB = """
[[kb.rechnung]]
title = "Mahnung trotz Zahlung"
text = "Nennen Sie mir Datum und Betrag der Überweisung; ich prüfe den Zahlungseingang."
[[kb.pannenhilfe]]
title = "Sicherheit zuerst"
text = "Warnblinker an, Warnweste anziehen, Warndreieck aufstellen, hinter die Leitplanke gehen."
[[kb.kuendigung]]
title = "Kündigungsfrist"
text = "Nach der Mindestlaufzeit gilt eine Frist von einem Monat zum Monatsende."
"""


def _hub() -> CallHub:
    entries, steps = parse_kb(tomllib.loads(KB))
    return CallHub(Settings(), ServerMetrics(), kb=KnowledgeBase(entries, next_steps=steps))


def _turn(hub: CallHub, call: Any, text: str, label: str) -> None:
    hub.publish(call, TranscriptFinalEvent(text=text, confidence=0.9))
    hub.publish(call, IntentEvent(label=label, confidence=0.9))


async def test_unwatched_calls_search_nothing_until_an_agent_watches() -> None:
    hub = _hub()
    call = hub.open_call("kb-1", "voicebot.v1", {})
    _turn(hub, call, "Ich habe eine Mahnung bekommen, obwohl ich bezahlt habe.", "rechnung")
    assert call.suggest_task is None, "nobody watches: no knowledge-base search"

    agent = QueuedAgent("kb-1")
    hub.add_agent(agent)
    events = hub.replay(call)  # what the agent's subscribe asks for: the catch-up starts here
    assert not any(isinstance(e, SuggestionsEvent) for e in events)
    caught_up = await agent.until(lambda m: isinstance(m, SuggestionsEvent))
    assert caught_up.intent == "rechnung" and caught_up.for_text.startswith("Ich habe eine Mahnung")
    assert caught_up.items[0].title == "Mahnung trotz Zahlung"

    # Watched now: the next turn is searched as it comes; a second look does not search again.
    _turn(hub, call, "Mein Auto steht mit einer Panne auf der Autobahn.", "pannenhilfe")
    live = await agent.until(lambda m: isinstance(m, SuggestionsEvent))
    assert live.intent == "pannenhilfe" and live.items[0].title == "Sicherheit zuerst"
    assert call.suggest_task is not None
    await call.suggest_task
    hub.replay(call)
    assert call.suggest_task.done(), "suggestions for this final exist: no new search"
    await hub.aclose()


async def test_an_agent_watching_all_calls_gets_suggestions_live() -> None:
    hub = _hub()
    agent = QueuedAgent("*")
    hub.add_agent(agent)
    other = hub.open_call("kb-2", "voicebot.v1", {})
    _turn(hub, other, "Ich möchte meinen Vertrag kündigen, wie lange ist die Frist?", "kuendigung")
    found = await agent.until(lambda m: isinstance(m, SuggestionsEvent))
    assert found.call_id == "kb-2" and found.items[0].title == "Kündigungsfrist"
    hub.remove_agent(agent)
    _turn(hub, other, "Und was ist mit der Mahnung?", "rechnung")
    assert other.suggest_task is not None and other.suggest_task.done(), "the agent left: nothing new is searched"
    await hub.aclose()

#!/usr/bin/env python3
"""Out-of-domain negatives for ``sonstiges`` from Home Assistant's German intent sentences (issue 14).

A caller who talks to the hotline as to a smart speaker ("Schalte das Licht in der Küche aus", "Stell
einen Timer auf zehn Minuten") wants nothing the front line handles. The PyPI package
``home-assistant-intents`` (Apache-2.0) ships the German sentence templates of Home Assistant's voice
assistant; ``hassil`` (Apache-2.0) expands them. This script expands every German intent's templates
with a few room and device names written here, samples ``--per-intent`` sentences per intent (seeded),
and prints them as intent lines labelled ``sonstiges`` with their source. Run once; the lines are
checked in (appended to eval/intent/train.jsonl), so training never needs either package.

    .venv/bin/pip install home-assistant-intents hassil    # the `data` extra of pyproject.toml
    .venv/bin/python scripts/make_ha_negatives.py --per-intent 4 > /tmp/ha.jsonl
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import sys
from importlib.metadata import version
from pathlib import Path

AREAS = ("Wohnzimmer", "Küche", "Schlafzimmer", "Bad", "Flur", "Kinderzimmer", "Arbeitszimmer", "Garten")
NAMES = ("Stehlampe", "Deckenlicht", "Kaffeemaschine", "Fernseher", "Ventilator", "Lichterkette", "Rollladen",
         "Staubsauger", "Radio")
FLOORS = ("Erdgeschoss", "Obergeschoss", "Keller", "Dachboden")
ITEMS = ("Milch", "Brot", "Batterien", "Waschmittel", "Kaffee")
EXPANSIONS_SEEN = 400  # expansions read per template before sampling (the full product is huge)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--per-intent", type=int, default=4)
    ap.add_argument("--seed", type=int, default=14)
    args = ap.parse_args()
    import home_assistant_intents
    from hassil import Intents
    from hassil.intents import TextSlotList
    from hassil.sample import sample_expression

    path = Path(home_assistant_intents.__file__).parent / "data" / "de.json"
    intents = Intents.from_dict(json.loads(path.read_text(encoding="utf-8")))
    lists = dict(intents.slot_lists)
    for name, values in (("area", AREAS), ("name", NAMES), ("floor", FLOORS), ("shopping_list_item", ITEMS),
                         ("todo_list_item", ITEMS), ("zone", ("Büro", "Schule")), ("timer_name", ("Pizza",)),
                         ("search_query", ("Jazz",)), ("message", ("das Essen ist fertig",))):
        lists[name] = TextSlotList.from_strings(values)
    rng = random.Random(args.seed)
    source = f"home-assistant-intents {version('home-assistant-intents')}"
    for intent_name in sorted(intents.intents):
        pool: set[str] = set()
        for data in intents.intents[intent_name].data:
            for sentence in data.sentences:
                try:
                    found = itertools.islice(sample_expression(sentence.expression, lists, intents.expansion_rules,
                                                               language="de"), EXPANSIONS_SEEN)
                    pool.update(" ".join(t.split()) for t in found)
                except Exception:  # a template naming a list this script does not fill: skip it
                    continue
        texts = sorted(t for t in pool if t and "{" not in t)
        for text in rng.sample(texts, min(args.per_intent, len(texts))):
            text = text[0].upper() + text[1:]
            print(json.dumps({"text": text, "intent": "sonstiges", "source": f"{source} {intent_name}"},
                             ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The triage domain: intents, routes, slots, prompts and knowledge, loaded from TOML.

``pipelines/<domain>/domain.toml`` holds what the bot understands, asks, says
and where it routes; ``kb.toml`` the agents' suggested answers. Loading checks
every cross-reference (an intent's route, the questions it asks, the slots a
question accepts, the prompts the policy needs) so a typo fails at start-up
with the file and key in the message, not in the middle of a call.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from voicebot.nlu.intent import IntentPrediction

REQUIRED_PROMPTS = (
    "greeting", "confirm", "confirm_unclear", "reask", "reask_after_no", "repeat", "ask_slot", "slot_retry",
    "slot_skipped", "read_back", "noted", "read_back_unclear", "route", "handoff",
)
SLOT_KINDS = ("digits", "plate", "date", "time", "iban", "text")
# Optional, as a pair: without them a caller who stays silent is not asked again (``CallPolicy.on_no_input``).
NO_INPUT_PROMPTS = ("no_input", "no_input_concern")
# Needed with [language].say_again: the bot's reply to "Wie bitte?" before the open question (or, while the
# concern is open, in its place).
SAY_AGAIN_PROMPTS = ("say_again", "say_again_concern")


_PUNCT = re.compile(r"[^\w\s]+")


class DomainError(ValueError):
    """A domain file is missing, malformed, or refers to something it does not define."""


@dataclass(frozen=True)
class SlotType:
    """A slot the parsers produce: display name and how it is read back."""

    key: str
    name: str
    kind: str = "text"


@dataclass(frozen=True)
class SlotQuestion:
    """A question the bot asks; any slot in ``accepts`` answers it."""

    id: str
    ask: str
    accepts: tuple[str, ...]


@dataclass(frozen=True)
class RouteSpec:
    id: str
    team: str
    priority: bool = False


@dataclass(frozen=True)
class IntentSpec:
    """One intent: where it goes, how it is confirmed, what is asked, what the agent should do."""

    id: str
    route: str
    topic: str
    ask: tuple[str, ...] = ()
    summary: str = ""
    next_steps: tuple[str, ...] = ()
    escalate: bool = False  # a safety intent: a human at once, whatever the confidence
    fallback: bool = False  # the "anything else" intent: re-ask, never act on it
    priority: bool = False
    keywords: tuple[str, ...] = ()
    short_keywords: tuple[str, ...] = ()


@dataclass(frozen=True)
class PolicyConfig:
    act_threshold: float = 0.85
    confirm_threshold: float = 0.4
    safety_runner_up: float = 0.1  # not read: the classifier's operating points replaced it (kept so domains load)
    safety_midcall: float = 0.6
    asr_min_confidence: float = 0.35
    max_failures: int = 2
    max_asr_repeats: int = 2
    max_slot_attempts: int = 2
    confirm_slots: bool = True
    short_utterance_words: int = 4  # "short_keywords" fire only in utterances this short


@dataclass(frozen=True)
class KbAnswer:
    title: str
    text: str
    keywords: tuple[str, ...] = ()


@dataclass(frozen=True)
class Domain:
    """Everything the policy and the agent view need to know about one deployment."""

    name: str
    path: Path
    intents: dict[str, IntentSpec]
    routes: dict[str, RouteSpec]
    slots: dict[str, SlotType]
    questions: dict[str, SlotQuestion]
    prompts: dict[str, str]
    policy: PolicyConfig
    handoff_route: str
    yes_words: tuple[str, ...]
    no_words: tuple[str, ...]
    skip_phrases: tuple[str, ...]
    kb: dict[str, tuple[KbAnswer, ...]] = field(default_factory=dict)
    # The caller asks the bot to wait while they look a value up ("Moment, ich schaue nach"); needs prompt "hold".
    hold_phrases: tuple[str, ...] = ()
    # The caller asks the bot to say its question again ("Wie bitte?"); needs the SAY_AGAIN_PROMPTS.
    say_again_phrases: tuple[str, ...] = ()

    @property
    def safety_labels(self) -> tuple[str, ...]:
        return tuple(i.id for i in self.intents.values() if i.escalate)

    @property
    def fallback_label(self) -> str:
        for spec in self.intents.values():
            if spec.fallback:
                return spec.id
        return "sonstiges"

    def intent(self, label: str) -> IntentSpec:
        """The spec of ``label``; an unknown label is treated as the fallback intent."""
        return self.intents.get(label) or self.intents[self.fallback_label]

    def slot_name(self, key: str) -> str:
        slot = self.slots.get(key)
        return slot.name if slot else key.replace("_", " ")

    def slot_kind(self, key: str) -> str:
        slot = self.slots.get(key)
        return slot.kind if slot else "text"

    @property
    def asks_on_no_input(self) -> bool:
        """Whether a silent caller is asked again (the domain has the ``no_input`` prompts)."""
        return all(p in self.prompts for p in NO_INPUT_PROMPTS)

    def prompt(self, key: str, **values: str) -> str:
        return self.prompts[key].format(**values) if values else self.prompts[key]


def _table(data: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise DomainError(f"{where}: [{key}] must be a table")
    return value


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise DomainError(f"{where}: expected a list of strings, got {value!r}")
    return tuple(value)


def _phrases(value: Any, where: str) -> tuple[str, ...]:
    """Lower-cased, whitespace-normalized phrases (how the policy matches them)."""
    return tuple(" ".join(p.lower().split()) for p in _strings(value, where) if p.strip())


def _load_toml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise DomainError(f"domain file not found: {path}")
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise DomainError(f"{path}: invalid TOML: {exc}") from exc


def _load_policy(raw: dict[str, Any], where: str) -> PolicyConfig:
    known = PolicyConfig.__dataclass_fields__
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise DomainError(f"{where}: unknown policy setting(s) {', '.join(unknown)}")
    values: dict[str, Any] = {}
    for key, value in raw.items():
        default = getattr(PolicyConfig(), key)
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise DomainError(f"{where}.{key}: expected true or false")
            values[key] = value
        elif isinstance(value, bool) or not isinstance(value, (int, float)):
            raise DomainError(f"{where}.{key}: expected a number, got {value!r}")
        else:
            values[key] = type(default)(value)
    return PolicyConfig(**values)


def _load_kb(path: Path, intents: dict[str, IntentSpec]) -> dict[str, tuple[KbAnswer, ...]]:
    if not path.is_file():
        return {}
    raw = _table(_load_toml(path), "kb", str(path))
    kb: dict[str, tuple[KbAnswer, ...]] = {}
    for label, entries in raw.items():
        where = f"{path} [kb.{label}]"
        if label not in intents:
            raise DomainError(f"{where}: no such intent in the domain")
        if not isinstance(entries, list):
            raise DomainError(f"{where}: expected [[kb.{label}]] entries")
        answers = []
        for entry in entries:
            if not isinstance(entry, dict) or not entry.get("title") or not entry.get("text"):
                raise DomainError(f"{where}: every answer needs a title and a text")
            answers.append(KbAnswer(entry["title"], entry["text"], _phrases(entry.get("keywords", []), where)))
        kb[label] = tuple(answers)
    return kb


def load_domain(path: Path | str) -> Domain:
    """Load and validate ``path/domain.toml`` (and ``path/kb.toml`` where present)."""
    directory = Path(path)
    domain_file = directory / "domain.toml" if directory.is_dir() or not directory.suffix else directory
    directory = domain_file.parent
    data = _load_toml(domain_file)
    where = str(domain_file)

    routes = {
        rid: RouteSpec(rid, str(r.get("team", rid)), bool(r.get("priority", False)))
        for rid, r in _table(data, "routes", where).items()
    }
    slots: dict[str, SlotType] = {}
    for key, raw in _table(data, "slots", where).items():
        kind = raw.get("kind", "text")
        if kind not in SLOT_KINDS:
            raise DomainError(f"{where} [slots.{key}]: kind {kind!r} is not one of {', '.join(SLOT_KINDS)}")
        slots[key] = SlotType(key, str(raw.get("name", key)), kind)
    questions: dict[str, SlotQuestion] = {}
    for qid, raw in _table(data, "questions", where).items():
        accepts = _strings(raw.get("accepts", []), f"{where} [questions.{qid}].accepts")
        if not raw.get("ask") or not accepts:
            raise DomainError(f"{where} [questions.{qid}]: needs `ask` and a non-empty `accepts`")
        missing = [k for k in accepts if k not in slots]
        if missing:
            raise DomainError(f"{where} [questions.{qid}]: accepts undefined slot(s) {', '.join(missing)}")
        questions[qid] = SlotQuestion(qid, str(raw["ask"]), accepts)

    intents: dict[str, IntentSpec] = {}
    for label, raw in _table(data, "intents", where).items():
        iw = f"{where} [intents.{label}]"
        route = raw.get("route")
        if route not in routes:
            raise DomainError(f"{iw}: route {route!r} is not defined under [routes]")
        ask = _strings(raw.get("ask", []), f"{iw}.ask")
        unknown = [q for q in ask if q not in questions]
        if unknown:
            raise DomainError(f"{iw}: asks undefined question(s) {', '.join(unknown)}")
        intents[label] = IntentSpec(
            id=label,
            route=route,
            topic=str(raw.get("topic", label)),
            ask=ask,
            summary=str(raw.get("summary", "")),
            next_steps=_strings(raw.get("next_steps", []), f"{iw}.next_steps"),
            escalate=bool(raw.get("escalate", False)),
            fallback=bool(raw.get("fallback", False)),
            priority=bool(raw.get("priority", False) or routes[route].priority),
            keywords=_phrases(raw.get("keywords", []), f"{iw}.keywords"),
            short_keywords=_phrases(raw.get("short_keywords", []), f"{iw}.short_keywords"),
        )
    if not intents:
        raise DomainError(f"{where}: no [intents.*] defined")
    if sum(i.fallback for i in intents.values()) > 1:
        raise DomainError(f"{where}: more than one intent has fallback = true")

    prompts = {k: str(v) for k, v in _table(data, "prompts", where).items()}
    needed = list(REQUIRED_PROMPTS) + [i.id for i in intents.values() if i.escalate]
    missing_prompts = [p for p in needed if p not in prompts]
    if missing_prompts:
        raise DomainError(f"{where} [prompts]: missing {', '.join(missing_prompts)}")
    if any(p in prompts for p in NO_INPUT_PROMPTS) and not all(p in prompts for p in NO_INPUT_PROMPTS):
        raise DomainError(f"{where} [prompts]: {' and '.join(NO_INPUT_PROMPTS)} go together (or neither)")
    meta = _table(data, "domain", where)
    handoff_route = str(meta.get("handoff_route", "mensch"))
    if handoff_route not in routes:
        raise DomainError(f"{where} [domain]: handoff_route {handoff_route!r} is not defined under [routes]")
    language = _table(data, "language", where)
    hold_phrases = _phrases(language.get("hold", []), f"{where} [language].hold")
    if hold_phrases and "hold" not in prompts:
        raise DomainError(f"{where} [prompts]: missing hold (the reply to [language].hold)")
    say_again_phrases = _phrases(language.get("say_again", []), f"{where} [language].say_again")
    if say_again_phrases and not all(p in prompts for p in SAY_AGAIN_PROMPTS):
        raise DomainError(f"{where} [prompts]: missing {' or '.join(SAY_AGAIN_PROMPTS)} (the reply to "
                          "[language].say_again)")
    return Domain(
        name=str(meta.get("name", directory.name)),
        path=directory,
        intents=intents,
        routes=routes,
        slots=slots,
        questions=questions,
        prompts=prompts,
        policy=_load_policy(_table(data, "policy", where), f"{where} [policy]"),
        handoff_route=handoff_route,
        yes_words=_phrases(language.get("yes", ["ja"]), f"{where} [language].yes"),
        no_words=_phrases(language.get("no", ["nein"]), f"{where} [language].no"),
        skip_phrases=_phrases(language.get("skip", []), f"{where} [language].skip"),
        kb=_load_kb(directory / "kb.toml", intents),
        hold_phrases=hold_phrases,
        say_again_phrases=say_again_phrases,
    )


@lru_cache(maxsize=256)
def phrase_pattern(phrases: tuple[str, ...]) -> re.Pattern[str] | None:
    """One regex matching any of ``phrases`` as whole words in normalized text.

    A phrase made of digits must stand alone: "112" fires, "Kundennummer 112 45"
    or "0112" does not (a caller reading out a number is no emergency).
    """
    if not phrases:
        return None
    parts = []
    for phrase in sorted(phrases, key=len, reverse=True):
        body = r"\s+".join(re.escape(w) for w in phrase.split())
        if phrase.replace(" ", "").isdigit():
            parts.append(r"(?<![\d])(?<!\d\s)" + body + r"(?![\d])(?!\s\d)")
        else:
            parts.append(r"(?<!\w)" + body + r"(?!\w)")
    return re.compile("|".join(parts))


def normalize(text: str) -> str:
    """Lower case, punctuation removed, single spaces: the form phrases are matched in."""
    return " ".join(_PUNCT.sub(" ", text.lower()).split())


def safety_keyword(domain: Domain, text: str) -> tuple[str, str] | None:
    """The first safety intent whose keyword net fires on ``text``, with the matched phrase."""
    norm = normalize(text)
    short = len(norm.split()) <= domain.policy.short_utterance_words
    for label in domain.safety_labels:
        spec = domain.intents[label]
        for phrases in (spec.keywords, spec.short_keywords if short else ()):
            pattern = phrase_pattern(phrases)
            match = pattern.search(norm) if pattern else None
            if match:
                return label, match.group(0)
    return None


def default_decision(domain: Domain, prediction: IntentPrediction) -> str:
    """The decision for a prediction that carries none (built without a trained classifier)."""
    policy = domain.policy
    if prediction.confidence >= policy.act_threshold and prediction.margin >= 0.1:
        return "act"
    return "confirm" if prediction.confidence >= policy.confirm_threshold else "reask"

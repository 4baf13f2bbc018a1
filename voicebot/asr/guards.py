"""Hallucination guards: what Whisper says when nobody is talking is removed here.

Whisper was trained on subtitled broadcast video, so silence, hiss and music make
it "transcribe" closing credits ("Untertitel im Auftrag des ZDF", "Vielen Dank
fürs Zuschauen") or loop on a phrase. The first line of defence is upstream: no
decode without speech (VAD + energy gate in the endpointer). These guards are
the second, applied to every decode result (``clean_transcript``):

1. **no speech**: Whisper's own rule: ``no_speech_prob`` above its threshold *and*
   a mean log-probability below its threshold means silence; the same when the
   decode is unsure (low confidence) or loops, since loops have deceptively good
   log-probabilities, at a no-speech probability of its own
   (``asr.unsure_no_speech_threshold``: short right answers on a phone line reach
   0.75, noise 0.95); plus a hard floor on the log-probability. An unsure decode
   made only of the initial prompt's words (Whisper echoing its prompt) goes too.
2. **phantom phrases**: sentences matching known broadcast phantoms are dropped
   wherever they occur. A second, *weak* list ("Tschüss", "Danke", "Vielen Dank")
   is only dropped when it is all that was heard and the decode is unsure: a
   caller saying goodbye must still be heard.
3. **repetition loops**: a phrase repeated back to back (4+ words twice, 2+ words
   three times, one word five times) collapses to one occurrence, and a truncated
   restart of the loop at the end is cut.

Everything works on the word list, so word timings stay aligned with the text.
"""

from __future__ import annotations

import math
import re
from dataclasses import replace

from voicebot.asr.transcriber import TranscriptionResult
from voicebot.config import AsrSettings
from voicebot.frames import Word

# Matched against one normalized sentence (lower case, punctuation gone, see _key).
# Any match drops the whole sentence.
PHANTOM_PATTERNS: tuple[str, ...] = (
    r"untertitel",  # "Untertitel im Auftrag des ZDF", "... der Amara.org-Community", "Untertitelung: ..."
    r"amara ?org",
    r"(vielen )?dank (fürs|für s|für das|für ihr|für euer) zu(schauen|sehen|hören)",
    r"danke (fürs|für s|für das) zu(schauen|sehen|hören)",
    r"(das wars|das war es) für heute",
    r"bis zum nächsten mal",
    r"(abonniert|abonniere|abonnieren) .*kanal",
    r"copyright",
    r"\b(zdf|ard|wdr|swr|ndr|mdr|br|hr|rbb|sr|funk) ?(19|20)\d\d\b",
    r"^(musik|applaus|lachen|stille|gelächter)$",
    r"www \w+ (de|com|org)",
)
# Dropped only when the whole (already cleaned) transcript is made of these and
# the decode is unsure (see ``WEAK_MAX_CONFIDENCE``).
WEAK_PHANTOMS: tuple[str, ...] = (
    "tschüss", "tschüs", "danke", "danke schön", "dankeschön", "vielen dank", "vielen dank für ihre aufmerksamkeit",
    "bis dann", "ciao", "bye", "auf wiedersehen", "amen", "so", "ähm",
)
WEAK_MAX_CONFIDENCE = 0.6
WEAK_MIN_NO_SPEECH = 0.2
# Below this mean token log-probability a decode is noise (real speech, even
# telephone-band, stays well above it; measured on the shared German set).
HARD_LOGPROB_FLOOR = -1.6
# Below this turn confidence a decode is "unsure" (real speech stays above ~0.33).
UNSURE_CONFIDENCE = 0.5
# Share of words that must come from the prompt for a prompt echo.
PROMPT_ECHO_SHARE = 0.8
# The same for one unsure sentence of a longer transcript (its sub-words, so a garbled
# "Kündungs-Telefonat auf Deutsch" still counts as the prompt's "Kundenservice-Telefonat auf Deutsch").
SENTENCE_ECHO_SHARE = 0.7

_PHANTOM_RE = re.compile("|".join(f"(?:{p})" for p in PHANTOM_PATTERNS))
_WEAK = frozenset(WEAK_PHANTOMS)
_SENTENCE_END = (".", "!", "?", "…")
_NON_WORD = re.compile(r"[^\wäöüß ]+")


def _key(text: str) -> str:
    """Lower case, punctuation and apostrophes removed, single spaces."""
    return " ".join(_NON_WORD.sub(" ", text.casefold().replace("'", "").replace("’", "")).split())


def _words_of(result: TranscriptionResult) -> list[Word]:
    """The result's words, or pseudo-words (no timing) when it was decoded without timestamps."""
    if result.words:
        return list(result.words)
    return [Word(w, 0.0, 0.0, 1.0) for w in result.text.split()]


def _sentences(words: list[Word]) -> list[list[Word]]:
    sentences: list[list[Word]] = [[]]
    for w in words:
        sentences[-1].append(w)
        if w.text.endswith(_SENTENCE_END):
            sentences.append([])
    return [s for s in sentences if s]


def is_phantom(text: str) -> bool:
    """True when ``text`` (one sentence) is a known broadcast phantom phrase."""
    key = _key(text)
    return bool(key) and bool(_PHANTOM_RE.search(key))


def remove_phantoms(words: list[Word]) -> list[Word]:
    """Drop every sentence that is a known phantom phrase."""
    kept: list[Word] = []
    for sentence in _sentences(words):
        if not is_phantom(" ".join(w.text for w in sentence)):
            kept.extend(sentence)
    return kept


def collapse_repetitions(words: list[Word]) -> list[Word]:
    """Collapse back-to-back repeats of a phrase (a decoding loop) to one occurrence."""
    keys = [_key(w.text) for w in words]
    out: list[Word] = []
    i = 0
    while i < len(words):
        loop = _loop_at(keys, i)
        if loop is None:
            out.append(words[i])
            i += 1
            continue
        n, repeats = loop
        out.extend(words[i : i + n])
        i += n * repeats
        # A loop cut off by the token limit ends in a truncated restart: drop it.
        tail = 0
        while tail < n - 1 and i + tail < len(keys) and keys[i + tail] == keys[i - n + tail]:
            tail += 1
        if i + tail == len(keys):
            i += tail
    return out


def _loop_at(keys: list[str], i: int) -> tuple[int, int] | None:
    """(unit length, repeats) of the longest loop starting at ``i``, or None."""
    best: tuple[int, int] | None = None
    for n in range(1, min(12, (len(keys) - i) // 2) + 1):
        unit = keys[i : i + n]
        if not any(unit):
            continue
        repeats = 1
        while keys[i + repeats * n : i + (repeats + 1) * n] == unit:
            repeats += 1
        needed = 2 if n >= 4 else 3 if n >= 2 else 5
        if repeats >= needed and (best is None or n * repeats > best[0] * best[1]):
            best = (n, repeats)
    return best


def is_no_speech(result: TranscriptionResult, no_speech_threshold: float, log_prob_threshold: float) -> bool:
    """Whisper's silence rule, plus the hard log-probability floor."""
    if result.avg_logprob < HARD_LOGPROB_FLOOR:
        return True
    return result.no_speech_prob > no_speech_threshold and result.avg_logprob < log_prob_threshold


def _weak_only(words: list[Word], result: TranscriptionResult) -> bool:
    key = _key(" ".join(w.text for w in words))
    if not key:
        return False
    parts = [p.strip() for p in re.split(r"[.!?,]", " ".join(w.text for w in words).casefold()) if p.strip()]
    if not all(_key(p) in _WEAK for p in parts):
        return False
    return result.confidence < WEAK_MAX_CONFIDENCE or result.no_speech_prob > WEAK_MIN_NO_SPEECH


def is_prompt_echo(words: list[Word], prompt: str) -> bool:
    """True when the text is (almost) only words of the decoding prompt: Whisper regurgitating it."""
    keys = [k for k in (_key(w.text) for w in words) if k]
    vocabulary = set(_key(prompt).split())
    if len(keys) < 2 or not vocabulary:
        return False
    return sum(k in vocabulary for k in keys) >= PROMPT_ECHO_SHARE * len(keys)


def remove_prompt_echo_sentences(words: list[Word], prompt: str) -> list[Word]:
    """Drop unsure sentences made (almost) only of prompt words: Whisper appending its prompt to real speech
    ("Direkt an der Autobahn zu tanken. Kündungs-Telefonat auf Deutsch."). Needs word probabilities."""
    vocabulary = set(_key(prompt).split())
    if not vocabulary:
        return words
    kept: list[Word] = []
    for sentence in _sentences(words):
        keys = _key(" ".join(w.text for w in sentence)).split()
        probs = [max(w.probability, 1e-6) for w in sentence]
        sure = math.exp(sum(math.log(p) for p in probs) / len(probs)) >= UNSURE_CONFIDENCE
        if len(keys) >= 3 and not sure and sum(k in vocabulary for k in keys) >= SENTENCE_ECHO_SHARE * len(keys):
            continue
        kept.extend(sentence)
    return kept


def clean_transcript(
    result: TranscriptionResult,
    *,
    no_speech_threshold: float = 0.6,
    log_prob_threshold: float = -1.0,
    prompt: str = "",
    unsure_no_speech_threshold: float | None = None,
) -> TranscriptionResult:
    """Blank or trim phantom output. Reasons land in ``result.guard`` (empty when nothing was changed).

    ``prompt`` is the initial prompt the decode used (for the prompt-echo check).
    ``unsure_no_speech_threshold``: the no-speech probability above which an *unsure* decode is blanked
    (``None``: ``no_speech_threshold``, Whisper's own rule's threshold).
    """
    if not result.text.strip():
        return result
    reasons: list[str] = []
    words = _words_of(result)
    collapsed = collapse_repetitions(words)
    looped = len(collapsed) != len(words)
    # Measured on the shared German set: real speech has no_speech_prob <= 0.14 and
    # confidence >= 0.33 (telephone band included); noise decoded without a VAD gives
    # no_speech_prob >= 0.88 with confidence <= 0.33, or a "confident" repetition loop.
    unsure = result.confidence < UNSURE_CONFIDENCE or looped
    unsure_floor = no_speech_threshold if unsure_no_speech_threshold is None else unsure_no_speech_threshold
    if is_no_speech(result, no_speech_threshold, log_prob_threshold) or (
        result.no_speech_prob > unsure_floor and unsure
    ):
        words, reasons = [], ["no_speech"]
    if words and prompt and result.confidence < UNSURE_CONFIDENCE and is_prompt_echo(words, prompt):
        words, reasons = [], ["prompt_echo"]
    if words and prompt and result.words:
        cleaned = remove_prompt_echo_sentences(words, prompt)
        if len(cleaned) != len(words):
            reasons.append("prompt_echo")
        words = cleaned
    if words:
        cleaned = remove_phantoms(words)
        if len(cleaned) != len(words):
            reasons.append("phantom")
        words = cleaned
    if words:
        cleaned = collapse_repetitions(words)
        if len(cleaned) != len(words):
            reasons.append("repetition")
        words = cleaned
    if words and _weak_only(words, result):
        words, reasons = [], [*reasons, "weak_phantom"]
    if not reasons:
        return result
    text = " ".join(w.text for w in words).strip()
    return replace(
        result,
        text=text,
        words=tuple(words) if result.words else (),
        guard=tuple(reasons),
    )


def clean_for(asr: AsrSettings, result: TranscriptionResult, prompt: str | None = None) -> TranscriptionResult:
    """``clean_transcript`` with the thresholds of ``asr``.

    ``prompt``: the initial prompt the decode used (default ``asr.initial_prompt``); ``asr.hotwords`` are added
    here, as the decode adds them to its prompt."""
    return clean_transcript(
        result, no_speech_threshold=asr.no_speech_threshold, log_prob_threshold=asr.log_prob_threshold,
        prompt=f"{asr.initial_prompt if prompt is None else prompt} {asr.hotwords}",
        unsure_no_speech_threshold=asr.unsure_no_speech_threshold,
    )

"""Barge-in: when the caller's voice pauses, resumes or stops the bot's speech.

A pure state machine (no clock, no audio): the caller feeds it VAD and ASR events
with their times and applies the returned ``BargeInAction`` to the ``TtsPlayer``.
That keeps the policy testable with scripted timings.

Policy (see docs/DEVELOPING.md, "Contracts"):

* Caller voice during playback **pauses at once**. The endpointer confirms a turn
  only after ``vad.min_speech_ms`` (200 ms) of speech, which alone would miss the
  200 ms budget, so the controller also watches the per-frame VAD probability
  (``on_voice``) and pauses tentatively once the voice has lasted ``onset_ms``
  (default 0: the first 32 ms Silero frame at the caller VAD's threshold; on the
  phone-line benchmark turns that is p50 34 / p90 58 ms after the audible onset,
  three frames were p50 96 / p90 130 ms: ``scripts/bench_onset_rules.py``). If the
  endpointer does not confirm a turn within ``confirm_timeout_ms`` (a click, a
  cough), playback resumes.
* A confirmed turn longer than ``backchannel_max_ms`` **stops** playback: the caller
  is taking the floor.
* A short turn is judged by its transcript: a backchannel ("mhm", "ja", "okay",
  "genau", "hm", ...) or nothing at all (noise) **resumes**; real words stop.
  A partial that already holds real words stops early. Whisper mishears lone
  backchannels ("Genau" as "Kenau"), so a word of four letters or more one edit
  away from a backchannel word counts as that word. A final that comes after the
  transcript timeout (the bot resumed without it) is still judged: a backchannel
  is swallowed (a second ``resumed`` names it for the turn-taker), words stop.
"""

from __future__ import annotations

import enum
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from voicebot.config import TtsSettings

BACKCHANNEL_WORDS: frozenset[str] = frozenset({
    "mhm", "mhmm", "mmh", "mm", "hm", "hmm", "hmhm", "mh", "aha", "ah", "ach", "achso", "so",
    "ja", "jaja", "jap", "jep", "jo", "ok", "okay", "okey", "genau", "gut", "richtig", "stimmt", "klar",
    "alles", "verstehe", "super", "prima", "schön", "danke", "na", "eben", "exakt",
    "jawohl", "genauso", "korrekt", "sicher", "natürlich", "in", "ordnung", "oh",
})
FUZZY_MIN_LETTERS = 4  # shorter words are too close to real ones ("ja" ~ "da", "so" ~ "zu")
MAX_BACKCHANNEL_WORDS = 3
# A partial with this many words that is not a backchannel stops playback before the turn ends.
PARTIAL_STOP_WORDS = 3
_NON_WORD = re.compile(r"[^\wäöüß ]+")


def is_backchannel(text: str) -> bool:
    """True for short acknowledgements ("Mhm.", "Ja, genau.", "Okay") that do not take the floor."""
    words = _NON_WORD.sub(" ", text.casefold()).split()
    return 0 < len(words) <= MAX_BACKCHANNEL_WORDS and all(_backchannel_word(w) for w in words)


def _backchannel_word(word: str) -> bool:
    if word in BACKCHANNEL_WORDS:
        return True
    return len(word) >= FUZZY_MIN_LETTERS and any(
        len(b) >= FUZZY_MIN_LETTERS and _one_edit(word, b) for b in BACKCHANNEL_WORDS)


def _one_edit(a: str, b: str) -> bool:
    """True if ``a`` and ``b`` differ by exactly one substitution, insertion or deletion."""
    if abs(len(a) - len(b)) > 1 or a == b:
        return False
    if len(a) > len(b):
        a, b = b, a
    i = 0
    while i < len(a) and a[i] == b[i]:
        i += 1
    return a[i + (len(a) == len(b)):] == b[i + 1:]


class BargeInAction(enum.Enum):
    """A decision on the bot's playback; the values are the wire spelling of the ``bargein`` event."""

    NONE = "none"
    PAUSE = "paused"
    RESUME = "resumed"
    STOP = "stopped"


class _State(enum.Enum):
    IDLE = "idle"  # the bot is not speaking
    PLAYING = "playing"
    TENTATIVE = "tentative"  # paused on early voice, turn not confirmed yet
    LISTENING = "listening"  # paused, caller turn confirmed and ongoing
    DECIDING = "deciding"  # paused, short turn over, waiting for its transcript
    STOPPED = "stopped"  # stopped for this utterance


class BargeInController:
    """Decides pause / resume / stop of bot playback from caller speech events (times in seconds)."""

    def __init__(
        self,
        backchannel_max_ms: int = 600,
        *,
        onset_ms: int = 0,
        voice_threshold: float = 0.5,
        confirm_timeout_ms: int = 400,
        transcript_timeout_ms: int = 1500,
    ) -> None:
        self.backchannel_max = backchannel_max_ms / 1000.0
        self.onset = onset_ms / 1000.0
        self.voice_threshold = voice_threshold
        self.confirm_timeout = confirm_timeout_ms / 1000.0
        self.transcript_timeout = transcript_timeout_ms / 1000.0
        self._state = _State.IDLE
        self._voice_since: float | None = None
        self._paused_at: float | None = None
        self._speech_start: float | None = None
        self._speech_end: float | None = None
        self._last_voice = 0.0  # newest voiced frame of the caller's turn during a pause
        self._late_final = False  # resumed on the transcript timeout: the short turn's final is still due

    @classmethod
    def from_settings(cls, tts: TtsSettings) -> BargeInController:
        """The controller the ``[tts]`` settings describe."""
        return cls(tts.backchannel_max_ms, onset_ms=tts.bargein_onset_ms,
                   confirm_timeout_ms=tts.bargein_confirm_ms)

    @property
    def state(self) -> str:
        return self._state.value

    @property
    def paused(self) -> bool:
        return self._state in (_State.TENTATIVE, _State.LISTENING, _State.DECIDING)

    # --- the bot's side ---------------------------------------------------------------

    def playback_started(self) -> None:
        """The bot starts an utterance."""
        self._state = _State.PLAYING
        self._voice_since = None
        self._late_final = False

    def playback_finished(self) -> None:
        """The utterance is over (completed or stopped)."""
        self._state = _State.IDLE
        self._voice_since = None
        self._late_final = False

    # --- the caller's side ------------------------------------------------------------

    def on_voice(self, t: float, probability: float) -> BargeInAction:
        """Per analysed VAD frame (time of the frame's end): the early pause, and how long the caller talks."""
        if self._state is _State.LISTENING and probability >= self.voice_threshold:
            self._last_voice = t
        if self._state is not _State.PLAYING:
            return BargeInAction.NONE
        if probability < self.voice_threshold:
            self._voice_since = None
            return BargeInAction.NONE
        if self._voice_since is None:
            self._voice_since = t
        if t - self._voice_since >= self.onset:
            self._state = _State.TENTATIVE
            self._paused_at = t
            return BargeInAction.PAUSE
        return BargeInAction.NONE

    def on_speech_started(self, t: float) -> BargeInAction:
        """The endpointer confirmed a caller turn that began at ``t``."""
        if self._state in (_State.IDLE, _State.STOPPED):
            return BargeInAction.NONE
        self._late_final = False  # a new turn: the old one's final, if late, is judged as a turn
        action = BargeInAction.PAUSE if self._state is _State.PLAYING else BargeInAction.NONE
        self._state = _State.LISTENING
        self._speech_start = t
        self._last_voice = t
        return action

    def on_speech_ended(self, t: float, start: float | None = None) -> BargeInAction:
        """The caller's turn ended at ``t`` (``start``: its onset, if known better than ours)."""
        if self._state is not _State.LISTENING:
            return BargeInAction.NONE
        begin = start if start is not None else (self._speech_start if self._speech_start is not None else t)
        if t - begin > self.backchannel_max:
            return self._stop()
        self._state = _State.DECIDING
        self._speech_end = t
        return BargeInAction.NONE

    def on_transcript(self, text: str, is_final: bool) -> BargeInAction:
        """A transcript of the caller's turn during a barge-in pause."""
        words = text.strip()
        if self._state is _State.PLAYING and self._late_final and is_final:
            self._late_final = False
            # The short turn's final, after the bot resumed without it: RESUME (a no-op for the player)
            # tells the turn-taker that this final was a backchannel, not a turn to answer.
            return BargeInAction.RESUME if not words or is_backchannel(words) else self._stop()
        if self._state not in (_State.LISTENING, _State.DECIDING):
            return BargeInAction.NONE
        if not is_final:
            # Real words in a partial: the caller is taking the floor, no need to wait.
            if len(words.split()) >= PARTIAL_STOP_WORDS and not is_backchannel(words):
                return self._stop()
            return BargeInAction.NONE
        if self._state is _State.LISTENING:
            return BargeInAction.NONE  # a final of an earlier turn; wait for this one to end
        if not words or is_backchannel(words):
            return self._resume()
        return self._stop()

    def tick(self, t: float) -> BargeInAction:
        """Time passes (call this every frame or so): timeouts."""
        if self._state is _State.TENTATIVE and self._paused_at is not None:
            if t - self._paused_at > self.confirm_timeout:
                return self._resume()  # voice never became a turn: a click or a cough
        elif self._state is _State.LISTENING and self._speech_start is not None:
            # The caller's voice (not the endpointer's closing silence) has lasted too long for a backchannel.
            if self._last_voice - self._speech_start > self.backchannel_max:
                return self._stop()
        elif self._state is _State.DECIDING and self._speech_end is not None:
            if t - self._speech_end > self.transcript_timeout:
                # No words yet (a loaded machine takes seconds for a final): go on talking, and judge the
                # final when it comes: a backchannel is swallowed, real words still stop the bot.
                self._late_final = True
                return self._resume()
        return BargeInAction.NONE

    def _stop(self) -> BargeInAction:
        self._state = _State.STOPPED
        return BargeInAction.STOP

    def _resume(self) -> BargeInAction:
        self._state = _State.PLAYING
        self._voice_since = None
        return BargeInAction.RESUME

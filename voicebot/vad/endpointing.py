"""Endpointing: where a caller's turn starts and ends.

``Endpointer`` is fed ``AudioFrame``s at the ASR rate (16 kHz), cuts them into
the detector's frame size and runs a small state machine over the per-frame
speech probabilities:

* **idle** – frames go into a pre-roll ring (the quiet onset of the first
  word is often below the detector's threshold; Whisper needs it).
* **candidate** – speech was seen, but less than ``min_speech_ms`` of it. A
  cough or a click ends here and is discarded without any event.
* **speech** – ``SpeechStarted(t)`` was emitted (``t`` = speech onset). The turn
  ends with ``SpeechEnded`` after ``end_silence_ms`` without speech (``t`` =
  where speech stopped), or is forced to end after ``max_turn_s``.

Frames whose RMS level is below ``energy_floor_dbfs`` never count as speech:
the cheapest hallucination guard there is (line hiss, comfort noise). Inside a turn the
gate is ``IN_TURN_GATE_DROP_DB`` lower, so a quiet caller's turn does not end mid-sentence.
A detector that can ``defer`` a frame (Silero) runs the gated frames later, batched with the
next frame that counts (``defer_gated_frames``): the same state, at about half the CPU on a
quiet line. (Skipping them outright left Silero's state primed by the last speech: onsets
on phone turns came up to 0.5 s earlier than with every frame run.)

Pure and synchronous: no clocks, no threads, no randomness. The same audio
gives the same events, wherever it is cut into frames.
"""

from __future__ import annotations

import enum

import numpy as np

from voicebot.audio.errors import AudioFormatError
from voicebot.frames import AudioFrame, SpeechEnded, SpeechStarted
from voicebot.vad.buffer import _GrowingBuffer
from voicebot.vad.detector import VoiceActivityDetector as VoiceActivityDetector
from voicebot.vad.detector import build_detector as build_detector
from voicebot.vad.detector import rms_dbfs as rms_dbfs
from voicebot.vad.settings import DETECTORS as DETECTORS
from voicebot.vad.settings import EndpointerSettings as EndpointerSettings

EndpointEvent = SpeechStarted | SpeechEnded

# Gaps tolerated inside a not-yet-confirmed turn: unvoiced consonants and
# stops make detectors flicker for a frame or two at the start of a word.
CANDIDATE_GAP_MS = 100
# Inside a turn the energy gate sits this much lower: a turn must start loud enough (crosstalk
# from another room never starts one), but a quiet caller's softer syllables, 5-15 dB under
# the gate through the phone band, must not end it mid-sentence ("Reinhold hat einen richtig
# dicken Oschi aus dem Teich gezogen." ended after its first word at -50 dBFS).
IN_TURN_GATE_DROP_DB = 12.0
# A turn forced to end at ``max_turn_s`` is cut at the quietest point of its last
# seconds (a pause between sentences, else the lowest-energy frame), not mid-word; the
# rest starts the next turn at once. Cutting mid-word loses or garbles that word twice.
FORCED_CUT_LOOKBACK_S = 4.0


class _State(enum.Enum):
    IDLE = "idle"
    CANDIDATE = "candidate"
    SPEECH = "speech"


class Endpointer:
    """Turns a 16 kHz ``AudioFrame`` stream into ``SpeechStarted`` / ``SpeechEnded`` events.

    One instance per call, with its own detector (``build_detector``). Stream
    times come from the first frame's ``t`` plus the samples seen since; frames
    are assumed contiguous.
    """

    def __init__(self, settings: EndpointerSettings, detector: VoiceActivityDetector) -> None:
        if detector.sample_rate != settings.sample_rate:
            raise ValueError(
                f"detector runs at {detector.sample_rate} Hz but the endpointer at {settings.sample_rate} Hz"
            )
        self.settings = settings
        self.detector = detector
        self._rate = settings.sample_rate
        self._frame = detector.frame_samples
        self._frame_ms = 1000.0 * self._frame / self._rate
        self._pre_roll = settings.pre_roll_ms * self._rate // 1000
        self._post_roll = settings.post_roll_ms * self._rate // 1000
        self._neg_threshold = settings.effective_neg_threshold
        # A candidate keeps the default hysteresis (threshold - 0.15) whatever the in-turn lower threshold: a quiet
        # phone turn whose probabilities hover at 0.15-0.3 (EmoDB 10a01Ac) was never confirmed at 0.20.
        self._cand_threshold = min(self._neg_threshold, settings.default_neg_threshold)
        self._defer = getattr(detector, "defer", None) if settings.defer_gated_frames else None
        self.reset()

    # --- public API ------------------------------------------------------------------

    def reset(self) -> None:
        """Forget everything (a new call, or a new stream for the same call)."""
        self.detector.reset()
        self._t0: float | None = None
        self._pending = np.zeros(0, dtype=np.int16)
        self._pos = 0  # samples analysed so far (absolute index of the next frame)
        self._state = _State.IDLE
        self._ring = np.zeros(0, dtype=np.int16)  # the pre-roll: samples just before self._pos
        self._cand: list[np.ndarray] = []
        self._cand_start = 0
        self._cand_speech_frames = 0
        self._cand_gap = 0
        self._cand_speech_end = 0
        self._turn = _GrowingBuffer(0)
        self._turn_audio_start = 0  # absolute sample index of the turn buffer's first sample
        self._speech_start = 0
        self._speech_end = 0  # end of the last speech frame in the turn
        self._silence_frames = 0
        self._last_probability = 0.0
        self._idle_frames = 0  # frames without speech since the last turn or candidate
        self._heard_turn = False  # a turn ended since the detector's state was last fresh
        # Per analysed frame from the candidate's start: speech probability and level (forced cuts).
        self._cand_frames: list[tuple[float, float]] = []
        self._frames: list[tuple[float, float]] = []

    @property
    def in_speech(self) -> bool:
        """True between ``SpeechStarted`` and ``SpeechEnded``."""
        return self._state is _State.SPEECH

    @property
    def voice_pending(self) -> bool:
        """Voice that may start a turn, not yet confirmed: from a candidate's first voiced frame until it becomes
        a turn (``SpeechStarted``, then ``in_speech``) or is dropped as a blip (``CANDIDATE_GAP_MS`` later).
        A caller going on after a pause is here for ``min_speech_ms`` or more before ``in_speech`` says so:
        an answer released then cuts in."""
        return self._state is _State.CANDIDATE

    @property
    def time(self) -> float:
        """Stream time up to which audio has been analysed."""
        return self._time(self._pos)

    @property
    def last_probability(self) -> float:
        """The last frame's speech probability after the energy gate (for meters and debugging)."""
        return self._last_probability

    @property
    def turn_audio_start(self) -> float:
        """Stream time of the first sample of the current (or last) turn's audio, pre-roll included.

        Add it to ASR word timings (relative to the turn audio) to get stream times.
        """
        return self._time(self._turn_audio_start)

    def current_turn_audio(self) -> np.ndarray:
        """A copy of the ongoing turn's audio so far (pre-roll included); empty outside a turn."""
        if self._state is not _State.SPEECH:
            return np.zeros(0, dtype=np.int16)
        return self._turn.view().copy()

    def process(self, frame: AudioFrame) -> list[EndpointEvent]:
        """Feed one frame of any length; returns the events it completed, in order."""
        if frame.sample_rate != self._rate:
            raise AudioFormatError(
                f"the endpointer takes {self._rate} Hz audio, got {frame.sample_rate} Hz; resample first"
            )
        if self._t0 is None:
            self._t0 = frame.t
        pcm = np.concatenate([self._pending, frame.pcm]) if len(self._pending) else frame.pcm
        events: list[EndpointEvent] = []
        n_full = len(pcm) // self._frame * self._frame
        for i in range(0, n_full, self._frame):
            events.extend(self._step(pcm[i : i + self._frame]))
        self._pending = pcm[n_full:].copy()
        return events

    def end_turn(self) -> list[EndpointEvent]:
        """The turn-taker decided the turn is over (before ``end_silence_ms``): close it now.

        The stream goes on; what follows is the next turn's pre-roll, as after a normal end.
        """
        if self._state is not _State.SPEECH:
            return []
        return [self._end_turn(forced=False, stream_end=self._pos)]

    def flush(self) -> list[EndpointEvent]:
        """End of stream: close an ongoing turn (a started but unconfirmed one is dropped)."""
        events: list[EndpointEvent] = []
        if self._state is _State.SPEECH:
            self._turn.append(self._pending)  # not analysed, but part of the post-roll
            events.append(self._end_turn(forced=False, stream_end=self._pos + len(self._pending)))
        else:
            if self._state is _State.CANDIDATE:
                self._abort_candidate()
            self._push_ring(self._pending)  # keeps the pre-roll aligned if the stream goes on
        self._pos += len(self._pending)
        self._pending = np.zeros(0, dtype=np.int16)
        self._cand = []
        return events

    # --- state machine ----------------------------------------------------------------

    def _time(self, sample: int) -> float:
        return (self._t0 or 0.0) + sample / self._rate

    def _ms(self, frames: int) -> float:
        return frames * self._frame_ms

    def _step(self, pcm: np.ndarray) -> list[EndpointEvent]:
        start = self._pos
        self._pos += self._frame
        level = rms_dbfs(pcm)
        floor = self.settings.energy_floor_dbfs
        if floor is not None and self._state is _State.SPEECH:
            floor -= IN_TURN_GATE_DROP_DB
        # The detector sees every frame, gated or not, so its recurrent state follows the real audio. A gated
        # frame's probability is not needed now: a detector that can defer it (Silero) runs it later, in one
        # model call with the next frame that counts (Silero was ~20% of a 16-call server's event loop).
        if floor is not None and level < floor:
            prob = 0.0
            if self._defer is not None:
                self._defer(pcm)
            else:
                self.detector.is_speech(pcm)
        else:
            prob = self.detector.is_speech(pcm)
        self._last_probability = prob
        if self._state is not _State.IDLE:
            self._idle_frames = 0

        if self._state is _State.SPEECH:
            return self._step_speech(pcm, prob, level)
        if self._state is _State.IDLE:
            if prob < self.settings.threshold:
                self._push_ring(pcm)
                self._idle_reset()
                return []
            self._state = _State.CANDIDATE
            self._cand = [pcm.copy()]
            self._cand_frames = [(prob, level)]
            self._cand_start = start
            self._cand_speech_frames = 1
            self._cand_gap = 0
            self._cand_speech_end = self._pos
        else:
            self._cand.append(pcm.copy())
            self._cand_frames.append((prob, level))
            # Hysteresis as inside a turn: once triggered, frames above the lower
            # threshold keep the candidate alive and count towards min_speech_ms.
            # Narrowband (telephone) speech often hovers just under the threshold.
            if prob >= self._cand_threshold:
                self._cand_speech_frames += 1
                self._cand_gap = 0
                self._cand_speech_end = self._pos
            else:
                self._cand_gap += 1
                if self._ms(self._cand_gap) >= CANDIDATE_GAP_MS:
                    self._abort_candidate()
                    return []
        if self._ms(self._cand_speech_frames) >= self.settings.min_speech_ms:
            return [self._confirm()]
        return []

    def _idle_reset(self) -> None:
        """After a turn, start the detector's state afresh once ``idle_reset_ms`` passed without speech.

        Once per turn, not on every idle stretch: a state that has only heard the line since adapts to
        its noise (hold music after white noise started a turn when the state was reset while idle).
        """
        self._idle_frames += 1
        if (self._heard_turn and self.settings.idle_reset_ms > 0
                and self._ms(self._idle_frames) >= self.settings.idle_reset_ms):
            self.detector.reset()
            self._heard_turn = False
            # A state reset at the very moment speech starts hears it late too: warm it on the line's last
            # second (the pre-roll ring holds it, no speech in it), as a call's first turn finds it.
            frame = self._frame
            warm = self._ring[len(self._ring) % frame :]
            for i in range(0, len(warm), frame):
                self.detector.is_speech(warm[i : i + frame])

    def _push_ring(self, pcm: np.ndarray) -> None:
        if self._pre_roll:
            self._ring = np.concatenate([self._ring, pcm])[-self._pre_roll :]

    def _abort_candidate(self) -> None:
        # A blip: its audio becomes pre-roll material, nothing is emitted.
        self._state = _State.IDLE
        for f in self._cand:
            self._push_ring(f)
        self._cand = []

    def _confirm(self) -> SpeechStarted:
        self._state = _State.SPEECH
        self._turn = _GrowingBuffer(int(self.settings.max_turn_s * self._rate) // 4)
        self._turn.append(self._ring)
        for f in self._cand:
            self._turn.append(f)
        self._turn_audio_start = self._cand_start - len(self._ring)
        self._speech_start = self._cand_start
        self._speech_end = self._cand_speech_end
        self._silence_frames = self._cand_gap
        self._frames = self._cand_frames
        self._cand = []
        self._cand_frames = []
        self._ring = np.zeros(0, dtype=np.int16)
        return SpeechStarted(t=self._time(self._speech_start))

    def _step_speech(self, pcm: np.ndarray, prob: float, level: float) -> list[EndpointEvent]:
        self._turn.append(pcm)
        self._frames.append((prob, level))
        if prob >= self._neg_threshold:
            self._silence_frames = 0
            self._speech_end = self._pos
        else:
            self._silence_frames += 1
        if self._ms(self._silence_frames) >= self.settings.end_silence_ms:
            return [self._end_turn(forced=False, stream_end=self._pos)]
        if (self._pos - self._speech_start) / self._rate >= self.settings.max_turn_s:
            return self._force_cut()
        return []

    def _quietest_frame(self) -> int:
        """Index (into ``self._frames``) where a forced cut does least harm: the middle of the longest
        run of non-speech frames in the lookback, else the lowest-level frame; never the first second."""
        n = len(self._frames)
        lo = max(int(1000.0 / self._frame_ms), n - int(FORCED_CUT_LOOKBACK_S * 1000.0 / self._frame_ms))
        if lo >= n - 1:
            return n
        best_len, best_mid, run = 0, -1, 0
        for i in range(lo, n):
            run = run + 1 if self._frames[i][0] < self._neg_threshold else 0
            if run > best_len:
                best_len, best_mid = run, i - run // 2
        if best_len:
            return best_mid
        return min(range(lo, n), key=lambda i: self._frames[i][1])

    def _force_cut(self) -> list[EndpointEvent]:
        """``max_turn_s`` reached mid-speech: end the turn at its quietest recent point and start the
        next turn there at once, so no audio is lost, cut mid-word, or decoded twice."""
        k = self._quietest_frame()
        cut = self._speech_start + k * self._frame  # frames are counted from the speech start
        if k >= len(self._frames):
            return [self._end_turn(forced=True, stream_end=self._pos)]
        offset = self._turn_audio_start
        audio = self._turn.view(0, cut - offset).copy()
        rest = self._turn.view(cut - offset).copy()
        ended = SpeechEnded(t=self._time(cut), start=self._time(self._speech_start), audio=audio,
                            sample_rate=self._rate)
        self._turn = _GrowingBuffer(int(self.settings.max_turn_s * self._rate) // 4)
        self._turn.append(rest)
        self._turn_audio_start = self._speech_start = cut
        self._frames = self._frames[k:]
        speech = [i for i, (p, _) in enumerate(self._frames) if p >= self._neg_threshold]
        self._speech_end = cut + (speech[-1] + 1) * self._frame if speech else cut
        self._silence_frames = len(self._frames) - (speech[-1] + 1) if speech else len(self._frames)
        return [ended, SpeechStarted(t=self._time(cut))]

    def _end_turn(self, forced: bool, stream_end: int) -> SpeechEnded:
        if forced:
            # Cut mid-speech: keep everything, and start the next turn from
            # scratch so no audio is decoded twice.
            cut, end = stream_end, stream_end
        else:
            cut, end = min(self._speech_end + self._post_roll, stream_end), self._speech_end
        offset = self._turn_audio_start
        audio = self._turn.view(0, cut - offset).copy()
        # Trailing silence after the cut is the next turn's pre-roll.
        self._ring = self._turn.view(cut - offset)[-self._pre_roll :].copy() if self._pre_roll else self._ring[:0]
        self._state = _State.IDLE
        self._heard_turn = True
        return SpeechEnded(t=self._time(end), start=self._time(self._speech_start), audio=audio, sample_rate=self._rate)

"""Endpointer settings: which detector, thresholds and timings cut a caller's turns."""

from __future__ import annotations

from dataclasses import dataclass, replace

DETECTORS = ("silero", "webrtc")


@dataclass(frozen=True)
class EndpointerSettings:
    """How turns are cut. Field names follow ``voicebot.config.VadSettings``."""

    detector: str = "silero"  # silero | webrtc
    threshold: float = 0.5  # probability at which a frame is speech
    # Inside a turn, below this is silence; default threshold - 0.15. Phone calls: vad.narrowband_neg_threshold
    # (voicebot.asr.streaming.endpointer_settings). A turn's candidate counts its frames against the lower of this
    # and threshold - 0.15 (a higher value must not leave a quiet turn unconfirmed).
    neg_threshold: float | None = None
    webrtc_aggressiveness: int = 2
    webrtc_frame_ms: int = 30
    pre_roll_ms: int = 300  # audio kept before the speech onset
    # Audio kept after the last speech frame: quiet last syllables ("...aus dem Teich gezogen")
    # fall under the detector's threshold; 200 ms lost them on the shared sets.
    post_roll_ms: int = 400
    min_speech_ms: int = 200  # shorter bursts are not a turn
    end_silence_ms: int = 600  # silence that ends a turn
    max_turn_s: float = 20.0  # a turn is forced to end after this long
    energy_floor_dbfs: float | None = -50.0  # None disables the energy gate
    sample_rate: int = 16000
    # Silero v6 is far less sure of telephone-band speech (300-3400 Hz): on the
    # speech-de clips through channel.py its probabilities sit around 0.3-0.6 and
    # onsets come late at 0.5, while music and noise stay under 0.35. See
    # for_caller_rate().
    narrowband_threshold: float = 0.3
    # Frames under the energy gate run through the detector later, batched with the next frame that counts
    # (Silero.defer: same state, ~half the CPU on a quiet line). False: each frame runs as it comes.
    defer_gated_frames: bool = True
    # After a turn, once this long passed without speech, the detector's recurrent state starts afresh. Silero
    # keeps the last turn in its state: a phone turn 5 s after another one was heard p50/max 254/947 ms late
    # after line hiss and 721/1864 ms after digital silence (10 of 30 first words lost past a call's 1 s
    # pre-roll); afresh 40/408 and 235/742 ms, none lost (scripts/bench_onset_followup.py). The fresh state is
    # warmed on the line's last second: reset bare, a short "Ja." just after it went unheard (5 of 42 call
    # scenarios lost their last turn). 0 = never.
    idle_reset_ms: int = 1000

    def __post_init__(self) -> None:
        if self.detector not in DETECTORS:
            raise ValueError(f"unknown VAD detector {self.detector!r}; use one of {', '.join(DETECTORS)}")
        for name in ("threshold", "narrowband_threshold"):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise ValueError(f"VAD {name} must be in (0, 1], got {getattr(self, name)}")
        if self.neg_threshold is not None and not 0.0 <= self.neg_threshold <= self.threshold:
            raise ValueError(f"VAD neg_threshold must be in [0, threshold], got {self.neg_threshold}")
        for name in ("pre_roll_ms", "post_roll_ms", "min_speech_ms"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, got {getattr(self, name)}")
        if self.end_silence_ms <= 0:
            raise ValueError(f"end_silence_ms must be positive, got {self.end_silence_ms}")
        if self.max_turn_s <= 0:
            raise ValueError(f"max_turn_s must be positive, got {self.max_turn_s}")

    @property
    def default_neg_threshold(self) -> float:
        """The lower threshold without ``neg_threshold``: hysteresis as in Silero's own get_speech_timestamps."""
        return max(self.threshold - 0.15, 0.01)

    @property
    def effective_neg_threshold(self) -> float:
        return self.neg_threshold if self.neg_threshold is not None else self.default_neg_threshold

    def for_caller_rate(self, caller_rate: int) -> EndpointerSettings:
        """The settings to use for a caller whose audio arrives at ``caller_rate`` Hz.

        Narrowband callers (8 kHz, i.e. telephone gateways) get the Silero
        ``narrowband_threshold``; everything else is unchanged.
        """
        if self.detector != "silero" or caller_rate > 8000 or self.narrowband_threshold >= self.threshold:
            return self
        neg = None if self.neg_threshold is None else min(self.neg_threshold, self.narrowband_threshold)
        return replace(self, threshold=self.narrowband_threshold, neg_threshold=neg)

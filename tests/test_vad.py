"""VAD detectors and the endpointer on real German speech (no mocks)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from voicebot.audio import AudioFormatError, read_audio, resample, telephone_channel
from voicebot.frames import AudioFrame, SpeechEnded, SpeechStarted
from voicebot.vad import (
    Endpointer,
    EndpointerSettings,
    EndpointEvent,
    SileroVad,
    SileroVadModel,
    WebRtcVad,
    build_detector,
    rms_dbfs,
)

RATE = 16000
LEAD_S, TAIL_S = 1.0, 1.5
TOL_S = 0.35
CLIPS = ["emodb_03a01Nc.flac", "emodb_08a02Na.flac"]


@pytest.fixture(scope="module", params=CLIPS)
def padded_clip(request, speech_dir: Path) -> tuple[np.ndarray, float, float]:
    """A real clip with 1 s of silence before and 1.5 s after: (audio, speech start, speech end)."""
    pcm, rate = read_audio(speech_dir / "clips" / request.param)
    assert rate == RATE
    audio = np.concatenate([np.zeros(int(LEAD_S * RATE), np.int16), pcm, np.zeros(int(TAIL_S * RATE), np.int16)])
    return audio, LEAD_S, LEAD_S + len(pcm) / RATE


def make_endpointer(model: SileroVadModel, **overrides) -> Endpointer:
    settings = EndpointerSettings(**overrides)
    return Endpointer(settings, build_detector(settings, model))


def feed(ep: Endpointer, audio: np.ndarray, chunk: int = 320, t0: float = 0.0) -> list[EndpointEvent]:
    """Feed ``audio`` in 20 ms frames, as a websocket delivers it, then flush."""
    events: list[EndpointEvent] = []
    for i in range(0, len(audio), chunk):
        events += ep.process(AudioFrame(audio[i : i + chunk], RATE, t=t0 + i / RATE))
    return events + ep.flush()


def hold_music(seconds: float, dbfs: float = -20.0) -> np.ndarray:
    """Synthetic hold music: a melody of harmonic notes with attack/decay over a slow bass."""
    t = np.arange(int(seconds * RATE)) / RATE
    melody = [60, 64, 67, 72, 71, 67, 64, 62, 60, 65, 69, 72, 71, 69, 65, 64]  # MIDI notes
    note_s = 0.35
    out = 0.5 * np.sin(2 * np.pi * 110 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 0.5 * t))
    for k in range(int(np.ceil(seconds / note_s))):
        f0 = 440.0 * 2 ** ((melody[k % len(melody)] - 69) / 12)
        a, b = int(k * note_s * RATE), min(int((k + 1) * note_s * RATE), len(t))
        tt = t[a:b] - t[a]
        envelope = np.minimum(tt / 0.02, 1.0) * np.exp(-3.0 * tt)
        out[a:b] += envelope * sum(
            g * np.sin(2 * np.pi * f0 * h * tt) for h, g in [(1, 1), (2, 0.5), (3, 0.25), (4, 0.12)]
        )
    out *= 10 ** (dbfs / 20) / np.sqrt(np.mean(out**2))
    return np.round(out * 32767).astype(np.int16)


def white_noise(seconds: float, dbfs: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.round(rng.standard_normal(int(seconds * RATE)) * 10 ** (dbfs / 20) * 32768).astype(np.int16)


def starts(events: list[EndpointEvent]) -> list[SpeechStarted]:
    return [e for e in events if isinstance(e, SpeechStarted)]


# --- detectors -----------------------------------------------------------------------


def test_silero_window_by_window_equals_batch(vad_model: SileroVadModel, padded_clip) -> None:
    audio = padded_clip[0]
    audio = audio[: len(audio) // 512 * 512]
    det = SileroVad(vad_model)
    stepwise = np.array([det.is_speech(audio[i : i + 512]) for i in range(0, len(audio), 512)])
    det.reset()
    assert np.allclose(det.probabilities(audio), stepwise, atol=1e-5)
    # Speech in the middle, silence in the padding.
    assert stepwise.max() > 0.9 and stepwise[:25].max() < 0.2
    # Two calls sharing one session keep separate state: interleave another call's audio.
    mine, other = SileroVad(vad_model), vad_model.detector()
    noise = white_noise(len(audio) / RATE + 0.1, -20.0)
    interleaved = []
    for i in range(0, len(audio), 512):
        other.is_speech(noise[i : i + 512])
        interleaved.append(mine.is_speech(audio[i : i + 512]))
    assert np.allclose(interleaved, stepwise, atol=1e-5)


def test_deferred_windows_leave_silero_where_running_each_would(vad_model: SileroVadModel, padded_clip) -> None:
    """Gated frames run later, batched with the next frame that counts: the probabilities of the frames that
    count and the recurrent state are what running every frame gives; so are the endpointer's events."""
    audio = padded_clip[0]
    audio = audio[: len(audio) // 512 * 512]
    stepwise, deferring = SileroVad(vad_model), SileroVad(vad_model)
    counted, deferred_probs = [], []
    for k, i in enumerate(range(0, len(audio), 512)):
        window = audio[i : i + 512]
        prob = stepwise.is_speech(window)
        if k % 7 in (1, 2, 3) or k < 40:  # runs of 3 deferred windows, and a first run longer than the cap
            deferring.defer(window)
        else:
            counted.append(prob)
            deferred_probs.append(deferring.is_speech(window))
    assert np.allclose(deferred_probs, counted, atol=1e-5)
    last = np.zeros(512, np.int16)
    assert deferring.is_speech(last) == pytest.approx(stepwise.is_speech(last), abs=1e-5)
    assert np.allclose(deferring._h, stepwise._h, atol=1e-5) and np.allclose(deferring._c, stepwise._c, atol=1e-5)

    # A quiet line under the gate between two turns: the same events with gated frames deferred or not.
    quiet_line = white_noise(3.0, -65.0, seed=3)
    stream = np.concatenate([audio, quiet_line, audio, quiet_line])
    events = [feed(make_endpointer(vad_model, defer_gated_frames=d), stream) for d in (False, True)]
    assert [type(e) for e in events[0]] == [SpeechStarted, SpeechEnded] * 2
    assert [(type(e), e.t) for e in events[1]] == [(type(e), e.t) for e in events[0]]


def test_detector_input_validation(vad_model: SileroVadModel, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="480 int16 samples"):
        WebRtcVad(2, 16000, 30).is_speech(np.zeros(512, np.int16))
    with pytest.raises(ValueError, match="aggressiveness must be 0, 1, 2 or 3"):
        WebRtcVad(5)
    with pytest.raises(ValueError, match="windows of 512"):
        SileroVad(vad_model).is_speech(np.zeros(480, np.int16))
    with pytest.raises(FileNotFoundError) as info:
        SileroVadModel(tmp_path / "missing.onnx").load()
    assert "Silero VAD model not found at" in str(info.value) and "\n" not in str(info.value)


def test_settings_validation() -> None:
    with pytest.raises(ValueError, match="unknown VAD detector 'rnnoise'; use one of silero, webrtc"):
        EndpointerSettings(detector="rnnoise")
    with pytest.raises(ValueError, match="threshold must be in"):
        EndpointerSettings(threshold=1.5)
    base = EndpointerSettings()
    assert base.for_caller_rate(16000) is base
    assert base.for_caller_rate(8000).threshold == base.narrowband_threshold
    assert EndpointerSettings(detector="webrtc").for_caller_rate(8000).threshold == 0.5


# --- endpointing on real speech --------------------------------------------------------


@pytest.mark.parametrize("detector", ["silero", "webrtc"])
def test_one_turn_per_padded_clip(vad_model: SileroVadModel, padded_clip, detector: str) -> None:
    audio, speech_start, speech_end = padded_clip
    ep = make_endpointer(vad_model, detector=detector)
    events: list[EndpointEvent] = []
    partial_lengths = []
    for i in range(0, len(audio), 320):
        new = ep.process(AudioFrame(audio[i : i + 320], RATE, t=i / RATE))
        events += new
        if ep.in_speech:
            partial_lengths.append(len(ep.current_turn_audio()))
        if any(isinstance(e, SpeechEnded) for e in new):
            # The end is decided after end_silence_ms of quiet, and not before.
            assert ep.time - new[-1].t >= 0.6 - 1e-9
            assert not ep.in_speech and len(ep.current_turn_audio()) == 0
    events += ep.flush()

    assert [type(e) for e in events] == [SpeechStarted, SpeechEnded]
    started, ended = events
    assert isinstance(started, SpeechStarted) and isinstance(ended, SpeechEnded)
    assert abs(started.t - speech_start) <= TOL_S
    assert abs(ended.t - speech_end) <= TOL_S
    assert ended.start == started.t and ended.sample_rate == RATE
    # Partial audio grows while the caller speaks.
    assert partial_lengths and partial_lengths == sorted(partial_lengths)
    # The turn audio starts 300 ms before the onset (pre-roll) and is exactly the input there.
    assert ended.audio is not None and ended.audio.dtype == np.int16
    assert ep.turn_audio_start == pytest.approx(started.t - 0.3)
    first = round(ep.turn_audio_start * RATE)
    assert np.array_equal(ended.audio, audio[first : first + len(ended.audio)])
    assert len(ended.audio) / RATE >= (ended.t - started.t) + 0.3


def test_events_do_not_depend_on_frame_size(vad_model: SileroVadModel, padded_clip) -> None:
    audio = padded_clip[0]
    ref = feed(make_endpointer(vad_model), audio, chunk=320)
    for chunk in (160, 777, len(audio)):
        got = feed(make_endpointer(vad_model), audio, chunk=chunk)
        assert [(type(e), e.t) for e in got] == [(type(e), e.t) for e in ref]
        assert np.array_equal(got[-1].audio, ref[-1].audio)
    # Stream time comes from the frames: the same audio later in a call is shifted, nothing else.
    later = feed(make_endpointer(vad_model), audio, t0=100.0)
    assert [e.t - 100.0 for e in later] == pytest.approx([e.t for e in ref])


@pytest.mark.parametrize("detector", ["silero", "webrtc"])
def test_telephone_band_clip_still_yields_one_turn(vad_model: SileroVadModel, padded_clip, detector: str) -> None:
    audio, speech_start, speech_end = padded_clip
    narrow, rate = telephone_channel(audio, RATE)
    back = resample(narrow, rate, RATE)
    # The server picks narrowband settings for 8 kHz callers (a lower Silero threshold).
    settings = EndpointerSettings(detector=detector).for_caller_rate(rate)
    events = feed(Endpointer(settings, build_detector(settings, vad_model)), back)
    assert [type(e) for e in events] == [SpeechStarted, SpeechEnded]
    assert speech_start - TOL_S <= events[0].t <= speech_start + 2 * TOL_S
    assert abs(events[1].t - speech_end) <= TOL_S


def test_silence_noise_and_hold_music_never_start_a_turn(vad_model: SileroVadModel) -> None:
    audio = np.concatenate([np.zeros(20 * RATE, np.int16), white_noise(20, -45.0), hold_music(20)])
    ep = make_endpointer(vad_model, detector="silero")
    assert starts(feed(ep, audio, chunk=1600)) == []
    # The same music over a phone line, with the lower narrowband threshold.
    narrow, rate = telephone_channel(hold_music(20), RATE)
    settings = EndpointerSettings().for_caller_rate(rate)
    ep = Endpointer(settings, build_detector(settings, vad_model))
    assert starts(feed(ep, resample(narrow, rate, RATE), chunk=1600)) == []


@pytest.mark.parametrize("detector", ["silero", "webrtc"])
def test_energy_gate_ignores_quiet_background_speech(vad_model: SileroVadModel, padded_clip, detector: str) -> None:
    audio, _, _ = padded_clip
    speech = audio[int(LEAD_S * RATE) : -int(TAIL_S * RATE)]
    # Speech from another room / crosstalk, 58 dB below full scale.
    quiet = np.round(audio * 10 ** ((-58.0 - rms_dbfs(speech)) / 20)).astype(np.int16)
    gated = feed(make_endpointer(vad_model, detector=detector), quiet)
    assert gated == []
    # Without the gate the detector does hear it: the gate is what keeps it out.
    ungated = feed(make_endpointer(vad_model, detector=detector, energy_floor_dbfs=None), quiet)
    assert len(starts(ungated)) == 1


@pytest.mark.parametrize("detector", ["silero", "webrtc"])
def test_short_blip_is_not_a_turn(vad_model: SileroVadModel, padded_clip, detector: str) -> None:
    audio, _, _ = padded_clip
    n = RATE // 10  # 100 ms
    energy = np.convolve(audio.astype(np.float64) ** 2, np.ones(n), mode="valid")
    loudest = int(np.argmax(energy))
    tone = np.round(10000 * np.sin(2 * np.pi * 1000 * np.arange(n) / RATE)).astype(np.int16)
    blips = {"speech": audio[loudest : loudest + n], "tone": tone, "noise": white_noise(0.1, -12.0, seed=3)}
    for name, blip in blips.items():
        x = np.concatenate([np.zeros(RATE, np.int16), blip, np.zeros(2 * RATE, np.int16)])
        events = feed(make_endpointer(vad_model, detector=detector), x)
        assert events == [], f"a 100 ms {name} blip started a turn with {detector}"


def test_max_turn_forces_an_end(vad_model: SileroVadModel, padded_clip) -> None:
    audio, speech_start, _ = padded_clip
    ep = make_endpointer(vad_model, max_turn_s=0.8)
    events = feed(ep, audio)
    assert isinstance(events[0], SpeechStarted) and isinstance(events[1], SpeechEnded)
    forced = events[1]
    assert forced.t - forced.start == pytest.approx(0.8, abs=0.035)
    assert forced.audio is not None and len(forced.audio) / RATE == pytest.approx(0.8 + 0.3, abs=0.035)
    # The rest of the utterance is a new turn, without audio decoded twice.
    later = [e for e in events[2:] if isinstance(e, SpeechEnded)]
    for e in later:
        assert e.start >= forced.t


def test_flush_ends_an_open_turn_and_rejects_wrong_rate(vad_model: SileroVadModel, padded_clip) -> None:
    audio, _, speech_end = padded_clip
    ep = make_endpointer(vad_model)
    cut = int((speech_end + 0.1) * RATE)
    events = [
        e for i in range(0, cut, 320) for e in ep.process(AudioFrame(audio[i : min(i + 320, cut)], RATE, t=i / RATE))
    ]
    assert [type(e) for e in events] == [SpeechStarted] and ep.in_speech
    tail = ep.flush()
    assert [type(e) for e in tail] == [SpeechEnded] and not ep.in_speech
    assert abs(tail[0].t - speech_end) <= TOL_S
    with pytest.raises(AudioFormatError, match="takes 16000 Hz audio, got 8000 Hz; resample first"):
        ep.process(AudioFrame(np.zeros(160, np.int16), 8000))

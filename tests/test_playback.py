"""TTS playback and barge-in: scripted timings first, then real Pico speech against a real caller clip."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest
from virtual_clock import run_virtual

from voicebot.frames import BotAudio
from voicebot.tts.bargein import BargeInAction, BargeInController, is_backchannel
from voicebot.tts.base import SynthesizedAudio
from voicebot.tts.playback import TtsPlayer

A = BargeInAction


class FakeSynth:
    """1 s of tone per sentence at 16 kHz, ``delay`` seconds of 'synthesis' each (in the executor thread)."""

    name = "fake"
    sample_rate = 16000

    def __init__(self, delay: float = 0.0, seconds: float = 1.0) -> None:
        self.delay = delay
        self.seconds = seconds
        self.calls: list[str] = []
        self.started: list[float] = []

    def load(self) -> FakeSynth:
        return self

    def synthesize(self, text: str) -> SynthesizedAudio:
        self.calls.append(text)
        self.started.append(time.monotonic())
        time.sleep(self.delay)
        t = np.arange(int(self.seconds * self.sample_rate)) / self.sample_rate
        return SynthesizedAudio((8000 * np.sin(2 * np.pi * 220 * t)).astype(np.int16), self.sample_rate)


class AsyncSynth(FakeSynth):
    """The same tone as an async engine client (no thread), so it runs on virtual time."""

    async def synthesize(self, text: str) -> SynthesizedAudio:  # type: ignore[override]
        return FakeSynth.synthesize(self, text)


class Sink:
    """Bot audio as sent, with the loop's time of each frame (virtual time under ``run_virtual``)."""

    def __init__(self) -> None:
        self.frames: list[tuple[float, BotAudio]] = []

    async def __call__(self, audio: BotAudio) -> None:
        self.frames.append((asyncio.get_running_loop().time(), audio))

    @property
    def seconds(self) -> float:
        return sum(a.duration for _, a in self.frames)


# --- the pure controller ----------------------------------------------------------------


def test_backchannel_words() -> None:
    for text in ("Mhm.", "ja", "Okay.", "Ja, genau.", "hm", "Aha, ok."):
        assert is_backchannel(text), text
    for text in ("", "Mitarbeiter", "Ja, aber ich will kündigen.", "Nein", "Ja ja ja ja"):
        assert not is_backchannel(text), text


def test_misheard_backchannels_still_count() -> None:
    for text in ("Kenau.", "Genaue.", "In Ordnung.", "Jawohl."):  # Whisper on a lone phone-line "genau"
        assert is_backchannel(text), text
    for text in ("Da.", "Zu.", "Nein.", "Stopp.", "genug", "Rechnung"):  # short words are never stretched
        assert not is_backchannel(text), text


def test_controller_from_settings_waits_for_the_onset() -> None:
    from voicebot.config import TtsSettings

    c = BargeInController.from_settings(TtsSettings(bargein_onset_ms=64, bargein_confirm_ms=300))
    c.playback_started()
    assert [c.on_voice(t, 0.8) for t in (1.0, 1.032, 1.064)] == [A.NONE, A.NONE, A.PAUSE]
    assert c.tick(1.3) is A.NONE and c.tick(1.4) is A.RESUME


def test_controller_pauses_early_then_stops_on_long_speech() -> None:
    c = BargeInController(backchannel_max_ms=600)
    c.playback_started()
    # Silero frames every 32 ms; the caller starts at t = 1.000.
    assert c.on_voice(0.968, 0.1) is A.NONE
    actions = [(t, c.on_voice(t, 0.9)) for t in (1.032, 1.064, 1.096, 1.128)]
    paused_at = next(t for t, a in actions if a is A.PAUSE)
    assert paused_at - 1.0 < 0.2
    assert c.on_speech_started(1.0) is A.NONE  # already paused
    for t in np.arange(1.16, 1.5, 0.032):
        c.on_voice(float(t), 0.9)
    assert c.tick(1.5) is A.NONE
    c.on_voice(1.65, 0.9)
    assert c.tick(1.65) is A.STOP  # 650 ms of voice: more than a backchannel
    assert c.on_transcript("Ich möchte", is_final=False) is A.NONE  # stopped already


def test_controller_resumes_after_backchannel() -> None:
    c = BargeInController(backchannel_max_ms=600)
    c.playback_started()
    assert c.on_speech_started(2.0) is A.PAUSE  # no early frames seen: pause on the turn itself
    assert c.on_speech_ended(2.35) is A.NONE
    assert c.on_transcript("", is_final=False) is A.NONE
    assert c.on_transcript("Mhm.", is_final=True) is A.RESUME
    assert c.state == "playing"


def test_controller_stops_for_short_real_words_and_for_long_turns() -> None:
    c = BargeInController(backchannel_max_ms=600)
    c.playback_started()
    c.on_speech_started(1.0)
    c.on_speech_ended(1.5)
    assert c.on_transcript("Stopp bitte", is_final=True) is A.STOP
    c.playback_started()
    c.on_speech_started(3.0)
    assert c.on_speech_ended(3.9) is A.STOP
    c.playback_started()
    c.on_speech_started(5.0)
    assert c.on_transcript("Ich will meinen Vertrag", is_final=False) is A.STOP  # a partial says enough


def test_controller_timeouts_resume_on_clicks_and_silent_turns() -> None:
    c = BargeInController(confirm_timeout_ms=400, transcript_timeout_ms=1500)
    c.playback_started()
    actions = [c.on_voice(t, 0.8) for t in (1.0, 1.032, 1.064)]
    assert actions == [A.PAUSE, A.NONE, A.NONE]  # one frame of voice pauses (tts.bargein_onset_ms = 0)
    c.on_voice(1.096, 0.0)
    assert c.tick(1.3) is A.NONE
    assert c.tick(1.5) is A.RESUME  # the endpointer never confirmed a turn: a click
    c.on_speech_started(2.0)
    c.on_speech_ended(2.3)
    assert c.tick(3.0) is A.NONE
    assert c.tick(3.9) is A.RESUME  # no transcript came


def test_a_final_later_than_the_timeout_is_still_judged() -> None:
    c = BargeInController(transcript_timeout_ms=1500)
    c.playback_started()
    c.on_speech_started(1.0)
    c.on_speech_ended(1.4)
    assert c.tick(3.0) is A.RESUME and c.state == "playing"  # no final yet: the bot goes on
    # The final comes 2.6 s late: a backchannel is swallowed (RESUME tells the turn-taker), words stop.
    assert c.on_transcript("Ja.", is_final=True) is A.RESUME and c.state == "playing"
    assert c.on_transcript("Ja.", is_final=True) is A.NONE  # only that turn's final
    c.on_speech_started(5.0)
    c.on_speech_ended(5.3)
    assert c.tick(7.0) is A.RESUME
    assert c.on_transcript("Nein, stopp.", is_final=True) is A.STOP


def test_controller_ignores_speech_when_bot_is_silent() -> None:
    c = BargeInController()
    assert c.on_voice(1.0, 0.9) is A.NONE and c.on_voice(1.2, 0.9) is A.NONE
    assert c.on_speech_started(1.0) is A.NONE
    assert c.on_speech_ended(3.0) is A.NONE


# --- the player with a fake synthesizer -----------------------------------------------


async def test_player_sends_all_sentences_resampled_in_frames() -> None:
    synth, sink = FakeSynth(delay=0.2), Sink()
    player = TtsPlayer(synth, 8000, sink, frame_ms=20, realtime=False)
    result = await player.speak("Guten Tag. Sie sprechen mit dem Assistenten. Wie kann ich helfen?")
    assert result.completed and result.sentences == 3
    assert synth.calls == ["Guten Tag.", "Sie sprechen mit dem Assistenten.", "Wie kann ich helfen?"]
    assert all(a.sample_rate == 8000 for _, a in sink.frames)
    assert all(len(a.pcm) == 160 for _, a in sink.frames[:-1])
    assert result.seconds == pytest.approx(3.0, abs=0.01) and sink.seconds == pytest.approx(result.seconds)
    # First audio leaves after the first sentence, before the last one is even started.
    assert sink.frames[0][0] < synth.started[2]
    assert result.first_audio_latency is not None and result.first_audio_latency < 0.6


def test_player_paces_in_real_time() -> None:
    async def run() -> tuple[object, float, Sink]:
        sink = Sink()
        player = TtsPlayer(AsyncSynth(seconds=0.6), 16000, sink, frame_ms=20, realtime=True)
        loop = asyncio.get_running_loop()
        started = loop.time()
        result = await player.speak("Eins.")
        return result, loop.time() - started, sink

    result, elapsed, sink = run_virtual(run())
    assert result.completed and elapsed == pytest.approx(0.58, abs=0.021)  # the last frame is due at 0.58 s
    times = [t for t, _ in sink.frames]
    assert np.allclose(np.diff(times), 0.02)  # one 20 ms frame every 20 ms


def test_player_runs_ahead_by_the_lead() -> None:
    async def run() -> Sink:
        sink = Sink()
        player = TtsPlayer(AsyncSynth(seconds=0.6), 16000, sink, frame_ms=20, realtime=True, lead_ms=200)
        await player.speak("Eins.")
        return sink

    times = np.array([t for t, _ in run_virtual(run()).frames])
    assert np.all(times[:11] == times[0])  # the first 200 ms (and the frame due then) leave at once
    assert times[-1] == pytest.approx(0.38, abs=0.021)  # then real time, 200 ms ahead


async def _barge_in(caller_speech_s: float, transcript: str) -> tuple[object, Sink, float, float | None]:
    """Bot plays 3 s; the caller talks from 0.5 s for ``caller_speech_s``; returns timing facts."""
    sink = Sink()
    player = TtsPlayer(AsyncSynth(), 16000, sink, frame_ms=20, realtime=True)
    control = BargeInController(backchannel_max_ms=600)
    control.playback_started()
    speak = asyncio.create_task(player.speak("Eins. Zwei. Drei."))
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    onset, paused_at = 0.5, None
    now = 0.0
    while now < onset + caller_speech_s + 0.2:
        await asyncio.sleep(0.032)
        now = loop.time() - t0
        speaking = onset <= now < onset + caller_speech_s
        action = control.on_voice(now, 0.9 if speaking else 0.05)
        if speaking and now - onset >= 0.2 and control.state == "tentative":
            action = control.on_speech_started(onset)  # the endpointer confirms after min_speech_ms
        if not speaking and control.state == "listening":
            action = control.on_speech_ended(onset + caller_speech_s)
        if control.state == "deciding":
            action = control.on_transcript(transcript, is_final=True)
        if action is A.NONE:
            action = control.tick(now)
        player.apply(action)
        if action is A.PAUSE:
            paused_at = now
    result = await speak
    return result, sink, t0 + onset, paused_at


def test_player_barge_in_long_speech_stops_within_200ms() -> None:
    result, sink, onset, _ = run_virtual(_barge_in(1.2, "Ich möchte bitte einen Mitarbeiter sprechen."))
    assert not result.completed
    sent_after = [t for t, _ in sink.frames if t > onset + 0.2]
    assert not sent_after, "frames were still sent 200 ms after the caller started"
    assert 0.45 < result.seconds < 0.75


def test_player_backchannel_pauses_then_resumes() -> None:
    result, sink, onset, paused_at = run_virtual(_barge_in(0.35, "Mhm."))
    assert paused_at is not None and paused_at - 0.5 < 0.2
    assert result.completed and result.seconds == pytest.approx(3.0, abs=0.01)
    assert result.paused_seconds > 0.2
    gaps = np.diff([t for t, _ in sink.frames])
    assert gaps.max() > 0.2  # the pause is visible on the wire


# --- real engines: Pico speaks, a real caller barges in through the real VAD -------------


async def test_real_caller_barges_in_on_real_pico_speech(pico, transcriber, settings, speech_dir,
                                                         speech_manifest) -> None:
    from voicebot.asr.scheduler import AsrScheduler
    from voicebot.asr.streaming import StreamingRecognizer
    from voicebot.audio.io import load_for_asr
    from voicebot.frames import AudioFrame, SpeechEnded, SpeechStarted, Transcript
    from voicebot.vad import SileroVadModel

    item = next(m for m in speech_manifest if m.get("emotion") == "neutral" and m["seconds"] > 2.0)
    rate, step = 16000, 320
    caller = np.concatenate([np.zeros(int(0.6 * rate), np.int16), load_for_asr(speech_dir / item["audio"]),
                             np.zeros(rate, np.int16)])
    sink = Sink()
    player = TtsPlayer(pico, 8000, sink, frame_ms=20, realtime=True)
    control = BargeInController(settings.tts.backchannel_max_ms)
    loop = asyncio.get_running_loop()
    decisions: list[tuple[float, BargeInAction]] = []
    onset = None
    async with AsrScheduler(transcriber, settings.asr) as scheduler:
        recognizer = StreamingRecognizer(scheduler, settings, "barge-in", SileroVadModel().load())
        control.playback_started()
        speak = asyncio.create_task(player.speak(
            "Guten Tag, Sie sprechen mit dem automatischen Assistenten. Sagen Sie Mitarbeiter, "
            "um mit einem Menschen zu sprechen. Worum geht es bei Ihrem Anruf?"
        ))
        t0 = loop.time()
        for i in range(0, len(caller), step):
            t = i / rate  # stream time of this frame; pushed in real time
            await asyncio.sleep(max(0.0, t0 + t - loop.time()))
            events = await recognizer.push(AudioFrame(caller[i : i + step], rate, t))
            actions = [control.on_voice(t + step / rate, recognizer.endpointer.last_probability)]
            for ev in events:
                if isinstance(ev, SpeechStarted):
                    onset = ev.t
                    actions.append(control.on_speech_started(ev.t))
                elif isinstance(ev, SpeechEnded):
                    actions.append(control.on_speech_ended(ev.t, ev.start))
                elif isinstance(ev, Transcript):
                    actions.append(control.on_transcript(ev.text, ev.is_final))
            actions.append(control.tick(t + step / rate))
            for action in actions:
                if action is not BargeInAction.NONE:
                    decisions.append((t + step / rate, action))
                    player.apply(action)
            if speak.done():
                break
        result = await asyncio.wait_for(speak, 5)
        await recognizer.aclose()
    assert onset is not None, "the caller's speech was not detected"
    assert not result.completed, "the bot talked over the caller"
    first = decisions[0]
    assert first[1] is BargeInAction.PAUSE and first[0] - onset < 0.2, (onset, decisions)
    assert decisions[-1][1] is BargeInAction.STOP
    # The bot's full text is ~8 s; it got cut shortly after the caller's onset (0.6 s in).
    assert result.seconds < onset + 0.5

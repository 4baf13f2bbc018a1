"""VAD onset delay on real speech, per detector and threshold, wideband and through the phone line.

The endpointer keeps ``pre_roll_ms`` of audio before the frame where it first heard
speech; if the detector hears the first word later than that, the word is lost to the
recognizer. This measures, per clip of the shared speech sets, how late the detector's
speech onset (``SpeechStarted.t``) comes after the true start of speech (the first 10 ms
frame within 35 dB of the clip's loudest, on the clean wideband clip), and whether the
turn's audio (pre-roll included) still holds it.

    nice -n 10 .venv/bin/python -m voicebot.eval.vad_onset [--limit N]

prints one row per detector setting: clips with a turn, onset delay p50/p90/p99/max (ms),
clips whose turn audio starts after the true onset (first word cut) at the given pre-roll.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from voicebot.audio.channel import telephone_channel
from voicebot.audio.io import load_for_asr
from voicebot.audio.resample import resample
from voicebot.eval.asr_cases import RATE, SourceClip, load_sources, speech_bounds
from voicebot.frames import AudioFrame, SpeechStarted
from voicebot.vad import Endpointer, EndpointerSettings, SileroVadModel, build_detector

LEAD_S = 1.0


@dataclass(frozen=True)
class OnsetRow:
    setting: str
    channel: str
    clips: int
    heard: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    cut_at_pre_roll: int  # clips whose turn audio starts after the true onset


def onset_delays(settings: EndpointerSettings, audios: Sequence[tuple[np.ndarray, float]],
                 model: SileroVadModel | None) -> tuple[list[float], int]:
    """Onset delays (s) of the clips where a turn started, and how many turns missed the onset."""
    delays, cut = [], 0
    for audio, onset in audios:
        ep = Endpointer(settings, build_detector(settings, model))
        for i in range(0, len(audio), 320):
            events = ep.process(AudioFrame(audio[i : i + 320], RATE, i / RATE))
            started = [e for e in events if isinstance(e, SpeechStarted)]
            if started:
                delays.append(started[0].t - onset)
                cut += ep.turn_audio_start > onset + 0.005
                break
    return delays, cut


def prepare(clips: Sequence[SourceClip], channel: str, lead_s: float = LEAD_S) -> list[tuple[np.ndarray, float]]:
    out = []
    for clip in clips:
        pcm = load_for_asr(clip.path, RATE)
        start, _ = speech_bounds(pcm)
        audio = np.concatenate([np.zeros(int(lead_s * RATE), np.int16), pcm[start:], np.zeros(RATE, np.int16)])
        if channel == "telephone":
            audio = resample(*telephone_channel(audio, RATE), RATE)
        out.append((audio, lead_s))
    return out


def measure(settings_list: Sequence[tuple[str, EndpointerSettings]], clips: Sequence[SourceClip],
            model: SileroVadModel) -> list[OnsetRow]:
    rows = []
    for channel in ("wideband", "telephone"):
        audios = prepare(clips, channel)
        for name, settings in settings_list:
            delays, cut = onset_delays(settings, audios, model)
            ms = np.array(delays) * 1000 if delays else np.zeros(1)
            rows.append(OnsetRow(name, channel, len(audios), len(delays), *(float(np.percentile(ms, q))
                                 for q in (50, 90, 99)), float(ms.max()), cut))
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, help="only the first N clips of each set")
    parser.add_argument("--pre-roll-ms", type=int, default=300)
    args = parser.parse_args(argv)
    clips = load_sources()
    if args.limit:
        clips = [c for s in ("speech-de", "speech-de-more") for c in clips if c.set == s][: args.limit] + \
            [c for c in clips if c.set == "speech-de-more"][: args.limit]
    model = SileroVadModel().load()
    base = EndpointerSettings(pre_roll_ms=args.pre_roll_ms)
    from dataclasses import replace

    settings_list = [(f"silero t={t}", replace(base, threshold=t)) for t in (0.5, 0.4, 0.3, 0.2)]
    settings_list += [(f"webrtc a={a}", replace(base, detector="webrtc", webrtc_aggressiveness=a)) for a in (1, 2, 3)]
    print(f"{'setting':14} {'channel':10} {'clips':>5} {'heard':>5} {'p50':>6} {'p90':>6} {'p99':>6} {'max':>6} "
          f"{'cut@' + str(args.pre_roll_ms):>8}")
    for r in measure(settings_list, clips, model):
        print(f"{r.setting:14} {r.channel:10} {r.clips:5d} {r.heard:5d} {r.p50_ms:6.0f} {r.p90_ms:6.0f} "
              f"{r.p99_ms:6.0f} {r.max_ms:6.0f} {r.cut_at_pre_roll:8d}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

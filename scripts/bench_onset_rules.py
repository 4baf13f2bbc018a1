#!/usr/bin/env python3
"""Early barge-in evidence on the phone line: how soon after audible speech each rule fires, offline.

The 40 phone turns of ``scripts/bench_bargein.py`` (``phone_turns.py``, seed 1; first 2 s) go
through the telephone channel after 1 s of line hiss and are analysed as the server does (8 kHz
→ 16 kHz, 32 ms Silero frames). For each rule: the delay from the audible onset (the first 10 ms
at -40 dBFS, 3 of the 5 from it; ``bench_bargein.audible_onset``) to the frame where it fires, and
how many of 4 × 5 s of hiss and 2 × 5 s of hold music (through the same channel) trigger it.
"Silero >= 0.3 × n" is the barge-in controller with ``tts.bargein_onset_ms`` = 32 × (n - 1) at the
phone line's VAD threshold; "energy" is a frame this far above a running noise floor.

    .venv/bin/python scripts/bench_onset_rules.py
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from bench_bargein import audible_onset  # noqa: E402
from phone_turns import provision_turns  # noqa: E402

from voicebot.audio.channel import telephone_channel  # noqa: E402
from voicebot.audio.io import read_audio  # noqa: E402
from voicebot.audio.resample import resample  # noqa: E402
from voicebot.eval.asr_cases import hold_music, line_noise  # noqa: E402
from voicebot.vad.detector import rms_dbfs  # noqa: E402
from voicebot.vad.silero import SileroVadModel  # noqa: E402

PRE_S, FRAME_S = 1.0, 0.032
Frames = list[tuple[float, float]]  # (Silero probability, level dBFS) per 32 ms frame


def analyse(model: SileroVadModel, pcm16k: np.ndarray) -> tuple[Frames, np.ndarray]:
    line, rate = telephone_channel(pcm16k, 16000)
    wide = resample(line, rate, 16000)
    det = model.detector()
    return [(det.is_speech(wide[i : i + 512]), rms_dbfs(wide[i : i + 512]))
            for i in range(0, len(wide) - 511, 512)], line


def silero(th: float, n: int) -> Callable[[Frames], float | None]:
    def rule(fr: Frames) -> float | None:
        run = 0
        for i, (p, _) in enumerate(fr):
            run = run + 1 if p >= th else 0
            if run >= n:
                return (i + 1) * FRAME_S
        return None
    return rule


def energy(db: float, n: int, alpha: float = 0.05) -> Callable[[Frames], float | None]:
    def rule(fr: Frames) -> float | None:
        floor, run = fr[0][1], 0
        for i, (_, level) in enumerate(fr):
            if level > floor + db:
                run += 1
                if run >= n:
                    return (i + 1) * FRAME_S
            else:
                run = 0
                floor = level if level < floor else floor + alpha * (level - floor)
        return None
    return rule


def main() -> int:
    model = SileroVadModel(REPO / "models" / "store" / "silero-vad" / "silero_vad_v6.onnx").load()
    turns_dir = provision_turns(40, seed=1)
    speech: list[tuple[Frames, float]] = []
    for k, wav in enumerate(sorted(turns_dir.glob("*.wav"))):
        pcm, rate = read_audio(wav)
        pcm = resample(pcm, rate, 16000)[: 16000 * 2]
        frames, line = analyse(model, np.concatenate([line_noise(PRE_S, seed=100 + k), pcm]))
        speech.append((frames, audible_onset(line) - PRE_S))
    noise = [analyse(model, line_noise(5.0, seed=7 + i))[0] for i in range(4)]
    music = [analyse(model, hold_music(5.0, seed=i))[0] for i in range(2)]
    rules = {f"Silero >= {th} × {n}": silero(th, n) for th in (0.5, 0.3, 0.15) for n in (1, 2, 3)}
    rules |= {f"energy > floor + {db} dB × {n}": energy(db, n) for db in (6, 10, 15) for n in (1, 2)}
    print(f"{len(speech)} phone turns; delay after the audible onset (ms); 'early' = fired before it")
    print("| rule | p50 | p90 | max | early | false triggers: hiss (of 4) / music (of 2) |")
    print("|---|---|---|---|---|---|")
    for name, rule in rules.items():
        delays = [(t - PRE_S - onset) * 1000 for fr, onset in speech if (t := rule(fr)) is not None]
        late = [d for d in delays if d >= 0]
        print(f"| {name} | {np.percentile(late, 50):.0f} | {np.percentile(late, 90):.0f} | {max(late):.0f} | "
              f"{len(delays) - len(late)} | {sum(rule(f) is not None for f in noise)} / "
              f"{sum(rule(f) is not None for f in music)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Multi-sentence caller turns for the telephone benchmarks (bench_load, bench_asr_window).

A turn is 1-4 real German sentences from ``../shared/data/speech-de-more`` joined with
0.3-0.8 s pauses, 3-20 s long, speech from the first sample to the last (each sentence
levelled, ``voicebot.eval.asr_cases.trimmed``, then cut to its voiced frames, ``voiced_span``),
with line hiss under the whole turn. The last sample of a turn is its last voiced sample, so a caller
that measures from the end of the clip measures from the caller's last voiced frame.

    python scripts/phone_turns.py OUT_DIR [--n 40] [--seed 5] [--noise-dbfs -45]

writes OUT_DIR/manifest.jsonl + wav files (16 kHz; the benchmarks put them through the
telephone channel, 8 kHz µ-law, themselves).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import wave
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from voicebot.eval.asr_cases import RATE, SourceClip, line_noise, load_sources, trimmed  # noqa: E402

# The caller's last voiced frame: the end of the last 20 ms frame at least this loud. Every sentence is
# levelled to -26 dBFS RMS and the hiss sits at -45, while a Common Voice clip's own room noise after
# its last word (up to 1.4 s, levelled with the speech) stays under it. The load benchmark measures
# voice->voice from that frame, not from the end of the clip.
VOICED_DBFS = -35.0
VOICED_FRAME_S = 0.02
MIN_TURN_S = 3.0
MAX_TURN_S = 20.0
PAUSE_S = (0.3, 0.8)
# A sentence keeps this much of its own audio around its first and last voiced frame (soft onsets and
# final consonants sit under VOICED_DBFS). Before, ``trimmed`` kept every frame within 35 dB of the
# peak, which is a Common Voice clip's room noise: up to 1.4 s of it after the last word and 1 s
# before the first, so 22 of 40 turns held a 1.2-2.7 s gap between two sentences that no endpointer
# can tell from the end of a turn, and 1 s of noise before the first word.
EDGE_S = 0.04
TURN_SET_VERSION = 2  # bump when turns change, so provisioned folders are rebuilt


@dataclass(frozen=True)
class PhoneTurn:
    name: str
    text: str
    audio: np.ndarray = field(repr=False)  # 16 kHz int16, speech at both ends

    @property
    def seconds(self) -> float:
        return len(self.audio) / RATE

    @property
    def voiced_end_s(self) -> float:
        """Where the caller's last voiced frame ends (s from the start of the turn)."""
        frame = int(VOICED_FRAME_S * RATE)
        n = len(self.audio) // frame
        x = self.audio[: n * frame].astype(np.float64).reshape(n, frame)
        level = 10 * np.log10(np.mean(x * x, axis=1) / 32768.0**2 + 1e-12)
        loud = np.flatnonzero(level >= VOICED_DBFS)
        return round((int(loud[-1]) + 1) * VOICED_FRAME_S, 3) if len(loud) else self.seconds


def through_phone(pcm: np.ndarray) -> np.ndarray:
    """16 kHz ``pcm`` as the server hears it from a phone line: 8 kHz µ-law band, back at 16 kHz."""
    from voicebot.audio.channel import telephone_channel
    from voicebot.audio.resample import resample

    narrow, rate = telephone_channel(pcm, RATE)
    return resample(narrow, rate, RATE)


def voiced_span(speech: np.ndarray) -> np.ndarray:
    """``speech`` (levelled) from its first to its last voiced frame, with ``EDGE_S`` either side."""
    frame = int(VOICED_FRAME_S * RATE)
    n = len(speech) // frame
    x = speech[: n * frame].astype(np.float64).reshape(n, frame)
    loud = np.flatnonzero(10 * np.log10(np.mean(x * x, axis=1) / 32768.0**2 + 1e-12) >= VOICED_DBFS)
    if not len(loud):
        return speech
    edge = int(EDGE_S * RATE)
    return speech[max(0, int(loud[0]) * frame - edge) : min(len(speech), (int(loud[-1]) + 1) * frame + edge)]


def build_turns(n: int, *, seed: int = 5, noise_dbfs: float | None = -45.0,
                sources: list[SourceClip] | None = None) -> list[PhoneTurn]:
    """``n`` turns whose lengths spread over 3-20 s (target lengths drawn uniformly)."""
    rng = random.Random(seed)
    clips = sources if sources is not None else load_sources(sets=("speech-de-more",))
    cache: dict[Path, np.ndarray] = {}
    turns = []
    for i in range(n):
        target = rng.uniform(MIN_TURN_S, MAX_TURN_S)
        pieces: list[np.ndarray] = []
        texts: list[str] = []
        length = 0.0
        for clip in rng.sample(clips, len(clips)):
            if clip.path not in cache:
                cache[clip.path] = voiced_span(trimmed(clip, margin_s=0.0))
            speech = cache[clip.path]
            pause = rng.uniform(*PAUSE_S) if pieces else 0.0
            if pieces and length + pause + len(speech) / RATE > MAX_TURN_S:
                continue
            if pieces:
                pieces.append(np.zeros(int(pause * RATE), dtype=np.int16))
            pieces.append(speech)
            texts.append(clip.text)
            length += pause + len(speech) / RATE
            if length >= target or len(texts) == 4:
                break
        audio = np.concatenate(pieces)
        if noise_dbfs is not None:  # the line hiss runs under the whole turn
            noise = line_noise(len(audio) / RATE + 0.01, dbfs=noise_dbfs, seed=seed * 1000 + i)[: len(audio)]
            audio = np.clip(audio.astype(np.int32) + noise, -32768, 32767).astype(np.int16)
        turns.append(PhoneTurn(f"turn{i:03d}", " ".join(texts), audio))
    return turns


def write_turns(out_dir: Path, turns: list[PhoneTurn]) -> Path:
    """Wav files + a manifest in the shared sets' format (``audio``, ``text``, ``seconds``)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for turn in turns:
        path = out_dir / f"{turn.name}.wav"
        with wave.open(str(path), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(RATE)
            w.writeframes(turn.audio.astype("<i2").tobytes())
        rows.append({"audio": path.name, "text": turn.text, "seconds": round(turn.seconds, 3),
                     "voiced_end_s": turn.voiced_end_s, "turn_set_version": TURN_SET_VERSION})
    manifest = out_dir / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return manifest


def provision_turns(n: int, *, seed: int, noise_dbfs: float = -45.0) -> Path:
    """The folder of ``n`` phone turns for ``seed`` under eval/audio/ (git-ignored), built once and reused."""
    noise = "" if noise_dbfs == -45.0 else f"-noise{noise_dbfs:g}"  # the benchmarks' default hiss keeps its old name
    out_dir = Path(__file__).resolve().parents[1] / "eval" / "audio" / f"phone-turns-s{seed}-n{n}{noise}"
    manifest = out_dir / "manifest.jsonl"
    if not manifest.is_file() or f'"turn_set_version": {TURN_SET_VERSION}' not in manifest.read_text(encoding="utf-8"):
        write_turns(out_dir, build_turns(n, seed=seed, noise_dbfs=noise_dbfs))
    return out_dir


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--noise-dbfs", type=float, default=-45.0)
    args = ap.parse_args()
    turns = build_turns(args.n, seed=args.seed, noise_dbfs=args.noise_dbfs)
    print(write_turns(args.out, turns))
    secs = [t.seconds for t in turns]
    print(f"{len(turns)} turns, {min(secs):.1f}-{max(secs):.1f} s, mean {np.mean(secs):.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

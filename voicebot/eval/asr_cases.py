"""Constructed ASR test material: the turns that break streaming recognition on a phone line.

Built from the shared real German speech (``../shared/data/speech-de`` and
``speech-de-more``), deterministically (seeded), never committed: ``write_cases``
puts 16 kHz WAVs and a ``manifest.jsonl`` into a git-ignored folder so
``voicebot eval asr --manifest`` runs on them, and tests build the same cases in memory.

Kinds of case (``AsrCase.kind``):

* ``onset0``: a sentence whose speech starts at sample 0 (the leading silence cut at
  the first speech frame), as when a gateway starts the stream mid-word;
* ``short``: a 1.5-2.5 s utterance between pauses (short answers must not vanish);
* ``long``: 3-7 sentences joined with 0.3-0.8 s pauses into a 15-45 s turn;
* ``straddle``: two sentences placed so that the second one runs across 10 s
  (the encoder window of partial decodes);
* every kind may be wrapped in silence, line noise or synthetic hold music before
  and after (``lead``/``tail``).

The telephone channel is applied by the evaluation (``--channel telephone``), so each
case is heard wideband and through the phone band from the same file.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

RATE = 16000
SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
SPEECH_SETS = ("speech-de", "speech-de-more")
SURROUNDINGS = ("silence", "noise", "music")
# A 10 ms frame is speech when its level is within this many dB of the clip's loudest frame.
SPEECH_BELOW_PEAK_DB = 35.0
SPEECH_LEVEL_DBFS = -26.0  # RMS level every sentence is scaled to (a typical phone-line speech level)


@dataclass(frozen=True)
class SourceClip:
    """One real recording from a shared speech set."""

    path: Path
    text: str
    seconds: float
    speaker: str
    set: str


@dataclass(frozen=True)
class AsrCase:
    """A constructed test turn: audio (16 kHz int16) and what was said."""

    name: str
    kind: str
    text: str
    audio: np.ndarray = field(repr=False)
    parts: tuple[str, ...] = ()  # the source clips, in order
    speech_start: float = 0.0  # seconds: where the first word begins
    speech_end: float = 0.0  # seconds: where the last word ends
    lead: str = "silence"
    tail: str = "silence"

    @property
    def seconds(self) -> float:
        return len(self.audio) / RATE


def load_sources(shared: Path = SHARED, sets: Sequence[str] = SPEECH_SETS) -> list[SourceClip]:
    """Every clip of the shared speech sets (raises FileNotFoundError when a set is missing)."""
    out: list[SourceClip] = []
    for name in sets:
        manifest = shared / name / "manifest.jsonl"
        if not manifest.is_file():
            raise FileNotFoundError(f"shared speech set not found: {manifest}")
        with manifest.open(encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    row = json.loads(line)
                    out.append(SourceClip(manifest.parent / row["audio"], str(row["text"]), float(row["seconds"]),
                                          str(row.get("speaker", "")), name))
    return out


def speech_bounds(pcm: np.ndarray) -> tuple[int, int]:
    """Sample range from the first to the last 10 ms frame within 35 dB of the loudest one."""
    frame = RATE // 100
    n = len(pcm) // frame
    if n == 0:
        return 0, len(pcm)
    x = pcm[: n * frame].astype(np.float64).reshape(n, frame)
    level = 10 * np.log10(np.mean(x * x, axis=1) + 1.0)
    loud = np.flatnonzero(level >= level.max() - SPEECH_BELOW_PEAK_DB)
    return int(loud[0]) * frame, min(len(pcm), (int(loud[-1]) + 1) * frame)


def trimmed(clip: SourceClip, margin_s: float = 0.05) -> np.ndarray:
    """The clip's speech with ``margin_s`` of its own audio either side (0: speech from sample 0),
    levelled to ``SPEECH_LEVEL_DBFS`` so sentences of one turn sound like one line (a few Common
    Voice clips are recorded 30 dB quieter, under the endpointer's energy gate)."""
    from voicebot.audio.io import load_for_asr

    pcm = load_for_asr(clip.path, RATE)
    start, end = speech_bounds(pcm)
    margin = int(margin_s * RATE)
    piece = pcm[max(0, start - margin) : min(len(pcm), end + margin)].astype(np.float64)
    rms = np.sqrt(np.mean(piece**2)) + 1e-9
    gain = 32768 * 10 ** (SPEECH_LEVEL_DBFS / 20) / rms
    return np.clip(np.round(piece * gain), -32768, 32767).astype(np.int16)


# --- surroundings -----------------------------------------------------------------------


def hold_music(seconds: float, seed: int = 0) -> np.ndarray:
    """Synthetic hold music: a harmonic melody with tremolo, around -20 dBFS."""
    notes = np.array([261.6, 329.6, 392.0, 523.3, 392.0, 329.6, 293.7, 349.2]) * (1 + 0.02 * (seed % 5))
    t = np.arange(int(seconds * RATE)) / RATE
    f0 = notes[(t * 2.5).astype(int) % len(notes)]
    phase = 2 * np.pi * np.cumsum(f0) / RATE
    tone = sum(np.sin(k * phase) / k for k in (1, 2, 3, 4))
    tremolo = 0.7 + 0.3 * np.sin(2 * np.pi * 5.0 * t)
    return (3000 * tone * tremolo).astype(np.int16)


def line_noise(seconds: float, dbfs: float = -45.0, seed: int = 0) -> np.ndarray:
    """Pink-ish line hiss at ``dbfs`` RMS plus a faint 50 Hz hum."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    spectrum = np.fft.rfft(rng.standard_normal(n))
    spectrum /= np.sqrt(np.maximum(np.arange(len(spectrum)), 1))
    noise = np.fft.irfft(spectrum, n)
    noise /= np.sqrt(np.mean(noise**2)) + 1e-12
    hum = 0.3 * np.sin(2 * np.pi * 50.0 * np.arange(n) / RATE)
    return np.clip((noise + hum) * 32768 * 10 ** (dbfs / 20), -32768, 32767).astype(np.int16)


def surrounding(kind: str, seconds: float, seed: int = 0) -> np.ndarray:
    if kind == "silence":
        return np.zeros(int(seconds * RATE), dtype=np.int16)
    if kind == "noise":
        return line_noise(seconds, seed=seed)
    if kind == "music":
        return hold_music(seconds, seed=seed)
    raise ValueError(f"unknown surrounding {kind!r}; use one of {', '.join(SURROUNDINGS)}")


def _pause(seconds: float, under: str, seed: int) -> np.ndarray:
    """A pause between sentences: silence, or the line noise that runs under the whole turn."""
    return line_noise(seconds, seed=seed) if under == "noise" else np.zeros(int(seconds * RATE), dtype=np.int16)


# --- cases ------------------------------------------------------------------------------


def _assemble(name: str, kind: str, clips: Sequence[SourceClip], pieces: Sequence[np.ndarray],
              pauses: Sequence[float], lead: str, tail: str, lead_s: float, tail_s: float, seed: int) -> AsrCase:
    parts: list[np.ndarray] = [surrounding(lead, lead_s, seed)] if lead_s > 0 else []
    start = sum(len(p) for p in parts)
    under = "noise" if "noise" in (lead, tail) else "silence"
    for i, piece in enumerate(pieces):
        if i:
            parts.append(_pause(pauses[i - 1], under, seed + i))
        parts.append(piece)
    end = sum(len(p) for p in parts)
    parts.append(surrounding(tail, tail_s, seed + 99))
    audio = np.concatenate(parts)
    if under == "noise":  # the line hiss runs under the speech too
        audio = np.clip(audio.astype(np.int32) + line_noise(len(audio) / RATE, seed=seed + 7)[: len(audio)],
                        -32768, 32767).astype(np.int16)
    text = " ".join(c.text.strip() for c in clips)
    return AsrCase(name, kind, text, audio, tuple(c.path.name for c in clips), start / RATE, end / RATE, lead, tail)


def build_cases(sources: Sequence[SourceClip] | None = None, *, seed: int = 11, n_long: int = 8,
                n_onset: int = 6, n_short: int = 6, n_straddle: int = 4) -> list[AsrCase]:
    """The constructed cases (deterministic for a given ``seed`` and source list)."""
    sources = list(sources) if sources is not None else load_sources()
    rng = random.Random(seed)
    sentences = [c for c in sources if 3.5 <= c.seconds <= 10.5]
    shorts = [c for c in sources if 1.5 <= c.seconds <= 2.6 and c.set == "speech-de"]
    if len(sentences) < 8 or not shorts:
        raise ValueError("not enough source clips to build ASR cases")
    cases: list[AsrCase] = []
    surround = list(SURROUNDINGS)
    for i, clip in enumerate(rng.sample(sentences, n_onset)):
        tail = surround[i % 3]
        cases.append(_assemble(f"onset0-{i:02d}", "onset0", [clip], [trimmed(clip, 0.0)], [], "silence", tail,
                               0.0, 1.5, seed + i))
    for i, clip in enumerate(rng.sample(shorts, min(n_short, len(shorts)))):
        lead = surround[i % 3]
        cases.append(_assemble(f"short-{i:02d}", "short", [clip], [trimmed(clip)], [], lead, lead,
                               1.5, 1.5, seed + 100 + i))
    for i in range(n_long):
        target = rng.uniform(17.0, 45.0)
        picked: list[SourceClip] = []
        while sum(c.seconds for c in picked) < target - 2.0 or len(picked) < 3:
            picked.append(rng.choice([c for c in sentences if c not in picked]))
        pieces = [trimmed(c) for c in picked]
        pauses = [rng.uniform(0.3, 0.8) for _ in picked[1:]]
        lead, tail = surround[i % 3], surround[(i + 1) % 3]
        # Every other long turn starts at sample 0 (a stream picked up mid-speech).
        lead_s = 0.0 if i % 2 else 1.0
        cases.append(_assemble(f"long-{i:02d}", "long", picked, pieces, pauses, lead, tail, lead_s, 1.5,
                               seed + 200 + i))
    for i in range(n_straddle):
        first = rng.choice([c for c in sentences if 5.5 <= c.seconds <= 8.0])
        second = rng.choice([c for c in sentences if c.seconds >= 6.5 and c is not first])
        a, b = trimmed(first), trimmed(second)
        lead_s = 0.5
        # Start the second sentence 1-2.5 s before the 10 s mark, so it runs across it.
        gap = max(0.3, 10.0 - rng.uniform(1.0, 2.5) - lead_s - len(a) / RATE)
        cases.append(_assemble(f"straddle-{i:02d}", "straddle", [first, second], [a, b], [gap], "silence",
                               surround[i % 3], lead_s, 1.5, seed + 300 + i))
    return cases


def write_cases(out_dir: Path | str, cases: Sequence[AsrCase] | None = None) -> Path:
    """Write the cases as WAVs plus ``manifest.jsonl`` (for ``voicebot eval asr --manifest``); returns it."""
    from voicebot.audio.io import write_wav

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cases = build_cases() if cases is None else cases
    manifest = out / "manifest.jsonl"
    with manifest.open("w", encoding="utf-8") as fh:
        for case in cases:
            write_wav(out / f"{case.name}.wav", case.audio, RATE)
            row = {k: v for k, v in asdict(case).items() if k not in ("audio", "name")}
            row.update(audio=f"{case.name}.wav", name=case.name, seconds=round(case.seconds, 3),
                       parts=list(case.parts), speech_start=round(case.speech_start, 3),
                       speech_end=round(case.speech_end, 3))
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return manifest


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m voicebot.eval.asr_cases [OUT_DIR]``: write the cases (default eval/audio/asr-cases)."""
    import sys

    args = list(sys.argv[1:] if argv is None else argv)
    out = Path(args[0]) if args else Path(__file__).resolve().parents[2] / "eval" / "audio" / "asr-cases"
    try:
        path = write_cases(out)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

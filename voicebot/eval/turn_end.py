"""German turn-end evaluation: false cut-offs and end-of-turn delay of each endpointing strategy.

The set (``eval/turn/turn_de.jsonl``, made by ``scripts/make_turn_set.py``) holds, for every clip
of the shared real German speech, raw faster-whisper word timings and up to two interior word
boundaries. Each clip gives one *complete* sample (cut after its last word) and one *cut* sample
per boundary (cut at the quietest 10 ms between the two words, mid-sentence). Both continue with
the clip's own noise floor as silence, on the wideband and on the telephone channel (8 kHz µ-law
and back). Smart Turn sees the audio up to ``min_silence_ms`` (200 ms) into the silence, as the
turn-taker runs it; the text model and the cues see whisper's words up to the cut.

A strategy maps a pause to the silence after which it ends the turn. A *false cut-off* is a cut
sample whose turn ends before the caller goes on, with the caller pausing ``pause_ms`` mid-sentence
(1 s by default: a long hesitation, such as looking up a number); the rate at a 500 ms pause is
reported too. The *delay* is the silence each complete sample waits before its turn ends
(p50/p90/mean; model inference time comes on top, see scripts/bench_turn.py).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, replace
from itertools import product
from pathlib import Path
from typing import Any

import numpy as np

from voicebot.audio.channel import telephone_channel
from voicebot.audio.io import load_for_asr
from voicebot.audio.resample import resample
from voicebot.config import REPO_ROOT, Settings
from voicebot.eval.stats import mean, percentile
from voicebot.turn.cues import incomplete_cue
from voicebot.turn.decision import TurnEndConfig, end_silence_batch

DEFAULT_SET = REPO_ROOT / "eval" / "turn" / "turn_de.jsonl"
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
RATE = 16000
FRAME = RATE // 100  # 10 ms
SILENCE_THRESHOLDS_MS = (200, 400, 600, 800, 1000, 1200)
PIPECAT_STOP_MS = 3000.0  # pipecat's Smart Turn fallback (stop_secs = 3)
MAX_CUTOFF = 0.05


@dataclass(frozen=True)
class TurnSample:
    id: str
    manifest: str
    channel: str  # wideband | telephone
    complete: bool
    text: str  # whisper's words up to the cut
    cut_s: float  # where the speech stops in the clip
    audio_prob: float  # Smart Turn at min_silence_ms into the silence
    text_prob: float
    cue: bool


def _frame_db(pcm: np.ndarray) -> np.ndarray:
    n = len(pcm) // FRAME
    frames = pcm[: n * FRAME].astype(np.float64).reshape(n, FRAME)
    return 10 * np.log10(np.mean(frames**2, axis=1) + 1.0)


def cut_points(words: list[list[Any]], cuts: list[int], pcm: np.ndarray) -> list[tuple[int, float]]:
    """(words kept, cut time in s): the clip's end after its last word, then each interior boundary."""
    db = _frame_db(pcm)
    floor, loud = np.percentile(db, 10), np.percentile(db, 95)
    voiced = np.nonzero(db > floor + 0.25 * (loud - floor))[0]
    last_voiced = (voiced[-1] + 1) * FRAME / RATE if len(voiced) else len(pcm) / RATE
    # whisper's last word end can be early or late; the energy says where the voice stops
    end = min(len(pcm) / RATE, max(float(words[-1][2]) - 0.2, min(last_voiced, float(words[-1][2]) + 0.4)) + 0.03)
    points = [(len(words), end)]
    for k in cuts:
        left, right = float(words[k - 1][2]), float(words[k][1])
        lo, hi = (left - 0.05, right + 0.05) if right > left else (left - 0.08, left + 0.08)
        a, b = max(0, int(lo * 100)), max(int(lo * 100) + 1, min(len(db), int(math.ceil(hi * 100))))
        quietest = a + int(np.argmin(db[a:b]))
        points.append((k, (quietest + 0.5) * FRAME / RATE))
    return points


def with_silence(pcm: np.ndarray, cut_s: float, silence_ms: float, seed: int) -> np.ndarray:
    """The clip up to ``cut_s``, then ``silence_ms`` of noise at the clip's own noise floor."""
    head = pcm[: int(cut_s * RATE)]
    floor_rms = float(np.sqrt(np.percentile(np.mean(
        pcm[: len(pcm) // FRAME * FRAME].astype(np.float64).reshape(-1, FRAME) ** 2, axis=1), 10)))
    noise = np.random.default_rng(seed).normal(0.0, max(floor_rms, 1.0), int(silence_ms * RATE / 1000))
    return np.concatenate([head, np.clip(np.round(noise), -32768, 32767).astype(np.int16)])


def phone(pcm: np.ndarray) -> np.ndarray:
    narrow, rate = telephone_channel(pcm, RATE)
    return resample(narrow, rate, RATE)


def read_set(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise FileNotFoundError(f"turn-end set {path} not found: run scripts/make_turn_set.py")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def build_samples(rows: Iterable[dict[str, Any]], smart_turn: Any, text_model: Any, channels: tuple[str, ...],
                  min_silence_ms: float, progress: Callable[[int, int], None] | None = None) -> list[TurnSample]:
    """Run Smart Turn and the text model once per (pause, channel)."""
    rows = [r for r in rows if len(r["words"]) >= 2]
    out: list[TurnSample] = []
    for i, row in enumerate(rows):
        pcm = load_for_asr(SHARED_DATA / row["manifest"] / row["audio"])
        for j, (kept, cut_s) in enumerate(cut_points(row["words"], row["cuts"], pcm)):
            text = " ".join(w[0] for w in row["words"][:kept])
            text_prob = text_model.predict(text) if text_model is not None else math.nan
            # noise seeded by the clip's line in the set, so a subset run scores the same pauses
            audio = with_silence(pcm, cut_s, min_silence_ms, seed=int(row.get("line", i)) * 10 + j)
            for channel in channels:
                heard = phone(audio) if channel == "telephone" else audio
                audio_prob = smart_turn.predict(heard) if smart_turn is not None else math.nan
                out.append(TurnSample(row["id"], row["manifest"], channel, kept == len(row["words"]), text,
                                      round(cut_s, 3), audio_prob, text_prob, incomplete_cue(text) is not None))
        if progress:
            progress(i + 1, len(rows))
    return out


# --- strategies ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Scored:
    name: str
    cutoff: dict[str, float | None]  # channel -> false cut-off rate at pause_ms
    cutoff_500: dict[str, float | None]
    delay: dict[str, float | None]  # p50, p90, mean of complete samples (ms), both channels
    n_cut: int
    n_complete: int


def _arrays(samples: list[TurnSample]) -> dict[str, np.ndarray]:
    return {
        "audio": np.array([s.audio_prob for s in samples], dtype=float),
        "text": np.array([s.text_prob for s in samples], dtype=float),
        "cue": np.array([s.cue for s in samples], dtype=bool),
        "complete": np.array([s.complete for s in samples], dtype=bool),
        "channel": np.array([s.channel for s in samples]),
    }


def score(name: str, end_ms: np.ndarray, arrays: dict[str, np.ndarray], pause_ms: float) -> Scored:
    complete, channel = arrays["complete"], arrays["channel"]

    def rate(pause: float) -> dict[str, float | None]:
        out: dict[str, float | None] = {}
        for ch in sorted(set(channel.tolist())):
            sel = (~complete) & (channel == ch)
            out[ch] = round(float(np.mean(end_ms[sel] <= pause)), 4) if sel.any() else None
        return out

    delays = end_ms[complete].tolist()
    p50, p90, avg = percentile(delays, 50), percentile(delays, 90), mean(delays)
    return Scored(name, rate(pause_ms), rate(500.0), {
        "p50": None if p50 is None else round(p50), "p90": None if p90 is None else round(p90),
        "mean": None if avg is None else round(avg)}, int((~complete).sum()), int(complete.sum()))


def _grid(base: TurnEndConfig, audio: bool, text: bool, cues: bool) -> Iterable[TurnEndConfig]:
    weights = (1.0,) if not text else (0.0,) if not audio else (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8)
    for w, fast, slow_ms, slow_t, max_ms in product(
        weights, (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97, 0.99, 1.01), (300.0, 400.0, 500.0, 600.0, 800.0),
        (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.01), (1200.0, 1400.0, 1600.0, 2000.0),
    ):
        yield replace(base, audio_weight=w, fast_threshold=fast, slow_silence_ms=slow_ms, slow_threshold=slow_t,
                      max_silence_ms=max_ms, use_cues=cues)


def best_config(samples: list[TurnSample], base: TurnEndConfig, pause_ms: float, audio: bool, text: bool,
                cues: bool) -> tuple[TurnEndConfig, Scored] | None:
    """The config whose false cut-offs are <= 5 % on every channel *of every source set* (so one
    set's easy sentences cannot hide another's misses) with the smallest mean delay over all;
    where none qualifies, the one with the fewest cut-offs (then the smallest delay)."""
    everything = _arrays(samples)
    groups = [_arrays([s for s in samples if s.manifest == m]) for m in sorted({s.manifest for s in samples})]

    def signals(a: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        return (a["audio"] if audio else np.full_like(a["audio"], np.nan),
                a["text"] if text else np.full_like(a["text"], np.nan))

    best: tuple[tuple[float, float, float], TurnEndConfig, Scored] | None = None
    for config in _grid(base, audio, text, cues):
        worst = 0.0
        for g in groups:
            cut = score("", end_silence_batch(config, *signals(g), g["cue"]), g, pause_ms).cutoff
            worst = max([worst] + [v for v in cut.values() if v is not None])
        s = score("", end_silence_batch(config, *signals(everything), everything["cue"]), everything, pause_ms)
        rank = (0.0 if worst <= MAX_CUTOFF else worst, float(s.delay["mean"] or 0), worst)
        if best is None or rank < best[0]:
            best = (rank, config, s)
    return None if best is None else (best[1], best[2])


def evaluate(samples: list[TurnSample], pause_ms: float = 1000.0, base: TurnEndConfig | None = None) -> dict[str, Any]:
    """Every strategy's false cut-offs and delay; the operating point chosen, and held-out checks."""
    base = base or TurnEndConfig()
    arrays = _arrays(samples)
    n = len(samples)
    rows: list[Scored] = []
    for ms in SILENCE_THRESHOLDS_MS:
        rows.append(score(f"silence {ms} ms", np.full(n, float(ms)), arrays, pause_ms))
    pipecat = np.where(arrays["audio"] > 0.5, base.min_silence_ms, PIPECAT_STOP_MS)
    rows.append(score("smart turn > 0.5, else 3 s (pipecat)", pipecat, arrays, pause_ms))
    chosen: dict[str, Any] = {}
    for name, audio, text, cues in (("silence + text cues (tuned)", False, False, True),
                                    ("smart turn (tuned)", True, False, False),
                                    ("text model (tuned)", False, True, False),
                                    ("text model + cues (tuned)", False, True, True),
                                    ("smart turn + text + cues (tuned)", True, True, True)):
        found = best_config(samples, base, pause_ms, audio, text, cues)
        if found is None:
            continue
        config, s = found
        ok = all(v is not None and v <= MAX_CUTOFF for v in s.cutoff.values())
        rows.append(replace(s, name=name if ok else f"{name}, best > 5%"))
        chosen[name] = asdict(config)
    combined = next((r for r in rows if r.name == "smart turn + text + cues (tuned)"), None)
    operating = chosen.get("smart turn + text + cues (tuned)") if combined is not None else None
    held_out = _held_out(samples, base, pause_ms)
    return {
        "pause_ms": pause_ms, "max_cutoff": MAX_CUTOFF, "n_samples": n,
        "n_clips": len({s.id for s in samples}), "channels": sorted({s.channel for s in samples}),
        "rows": [asdict(r) for r in rows], "configs": chosen, "operating_point": operating, "held_out": held_out,
    }


def _held_out(samples: list[TurnSample], base: TurnEndConfig, pause_ms: float) -> list[dict[str, Any]]:
    """Choose the combination's thresholds on one manifest, score them on the other."""
    out = []
    manifests = sorted({s.manifest for s in samples})
    for tune in manifests:
        for test in manifests:
            if tune == test:
                continue
            found = best_config([s for s in samples if s.manifest == tune], base, pause_ms, True, True, True)
            if found is None:
                continue
            test_arrays = _arrays([s for s in samples if s.manifest == test])
            s = score(f"tuned on {tune}, tested on {test}",
                      end_silence_batch(found[0], test_arrays["audio"], test_arrays["text"], test_arrays["cue"]),
                      test_arrays, pause_ms)
            out.append({**asdict(s), "config": asdict(found[0])})
    return out


def format_turn(result: dict[str, Any]) -> str:
    chans = result["channels"]
    head = (f"German turn-end set: {result['n_clips']} clips, {result['n_samples']} pauses "
            f"({'/'.join(chans)}); false cut-off = turn ended within a {result['pause_ms']:.0f} ms "
            f"mid-sentence pause (and within 500 ms); delay = silence before a complete turn ends")
    cols = " ".join(f"{'cut ' + c[:4]:>9} {'@500':>6}" for c in chans)
    lines = [head, f"{'strategy':44} {cols} {'p50':>6} {'p90':>6} {'mean':>6}"]

    def pct(v: float | None) -> str:
        return "    -" if v is None else f"{100 * v:5.1f}%"

    for r in result["rows"] + result["held_out"]:
        cells = " ".join(f"{pct(r['cutoff'].get(c)):>9} {pct(r['cutoff_500'].get(c)):>6}" for c in chans)
        d = r["delay"]
        lines.append(f"{r['name'][:44]:44} {cells} {d.get('p50', '-')!s:>6} {d.get('p90', '-')!s:>6} "
                     f"{d.get('mean', '-')!s:>6}")
    if result["operating_point"]:
        lines.append("operating point (decider defaults): " + ", ".join(
            f"{k}={v}" for k, v in result["operating_point"].items()))
    return "\n".join(lines)


def run_turn_eval(settings: Settings, set_path: Path = DEFAULT_SET,
                  channels: tuple[str, ...] = ("wideband", "telephone"),
                  pause_ms: float = 1000.0, limit: int | None = None, samples_out: Path | None = None,
                  progress: Callable[[int, int], None] | None = None,
                  manifests: tuple[str, ...] = ()) -> dict[str, Any]:
    from voicebot.turn.smart_turn import SmartTurnModel
    from voicebot.turn.text_eou import TextTurnModel

    rows = [{**r, "line": n} for n, r in enumerate(read_set(set_path))]
    rows = [r for r in rows if not manifests or r["manifest"] in manifests][:limit]
    smart = SmartTurnModel.from_settings(settings.models).load()
    text_model = TextTurnModel.load(settings.models.dir)
    config = TurnEndConfig()  # Smart Turn hears what the server gives it: the pause at which the models are asked
    samples = build_samples(rows, smart, text_model, channels, config.model_silence_ms or config.min_silence_ms,
                            progress)
    if samples_out:
        samples_out.parent.mkdir(parents=True, exist_ok=True)
        samples_out.write_text("".join(json.dumps(asdict(s), ensure_ascii=False) + "\n" for s in samples),
                               encoding="utf-8")
    return {**evaluate(samples, pause_ms), "set": str(set_path)}

"""Build eval/turn/turn_de.jsonl: word timings of the shared real German speech, and where to cut it.

For every clip of ``../shared/data/speech-de*/manifest.jsonl`` the raw faster-whisper model
(beam 5, word timestamps, no VAD) gives the words and their times. Up to two interior word
boundaries per clip (seeded) become the "cut" samples of the turn-end evaluation: the
utterance stops there, mid-sentence, and silence follows. The audio is never copied; the
evaluation rebuilds every sample from the shared clips and these timings.

    nice -n 10 .venv/bin/python scripts/make_turn_set.py
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import numpy as np

from voicebot.asr.transcriber import Transcriber
from voicebot.audio.io import load_for_asr
from voicebot.config import REPO_ROOT, load_settings

SHARED = REPO_ROOT.parent / "shared" / "data"
MANIFESTS = ("speech-de-more", "speech-de")
OUT = REPO_ROOT / "eval" / "turn" / "turn_de.jsonl"
SEED = 12
CUTS_PER_CLIP = 2


def choose_cuts(n_words: int, rng: random.Random) -> list[int]:
    """Numbers of words kept: at least one kept and at least one dropped."""
    interior = list(range(1, n_words))
    return sorted(rng.sample(interior, min(CUTS_PER_CLIP, len(interior))))


def main() -> int:
    settings = load_settings()
    transcriber = Transcriber(settings.asr, settings.models).load()
    done = {}
    if OUT.is_file():  # resumable: clips already there are kept
        done = {row["id"]: row for row in map(json.loads, OUT.read_text(encoding="utf-8").splitlines()) if row}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    out = OUT.open("a", encoding="utf-8")
    rows = list(done.values())
    for name in MANIFESTS:
        manifest = SHARED / name / "manifest.jsonl"
        items = [json.loads(line) for line in manifest.read_text(encoding="utf-8").splitlines() if line.strip()]
        for i, item in enumerate(items):
            clip_id = f"{name}/{Path(item['audio']).stem}"
            if clip_id in done:
                continue
            pcm = load_for_asr(manifest.parent / item["audio"])
            segments, _ = transcriber.model.transcribe(
                pcm.astype(np.float32) / 32768.0, language=settings.asr.language, beam_size=5,
                condition_on_previous_text=False, vad_filter=False, word_timestamps=True, chunk_length=11,
            )
            words = [[w.word.strip(), round(w.start, 3), round(w.end, 3)] for s in segments for w in (s.words or [])
                     if w.word.strip()]
            # seeded per clip, so a resumed run picks the same cuts
            row = {
                "id": clip_id, "manifest": name, "audio": item["audio"],
                "reference": item["text"], "seconds": round(len(pcm) / 16000, 3), "words": words,
                "cuts": choose_cuts(len(words), random.Random(f"{SEED}:{clip_id}")),
            }
            rows.append(row)
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
            out.flush()
            print(f"[{name} {i + 1}/{len(items)}] {' '.join(w[0] for w in words)}", file=sys.stderr)
    out.close()
    print(f"wrote {len(rows)} clips to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

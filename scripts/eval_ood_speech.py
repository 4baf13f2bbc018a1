#!/usr/bin/env python3
"""Real people saying things a service line does not handle: no escalation, no confident intent.

Issue 14 asks that nonsense and out-of-domain callers never reach a safety escalation or a
confident intent. ``eval/intent/ood_asr.jsonl`` speaks written lines with the Pico voice; this
script uses real human speech instead: every clip of ``../shared/data/speech-de-more`` (77 read
Common Voice sentences, 62 speakers) and ``../shared/data/speech-de`` (EmoDB: 10 actors, 10
sentences, seven emotions), none of them a service concern. Each clip goes through the phone
line (8 kHz µ-law), is transcribed as a call's final is (whisper-base, beam ``asr.final_beam_size``,
the production prompt and hallucination guards), and the transcript is classified and put to
the policy's escalation rule as a caller's first turn.

    .venv/bin/python scripts/eval_ood_speech.py            # table + the lines that escalated
    .venv/bin/python scripts/eval_ood_speech.py --json     # the eval-intent JSON

The transcripts are cached in eval/reports/ood-speech-asr.jsonl (git-ignored: derived from the
shared data, not committed). One clip is left out: "... hat bei einem Sturz einen
Oberschenkelhalsbruch erlitten" reports an injury, which an emergency line may rightly escalate.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from voicebot.config import load_settings  # noqa: E402

SETS = ("speech-de-more", "speech-de")
NOT_OUT_OF_DOMAIN = ("oberschenkelhalsbruch",)  # an injury report: escalating it is defensible
CACHE = REPO / "eval" / "reports" / "ood-speech-asr.jsonl"


def transcribe_clips(shared: Path, out: Path) -> list[dict[str, str]]:
    """Each clip through the phone line and the call's final decode; cached in ``out``."""
    from voicebot.asr.guards import clean_for
    from voicebot.asr.transcriber import ASR_SAMPLE_RATE, Transcriber
    from voicebot.audio.channel import telephone_channel
    from voicebot.audio.io import read_audio
    from voicebot.audio.resample import resample

    settings = load_settings()
    asr = Transcriber(settings.asr, settings.models).load()
    rows = []
    for name in SETS:
        manifest = shared / name / "manifest.jsonl"
        if not manifest.is_file():
            raise SystemExit(f"missing {manifest}: the shared German speech is needed")
        for line in manifest.read_text(encoding="utf-8").splitlines():
            clip = json.loads(line)
            if any(word in clip["text"].lower() for word in NOT_OUT_OF_DOMAIN):
                continue
            pcm, rate = read_audio(shared / name / clip["audio"])
            pcm, rate = telephone_channel(pcm, rate)
            result = clean_for(
                settings.asr,
                asr.transcribe(resample(pcm, rate, ASR_SAMPLE_RATE), beam_size=settings.asr.final_beam_size,
                               word_timestamps=False),
            )
            if result.text.strip():  # an empty turn never reaches the classifier
                rows.append({"text": result.text.strip(), "intent": "sonstiges", "clip": f"{name}/{clip['audio']}"})
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--fresh", action="store_true", help="transcribe again even if the cache exists")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    from voicebot.dialog.domain import load_domain
    from voicebot.dialog.policy import safety_escalation
    from voicebot.eval.intent import evaluate_intent, format_report
    from voicebot.nlu.intent import load_intent_classifier

    if args.fresh or not CACHE.is_file():
        rows = transcribe_clips(args.shared, CACHE)
    else:
        rows = [json.loads(line) for line in CACHE.read_text(encoding="utf-8").splitlines() if line.strip()]
    settings = load_settings()
    domain = load_domain(settings.dialog.domain)
    classifier = load_intent_classifier(settings)
    result = evaluate_intent(classifier, [(r["text"], r["intent"]) for r in rows], domain, latency_sample=1)
    if args.json:
        print(json.dumps(result, ensure_ascii=False, indent=2))
        return 0
    print(format_report(result))
    print("\n| clip | heard (telephone ASR) | escalated as | trigger |\n|---|---|---|---|")
    # One batched pass for the table too (evaluate_intent's metrics come from the same batched predictions).
    predictions = classifier.predict_batch([r["text"] for r in rows])
    for row, prediction in zip(rows, predictions, strict=True):
        label, trigger, _ = safety_escalation(domain, row["text"], prediction)
        if label is not None:
            print(f"| {row['clip']} | {row['text']} | {label} | {trigger} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

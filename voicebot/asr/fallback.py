"""Temperature fallback for final-quality decodes, as faster-whisper's own ``transcribe`` does.

A beam-search decode that loops (gzip compression ratio of its text above 2.4:
"Reinholder, Reinholder, Reinholder, Reinholder.") or is very unsure (mean token
log-probability below ``asr.log_prob_threshold``) is decoded again by sampling at rising
temperatures; the best-scoring of ``FALLBACK_BEST_OF`` samples wins once it passes both
checks. Silence (Whisper's no-speech rule) is never re-sampled: the guards blank it, and
sampling would only invent words. Sampling is seeded, so the same audio gives the same text.
The raw-model baseline of ``voicebot eval asr --raw`` decodes with exactly this fallback.
"""

from __future__ import annotations

from typing import Any

from voicebot.config import AsrSettings

FALLBACK_TEMPERATURES = (0.2, 0.4, 0.6, 0.8, 1.0)
FALLBACK_BEST_OF = 5
COMPRESSION_RATIO_THRESHOLD = 2.4
FALLBACK_SEED = 1234


def needs_fallback(text: str, avg_logprob: float, no_speech: float, settings: AsrSettings) -> bool:
    from faster_whisper.transcribe import get_compression_ratio

    if no_speech > settings.no_speech_threshold and avg_logprob < settings.log_prob_threshold:
        return False  # silence
    return get_compression_ratio(text) > COMPRESSION_RATIO_THRESHOLD or avg_logprob < settings.log_prob_threshold


def resample_failed(
    model: Any, tokenizer: Any, settings: AsrSettings, encoder_output: Any, prompt: list[int],
    texts: list[list[int]], stats: list[tuple[float, float]], **generate_options: Any,
) -> int:
    """Re-decode, in place, the items of a batch whose beam-search result fails the checks; the number of
    sampling rounds it took (0: every item passed at once; each round is ``FALLBACK_BEST_OF`` samples).

    ``model`` is the CTranslate2 Whisper model, ``texts`` the text tokens per item and
    ``stats`` their ``(avg_logprob, no_speech_prob)``; ``generate_options`` are passed on
    to ``generate`` (max_length, suppress_tokens, ...).
    """
    import ctranslate2

    todo = [i for i, (t, (lp, ns)) in enumerate(zip(texts, stats, strict=True))
            if needs_fallback(tokenizer.decode(t), lp, ns, settings)]
    if not todo:
        return 0
    ctranslate2.set_random_seed(FALLBACK_SEED)
    rounds = 0
    for temperature in FALLBACK_TEMPERATURES:
        rounds += 1
        results = model.generate(
            encoder_output, [list(prompt) for _ in texts], beam_size=1, num_hypotheses=FALLBACK_BEST_OF,
            sampling_topk=0, sampling_temperature=temperature, return_scores=True, return_no_speech_prob=True,
            **generate_options,
        )
        still = []
        for i in todo:
            r = results[i]
            # The best sample by mean log-probability (faster-whisper picks the same way).
            avg_logprob, tokens = max(((score * len(seq) / (len(seq) + 1), seq)
                                       for seq, score in zip(r.sequences_ids, r.scores, strict=True)),
                                      key=lambda x: x[0])
            tokens = [t for t in tokens if t < tokenizer.eot]
            if needs_fallback(tokenizer.decode(tokens), avg_logprob, stats[i][1], settings):
                still.append(i)
                continue
            texts[i] = tokens
            stats[i] = (float(avg_logprob), stats[i][1])
        todo = still
        if not todo:
            return rounds
    return rounds

"""Word timings from Whisper cross-attention: OpenAI's/faster-whisper's method, batched, torch + numpy.

The torch backend captures the cross-attention of the model's alignment heads
while it decodes. Per utterance, as in ``whisper.timing.find_alignment`` (and
CTranslate2's ``align``): the weights are renormalised over the frames that hold
audio, standardised per frame over the token rows, median-filtered along time
(width 7), averaged over heads; DTW through the negated matrix maps each token
to frames, and word boundaries fall where the path first reaches a word's first
token. faster-whisper's clamp of over-long words at sentence ends and its
punctuation merging follow. Its segment-level clamps are left out: a turn is
one window, with no segment timestamps to clamp to.

No faster-whisper or CTranslate2 import here: the GPU hosts this runs on have
neither.
"""

from __future__ import annotations

import string
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

TOKENS_PER_SECOND = 50  # encoder frames per second
PREPEND_PUNCTUATIONS = "\"'“¿([{-"
APPEND_PUNCTUATIONS = "\"'.。,，!！?？:：”)]}、"
SENTENCE_END_MARKS = ".。!！?？"


@dataclass
class WordTiming:
    word: str  # with its leading space, as decoded
    tokens: list[int]
    start: float
    end: float
    probability: float


def median_filter_rows(x: torch.Tensor, frames: torch.Tensor, width: int = 7) -> torch.Tensor:
    """Median filter along the last axis of ``x`` [B, ..., M], reflecting at each item's own end.

    ``frames[b]`` is item b's valid length; padding beyond it never leaks into its
    values (the reflection indexes are computed per item).
    """
    half = width // 2
    m = x.shape[-1]
    j = torch.arange(m, device=x.device).view(1, m, 1) + torch.arange(-half, half + 1, device=x.device).view(1, 1, -1)
    n = frames.view(-1, 1, 1).to(x.device)
    j = torch.where(j < 0, -j, j)
    j = torch.where(j >= n, 2 * (n - 1) - j, j)
    j = torch.minimum(j.clamp(min=0), (n - 1).clamp(min=0))  # very short items: clamp instead of reflect
    shape = x.shape[:-1] + (m, width)
    idx = j.view((j.shape[0],) + (1,) * (x.dim() - 2) + (m, width)).expand(shape)
    gathered = torch.gather(x.unsqueeze(-1).expand(shape), -2, idx)
    return gathered.median(dim=-1).values


def alignment_matrices(
    weights: torch.Tensor, rows: list[int], frames: list[int], lead: int, width: int = 7
) -> list[np.ndarray]:
    """[B, heads, R, S] cross-attention → one [rows_b - lead, frames_b] cost matrix per item (to minimise).

    ``rows[b]`` valid token rows (the first ``lead`` of them, e.g. <|startoftranscript|>,
    language and task, only take part in the standardisation, as in OpenAI's code),
    ``frames[b]`` encoder frames that hold audio.
    """
    b, _, r, s = weights.shape
    device = weights.device
    w = weights[..., : max(frames)].float()
    frame_ok = torch.arange(w.shape[-1], device=device).view(1, -1) < torch.tensor(frames, device=device).view(-1, 1)
    row_ok = torch.arange(r, device=device).view(1, -1) < torch.tensor(rows, device=device).view(-1, 1)
    w = w * frame_ok[:, None, None, :]
    w = w / w.sum(-1, keepdim=True).clamp(min=1e-12)  # softmax over the audio frames only
    rmask = row_ok[:, None, :, None].float()
    count = rmask.sum(2, keepdim=True).clamp(min=1)
    mean = (w * rmask).sum(2, keepdim=True) / count
    std = (((w - mean) ** 2 * rmask).sum(2, keepdim=True) / count).sqrt().clamp(min=1e-12)
    w = (w - mean) / std
    w = median_filter_rows(w, torch.tensor(frames), width).mean(1)  # [B, R, M]
    out = w.cpu().numpy()
    return [-out[i, lead : rows[i], : frames[i]] for i in range(b)]


def dtw_batch(costs: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Dynamic time warping of several cost matrices at once: (token index, frame index) paths.

    Vectorised over anti-diagonals and items; ties break as in OpenAI's ``dtw_cpu``
    (diagonal, then up, then left).
    """
    if not costs:
        return []
    n = np.array([c.shape[0] for c in costs])
    m = np.array([c.shape[1] for c in costs])
    big_n, big_m, batch = int(n.max()), int(m.max()), len(costs)
    x = np.zeros((batch, big_n, big_m), dtype=np.float64)
    for k, c in enumerate(costs):
        x[k, : c.shape[0], : c.shape[1]] = c
    acc = np.full((batch, big_n + 1, big_m + 1), np.inf)
    acc[:, 0, 0] = 0.0
    trace = np.full((batch, big_n + 1, big_m + 1), 2, dtype=np.int8)
    for d in range(2, big_n + big_m + 1):
        i = np.arange(max(1, d - big_m), min(big_n, d - 1) + 1)
        j = d - i
        c0, c1, c2 = acc[:, i - 1, j - 1], acc[:, i - 1, j], acc[:, i, j - 1]
        t = np.where((c0 < c1) & (c0 < c2), 0, np.where((c1 < c0) & (c1 < c2), 1, 2))
        acc[:, i, j] = x[:, i - 1, j - 1] + np.choose(t, [c0, c1, c2])
        trace[:, i, j] = t
    trace[:, 0, :] = 2
    trace[:, :, 0] = 1
    ii, jj = n.copy(), m.copy()
    steps = big_n + big_m
    path_i = np.full((batch, steps), -1)
    path_j = np.full((batch, steps), -1)
    rows = np.arange(batch)
    lengths = np.zeros(batch, dtype=np.int64)
    for step in range(steps):
        active = (ii > 0) | (jj > 0)
        if not active.any():
            break
        lengths += active
        path_i[active, step] = ii[active] - 1
        path_j[active, step] = jj[active] - 1
        t = trace[rows, ii, jj]
        ii = np.where(active & (t != 2), ii - 1, ii)
        jj = np.where(active & (t != 1), jj - 1, jj)
    return [(path_i[k, : lengths[k]][::-1].copy(), path_j[k, : lengths[k]][::-1].copy()) for k in range(batch)]


def align_words(attn: torch.Tensor, texts: list[list[int]], token_probs: list[np.ndarray], frames: list[int],
                lead: int, decode: Callable[[list[int]], str], eot: int, chunk: int = 64) -> list[list[WordTiming]]:
    """Word timings for a batch: ``attn`` [B, heads, lead + 1 + tokens, S] captured while decoding.

    Row ``lead`` is the <|notimestamps|> position; ``texts[b]`` are the text tokens
    whose rows follow it, ``frames[b]`` the encoder frames holding audio.
    """
    out: list[list[WordTiming]] = [[] for _ in texts]
    todo = [i for i, t in enumerate(texts) if t]
    if not todo:
        return out
    costs: list[np.ndarray] = []
    for k in range(0, len(todo), chunk):  # the median filter's gather is [items, heads, rows, frames, width]
        part = todo[k : k + chunk]
        costs += alignment_matrices(attn[part], [lead + 1 + len(texts[i]) for i in part], [frames[i] for i in part],
                                    lead)
    for i, path in zip(todo, dtw_batch(costs), strict=True):
        out[i] = words_from_path(path, *split_words(decode, texts[i] + [eot], eot), token_probs[i])
    return out


def split_words(decode: Callable[[list[int]], str], tokens: list[int], eot: int) -> tuple[list[str], list[list[int]]]:
    """faster-whisper's ``split_tokens_on_spaces``: subwords at valid UTF-8 boundaries, joined into words."""
    full = decode(tokens)
    subwords: list[str] = []
    subword_tokens: list[list[int]] = []
    current: list[int] = []
    offset = 0
    for token in tokens:
        current.append(token)
        text = decode(current)
        bad = text.find("\ufffd")
        if bad < 0 or (offset + bad < len(full) and full[offset + bad] == "\ufffd"):
            subwords.append(text)
            subword_tokens.append(current)
            current = []
            offset += len(text)
    words: list[str] = []
    word_tokens: list[list[int]] = []
    for sub, toks in zip(subwords, subword_tokens, strict=True):
        if toks[0] >= eot or sub.startswith(" ") or sub.strip() in string.punctuation or not words:
            words.append(sub)
            word_tokens.append(list(toks))
        else:
            words[-1] += sub
            word_tokens[-1].extend(toks)
    return words, word_tokens


def words_from_path(
    path: tuple[np.ndarray, np.ndarray], words: list[str], word_tokens: list[list[int]], token_probs: np.ndarray
) -> list[WordTiming]:
    """faster-whisper's ``find_alignment`` tail, its sentence-end clamp and punctuation merge.

    ``words``/``word_tokens`` come from ``split_words(text_tokens + [eot])``.
    """
    text_indices, time_indices = path
    if len(word_tokens) <= 1 or len(text_indices) == 0:
        return []
    boundaries = np.pad(np.cumsum([len(t) for t in word_tokens[:-1]]), (1, 0))
    jumps = np.pad(np.diff(text_indices), (1, 0), constant_values=1).astype(bool)
    jump_times = time_indices[jumps] / TOKENS_PER_SECOND
    out = []
    for k, (a, b) in enumerate(zip(boundaries[:-1], boundaries[1:], strict=True)):
        prob = float(np.mean(token_probs[a:b])) if b > a else 0.0
        out.append(WordTiming(words[k], word_tokens[k], float(jump_times[a]), float(jump_times[b]), prob))
    durations = np.array([w.end - w.start for w in out])
    durations = durations[durations.nonzero()]
    if len(durations):
        max_duration = min(0.7, float(np.median(durations))) * 2
        for k in range(1, len(out)):
            if out[k].end - out[k].start > max_duration:
                if out[k].word in SENTENCE_END_MARKS:
                    out[k].end = out[k].start + max_duration
                elif out[k - 1].word in SENTENCE_END_MARKS:
                    out[k].start = out[k].end - max_duration
    _merge_punctuations(out)
    return [w for w in out if w.word]


def _merge_punctuations(alignment: list[WordTiming]) -> None:
    """Attach opening punctuation to the next word and closing punctuation to the previous one."""
    i, j = len(alignment) - 2, len(alignment) - 1
    while i >= 0:
        prev, nxt = alignment[i], alignment[j]
        if prev.word.startswith(" ") and prev.word.strip() in PREPEND_PUNCTUATIONS:
            nxt.word, nxt.tokens = prev.word + nxt.word, prev.tokens + nxt.tokens
            prev.word, prev.tokens = "", []
        else:
            j = i
        i -= 1
    i, j = 0, 1
    while j < len(alignment):
        prev, nxt = alignment[i], alignment[j]
        if not prev.word.endswith(" ") and nxt.word in APPEND_PUNCTUATIONS:
            prev.word, prev.tokens = prev.word + nxt.word, prev.tokens + nxt.tokens
            nxt.word, nxt.tokens = "", []
        else:
            i = j
        j += 1

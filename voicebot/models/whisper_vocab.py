"""A Whisper model whose output vocabulary is cut to the tokens one language needs.

Whisper's decoder ends in a 51,865-way projection (tied to the token embeddings).
On whisper-base that projection is more weight than the six decoder layers
together, and the beam search reads all of it, plus a softmax and a top-k over
51,865 logits, at every step of every hypothesis. German text uses a fraction of
the vocabulary (the rest is Cyrillic, CJK, Arabic, ... and English-only pieces), so
a German-only copy keeps:

* the regular tokens of a committed list (``voicebot/models/data/``: the tokens
  of German words, see ``scripts/whisper_vocab_de.py``), closed under the BPE merges
  that build them, so every kept token stays reachable by the tokenizer;
* all 256 single-byte tokens, so any text (a foreign name, a stray symbol) can
  still be written and encoded, only in more pieces;
* every special and timestamp token, in their original order (CTranslate2 finds
  the timestamp range and the task tokens by position relative to
  ``<|notimestamps|>``).

The weights are the same numbers: the embedding rows of the kept tokens, nothing
retrained. The ids are renumbered densely in the original order, and the
tokenizer, ``vocabulary.txt`` and ``config.json`` are rewritten to match, so the
directory is an ordinary CTranslate2 Whisper model for faster-whisper, except that
CTranslate2 calls a model multilingual only at exactly 51,865 tokens: the
transcriber reads ``multilingual`` from ``vocab_prune.json`` instead.
"""

from __future__ import annotations

import json
import shutil
import struct
from collections.abc import Iterable
from pathlib import Path

import numpy as np

EMBEDDINGS = "decoder/embeddings/weight"
FIRST_SPECIAL = 50257  # <|endoftext|> in every Whisper vocabulary (v1-v3): regular tokens come before it
TOKEN_LIST = Path(__file__).parent / "data" / "whisper_de_tokens.json"  # scripts/whisper_vocab_de.py
MARKER = "vocab_prune.json"  # written into the pruned directory: what was kept, from what
_ITEM = {0: 4, 1: 1, 2: 2, 3: 4, 4: 2, 5: 2}  # CTranslate2 dtype id -> bytes per item


def _byte_tokens(vocab: dict[str, int]) -> set[int]:
    """Ids of the 256 single-byte tokens of a byte-level BPE (the first 256 ids in Whisper)."""
    return {i for tok, i in vocab.items() if len(tok) == 1 and i < FIRST_SPECIAL}


def closed_keep_set(tokenizer_json: dict, wanted: Iterable[int]) -> list[int]:
    """``wanted`` regular ids plus the byte tokens, closed under the merges that build them.

    A BPE token is reachable only through the merge that creates it, so each kept
    token's two parts are kept too (recursively); otherwise the tokenizer could never
    produce it and encoding would silently change."""
    vocab: dict[str, int] = tokenizer_json["model"]["vocab"]
    parts: dict[str, tuple[str, str]] = {}
    for merge in tokenizer_json["model"]["merges"]:
        left, right = merge.split(" ") if isinstance(merge, str) else merge
        parts.setdefault(left + right, (left, right))
    by_id = {i: tok for tok, i in vocab.items()}
    keep: set[str] = {by_id[i] for i in _byte_tokens(vocab)}
    stack = [by_id[i] for i in wanted if i < FIRST_SPECIAL and i in by_id]
    while stack:
        tok = stack.pop()
        if tok in keep:
            continue
        keep.add(tok)
        stack.extend(parts.get(tok, ()))
    return sorted(vocab[t] for t in keep)


def _remap(ids: Iterable[int], new_id: dict[int, int]) -> list[int]:
    return [new_id[i] for i in ids if i in new_id]


def _rewrite_tokenizer(tokenizer_json: dict, new_id: dict[int, int]) -> dict:
    out = json.loads(json.dumps(tokenizer_json))
    vocab = out["model"]["vocab"]
    kept = {tok: new_id[i] for tok, i in vocab.items() if i in new_id}
    out["model"]["vocab"] = kept
    merges = []
    for merge in out["model"]["merges"]:
        left, right = merge.split(" ") if isinstance(merge, str) else merge
        if left in kept and right in kept and left + right in kept:
            merges.append(merge)
    out["model"]["merges"] = merges
    for added in out["added_tokens"]:
        added["id"] = new_id[added["id"]]
    special = (out.get("post_processor") or {}).get("special_tokens", {})
    for entry in special.values():
        entry["ids"] = _remap(entry["ids"], new_id)
    return out


def _rewrite_model_bin(src: Path, dst: Path, rows: np.ndarray) -> None:
    """Copy a CTranslate2 ``model.bin`` with only ``rows`` of the decoder embeddings (layout:
    ``voicebot.models.whisper_convert``); every other variable is copied byte for byte."""
    data = src.read_bytes()
    out = bytearray()
    pos = 0

    def take(fmt: str) -> tuple:
        nonlocal pos
        values = struct.unpack_from("<" + fmt, data, pos)
        pos += struct.calcsize(fmt)
        return values

    def string() -> bytes:
        nonlocal pos
        (size,) = struct.unpack_from("<H", data, pos)
        raw = data[pos : pos + 2 + size]
        pos += 2 + size
        return raw

    (version,) = take("I")
    out += struct.pack("<I", version) + string()
    (revision,) = take("I")
    (count,) = take("I")
    out += struct.pack("<II", revision, count)
    for _ in range(count):
        name_raw = string()
        name = name_raw[2:-1].decode("utf-8")
        (rank,) = take("B")
        shape = take("I" * rank)
        (dtype,) = take("B")
        (nbytes,) = take("I")
        raw = data[pos : pos + nbytes]
        pos += nbytes
        if name == EMBEDDINGS:
            table = np.frombuffer(raw, dtype=np.uint8).reshape(shape[0], shape[1] * _ITEM[dtype])
            raw = table[rows].tobytes()
            shape = (len(rows), shape[1])
        out += name_raw + struct.pack("<B", rank) + struct.pack("<" + "I" * rank, *shape)
        out += struct.pack("<BI", dtype, len(raw)) + raw
    out += data[pos:]  # the alias table (the projection is the embeddings)
    dst.write_bytes(bytes(out))


def prune_whisper(src: Path, dst: Path, wanted: Iterable[int]) -> dict:
    """Write a pruned copy of the CTranslate2 Whisper directory ``src`` into ``dst``.

    Returns what ``vocab_prune.json`` records (multilingual, the token counts)."""
    tokenizer_json = json.loads((src / "tokenizer.json").read_text(encoding="utf-8"))
    vocabulary = (src / "vocabulary.txt").read_text(encoding="utf-8").split("\n")
    if vocabulary and vocabulary[-1] == "":
        vocabulary.pop()
    regular = closed_keep_set(tokenizer_json, wanted)
    kept = regular + list(range(FIRST_SPECIAL, len(vocabulary)))
    new_id = {old: new for new, old in enumerate(kept)}
    shutil.rmtree(dst, ignore_errors=True)
    dst.mkdir(parents=True)
    _rewrite_model_bin(src / "model.bin", dst / "model.bin", np.asarray(kept))
    (dst / "vocabulary.txt").write_text("\n".join(vocabulary[i] for i in kept) + "\n", encoding="utf-8")
    tok = _rewrite_tokenizer(tokenizer_json, new_id)
    (dst / "tokenizer.json").write_text(json.dumps(tok, ensure_ascii=False), encoding="utf-8")
    config = json.loads((src / "config.json").read_text())
    for key in ("lang_ids", "suppress_ids", "suppress_ids_begin"):
        if key in config:
            config[key] = _remap(config[key], new_id)
    (dst / "config.json").write_text(json.dumps(config, indent=2))
    record = {"multilingual": len(vocabulary) >= 51865, "source_tokens": len(vocabulary),
              "tokens": len(kept), "regular_tokens": len(regular)}
    (dst / MARKER).write_text(json.dumps(record, indent=2))
    return record


def pruned_multilingual(model_dir: Path) -> bool:
    """Whether ``model_dir`` is a pruned copy of a multilingual Whisper (its marker says so)."""
    marker = model_dir / MARKER
    return marker.is_file() and bool(json.loads(marker.read_text()).get("multilingual"))


def cut_from(model_dir: Path) -> str | None:
    """The registry model a pulled cut copy was made from ("whisper-base" for whisper-base-de), else None.
    The torch backend runs that full model: its converted checkpoint has every token."""
    stamp = model_dir / "provenance.json"
    if not (model_dir / MARKER).is_file() or not stamp.is_file():
        return None
    source = json.loads(stamp.read_text()).get("source")
    return str(source) if source else None


class MultilingualModel:
    """A CTranslate2 Whisper that reports ``is_multilingual``, which CTranslate2 derives from the
    vocabulary size (exactly 51,865) and so denies a pruned copy. faster-whisper reads it to put
    the language and task tokens in the prompt; every other attribute is the wrapped model's."""

    is_multilingual = True

    def __init__(self, model: object) -> None:
        self._model = model

    def __getattr__(self, name: str) -> object:
        return getattr(self._model, name)

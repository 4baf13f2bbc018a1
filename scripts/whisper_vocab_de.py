#!/usr/bin/env python
"""Choose the Whisper tokens German callers need: writes ``voicebot/models/data/whisper_de_tokens.json``.

The list is what ``voicebot models pull`` keeps of whisper-base's 51,865-token output vocabulary
for the German copy ``whisper-base-de`` (see ``voicebot/models/whisper_vocab.py``). It is every
token the Whisper tokenizer (its lost first merge restored: ``selection_tokenizer``) uses to write:

* the ``--words`` most frequent German words of ``wordfreq`` (its "large" list), each as written
  mid-sentence and sentence-initially, in lower case and capitalized (German nouns), and with
  "ss" spelled "ß" (wordfreq case-folds "weiß" to "weiss");
* short words (≤ 4 letters) of its first 10,000 in capitals (ADAC, WLAN, IBAN) and every one- and
  two-letter capital pair (licence plates: "MV AB 1234");
* the ``--english`` most frequent English words (loanwords: Router, Update, Account);
* the numbers 0-9999, punctuation and the currency and unit signs callers' turns carry;
* the product's own German text: the intent training lines and the ASR's initial prompt and hotwords
  (not the dev or evaluation sets).

wordfreq is needed only to regenerate the list, not to run or set up voicebot:

    pip install --target /tmp/wordfreq wordfreq==3.1.1
    PYTHONPATH=/tmp/wordfreq .venv/bin/python scripts/whisper_vocab_de.py [--words 50000] [--english 2000]
"""

from __future__ import annotations

import argparse
import itertools
import json
import string
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from voicebot.models.registry import sha256_of  # noqa: E402
from voicebot.models.whisper_vocab import FIRST_SPECIAL, TOKEN_LIST  # noqa: E402

SHOUTED_TOP = 10000  # acronyms callers spell (ADAC, WLAN) are short and common; each capital word costs tokens
SYMBOLS = list(",.;:!?-–—…'\"()[]/&%€$§+*=#@°") + ["...", "--", "€.", "%.", "km/h", "z.B.", "Nr.", "ca."]


def sharp_s_variants(word: str) -> list[str]:
    """wordfreq case-folds ß to ss: put ß back at each "ss" (at most two of them, every combination)."""
    spots = [i for i in range(len(word) - 1) if word[i : i + 2] == "ss"][:2]
    out = []
    for choice in itertools.product((False, True), repeat=len(spots)):
        w, shift = word, 0
        for spot, sharp in zip(spots, choice, strict=True):
            if sharp:
                w = w[: spot - shift] + "ß" + w[spot - shift + 2 :]
                shift += 1
        out.append(w)
    return out


def spellings(word: str) -> list[str]:
    forms = []
    for w in sharp_s_variants(word):
        for cased in {w, w.capitalize()}:
            forms += [" " + cased, cased]
    return forms


def product_text() -> list[str]:
    """German text the product expects from callers: the intent training lines and the ASR prompt."""
    from voicebot.config import load_settings

    lines = [json.loads(line)["text"] for line in (REPO / "eval/intent/train.jsonl").read_text().splitlines() if line]
    asr = load_settings().asr
    lines += [asr.initial_prompt or "", asr.hotwords or ""]
    return [" " + line.strip() for line in lines if line.strip()]


def selection_tokenizer(path: Path):  # type: ignore[no-untyped-def]
    """The Whisper tokenizer with the merges its ``tokenizer.json`` lost restored, for choosing tokens.

    Whisper's Hugging Face ``tokenizer.json`` lacks its first merge ("Ġ t", building id 256: the
    converter took the merges file's first line for a header), so it never writes " t..." as the model
    does: " trinken" comes out as "Ġ", "t", "rinken". The model itself writes " tr", " total", " teuer";
    a list chosen with the lossy tokenizer would cut every one of them. A token no merge builds gets
    the merge of its two pieces, at the rank its id gives (merges run in id order from 256)."""
    from tokenizers import Tokenizer

    data = json.loads(path.read_text(encoding="utf-8"))
    vocab, merges = data["model"]["vocab"], data["model"]["merges"]
    built = {"".join(m.split(" ") if isinstance(m, str) else m) for m in merges}
    for token, token_id in sorted(vocab.items(), key=lambda item: item[1]):
        if len(token) < 2 or token in built or token_id >= FIRST_SPECIAL:
            continue
        split = next((k for k in range(1, len(token)) if token[:k] in vocab and token[k:] in vocab), None)
        if split is not None:
            merge = f"{token[:split]} {token[split:]}"
            merges.insert(max(0, token_id - 256), merge if isinstance(merges[0], str) else merge.split(" "))
    return Tokenizer.from_str(json.dumps(data))


def main() -> int:
    import wordfreq

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--words", type=int, default=50000, help="most frequent German words (wordfreq 'large')")
    ap.add_argument("--english", type=int, default=2000, help="most frequent English words (loanwords)")
    ap.add_argument("--tokenizer", type=Path, default=REPO / "models/store/whisper-base/tokenizer.json")
    ap.add_argument("--out", type=Path, default=TOKEN_LIST)
    args = ap.parse_args()

    german = wordfreq.top_n_list("de", args.words, wordlist="large")
    forms: list[str] = []
    for rank, word in enumerate(german):
        forms += spellings(word)
        if rank < SHOUTED_TOP and len(word) <= 4 and word.isalpha():
            forms += [" " + word.upper(), word.upper()]
    for word in wordfreq.top_n_list("en", args.english):
        forms += [" " + word, " " + word.capitalize()]
    letters = string.ascii_uppercase
    for pair in itertools.chain(letters, ("".join(p) for p in itertools.product(letters, repeat=2))):
        forms += [" " + pair, pair]
    for n in range(10000):
        forms += [f" {n}", f"{n}", f"{n}.", f"{n},"]
    forms += SYMBOLS + [" " + s for s in SYMBOLS]
    forms += product_text()

    tokenizer = selection_tokenizer(args.tokenizer)
    ids: set[int] = set()
    for encoding in tokenizer.encode_batch(forms, add_special_tokens=False):
        ids.update(encoding.ids)
    record = {
        "about": "whisper-base regular token ids German callers need (scripts/whisper_vocab_de.py)",
        "tokenizer_sha256": sha256_of(args.tokenizer),
        "wordfreq": wordfreq.__version__ if hasattr(wordfreq, "__version__") else "3.1.1",
        "german_words": args.words,
        "english_words": args.english,
        "ids": sorted(ids),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, separators=(",", ":")) + "\n")
    print(f"{len(ids)} regular tokens from {len(forms)} spellings -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

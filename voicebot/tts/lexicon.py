"""A small respelling lexicon: English loanwords the German Pico voice reads as German.

Keys are matched as whole words, case-insensitively; the value is a German-phonetic
spelling Pico pronounces close to how callers say the word.
"""

from __future__ import annotations

import re

RESPELLINGS: dict[str, str] = {
    "kundenservice": "Kundensörwiss",
    "service": "Sörwiss",
    "hotline": "Hottlein",
    "router": "Rauter",
    "e-mail": "I-Mäil",
    "email": "I-Mäil",
    "account": "Äkkaunt",
    "online": "Onlein",
    "update": "Apdäit",
    "login": "Loggin",
    "app": "Äpp",
    "team": "Tiem",
    "support": "Suppohrt",
    "ticket": "Tikket",
    "chat": "Tschätt",
    "wlan": "We-Lan",
    "okay": "Okeh",
    "callback": "Kohlbäck",
    "download": "Daunlohd",
    "smartphone": "Smahrtfohn",
    "laptop": "Läpptopp",
    "voicebot": "Weussbott",
}

_PATTERN = re.compile(
    r"(?<![\wÄÖÜäöüß-])(" + "|".join(re.escape(k) for k in sorted(RESPELLINGS, key=len, reverse=True)) + r")(?![\wÄÖÜäöüß-])",
    re.IGNORECASE,
)


def respell(text: str, lexicon: dict[str, str] | None = None) -> str:
    """Replace known loanwords by their German-phonetic spelling (for the synthesizer only)."""
    table = RESPELLINGS if lexicon is None else lexicon
    pattern = _PATTERN if lexicon is None else re.compile(
        r"(?<![\w-])(" + "|".join(re.escape(k) for k in table) + r")(?![\w-])", re.IGNORECASE
    )
    return pattern.sub(lambda m: table[m.group(1).lower()], text)

"""Agent tokens: accepted from config/env, or one generated at start; only hashes are ever logged."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any


def fingerprint(token: str | None) -> str:
    """A short, non-reversible name for a token, fit for logs."""
    if not token:
        return "none"
    return hashlib.sha256(token.encode("utf-8")).hexdigest()[:8]


class AgentAuth:
    """The accepted agent tokens: from config/env, or one generated at start."""

    def __init__(self, tokens: str) -> None:
        self.tokens = [t.strip() for t in tokens.split(",") if t.strip()]
        self.generated = not self.tokens
        if self.generated:
            self.tokens = [secrets.token_urlsafe(18)]

    def check(self, token: Any) -> bool:
        if not isinstance(token, str) or not token:
            return False
        # Compare against every token in constant time, so timing does not tell which matched.
        matches = [hmac.compare_digest(token.encode(), t.encode()) for t in self.tokens]
        return any(matches)

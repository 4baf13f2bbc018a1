"""Access checks of the server, all optional and off by default (docs/PROTOCOL.md, "Access").

- ``server.caller_tokens``: a shared token for ``/v1/call`` (``Authorization: Bearer`` header on
  the upgrade, or ``token`` in ``start``; never from the URL).
- ``server.twilio_validate``: Twilio's ``X-Twilio-Signature`` on the ``/v1/twilio`` upgrade
  (HMAC-SHA1 with ``telephony.twilio_auth_token`` over the URL Twilio called, ``server.public_url``).
- ``server.allowed_origins``: browsers from other Origins get HTTP 403 (websockets and pages).
- ``server.metrics_token``: ``/metrics`` wants ``Authorization: Bearer``.
- Failed agent logins are throttled per client address (``LoginThrottle``).
- ``SecurityMiddleware`` adds security headers to every HTTP response and enforces the Origin list.

Tokens are compared in constant time and never logged.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from voicebot.config import ServerSettings, SettingsError, TelephonySettings

CLOSE_UNAUTHORIZED = 4401
CLOSE_TOO_MANY_ATTEMPTS = 4429

_HOST = re.compile(r"^[A-Za-z0-9.\-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$")


def split_list(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def token_matches(token: Any, accepted: list[str]) -> bool:
    """Whether ``token`` is one of ``accepted``, compared in constant time against every one."""
    if not isinstance(token, str) or not token:
        return False
    matches = [hmac.compare_digest(token.encode("utf-8"), t.encode("utf-8")) for t in accepted]
    return any(matches)


def bearer(headers: Mapping[str, str]) -> str | None:
    """The token of an ``Authorization: Bearer TOKEN`` header, or None."""
    value = headers.get("authorization") or ""
    scheme, _, token = value.strip().partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


# ---------------------------------------------------------------------------- Twilio's request signature


def twilio_signature(auth_token: str, url: str, params: Mapping[str, str] | None = None) -> str:
    """Twilio's ``X-Twilio-Signature``: base64 HMAC-SHA1, keyed with the auth token, of the full URL
    followed by every POST parameter (sorted by name) as name + value, without delimiters."""
    data = url + "".join(f"{k}{v}" for k, v in sorted((params or {}).items()))
    digest = hmac.new(auth_token.encode("utf-8"), data.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def _url_variants(url: str) -> list[str]:
    """The URL as given, with its default port added and removed (Twilio's helper libraries accept
    either: what Twilio signs depends on how the URL was written in the TwiML)."""
    parts = urlsplit(url)
    default = {"https": 443, "wss": 443, "http": 80, "ws": 80}.get(parts.scheme)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    out = [url]
    if default is not None and host:
        userinfo = parts.netloc.rpartition("@")[0]
        prefix = f"{userinfo}@" if userinfo else ""
        port = parts.port or default
        if port == default:
            out.append(urlunsplit(parts._replace(netloc=f"{prefix}{host}:{default}")))
            out.append(urlunsplit(parts._replace(netloc=f"{prefix}{host}")))
    return list(dict.fromkeys(out))


def twilio_signature_valid(auth_token: str, signature: str | None, url: str,
                           params: Mapping[str, str] | None = None) -> bool:
    if not signature or not auth_token:
        return False
    given = signature.strip().encode("utf-8")
    results = [hmac.compare_digest(given, twilio_signature(auth_token, u, params).encode("ascii"))
               for u in _url_variants(url)]
    return any(results)


# ---------------------------------------------------------------------------- failed-login throttle


class LoginThrottle:
    """Failed logins per client address: more than ``max_failures`` within ``window_s`` refuse that
    address for ``cooldown_s``. ``clock`` is replaceable (tests)."""

    def __init__(self, max_failures: int = 5, window_s: float = 60.0, cooldown_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic, max_addresses: int = 10000) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self.cooldown_s = cooldown_s
        self.clock = clock
        self.max_addresses = max_addresses
        self._failures: dict[str, deque[float]] = {}
        self._blocked: dict[str, float] = {}

    def blocked(self, address: str) -> bool:
        until = self._blocked.get(address)
        if until is None:
            return False
        if self.clock() < until:
            return True
        del self._blocked[address]
        return False

    def failed(self, address: str) -> None:
        now = self.clock()
        if len(self._failures) >= self.max_addresses and address not in self._failures:
            self._prune(now)
        failures = self._failures.setdefault(address, deque())
        failures.append(now)
        while failures and failures[0] <= now - self.window_s:
            failures.popleft()
        if len(failures) >= self.max_failures:
            self._blocked[address] = now + self.cooldown_s
            failures.clear()

    def succeeded(self, address: str) -> None:
        self._failures.pop(address, None)

    def _prune(self, now: float) -> None:
        for address in [a for a, f in self._failures.items() if not f or f[-1] <= now - self.window_s]:
            del self._failures[address]
        if len(self._failures) >= self.max_addresses:  # still full: forget the oldest
            for address in list(self._failures)[: len(self._failures) // 2]:
                del self._failures[address]


# ---------------------------------------------------------------------------- the policy


class AccessPolicy:
    """The server's access settings, checked by the endpoints and the middleware."""

    def __init__(self, server: ServerSettings, telephony: TelephonySettings) -> None:
        self.caller_tokens = split_list(server.caller_tokens)
        self.metrics_token = server.metrics_token
        self.origins = {o.rstrip("/").lower() for o in split_list(server.allowed_origins)}
        self.twilio_validate = server.twilio_validate
        self.twilio_auth_token = telephony.twilio_auth_token
        self.public_url = server.public_url.rstrip("/")
        if self.twilio_validate and not self.twilio_auth_token:
            raise SettingsError("server.twilio_validate needs telephony.twilio_auth_token (the key Twilio signs with)")
        self.logins = LoginThrottle(max_failures=server.login_max_failures, window_s=server.login_window_s,
                                    cooldown_s=server.login_cooldown_s)

    # ------------------------------------------------------------------ callers
    @property
    def callers_need_token(self) -> bool:
        return bool(self.caller_tokens)

    def caller_token_ok(self, token: Any) -> bool:
        return token_matches(token, self.caller_tokens)

    def signed_url(self, scope: Mapping[str, Any], headers: Mapping[str, str]) -> str:
        """The URL Twilio signed: ``server.public_url`` (+ the request path unless it already ends
        with it), else this request's own scheme and Host; plus the query string."""
        path = scope.get("path", "")
        query = scope.get("query_string", b"").decode("latin-1")
        if self.public_url:
            base = self.public_url if urlsplit(self.public_url).path.endswith(path) else self.public_url + path
        else:
            scheme = {"ws": "ws", "wss": "wss", "http": "http", "https": "https"}.get(scope.get("scheme", ""), "ws")
            base = f"{scheme}://{headers.get('host', '')}{path}"
        return f"{base}?{query}" if query else base

    def twilio_ok(self, scope: Mapping[str, Any], headers: Mapping[str, str]) -> bool:
        if not self.twilio_validate:
            return True
        return twilio_signature_valid(self.twilio_auth_token, headers.get("x-twilio-signature"),
                                      self.signed_url(scope, headers))

    # ------------------------------------------------------------------ browsers, metrics
    def origin_ok(self, headers: Mapping[str, str]) -> bool:
        """No list, no Origin header (not a browser), the server's own origin, or a listed one."""
        origin = headers.get("origin")
        if not self.origins or origin is None:
            return True
        origin = origin.rstrip("/").lower()
        if origin in self.origins:
            return True
        host = (headers.get("host") or "").lower()
        return bool(host) and urlsplit(origin).netloc == host

    def metrics_ok(self, headers: Mapping[str, str]) -> bool:
        return not self.metrics_token or token_matches(bearer(headers), [self.metrics_token])


# ---------------------------------------------------------------------------- headers and Origin, as middleware


def content_security_policy(host: str) -> str:
    """For the pages' own scripts, styles, worklet and websockets; nothing from elsewhere, no framing."""
    sockets = f" ws://{host} wss://{host}" if _HOST.match(host) else ""
    return ("default-src 'self'; script-src 'self'; worker-src 'self'; style-src 'self' 'unsafe-inline'; "
            f"img-src 'self' data:; media-src 'self' blob:; connect-src 'self'{sockets}; object-src 'none'; "
            "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


class SecurityMiddleware:
    """Pure ASGI: refuses foreign Origins (HTTP 403, also for websocket upgrades) and adds security
    headers to every HTTP response."""

    def __init__(self, app: Any, policy: AccessPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if not self.policy.origin_ok(headers):
            if scope["type"] == "websocket":
                await receive()  # websocket.connect
                await send({"type": "websocket.close", "code": 1008})  # before accept: the server answers 403
            else:
                await self._forbidden(headers, send)
            return
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return
        extra = self._headers(headers)

        async def send_with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _headers(self, headers: Mapping[str, str]) -> list[tuple[bytes, bytes]]:
        return [
            (b"content-security-policy", content_security_policy(headers.get("host", "")).encode("latin-1")),
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
            (b"x-frame-options", b"DENY"),
        ]

    async def _forbidden(self, headers: Mapping[str, str], send: Any) -> None:
        body = b"origin not allowed"
        await send({"type": "http.response.start", "status": 403, "headers": [
            (b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode()),
            *self._headers(headers)]})
        await send({"type": "http.response.body", "body": body})

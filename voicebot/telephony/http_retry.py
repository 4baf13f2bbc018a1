"""One outbound POST with a bounded number of attempts, a hard per-attempt deadline and backoff.

Shared by the handoff webhook and the Twilio redirect. Nothing here logs bodies, headers or
credentials: only the URL without its query string, status codes and error classes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from voicebot.telephony.models import DeliveryResult

log = logging.getLogger(__name__)

# Worth another try: the server said it is (temporarily) unable, or asked us to slow down.
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int  # in all, the first one included
    timeout_s: float  # one attempt, connect to last byte
    backoff_s: float  # before the first retry; doubles per retry
    max_backoff_s: float = 4.0
    # A timeout after the request went out may have taken effect; only idempotent
    # receivers (the webhook: deliveries carry an id) may see it again.
    retry_after_send: bool = True

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.timeout_s <= 0 or self.backoff_s < 0:
            raise ValueError(f"bad retry policy {self}")

    def delay(self, retry: int, retry_after: str | None = None) -> float:
        """Seconds before retry number ``retry`` (1-based); a server's Retry-After wins, within the cap."""
        if retry_after is not None:
            try:
                return min(max(float(retry_after), 0.0), self.max_backoff_s)
            except ValueError:
                pass  # an HTTP date: fall back to our own schedule
        return min(self.backoff_s * (2 ** (retry - 1)), self.max_backoff_s)


def safe_url(url: str) -> str:
    """The URL as it may appear in logs: no user info, no query (tokens live there)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


class _RedactUrls(logging.Filter):
    """httpx logs every request's full URL at INFO; a webhook URL may carry a token in its query."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(isinstance(a, httpx.URL) for a in record.args):
            record.args = tuple(safe_url(str(a)) if isinstance(a, httpx.URL) else a for a in record.args)
        return True


def redact_httpx_logs() -> None:
    """Install the URL redaction on httpx's logger (once; safe to call again)."""
    httpx_log = logging.getLogger("httpx")
    if not any(isinstance(f, _RedactUrls) for f in httpx_log.filters):
        httpx_log.addFilter(_RedactUrls())


RequestFactory = Callable[[int], tuple[bytes, dict[str, str]]]


async def post_with_retries(client: httpx.AsyncClient, url: str, make_request: RequestFactory,
                            policy: RetryPolicy, *, what: str,
                            auth: httpx.BasicAuth | None = None) -> tuple[DeliveryResult, httpx.Response | None]:
    """POST what ``make_request(attempt)`` builds until a 2xx, a final answer or the attempts run out.

    Returns the outcome and the last response (None if none arrived). Never raises for
    network trouble; a bug in ``make_request`` still raises.
    """
    where = safe_url(url)
    error, status, response = "", None, None
    for attempt in range(1, policy.attempts + 1):
        content, headers = make_request(attempt)
        retryable, response = False, None
        try:
            async with asyncio.timeout(policy.timeout_s):
                response = await client.post(url, content=content, headers=headers,
                                             auth=httpx.USE_CLIENT_DEFAULT if auth is None else auth,
                                             timeout=policy.timeout_s)
            status = response.status_code
            if 200 <= status < 300:
                return DeliveryResult("delivered", attempt, status), response
            error = f"HTTP {status}"
            retryable = status in RETRY_STATUSES
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            error, retryable = f"cannot connect ({type(exc).__name__})", True  # nothing was sent
        except (TimeoutError, httpx.TimeoutException) as exc:
            error, retryable = f"timed out after {policy.timeout_s:g} s ({type(exc).__name__})", policy.retry_after_send
        except httpx.TransportError as exc:
            error, retryable = f"connection failed ({type(exc).__name__})", policy.retry_after_send
        if not retryable or attempt == policy.attempts:
            break
        pause = policy.delay(attempt, response.headers.get("retry-after") if response is not None and
                             status in (429, 503) else None)
        log.info("%s to %s: attempt %d failed (%s); retrying in %.2f s", what, where, attempt, error, pause)
        await asyncio.sleep(pause)
    log.warning("%s to %s failed after %d attempt(s): %s", what, where, attempt, error)
    return DeliveryResult("failed", attempt, status, error), response

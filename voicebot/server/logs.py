"""Logging with the call id on every line, as text or as one JSON object per line; no secrets, no forged lines."""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import MutableMapping
from typing import Any


class CallLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """A logger that puts ``call=<id>`` in front of each message and ``call_id`` on the record."""

    def __init__(self, logger: logging.Logger, call_id: str) -> None:
        super().__init__(logger, {"call_id": call_id})

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        call_id = (self.extra or {}).get("call_id", "-")
        kwargs.setdefault("extra", {})["call_id"] = call_id
        return f"call={call_id} {msg}", kwargs


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, and call_id where there is one."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        call_id = getattr(record, "call_id", None)
        if call_id:
            data["call_id"] = call_id
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False)


# --- log hygiene: no secrets, no forged lines ----------------------------------------------

# ``token=...`` and friends in URLs and key=value text (uvicorn logs every websocket path with its query).
_SECRET_PARAM = re.compile(
    r"(?i)(?P<key>\b(?:token|access_token|auth_token|api_key|apikey|password|passwd|secret|signature|sig)=)"
    r"(?P<value>[^&\s\"'#;,)]+)"
)
# Header lines and JSON fields: ``Authorization: Bearer x``, ``"token": "x"``, ``X-Twilio-Signature: x``.
_SECRET_FIELD = re.compile(
    r"(?i)(?P<key>[\"']?\b(?:authorization|proxy-authorization|x-twilio-signature|cookie|set-cookie|token|"
    r"access_token|password|secret|api_key)[\"']?\s*[:=]\s*[\"']?)(?P<value>(?:bearer\s+|basic\s+)?[^\s\"',;}&]+)"
)
# C0/C1 controls and Unicode line breaks: a newline in a client-supplied string would forge a log line.
_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")
_MAX_MESSAGE = 4000


def scrub_secrets(text: str) -> str:
    """Replace the values of tokens, passwords, signatures and authorization headers with ``***``."""
    if "=" not in text and ":" not in text:
        return text
    text = _SECRET_PARAM.sub(lambda m: m.group("key") + "***", text)
    return _SECRET_FIELD.sub(lambda m: m.group("key") + "***", text)


def escape_controls(text: str) -> str:
    """``\\n`` for a newline and ``\\xNN``/``\\uNNNN`` for other controls: one record stays one line."""
    return _CONTROL.sub(lambda m: m.group(0).encode("unicode_escape").decode("ascii"), text)


class LogHygiene(logging.Filter):
    """Rewrites every record it sees: secrets scrubbed, control characters escaped, length bounded.

    Installed on the handlers (records of every logger pass them) and on uvicorn's
    loggers by ``install_log_hygiene``. The message is formatted here, once, so a
    secret or a newline in an argument is caught as well as one in the format.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_voicebot_clean", False):
            return True
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken format must still not leak its arguments raw
            message = f"{record.msg!s} {record.args!r}"
        message = escape_controls(scrub_secrets(message))
        if len(message) > _MAX_MESSAGE:
            message = f"{message[:_MAX_MESSAGE]}...(+{len(message) - _MAX_MESSAGE} chars)"
        record.msg, record.args = message, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub_secrets(record.exc_text)  # tracebacks keep their own line breaks
        record._voicebot_clean = True  # noqa: SLF001 - a marker, so two installed filters work once
        return True


_UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")


def install_log_hygiene(root: logging.Logger | None = None) -> LogHygiene:
    """Put one ``LogHygiene`` on every handler of the root logger and on uvicorn's loggers (idempotent)."""
    root = root or logging.getLogger()
    hygiene = next((f for f in root.filters if isinstance(f, LogHygiene)), None) or LogHygiene()
    targets: list[logging.Filterer] = [*root.handlers, *(logging.getLogger(n) for n in _UVICORN_LOGGERS)]
    for logger_name in _UVICORN_LOGGERS:
        targets.extend(logging.getLogger(logger_name).handlers)
    for target in targets:
        if not any(isinstance(f, LogHygiene) for f in target.filters):
            target.addFilter(hygiene)
    return hygiene

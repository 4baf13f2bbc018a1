"""Logging with the call id on every line, as text or as one JSON object per line."""

from __future__ import annotations

import json
import logging
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

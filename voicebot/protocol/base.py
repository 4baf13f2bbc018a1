"""What every wire message shares: a strict pydantic model and compact JSON.

Messages forbid unknown fields when we build them (a typo is a bug, not a new
field); inbound messages from clients are validated by each protocol module,
which decides how lenient to be. ``OMIT_IF_NONE`` names optional fields that
are left out of the JSON when unset, so the wire stays as it was before the
models existed (``seq`` before the hub stamps it, ``bargein.text``, ...).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    JsonValue,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
)
from pydantic_core import PydanticCustomError


class Message(BaseModel):
    """Base of every typed wire message."""

    model_config = ConfigDict(extra="forbid")


class OmitsUnset(Message):
    """A message whose ``OMIT_IF_NONE`` fields are left out of the JSON while None.

    Only the classes that need it pay for the Python serializer hook (call events).
    """

    OMIT_IF_NONE: ClassVar[frozenset[str]] = frozenset()

    @model_serializer(mode="wrap")
    def _omit_unset_optionals(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        if self.OMIT_IF_NONE and isinstance(data, dict):
            for key in self.OMIT_IF_NONE:
                if key in data and data[key] is None:
                    del data[key]
        return data


M = TypeVar("M", bound=BaseModel)


def dump(message: BaseModel) -> dict[str, Any]:
    """The JSON-ready dict of a message (what goes on the wire, into the store, to agents)."""
    return message.model_dump(mode="json")


def to_json(message: BaseModel) -> str:
    """Compact JSON text of a message (non-ASCII kept as is, as the server always sent it)."""
    return json.dumps(dump(message), ensure_ascii=False, separators=(",", ":"))


class Inbound(Message):
    """A message a client sends: unknown fields are ignored (clients may be newer than we are)."""

    model_config = ConfigDict(extra="ignore")


class ProtocolError(Exception):
    """Bad input: ``code`` is the wire error code, ``kind`` the message type it was (if known)."""

    def __init__(self, code: str, message: str, kind: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.kind = kind


MAX_DEPTH = 32  # no message of ours nests deeper; a deeper one is an attack or a bug
# Whole JSON strings (escapes included) or single brackets: brackets inside strings do not count.
_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')


def deeper_than(text: str, limit: int = MAX_DEPTH) -> bool:
    """True if JSON text nests more than ``limit`` levels (brackets inside strings do not count)."""
    if text.count("[") + text.count("{") <= limit:
        return False  # not enough brackets to be that deep: no scan (every Twilio media frame)
    depth = 0
    for match in _TOKENS.finditer(text):
        char = match.group()
        if char in "[{":
            depth += 1
            if depth > limit:
                return True
        elif char in "]}":
            depth -= 1
    return False


def decode_json(text: str, *, key: str = "type") -> dict[str, Any]:
    """One JSON object from a text message, depth-bounded before parsing; else ProtocolError ``bad_json``."""
    if deeper_than(text):
        raise ProtocolError("bad_json", f"a message may be nested at most {MAX_DEPTH} levels deep")
    try:
        message = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProtocolError("bad_json", f"a text message must be one JSON object ({exc.msg} at {exc.pos})") from None
    except (RecursionError, ValueError) as exc:
        raise ProtocolError("bad_json", f"a text message must be one JSON object ({exc})") from None
    if not isinstance(message, dict):
        raise ProtocolError("bad_json", f"a text message must be a JSON object with a \"{key}\"")
    return message


def validate_message(
    message: dict[str, Any], models: Mapping[str, type[M]], *, key: str = "type",
    field_codes: Mapping[str, str] | None = None, default_code: str = "bad_message",
) -> M:
    """Validate a decoded message into the model its ``key`` names.

    Unknown names raise ``unknown_type``. Validation errors raise the code a validator chose (a
    ``PydanticCustomError`` whose type is a wire code), else ``field_codes[first field]``, else
    ``default_code``.
    """
    kind = message.get(key)
    model = models.get(kind) if isinstance(kind, str) else None
    if model is None:
        expected = ", ".join(models)
        text = (f"unknown message type {kind!r}; expected {expected}" if kind is not None
                else f"a message needs \"{key}\" (one of {expected})")
        raise ProtocolError("unknown_type", text)
    try:
        return model.model_validate(message)
    except ValidationError as exc:
        code, text = _first_error(exc, field_codes or {}, default_code)
        raise ProtocolError(code, text, kind) from None
    except RecursionError:
        raise ProtocolError("bad_json", "the message is nested too deeply", kind) from None


def _first_error(exc: ValidationError, field_codes: Mapping[str, str], default_code: str) -> tuple[str, str]:
    errors = exc.errors(include_url=False, include_input=False)
    for error in errors:
        if error["type"] in WIRE_CODES:
            return error["type"], error["msg"]
    error = errors[0]
    where = ".".join(str(part) for part in error["loc"]) or "message"
    first = str(error["loc"][0]) if error["loc"] else ""
    return field_codes.get(first, default_code), f"{where}: {error['msg']}"


def wire_error(code: str, message: str) -> PydanticCustomError:
    """A validation error that carries its wire error code (raise it inside a validator)."""
    if code not in WIRE_CODES:
        raise ValueError(f"unknown wire error code {code!r}")
    return PydanticCustomError(code, message)


# Codes a validator may raise directly (docs/PROTOCOL.md, "Error codes").
WIRE_CODES = frozenset({
    "bad_json", "bad_start", "bad_message", "bad_audio", "unsupported_protocol", "unsupported_encoding",
    "unsupported_rate", "unsupported_channels", "unknown_call", "unauthorized",
})


class PingMessage(Inbound):
    """``ping`` → ``pong`` with the same ``id`` (keep-alive, latency probe)."""

    type: Literal["ping"] = "ping"
    id: JsonValue = None


class PongMessage(Message):
    type: Literal["pong"] = "pong"
    id: JsonValue = None

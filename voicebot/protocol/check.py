"""Check a JSON message against a protocol's JSON Schema, without a jsonschema dependency.

It understands exactly the keywords the schemas of ``voicebot protocol schema``
use (``$ref`` into ``$defs``, ``type``, ``const``, ``enum``, ``properties``,
``required``, ``additionalProperties``, ``items``, ``anyOf``, ``oneOf`` with a
``discriminator``, ``pattern``) and refuses any other validation keyword, so a
schema that grows a new keyword fails loudly here instead of passing unchecked.
"""

from __future__ import annotations

import re
from typing import Any

from voicebot.protocol.schema import protocol_schema

_ANNOTATIONS = frozenset({"$schema", "$defs", "title", "description", "default", "examples", "discriminator"})
_VALIDATORS = frozenset({"$ref", "type", "const", "enum", "properties", "required", "additionalProperties", "items",
                         "anyOf", "oneOf", "pattern"})
_TYPES: dict[str, Any] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


class SchemaChecker:
    """``errors(message)`` lists where a JSON value breaks one direction's schema (empty: valid)."""

    def __init__(self, schema: dict[str, Any]) -> None:
        self.schema = schema
        self.defs: dict[str, Any] = schema.get("$defs", {})

    def errors(self, value: Any) -> list[str]:
        out: list[str] = []
        self._check(self.schema, value, "$", out)
        return out

    def _check(self, schema: dict[str, Any], value: Any, where: str, out: list[str]) -> None:
        unknown = set(schema) - _ANNOTATIONS - _VALIDATORS
        if unknown:
            out.append(f"{where}: schema keyword(s) {sorted(unknown)} not understood by this checker")
        if "$ref" in schema:
            self._check(self.defs[schema["$ref"].rsplit("/", 1)[-1]], value, where, out)
        kind = schema.get("type")
        if kind is not None and not any(_TYPES[k](value) for k in ([kind] if isinstance(kind, str) else kind)):
            out.append(f"{where}: expected {kind}, got {type(value).__name__}")
            return
        if "const" in schema and value != schema["const"]:
            out.append(f"{where}: expected {schema['const']!r}, got {value!r}")
        if "enum" in schema and value not in schema["enum"]:
            out.append(f"{where}: {value!r} is not one of {schema['enum']}")
        if "pattern" in schema and isinstance(value, str) and not re.search(schema["pattern"], value):
            out.append(f"{where}: {value!r} does not match {schema['pattern']}")
        if isinstance(value, dict):
            self._object(schema, value, where, out)
        if isinstance(value, list) and "items" in schema:
            for i, item in enumerate(value):
                self._check(schema["items"], item, f"{where}[{i}]", out)
        if "anyOf" in schema and not any(not self._sub(s, value, where) for s in schema["anyOf"]):
            out.append(f"{where}: matches none of {len(schema['anyOf'])} alternatives")
        if "oneOf" in schema:
            self._one_of(schema, value, where, out)

    def _object(self, schema: dict[str, Any], value: dict[str, Any], where: str, out: list[str]) -> None:
        properties = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in value:
                out.append(f"{where}: missing {name!r}")
        extra = schema.get("additionalProperties", True)
        for name, item in value.items():
            if name in properties:
                self._check(properties[name], item, f"{where}.{name}", out)
            elif extra is False:
                out.append(f"{where}: unexpected field {name!r}")
            elif isinstance(extra, dict):
                self._check(extra, item, f"{where}.{name}", out)

    def _one_of(self, schema: dict[str, Any], value: Any, where: str, out: list[str]) -> None:
        discriminator = schema.get("discriminator")
        if discriminator and isinstance(value, dict):
            kind = value.get(discriminator["propertyName"])
            ref = discriminator["mapping"].get(kind)
            if ref is None:
                out.append(f"{where}: unknown {discriminator['propertyName']} {kind!r}")
            else:
                self._check({"$ref": ref}, value, where, out)
            return
        matching = [s for s in schema["oneOf"] if not self._sub(s, value, where)]
        if len(matching) != 1:
            out.append(f"{where}: matches {len(matching)} of the oneOf alternatives, not exactly one")

    def _sub(self, schema: dict[str, Any], value: Any, where: str) -> list[str]:
        errors: list[str] = []
        self._check(schema, value, where, errors)
        return errors


def checker(protocol: str, direction: str = "server_to_client") -> SchemaChecker:
    """The checker of one protocol's messages in one direction (``server_to_client`` or ``client_to_server``)."""
    return SchemaChecker(protocol_schema(protocol)[direction])

"""The JSON Schema of one wire protocol: everything it sends and accepts.

``protocol_schema(name)`` is one JSON object::

    {"protocol": "voicebot.v1", "discriminator": "type",
     "client_to_server": <JSON Schema>, "server_to_client": <JSON Schema>,
     "binary": {"client_to_server": "...", "server_to_client": "..."}}

Each direction is a self-contained draft 2020-12 schema (a ``oneOf`` over the
messages with their ``$defs``), generated from the models in this package, so
the schema cannot drift from what the server builds and validates.
"""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter

from voicebot.protocol import agent, native, twilio

DIALECT = "https://json-schema.org/draft/2020-12/schema"
PROTOCOLS: dict[str, tuple[Any, Any, str, dict[str, str]]] = {
    native.PROTOCOL: (native.ClientMessage, native.ServerMessage, "type", {
        "client_to_server": "caller audio in the encoding and rate declared by start",
        "server_to_client": "bot audio in the caller's own encoding and rate, paced in real time",
    }),
    agent.PROTOCOL: (agent.ClientMessage, agent.ServerMessage, "type", agent.AGENT_BINARY),
    twilio.PROTOCOL: (twilio.ClientMessage, twilio.ServerMessage, "event", {}),
}


def protocol_schema(name: str) -> dict[str, Any]:
    """The schema object of protocol ``name`` (``voicebot.v1``, ``voicebot.agent.v1`` or ``twilio``)."""
    if name not in PROTOCOLS:
        raise ValueError(f"unknown protocol {name!r}; use one of {', '.join(PROTOCOLS)}")
    inbound, outbound, key, binary = PROTOCOLS[name]
    return {
        "protocol": name,
        "discriminator": key,
        "client_to_server": _direction(inbound, key, f"{name}: client to server"),
        "server_to_client": _direction(outbound, key, f"{name}: server to client"),
        "binary": binary,
    }


def _direction(union: Any, key: str, title: str) -> dict[str, Any]:
    schema = TypeAdapter(union).json_schema(mode="validation")
    defs = schema.get("$defs", {})
    for definition in defs.values():
        # The discriminator has a default in the models (so code can omit it), but every message carries it.
        if definition.get("properties", {}).get(key, {}).get("const") is not None:
            required = definition.setdefault("required", [])
            if key not in required:
                required.insert(0, key)
    return {"$schema": DIALECT, "title": title, **schema}


def message_types(schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``{type name: its definition}`` of one direction's schema (the discriminator's mapping)."""
    mapping = schema.get("discriminator", {}).get("mapping", {})
    defs = schema.get("$defs", {})
    return {name: defs[ref.rsplit("/", 1)[-1]] for name, ref in mapping.items()}

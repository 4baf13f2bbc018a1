"""docs/PROTOCOL.md, the browser pages and the server code agree with `voicebot protocol schema`.

The schema is generated from the message models the server builds and validates
with, so these checks catch a page or a document that drifts from the wire.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from voicebot.protocol import agent, native, twilio
from voicebot.protocol.base import WIRE_CODES
from voicebot.protocol.schema import message_types, protocol_schema

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "PROTOCOL.md").read_text(encoding="utf-8")
STATIC = ROOT / "voicebot" / "server" / "static"


def section(title_start: str) -> str:
    """The text of the ``## `` section whose title starts with ``title_start``."""
    parts = re.split(r"^## ", DOC, flags=re.M)
    found = [p for p in parts if p.startswith(title_start)]
    assert len(found) == 1, f"PROTOCOL.md has no (single) section {title_start!r}"
    return found[0]


def types_of(protocol: str, direction: str) -> dict[str, dict[str, Any]]:
    return message_types(protocol_schema(protocol)[direction])


def reachable(protocol: str, definition: dict[str, Any]) -> tuple[set[str], set[Any]]:
    """Every property name and enum/const value reachable from one message definition."""
    defs = {**protocol_schema(protocol)["client_to_server"]["$defs"],
            **protocol_schema(protocol)["server_to_client"]["$defs"]}
    names: set[str] = set()
    values: set[Any] = set()
    seen: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                key = ref.rsplit("/", 1)[-1]
                if key not in seen:
                    seen.add(key)
                    walk(defs[key])
            names.update(node.get("properties", {}))
            values.update(node.get("enum", []))
            if "const" in node:
                values.add(node["const"])
            for child in node.values():
                walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(definition)
    return names, values


def snippet_types(text: str, key: str) -> list[tuple[str, set[str]]]:
    """``(type, keys)`` of every JSON object written in ``text`` whose first string field is ``key``."""
    text = re.sub(r"```json\n(.*?)```", lambda m: m.group(1).replace("\n", " "), text, flags=re.S)
    out = []
    for start in [m.start() for m in re.finditer(r"\{", text)]:
        depth, end = 0, start
        for end in range(start, min(len(text), start + 2000)):
            depth += {"{": 1, "}": -1}.get(text[end], 0)
            if depth == 0 or text[end] == "\n":
                break
        snippet = text[start : end + 1]
        found = re.match(rf'\{{\s*"{key}":\s*"([a-z.]+)"', snippet)
        if found and depth == 0:
            inner = snippet[1:-1]
            while re.search(r"\{[^{}]*\}", inner):  # top-level keys only: nested objects may be free-form
                inner = re.sub(r"\{[^{}]*\}", "()", inner)
            out.append((found.group(1), set(re.findall(r'"([A-Za-z_]+)":', inner))))
    return out


def table_rows(text: str) -> list[list[str]]:
    rows = []
    for line in (raw.strip() for raw in text.splitlines()):
        if line.startswith("|") and not re.match(r"^\|[-| ]+\|$", line):
            rows.append([cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip())[1:-1]])
    return rows


def ticked(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


# ---------------------------------------------------------------------------- native


def test_native_event_table_matches_the_schema() -> None:
    text = section("Native")
    server = types_of(native.PROTOCOL, "server_to_client")
    client = types_of(native.PROTOCOL, "client_to_server")
    table = [row for row in table_rows(text) if row and ticked(row[0]) and ticked(row[0])[0] in server]
    documented: set[str] = set()
    for row in table:
        row_types = ticked(row[0])
        assert set(row_types) <= set(server), f"documented but not sent: {row_types}"
        documented.update(row_types)
        names: set[str] = set()
        values: set[Any] = set()
        for t in row_types:
            n, v = reachable(native.PROTOCOL, server[t])
            names, values = names | n, values | v
        for token in ticked(row[1]):
            assert token in names or token in values, f"`{token}` of {row_types} is not in the schema"
    in_snippets = {t for t, _ in snippet_types(text, "type")}
    assert documented | in_snippets >= set(server) | set(client), "every message type is documented"
    unknown = in_snippets - set(server) - set(client)
    assert not unknown, f"unknown types in examples: {unknown}"


def test_native_start_fields_match_the_schema() -> None:
    text = section("Native")
    start = types_of(native.PROTOCOL, "client_to_server")["start"]
    fields = {ticked(row[0])[0] for row in table_rows(text)
              if len(row) == 3 and ticked(row[0]) and row[1] in ("yes", "no")}
    assert fields == set(start["properties"]) - {"type"}


def test_native_examples_use_only_schema_fields() -> None:
    text = section("Native")
    for mtype, keys in snippet_types(text, "type"):
        definition = {**types_of(native.PROTOCOL, "server_to_client"),
                      **types_of(native.PROTOCOL, "client_to_server")}[mtype]
        names, _ = reachable(native.PROTOCOL, definition)
        assert keys <= names, f"{mtype}: {keys - names} not in the schema"


# ---------------------------------------------------------------------------- agents and Twilio


def test_agent_section_matches_the_schema() -> None:
    text = section("Agents")
    server = types_of(agent.PROTOCOL, "server_to_client")
    client = types_of(agent.PROTOCOL, "client_to_server")
    snippets = snippet_types(text, "type")
    for mtype, keys in snippets:
        assert mtype in server or mtype in client, f"{mtype} is documented but not in the schema"
        names, _ = reachable(agent.PROTOCOL, server.get(mtype) or client[mtype])
        assert keys <= names, f"{mtype}: {keys - names} not in the schema"
    own = {name for name in server if name not in types_of(native.PROTOCOL, "server_to_client")}
    own -= {"dtmf", "playback.mark"}  # documented with Twilio, where they come from
    mentioned = {t for t, _ in snippets} | set(re.findall(r"\*\*`([a-z.]+)`\*\*", text))
    assert mentioned >= own | set(client), f"undocumented: {(own | set(client)) - mentioned}"
    row = re.search(r"A row is\s*`\{([^}]*)\}`", text)
    assert row is not None
    summary = reachable(agent.PROTOCOL, server["call.update"])[0] - {"type", "call"}  # the CallSummary fields
    assert {f.strip() for f in row.group(1).split(",")} == summary


def test_twilio_section_matches_the_schema() -> None:
    text = section("Twilio")
    server = types_of(twilio.PROTOCOL, "server_to_client")
    client = types_of(twilio.PROTOCOL, "client_to_server")
    for event, keys in snippet_types(text, "event"):
        assert event in server, f"{event} is documented but not sent"
        names, _ = reachable(twilio.PROTOCOL, server[event])
        assert keys <= names, f"{event}: {keys - names} not in the schema"
    assert {e for e, _ in snippet_types(text, "event")} == set(server)
    inbound = re.search(r"It accepts\s+Twilio's messages — (.*?) — and", text, flags=re.S)
    assert inbound is not None
    assert set(client) <= set(ticked(inbound.group(1)))
    agents_get = {t for t, _ in snippet_types(text, "type")} - {"error"}
    assert agents_get == {"playback.mark", "dtmf"} and agents_get <= set(types_of(agent.PROTOCOL, "server_to_client"))


# ---------------------------------------------------------------------------- error codes


def test_every_error_code_the_server_sends_is_documented() -> None:
    documented = {ticked(row[0])[i] for row in table_rows(section("Error codes")) if row and ticked(row[0])
                  for i in range(len(ticked(row[0])))}
    sources = [*(ROOT / "voicebot" / "server").glob("*.py"), *(ROOT / "voicebot" / "protocol").glob("*.py")]
    pattern = r'(?:fail|_error|error_event|CallRejected|wire_error)\(\s*"([a-z_]+)"'
    used = {code for path in sources for code in re.findall(pattern, path.read_text(encoding="utf-8"))}
    assert used, "the pattern no longer finds the server's error codes"
    assert used | WIRE_CODES <= documented, f"undocumented error codes: {(used | WIRE_CODES) - documented}"


# ---------------------------------------------------------------------------- the browser pages


@pytest.mark.parametrize(("page", "protocol"), [("agent.js", agent.PROTOCOL), ("phone.js", native.PROTOCOL)])
def test_browser_pages_handle_only_what_the_schema_has(page: str, protocol: str) -> None:
    js = (STATIC / page).read_text(encoding="utf-8")
    server = types_of(protocol, "server_to_client")
    client = types_of(protocol, "client_to_server")
    handled = set(re.findall(r'case\s+"([^"]+)"', js)) | set(re.findall(r'\.type\s*[!=]==\s*"([^"]+)"', js))
    assert handled, f"{page}: no handled event types found; has the code style changed?"
    assert handled <= set(server), f"{page} handles types the server never sends: {handled - set(server)}"
    sent = set(re.findall(r'\btype:\s*"([^"]+)"', js))
    assert sent and sent <= set(client), f"{page} sends types the server does not accept: {sent - set(client)}"
    actions = set(re.findall(r'\.action\s*[!=]==?\s*"([^"]+)"', js))
    _, bargein_values = reachable(protocol, server["bargein"])
    assert actions and actions <= bargein_values, f"{page}: barge-in actions not in the schema: {actions}"

"""Property tests: whatever a client sends, each protocol's parser returns a typed message or a
ProtocolError with a documented code — never another exception (which would be a traceback and a
dropped call on the server)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from voicebot.protocol import agent, native, twilio
from voicebot.protocol.base import ProtocolError

PARSERS = {"native": native.parse_client_message, "agent": agent.parse_client_message,
           "twilio": twilio.parse_client_message}
# The types each protocol knows, so that generated messages often reach the models' validation.
KNOWN = {"type": ["start", "stop", "ping", "auth", "list", "subscribe", "unsubscribe", "takeover", "release"],
         "event": ["connected", "start", "media", "mark", "dtmf", "stop"]}
FIELDS = ["encoding", "sample_rate", "call_id", "caller", "protocol", "channels", "token", "id", "streamSid",
          "start", "media", "mark", "dtmf", "payload", "mediaFormat", "callSid", "customParameters", "name",
          "digit", "sampleRate", "tracks"]

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=40),
                    st.sampled_from(["mulaw", "pcm_s16le", "audio/x-mulaw", "8000", "voicebot.v1", "", "\x00"]))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8), inner, max_size=5)),
    max_leaves=25)


@st.composite
def messages(draw: Any) -> str:
    key = draw(st.sampled_from(["type", "event"]))
    body = draw(st.dictionaries(st.sampled_from(FIELDS), values, max_size=6))
    body[key] = draw(st.sampled_from(KNOWN[key]) | values)
    return json.dumps(body, allow_nan=True)


def _check(text: str) -> None:
    for name, parse in PARSERS.items():
        try:
            parse(text)
        except ProtocolError as exc:
            assert exc.code and exc.message, name
        # any other exception fails the property


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages())
def test_message_shaped_json_never_crashes_a_parser(text: str) -> None:
    _check(text)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200) | st.binary(max_size=200).map(lambda b: b.decode("latin-1")))
def test_any_text_never_crashes_a_parser(text: str) -> None:
    _check(text)


@settings(max_examples=50, deadline=None)
@given(st.integers(min_value=30, max_value=3000), st.sampled_from(["[", "{\"a\":"]))
def test_deep_nesting_is_a_protocol_error(depth: int, opener: str) -> None:
    closer = "]" if opener == "[" else "}"
    _check(opener * depth + "1" + closer * depth)

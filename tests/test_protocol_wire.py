"""Every JSON message a server test receives is checked against `voicebot protocol schema`.

``install_wire_check()`` (called by ``fakes.LiveServer`` and ``fakes.ServeProcess``)
wraps the websockets client's ``recv``: a text message on ``/v1/call``,
``/v1/agent`` or ``/v1/twilio`` that breaks its protocol's server-to-client schema
fails the test that received it. The tests below check the checker and that
what the models build is what the schema says.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from typing import Any

import pytest
from websockets.sync.client import ClientConnection

from voicebot.protocol import agent, events, native, twilio
from voicebot.protocol.base import PongMessage, dump
from voicebot.protocol.check import SchemaChecker, checker
from voicebot.protocol.schema import PROTOCOLS, message_types, protocol_schema

PATHS = {"/v1/call": native.PROTOCOL, "/v1/agent": agent.PROTOCOL, "/v1/twilio": twilio.PROTOCOL}
CHECKED: Counter[str] = Counter()  # protocol → messages checked so far in this test run


def check_message(protocol: str, text: str) -> None:
    """Assert one server-to-client text message is valid in ``protocol``."""
    errors = _checkers()[protocol].errors(json.loads(text))
    assert not errors, f"{protocol} message breaks `voicebot protocol schema`: {errors}\n{text[:400]}"
    CHECKED[protocol] += 1


def install_wire_check() -> None:
    """Check every text message the websockets sync client receives (idempotent)."""
    if getattr(ClientConnection.recv, "wire_checked", False):
        return
    original = ClientConnection.recv

    def recv(self: ClientConnection, *args: Any, **kwargs: Any) -> str | bytes:
        message = original(self, *args, **kwargs)
        path = self.request.path.split("?", 1)[0] if self.request is not None else ""
        if isinstance(message, str) and path in PATHS:
            check_message(PATHS[path], message)
        return message

    recv.wire_checked = True  # type: ignore[attr-defined]
    ClientConnection.recv = recv  # type: ignore[method-assign]


_CACHE: dict[str, SchemaChecker] = {}


def _checkers() -> dict[str, SchemaChecker]:
    if not _CACHE:
        _CACHE.update({name: checker(name) for name in PROTOCOLS})
    return _CACHE


# ---------------------------------------------------------------------------- samples of everything we send

WORD = events.WordTiming(text="Rechnung", start=1.0, end=1.4, p=0.93)
SUMMARY = agent.CallSummary(call_id="c1", protocol="voicebot.v1", caller={"name": "Erika"}, started_at=1.0)
CALL_EVENTS: list[events.CallEvent] = [
    events.CallStartedEvent(protocol="voicebot.v1", encoding="mulaw", sample_rate=8000, seq=0),
    events.CallStartedEvent(protocol="twilio", encoding="mulaw", sample_rate=8000, stream_sid="MZ1"),
    events.CallStartEvent(metadata={"caller": {"name": "Erika"}}, realtime=True),
    events.SpeechStartedEvent(t=1.0), events.SpeechEndedEvent(t=2.0, start=1.0),
    events.TranscriptPartialEvent(text="Ich habe", confidence=0.8, start=1.0, end=1.5, committed="Ich"),
    events.TranscriptFinalEvent(text="Ich habe eine Frage", confidence=0.9, start=1.0, end=2.0, words=[WORD],
                                latency_ms=120.0),
    events.TranscriptFinalEvent(text="", confidence=0.0),
    events.IntentEvent(label="rechnung", confidence=0.9, slots={"customer_number": "123"},
                       alternatives=[events.IntentAlternative(label="bestellung", confidence=0.05)]),
    events.RouteEvent(route="buchhaltung", intent="rechnung"),
    events.HandoffEvent(reason="asked_for_human", context={"summary": "x", "slots": {}}),
    events.BotUtteranceEvent(text="Guten Tag", action="greet"), events.BotAudioStartEvent(),
    events.BotAudioEndEvent(completed=False, seconds=1.2),
    events.BargeInEvent(action="paused", t=3.0), events.BargeInEvent(action="resumed", t=3.4, text="mhm"),
    events.BargeInEvent(action="stopped", t=3.4, text="nein"),
    events.LatencyEvent(endpoint_ms=600, asr_ms=300, intent_ms=20, tts_first_audio_ms=90, voice_to_voice_ms=1010),
    events.LatencyEvent(endpoint_ms=-1, asr_ms=-1, intent_ms=-1, tts_first_audio_ms=-1, voice_to_voice_ms=-1,
                        eot_model_ms=12.5),
    events.AgentTakeoverEvent(agent_id="anna"), events.AgentReleaseEvent(agent_id="anna"),
    events.CallEndEvent(reason="completed", route=None, handoff=False),
    events.ErrorEvent(code="bad_audio", message="odd length", fatal=False),
    events.TransferEvent(target=events.TransferTarget(kind="queue", value="zentrale"), route="kundenservice",
                         reason="asked_for_human", priority=False, ends_stream=True),
]
AGENT_ONLY = [
    events.PlaybackMarkEvent(name="bot-1"), events.DtmfEvent(digit="5"),
    events.SuggestionsEvent(for_text="Rechnung", intent="rechnung", next_steps=["prüfen"],
                            items=[events.Suggestion(title="t", answer="a", intent="rechnung", score=0.5)]),
    events.TransferResultEvent(ok=True, target=None, webhook={"outcome": "delivered", "attempts": 1},
                               redirect={"outcome": "skipped"}, delivery_id="d1"),
    events.WrapupEvent(agent_id="anna", code="rueckruf", label="Rückruf vereinbart", note="morgen"),
    events.TranscriptFinalEvent(text="Guten Tag", speaker="agent"),
]
AGENT_MESSAGES = [
    agent.AuthOkMessage(agent_id="anna"), agent.CallsMessage(calls=[SUMMARY]), agent.CallUpdateMessage(call=SUMMARY),
    agent.SubscribedMessage(call_id="*"), agent.UnsubscribedMessage(call_id="c1"),
    agent.ReplayMessage(call_id="c1", call=SUMMARY, events=[*CALL_EVENTS, *AGENT_ONLY]),
    agent.AckMessage(action="takeover", call_id="c1"), PongMessage(id=3),
    agent.AudioStartedMessage(call_id="c1", encoding="pcm_s16le", sample_rate=16000, caller_encoding="mulaw",
                              caller_sample_rate=8000, max_frame_ms=500),
    agent.AudioStoppedMessage(call_id="c1", reason="released"),
]
TWILIO_MESSAGES = [
    twilio.OutMediaMessage(streamSid="MZ1", media=twilio.OutMedia(payload="AAAA")),
    twilio.OutMarkMessage(streamSid="MZ1", mark=twilio.MarkName(name="bot-1")),
    twilio.ClearMessage(streamSid="MZ1"),
    twilio.TwilioErrorMessage(code="bad_audio", message="x", streamSid=None, seq=4),
]


@pytest.mark.parametrize(("protocol", "messages"), [
    (native.PROTOCOL, [*CALL_EVENTS, PongMessage(id=None)]),
    (agent.PROTOCOL, [*CALL_EVENTS, *AGENT_ONLY, *AGENT_MESSAGES]),
    (twilio.PROTOCOL, TWILIO_MESSAGES),
])
def test_what_the_models_build_is_valid_in_the_schema(protocol: str, messages: list[Any]) -> None:
    check = checker(protocol)
    for message in messages:
        assert check.errors(dump(message)) == [], message
    sent = {dump(m).get(protocol_schema(protocol)["discriminator"]) for m in messages}
    assert sent == set(message_types(protocol_schema(protocol)["server_to_client"])), "a sample per message type"


def test_drift_is_caught() -> None:
    check = checker(native.PROTOCOL)
    legacy = {"type": "bargein", "action": "pause", "t": 1.0, "call_id": "c", "ts": 1.0}
    assert check.errors(legacy) and "paused" in check.errors(legacy)[0]
    assert check.errors({"type": "bot.audio.end", "completed": True, "secs": 1.0})  # an unknown field
    assert check.errors({"type": "suggestions", "for_text": "x"}), "agents only: not on the caller's socket"
    assert check.errors({"type": "intent", "label": "x"}), "confidence is required"


def test_optional_fields_are_left_out_as_before() -> None:
    assert "text" not in dump(events.BargeInEvent(action="paused", t=1.0))
    assert "seq" not in dump(events.SpeechStartedEvent(t=1.0))
    assert dump(events.CallEndEvent(reason="completed"))["route"] is None  # emitted, as the session always did
    assert "latency_ms" not in dump(events.TranscriptFinalEvent(text="x"))


def test_inbound_samples_are_valid_client_messages() -> None:
    samples = {
        native.PROTOCOL: [{"type": "start", "protocol": "voicebot.v1", "encoding": "mulaw", "sample_rate": 8000,
                           "call_id": "my-id", "caller": {"name": "Erika"}},
                          {"type": "stop"}, {"type": "ping", "id": 1}],
        agent.PROTOCOL: [{"type": "auth", "token": "t", "agent": "Anna"}, {"type": "list"},
                         {"type": "subscribe", "call_id": "*"}, {"type": "takeover", "call_id": "c1"}],
        twilio.PROTOCOL: [{"event": "connected", "protocol": "Call", "version": "1.0.0"},
                          {"event": "start", "sequenceNumber": "1", "streamSid": "MZ1",
                           "start": {"streamSid": "MZ1", "callSid": "CA1", "tracks": ["inbound"],
                                     "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                                     "customParameters": {"from": "+49"}}},
                          {"event": "media", "media": {"track": "inbound", "payload": "AAAA"}},
                          {"event": "mark", "mark": {"name": "bot-1"}}, {"event": "dtmf", "dtmf": {"digit": "1"}},
                          {"event": "stop", "stop": {"callSid": "CA1"}}],
    }
    for protocol, messages in samples.items():
        check = checker(protocol, "client_to_server")
        for message in messages:
            assert check.errors(message) == [], message


@pytest.mark.parametrize("protocol", list(PROTOCOLS))
def test_the_cli_prints_one_json_object(protocol: str) -> None:
    out = subprocess.run([sys.executable, "-m", "voicebot.cli.main", "protocol", "schema", "--protocol", protocol],
                         capture_output=True, text=True, check=True).stdout
    schema = json.loads(out)
    assert schema == json.loads(json.dumps(protocol_schema(protocol)))
    assert set(schema) >= {"protocol", "discriminator", "client_to_server", "server_to_client"}

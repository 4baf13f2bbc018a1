"""Typed wire messages of the three websocket protocols (see docs/PROTOCOL.md).

``events`` holds the call events (shared by every protocol), ``native``,
``agent`` and ``twilio`` the messages of ``voicebot.v1``, ``voicebot.agent.v1``
and Twilio Media Streams; ``schema`` builds their JSON Schemas (``voicebot protocol schema``)
and ``check`` validates a JSON message against one without a jsonschema dependency.
"""

"""The call core: one call as typed stages on a frame bus.

``recognizer`` (audio → speech and transcript frames) → ``turns`` (the turn-taker:
where a caller turn ends) → ``dialog`` (turn → intent, slots, policy step) →
``speaker`` (policy step → bot audio, barge-in); ``no_input`` asks a caller who stays silent after
the bot's question again (through the dialog). Observers on the same bus turn
frames into wire events (``events``), measure latency (``latency``) and keep the
call's record (``record``). ``voicebot.dialog.session.CallSession`` assembles them.
"""

"""The agent's wrap-up of a call it handled: a code from ``server.wrapup_codes`` and a note.

A ``wrapup`` request becomes a typed ``WrapupEvent`` published through the hub,
so it is masked (the note may hold personal data), stored with the call's
events and replayed to agents like every other event. Only the agent who took
the call over may wrap it up; during the call or after it has ended (while it is
in the agents' list). A second wrap-up replaces the first in the agents' view
(the store keeps both).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from voicebot.protocol.agent import WrapupCode, WrapupMessage
from voicebot.protocol.events import WrapupEvent

if TYPE_CHECKING:
    from voicebot.server.runtime import CallRuntime


class WrapupRefused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def wrapup_codes(setting: str) -> list[WrapupCode]:
    """``"code:Label,code2:Label 2"`` as typed codes (a code without a label is its own label)."""
    codes = []
    for item in setting.split(","):
        code, _, label = item.strip().partition(":")
        if code.strip():
            codes.append(WrapupCode(code=code.strip(), label=label.strip() or code.strip()))
    return codes


def record_wrapup(runtime: CallRuntime, request: WrapupMessage, agent_id: str) -> WrapupEvent:
    """Publish the wrap-up of ``request.call_id``; ``WrapupRefused`` with the wire code if it cannot be."""
    hub = runtime.hub
    call = hub.find_local(request.call_id)  # the worker that holds (held) the call stores its wrap-up
    if call is None:
        where = " on this worker" if hub.find(request.call_id) is not None else ""
        raise WrapupRefused("unknown_call", f"no call {request.call_id!r}{where}")
    if call.agent_id != agent_id:
        raise WrapupRefused("not_taken_over", f"only the agent who took call {call.call_id!r} over wraps it up")
    codes = {c.code: c.label for c in wrapup_codes(runtime.settings.server.wrapup_codes)}
    if request.code not in codes:
        raise WrapupRefused("bad_message", f"unknown wrap-up code {request.code!r}; use one of {', '.join(codes)}")
    event = WrapupEvent(agent_id=agent_id, code=request.code, label=codes[request.code], note=request.note.strip())
    return hub.publish(call, event)

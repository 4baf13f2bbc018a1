"""The hub: every live call, every agent, and where each call event goes.

A call event goes, in order: stamped (call id, per-call ``seq``, ``ts``) →
metrics → store (redacted where configured) → the call's replay log → every
agent subscribed to the call → the other workers (``federation.py``, when
workers share a PostgreSQL store; their calls are listed here as ``RemoteCall``s).
The caller's own connection gets the unredacted event from its ``CallRunner``.
Nothing here awaits a client or the disk: ``publish`` is synchronous and cheap,
so a slow agent or a slow disk can never hold up a call.

The hub also produces the agent-assist ``suggestions`` events: after each
final transcript (and the intent decided on it) the knowledge base is searched
in an executor thread, for the calls an agent watches (two e5 passes a turn are
~6% of a full box's CPU, spent for nobody otherwise). An agent that starts watching
a call gets suggestions for its latest final then (``replay``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from pydantic import BaseModel

from voicebot.assist.kb import KnowledgeBase
from voicebot.assist.redact import redact_event, redact_text
from voicebot.config import Settings
from voicebot.protocol.agent import CallSummary, CallUpdateMessage
from voicebot.protocol.events import (
    AgentReleaseEvent,
    AgentTakeoverEvent,
    CallEndEvent,
    CallEvent,
    HandoffEvent,
    IntentEvent,
    Suggestion,
    SuggestionsEvent,
    TranscriptFinalEvent,
    TranscriptPartialEvent,
    dump,
)
from voicebot.server.delivery import CommitOrder
from voicebot.server.metrics import ServerMetrics
from voicebot.server.remote import RemoteCall
from voicebot.store.base import CallStoreBackend
from voicebot.store.errors import DuplicateCallId

if TYPE_CHECKING:
    from voicebot.frames import BotAudio

log = logging.getLogger(__name__)

E = TypeVar("E", bound=CallEvent)
EventSink = Callable[[CallEvent], Awaitable[None]]
AudioSink = Callable[["BotAudio"], Awaitable[None]]

# How long a final transcript waits for its intent before suggestions are searched without one.
_SUGGEST_WAIT_S = 0.8


class CallRejected(Exception):
    """A call cannot be opened; ``code`` is the error code for the client."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class Session(Protocol):
    """What the server needs of a call session (voicebot.dialog.session.CallSession)."""

    state: str

    async def start(self) -> None: ...
    async def push_audio(self, frame: Any) -> None: ...
    async def take_over(self, agent_id: str) -> None: ...
    async def release(self, agent_id: str) -> None: ...
    async def end(self, reason: str = "completed") -> None: ...


class Peers(Protocol):
    """The other workers, as the hub sees them (voicebot.server.federation.Federation)."""

    def find(self, call_id: str) -> RemoteCall | None: ...
    def calls(self) -> list[RemoteCall]: ...
    def local_event(self, call_id: str, event: CallEvent) -> None: ...
    def local_update(self, summary: CallSummary) -> None: ...
    async def control(self, call_id: str, action: Any, agent_id: str) -> RemoteCall: ...


class AgentLink(Protocol):
    """An agent connection as the hub sees it."""

    agent_id: str
    subscriptions: set[str]

    def deliver(self, message: BaseModel) -> bool: ...

    def close(self, code: int, reason: str) -> None: ...


@dataclass
class LiveCall:
    """A call the server is handling now (or handled recently), and what agents need to see of it."""

    call_id: str
    protocol: str
    caller: dict[str, Any]
    started_at: float = field(default_factory=time.time)
    state: str = "bot"  # bot | human | ended
    session: Session | None = None
    seq: int = 0
    replay: deque[CallEvent] = field(default_factory=lambda: deque(maxlen=2000))
    partial: CallEvent | None = None
    intent: IntentEvent | None = None
    last_final: str = ""
    turns: int = 0
    agent_id: str | None = None
    handoff: str | None = None
    end_reason: str | None = None
    ended_at: float | None = None
    suggest_task: asyncio.Task[None] | None = None
    suggested: tuple[str, str | None] | None = None  # (final text, intent) the last suggestions were for
    line: Any = None  # voicebot.server.agent_voice.CallerLine: how an agent who took over speaks and listens
    # Deliveries wait for the store's commit, in order (commit before send).
    delivery: CommitOrder = field(default_factory=CommitOrder)

    def summary(self) -> CallSummary:
        """One row of the agents' call list."""
        return CallSummary(
            call_id=self.call_id, protocol=self.protocol, caller=self.caller, started_at=round(self.started_at, 3),
            state=self.state,  # type: ignore[arg-type]
            intent=self.intent.label if self.intent else None,
            confidence=self.intent.confidence if self.intent else None,
            turns=self.turns, agent_id=self.agent_id, handoff=self.handoff, end_reason=self.end_reason,
            ended_at=round(self.ended_at, 3) if self.ended_at else None,
        )


class CallHub:
    """Registry of live calls and agents; fans every call event out. One per server."""

    def __init__(
        self, settings: Settings, metrics: ServerMetrics, store: CallStoreBackend | None = None,
        kb: KnowledgeBase | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.store = store
        self.kb = kb
        self.redact_store = settings.store.redact_pii
        self.redact_agents = settings.server.redact_agent_view
        self.calls: dict[str, LiveCall] = {}
        self.recent: deque[LiveCall] = deque(maxlen=settings.server.recent_calls)
        self.agents: set[AgentLink] = set()
        self.accepting = True
        # The other workers' calls (workers sharing a PostgreSQL store); set by the federation.
        self.federation: Peers | None = None

    # ------------------------------------------------------------------ calls
    @property
    def full(self) -> bool:
        """Every line (``server.max_calls``) carries a call."""
        return len(self.calls) >= self.settings.server.max_calls

    def open_call(self, call_id: str, protocol: str, caller: dict[str, Any]) -> LiveCall:
        if not self.accepting:
            raise CallRejected("shutting_down", "the server is shutting down; call again shortly")
        if call_id in self.calls:
            raise CallRejected("duplicate_call_id", f"call {call_id!r} is already active")
        if self.find(call_id) is not None:  # a server without a store still never reuses an id
            raise CallRejected("duplicate_call_id", f"call {call_id!r} was used before; use a new id")
        if self.full:
            raise CallRejected("busy", f"all {self.settings.server.max_calls} lines are busy; call again shortly")
        view = redact_event(caller) if self.redact_agents else dict(caller)
        call = LiveCall(call_id, protocol, view, replay=deque(maxlen=self.settings.server.replay_max_events))
        if self.store is not None:
            stored = caller if not self.redact_store else view if self.redact_agents else redact_event(caller)
            try:
                self.store.create_call(call_id, protocol=protocol, caller=stored, started_at=call.started_at)
            except DuplicateCallId as exc:  # call ids are never reused, not even after the call ended
                raise CallRejected("duplicate_call_id", f"call {call_id!r} was used before; use a new id") from exc
        self.calls[call_id] = call
        self.metrics.calls.labels(protocol).inc()
        self.metrics.active_calls.set(len(self.calls))
        self._broadcast_update(call)
        return call

    def close_call(self, call: LiveCall, reason: str) -> None:
        """The call is over (idempotent): record it, and keep it a while in the agents' list."""
        if self.calls.get(call.call_id) is not call:
            return
        del self.calls[call.call_id]
        call.state = "ended"
        call.end_reason = call.end_reason or reason
        call.ended_at = call.ended_at or time.time()
        if call.suggest_task is not None:
            call.suggest_task.cancel()
        self.metrics.calls_ended.labels(call.end_reason).inc()
        self.metrics.active_calls.set(len(self.calls))
        if self.store is not None:
            self.store.end_call(call.call_id, call.end_reason, call.ended_at)
        self.recent.appendleft(call)
        self._broadcast_update(call)

    def find(self, call_id: str) -> LiveCall | RemoteCall | None:
        local = self.find_local(call_id)
        return local or (self.federation.find(call_id) if self.federation is not None else None)

    def find_local(self, call_id: str) -> LiveCall | None:
        """A call this worker holds (or held recently): what only the holding worker can act on."""
        return self.calls.get(call_id) or next((c for c in self.recent if c.call_id == call_id), None)

    def list_calls(self) -> list[CallSummary]:
        remote = [c.summary() for c in self.federation.calls()] if self.federation is not None else []
        return [c.summary() for c in self.calls.values()] + remote + [c.summary() for c in self.recent]

    def replayable(self) -> list[LiveCall | RemoteCall]:
        """Every call an agent subscribing to all (``"*"``) gets a replay of, live ones first."""
        remote = self.federation.calls() if self.federation is not None else []
        return [*self.calls.values(), *remote, *reversed(self.recent)]

    # ------------------------------------------------------------------ events
    def publish(
        self, call: LiveCall, event: E, *, redact: bool = True, then: Callable[[E], None] | None = None,
    ) -> E:
        """Stamp one call event, store it, and once it is committed send it to the agents, then
        ``then(stamped)`` (the caller's copy). Returns the stamped event at once."""
        event = event.model_copy(update={"call_id": call.call_id, "seq": call.seq})
        call.seq += 1
        self.metrics.observe(event)
        view = _redacted(event) if redact and (self.redact_agents or self.redact_store) else event
        committed = None
        if self.store is not None:
            committed = self.store.add_event(call.call_id, view if self.redact_store else event, redacted=True)
        agent_view = view if self.redact_agents else event

        def deliver() -> None:
            changed = self._track(call, event, agent_view)
            self._fan_out(call.call_id, agent_view)
            if self.federation is not None:
                self.federation.local_event(call.call_id, agent_view)
            if changed:
                self._broadcast_update(call)
            self._assist(call, event)
            if then is not None:
                then(event)

        call.delivery.after(committed, deliver)
        return event

    def _track(self, call: LiveCall, event: CallEvent, view: CallEvent) -> bool:
        """Update what the hub knows of the call; True if its row in the agents' list changed."""
        changed = False
        if isinstance(event, TranscriptPartialEvent):
            if event.speaker == "caller":
                call.partial = view  # only the newest partial is worth replaying
            return False
        if isinstance(event, TranscriptFinalEvent) and event.speaker == "caller":
            call.partial = None
            if event.text.strip():
                call.turns += 1
                call.last_final = event.text
        elif isinstance(view, IntentEvent):
            call.intent = view
            changed = True
        elif isinstance(event, HandoffEvent):
            call.handoff = event.reason
            changed = True
        elif isinstance(event, AgentTakeoverEvent):
            call.state, call.agent_id, changed = "human", event.agent_id, True
        elif isinstance(event, AgentReleaseEvent):
            call.state, changed = "bot", True
        elif isinstance(event, CallEndEvent):
            call.end_reason = event.reason or "completed"
            call.ended_at = event.ts
        call.replay.append(view)
        return changed

    def replay(self, call: LiveCall | RemoteCall) -> list[CallEvent]:
        """The call's events so far, for an agent who starts watching it (subscribed already): a live call
        nobody watched has no suggestions for its latest final yet, so they are searched now and follow."""
        if isinstance(call, RemoteCall):
            return call.replay(self.settings.server.replay_max_events)
        self._catch_up(call)
        events = list(call.replay)
        if call.partial is not None:
            events.append(call.partial)
        return events

    # ------------------------------------------------------------------ agents
    def add_agent(self, agent: AgentLink) -> None:
        self.agents.add(agent)
        self.metrics.agents_connected.set(len(self.agents))

    def remove_agent(self, agent: AgentLink) -> None:
        self.agents.discard(agent)
        self.metrics.agents_connected.set(len(self.agents))

    def _fan_out(self, call_id: str, event: CallEvent) -> None:
        for agent in list(self.agents):
            if call_id in agent.subscriptions or "*" in agent.subscriptions:
                agent.deliver(event)

    def _broadcast_update(self, call: LiveCall) -> None:
        summary = call.summary()
        self.show_update(summary)
        if self.federation is not None:
            self.federation.local_update(summary)

    def show_event(self, call_id: str, event: CallEvent) -> None:
        """An event of a call another worker holds (the federation heard it): to the subscribed agents."""
        self._fan_out(call_id, event)

    def show_update(self, summary: CallSummary) -> None:
        update = CallUpdateMessage(call=summary)
        for agent in list(self.agents):
            agent.deliver(update)

    async def take_over(self, call_id: str, agent_id: str) -> LiveCall | RemoteCall:
        if call_id not in self.calls and self.federation is not None and self.federation.find(call_id):
            return await self.federation.control(call_id, "takeover", agent_id)  # the worker holding it does it
        call = self._live(call_id)
        if call.session is not None:
            await call.session.take_over(agent_id)
        return call

    async def release(self, call_id: str, agent_id: str) -> LiveCall | RemoteCall:
        if call_id not in self.calls and self.federation is not None and self.federation.find(call_id):
            return await self.federation.control(call_id, "release", agent_id)
        call = self._live(call_id)
        if call.session is not None:
            await call.session.release(agent_id)
        return call

    def _live(self, call_id: str) -> LiveCall:
        call = self.calls.get(call_id)
        if call is None:
            raise CallRejected("unknown_call", f"no active call {call_id!r}")
        return call

    # ------------------------------------------------------------------ assist
    def watched(self, call_id: str) -> bool:
        """Whether any agent sees this call's events now. With workers sharing a store, agents on the other
        workers may (their subscriptions are not known here), so it counts as watched."""
        if self.federation is not None:
            return True
        return any(call_id in a.subscriptions or "*" in a.subscriptions for a in self.agents)

    def _assist(self, call: LiveCall, event: CallEvent) -> None:
        if self.kb is None or not self.kb.entries or not self.watched(call.call_id):
            return
        if isinstance(event, TranscriptFinalEvent) and event.speaker == "caller" and event.text.strip():
            self._schedule_suggest(call, delay=_SUGGEST_WAIT_S)
        elif isinstance(event, IntentEvent) and call.last_final:
            self._schedule_suggest(call, delay=0.0)

    def _catch_up(self, call: LiveCall) -> None:
        """Suggestions for the latest final of a live call, unless they exist or are being searched."""
        if self.kb is None or not self.kb.entries or call.call_id not in self.calls or not call.last_final:
            return
        if call.suggest_task is not None and not call.suggest_task.done():
            return
        label = call.intent.label if call.intent else None
        if call.suggested != (call.last_final, label):
            self._schedule_suggest(call, delay=0.0)

    def _schedule_suggest(self, call: LiveCall, delay: float) -> None:
        if call.suggest_task is not None and not call.suggest_task.done():
            call.suggest_task.cancel()
        call.suggest_task = asyncio.create_task(self._suggest(call, delay), name=f"suggest-{call.call_id}")

    async def _suggest(self, call: LiveCall, delay: float) -> None:
        kb = self.kb
        if kb is None:
            return
        if delay:
            await asyncio.sleep(delay)
        text = call.last_final
        label = call.intent.label if call.intent else None
        loop = asyncio.get_running_loop()
        try:
            items = await loop.run_in_executor(None, kb.suggest, text, label, 3)
        except Exception:  # noqa: BLE001 - suggestions are a help, never a reason to fail a call
            log.exception("call %s: knowledge-base search failed", call.call_id)
            return
        if call.state == "ended" and call.call_id not in self.calls:
            return
        call.suggested = (text, label)
        event = SuggestionsEvent(
            for_text=redact_text(text) if self.redact_agents else text, intent=label,
            items=[Suggestion(**s.to_dict()) for s in items], next_steps=kb.next_steps(label),
        )
        # Knowledge-base answers are the domain's words, not the caller's: never masked.
        self.publish(call, event, redact=False)

    async def aclose(self) -> None:
        for call in list(self.calls.values()) + list(self.recent):
            if call.suggest_task is not None:
                call.suggest_task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await call.suggest_task


def _redacted(event: CallEvent) -> CallEvent:
    """The event with personal data masked (same type; word timings dropped where the text changed)."""
    return type(event).model_validate(redact_event(dump(event)))


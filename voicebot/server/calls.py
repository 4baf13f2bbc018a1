"""What every caller connection shares, whatever its wire protocol.

``CallConnection`` runs the receive loop, turns bad input into ``error`` events
(with a clean close where the stream cannot go on), opens the call in the hub,
drives the ``CallSession`` and closes the call as it ends: ``completed`` on a
``stop``, ``interrupted`` when the connection drops, ``shutdown`` on a graceful
server stop. The native and Twilio protocols (``native.py``, ``twilio.py``) only
parse their messages and frame what goes back.

Caller audio goes through a bounded queue to a pump task, so the receive loop
stays responsive (a ``stop`` is seen at once) however long the session takes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from starlette.responses import Response
from starlette.websockets import WebSocket

from voicebot.audio.codecs import AudioFormat, Decoder, Encoder
from voicebot.audio.errors import AudioFormatError
from voicebot.frames import AudioFrame, BotAudio
from voicebot.protocol.base import ProtocolError, to_json
from voicebot.protocol.events import (
    BargeInEvent,
    BotAudioEndEvent,
    CallEndEvent,
    CallEvent,
    CallStartedEvent,
    ErrorEvent,
)
from voicebot.server.access import CLOSE_UNAUTHORIZED
from voicebot.server.agent_voice import CallerLine
from voicebot.server.handover import Handover
from voicebot.server.hub import CallRejected, LiveCall, Session
from voicebot.server.inbound import feed_session
from voicebot.server.logs import CallLog
from voicebot.server.outbox import Outbox, error_event
from voicebot.server.runtime import CallRuntime

log = logging.getLogger(__name__)

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_UNSUPPORTED = 1003
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL = 1011
CLOSE_TRY_LATER = 1013
_FINISH_TIMEOUT_S = 5.0
RETRY_AFTER_S = 5  # the Retry-After a full server gives (HTTP 503 on the upgrade)
# Bad input after which the stream cannot go on, and the close code it gets (docs/PROTOCOL.md).
FATAL_CLOSE = {
    "bad_start": CLOSE_POLICY, "unsupported_protocol": CLOSE_UNSUPPORTED, "unsupported_encoding": CLOSE_UNSUPPORTED,
    "unsupported_rate": CLOSE_UNSUPPORTED, "unsupported_channels": CLOSE_UNSUPPORTED,
}


class CallConnection:
    """One caller websocket and the call on it. Subclasses implement the wire protocol."""

    protocol = "abstract"

    def __init__(self, ws: WebSocket, runtime: CallRuntime) -> None:
        self.ws = ws
        self.runtime = runtime
        self.settings = runtime.settings.server
        peer = f"{ws.client.host}:{ws.client.port}" if ws.client else "?"
        self.peer = peer
        self.outbox = Outbox(
            ws, maxsize=self.settings.send_queue_max, send_timeout=self.settings.send_timeout_s,
            name=f"{self.protocol} {peer}", on_slow=self._on_slow, slow_error=self.encode_error,
            lag=runtime.loop_lag,
        )
        self.call: LiveCall | None = None
        self.session: Session | None = None
        self.handover: Handover | None = None
        self.decoder: Decoder | None = None
        self.encoder: Encoder | None = None
        self.log: logging.LoggerAdapter[logging.Logger] | logging.Logger = log
        self.errors = 0
        self.closing = False
        self.stopped = False
        self._inbound: asyncio.Queue[AudioFrame | None] = asyncio.Queue()
        self._reserved = False  # this socket holds one of the runtime's reserved lines
        self._pump_task: asyncio.Task[None] | None = None
        self._finish_task: asyncio.Task[None] | None = None
        self._finished = False
        self._overload_reported = 0.0
        self._tasks: set[asyncio.Task[None]] = set()
        self._serve_task: asyncio.Task[Any] | None = None

    # ------------------------------------------------------------------ protocol hooks
    async def accept(self) -> None:
        await self.ws.accept()

    async def authorize(self) -> bool:
        """Access checks on the upgrade request, before any message (server.caller_tokens,
        server.twilio_validate); False after refusing the connection."""
        return True

    async def refuse(self, why: str) -> None:
        """An ``unauthorized`` error event and close 4401 (no call is opened; no token is logged)."""
        self.log.warning("caller from %s refused: %s", self.peer, why)
        await self.fail("unauthorized", why, close=CLOSE_UNAUTHORIZED)

    async def on_text(self, text: str) -> None:
        raise NotImplementedError

    async def on_bytes(self, data: bytes) -> None:
        raise NotImplementedError

    def deliver_event(self, event: CallEvent) -> None:
        """Send one call event to the caller (the protocol decides which and how)."""
        raise NotImplementedError

    def deliver_audio(self, data: bytes) -> None:
        """Send bot audio, already in the caller's encoding and rate."""
        raise NotImplementedError

    def on_call_event(self, event: CallEvent) -> None:
        """Protocol reactions to call events (Twilio: ``mark`` and ``clear``)."""

    def encode_error(self, event: ErrorEvent) -> str:
        return to_json(event)

    # ------------------------------------------------------------------ receive loop
    async def serve(self) -> None:
        self._serve_task = asyncio.current_task()
        if not self.runtime.reserve_line():
            await self.refuse_full()
            return
        self._reserved = True
        await self.accept()
        self.outbox.start()
        timer = asyncio.create_task(self._start_timeout(), name=f"start-timeout {self.peer}")
        try:
            if not await self.authorize():
                timer.cancel()
            while True:
                message = await self.ws.receive()
                if message["type"] == "websocket.disconnect":
                    break
                text, data = message.get("text"), message.get("bytes")
                size = len(text.encode("utf-8", "replace")) if text is not None else len(data or b"")
                if self.closing:
                    continue  # draining until the peer acknowledges our close
                if size > self.settings.max_frame_bytes:
                    await self.fail(
                        "frame_too_large", f"a message may have at most {self.settings.max_frame_bytes} bytes, "
                        f"got {size}", close=CLOSE_TOO_BIG,
                    )
                elif text is not None:
                    await self.on_text(text)
                elif data is not None:
                    await self.on_bytes(data)
        except asyncio.CancelledError:
            if not self.outbox.slow:
                raise  # not ours: the server is stopping
        except Exception:  # noqa: BLE001 - whatever broke, the call is closed and recorded below
            self.log.exception("connection handler failed")
        finally:
            timer.cancel()
            self._release_line()
            reason = "completed" if self.stopped else "interrupted"
            await self.finish(reason)
            self.outbox.close(CLOSE_NORMAL)
            await self.outbox.wait_closed(grace=2.0)

    def _release_line(self) -> None:
        if self._reserved:
            self._reserved = False
            self.runtime.release_line()

    async def refuse_full(self) -> None:
        """Every line is busy: refuse the upgrade itself (HTTP 503 with Retry-After), so a gateway
        can route the call elsewhere at once instead of every call on the box getting slower."""
        limit = self.settings.max_calls
        self.runtime.metrics.errors.labels("busy").inc()
        self.log.info("caller from %s refused: all %d lines are busy", self.peer, limit)
        body = to_json(error_event("busy", f"all {limit} lines are busy; call again in {RETRY_AFTER_S} s", fatal=True))
        await self.ws.send_denial_response(Response(
            body, status_code=503, media_type="application/json", headers={"Retry-After": str(RETRY_AFTER_S)}))

    async def _start_timeout(self) -> None:
        """A socket that never sends ``start`` holds a slot for nothing: close it (``start_timeout``)."""
        await asyncio.sleep(self.settings.start_timeout_s)
        if self.call is None and not self.closing:
            await self.fail("start_timeout", f"no \"start\" within {self.settings.start_timeout_s:g} s",
                            close=CLOSE_POLICY)

    async def reject(self, exc: ProtocolError) -> None:
        """A message the protocol refused: its error code, closing where the stream cannot go on."""
        await self.fail(exc.code, exc.message, close=FATAL_CLOSE.get(exc.code))

    async def fail(self, code: str, message: str, *, close: int | None = None) -> None:
        """Report bad input with an ``error`` event; with ``close``, end the call and close the socket."""
        self.errors += 1
        too_many = self.errors > self.settings.max_errors
        fatal = close is not None or too_many
        if too_many and close is None:
            message += f" (more than {self.settings.max_errors} errors; closing)"
        event = error_event(code, message, fatal=fatal)
        self.log.info("protocol error %s: %s", code, message)
        if self.call is not None and self.call.state != "ended":
            self.runtime.hub.publish(self.call, event, then=lambda e: self.outbox.put(self.encode_error(e)))
            if fatal:
                await self.call.delivery.drained()  # the error is out before the close
        else:
            self.runtime.metrics.errors.labels(code).inc()
            self.outbox.put(self.encode_error(event))
        if fatal:
            await self.close(close or CLOSE_POLICY, reason="error")

    async def close(self, code: int, reason: str) -> None:
        if self.closing:
            return
        self.closing = True
        await self.finish(reason)
        self.outbox.close(code)

    # ------------------------------------------------------------------ the call
    async def start_call(
        self, call_id: str, caller: dict[str, Any], in_format: AudioFormat, out_format: AudioFormat,
        started: CallStartedEvent,
    ) -> bool:
        """Open the call in the hub and start its session; False (after an error event) if refused."""
        if self.runtime.state in ("shutting_down", "stopped"):
            await self.fail("shutting_down", "the server is shutting down; call again on another instance",
                            close=CLOSE_TRY_LATER)
            return False
        if self.runtime.state != "ready":
            await self.fail("not_ready", f"the server is {self.runtime.state}; call again shortly",
                            close=CLOSE_TRY_LATER)
            return False
        self._release_line()  # from here the call counts in the hub, or it is refused
        try:
            call = self.runtime.hub.open_call(call_id, self.protocol, caller)
        except CallRejected as exc:
            code = CLOSE_TRY_LATER if exc.code in ("busy", "shutting_down") else CLOSE_POLICY
            await self.fail(exc.code, str(exc), close=code)
            return False
        self.call = call
        self.log = CallLog(log, call_id)
        self.decoder = Decoder(in_format)
        self.encoder = Encoder(out_format)
        call.line = CallerLine(out_format, self.deliver_audio, call.delivery, lambda: self.closing)  # agents' voice
        await self._emit(started)
        try:
            self.session = self.runtime.new_session(
                call_id, emit=self._emit, send_audio=self._send_audio, out_rate=out_format.sample_rate,
                metadata={"caller": caller, "protocol": self.protocol, "encoding": in_format.encoding,
                          "sample_rate": in_format.sample_rate},
            )
        except Exception as exc:  # noqa: BLE001 - a session that cannot start must not take the server down
            self.log.exception("session could not be created")
            await self.fail("internal", f"the call could not be started: {exc}", close=CLOSE_INTERNAL)
            return False
        call.session = self.session
        call_sid, account_sid = self.twilio_sids()
        self.handover = Handover(
            self.runtime.transfer, call_id, self.protocol, publish=self._publish_handover, end_call=self._transferred,
            tasks=self.runtime.transfers, twilio_call_sid=call_sid, twilio_account_sid=account_sid)
        self.runtime.connections.add(self)
        self.log.info("call started (%s, %s %d Hz, peer %s)", self.protocol, in_format.encoding,
                      in_format.sample_rate, self.peer)
        self._pump_task = asyncio.create_task(self._pump(), name=f"pump-{call_id}")
        return True

    def spawn(self, coro: Any) -> None:
        """Run a coroutine in the background, keeping a reference until it is done."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def push_audio(self, data: bytes) -> None:
        """Decode caller bytes and queue them for the session (errors become error events)."""
        if self.decoder is None:
            return
        try:
            frame = self.decoder.decode(data)
        except AudioFormatError as exc:
            self.spawn(self.fail("bad_audio", str(exc)))
            return
        if self.call is not None and self.call.line is not None:
            self.call.line.heard(frame)  # an agent who took over hears the caller
        if self._inbound.qsize() >= self.settings.inbound_queue_max:
            loop = asyncio.get_running_loop()
            if loop.time() - self._overload_reported > 1.0:  # one report a second, not one per frame
                self._overload_reported = loop.time()
                self.spawn(self.fail("overloaded", "the server cannot keep up with this call's audio; frames are "
                                                   "being dropped"))
            return
        self._inbound.put_nowait(frame)

    async def _pump(self) -> None:
        """Start the session (the greeting), then feed it caller audio in arrival order."""
        if self.session is None:
            return
        try:
            await self.session.start()
        except Exception as exc:  # noqa: BLE001 - reported to the caller, the server goes on
            self.log.exception("session start failed")
            self.spawn(self.fail("internal", f"the call could not be started: {exc}", close=CLOSE_INTERNAL))
            return
        await feed_session(self._inbound, self.session.push_audio, self.log)

    async def _emit(self, event: CallEvent) -> None:
        """The session's event sink: to the hub (agents, store, metrics) and to the caller."""
        if self.call is None:
            return
        self.runtime.hub.publish(self.call, event, then=self._to_caller)

    def twilio_sids(self) -> tuple[str | None, str | None]:
        """The Twilio call and account SIDs (Twilio streams only), for the handoff redirect."""
        return None, None

    def _publish_handover(self, event: CallEvent, to_caller: bool) -> None:
        if self.call is not None:
            self.runtime.hub.publish(self.call, event, then=self._to_caller if to_caller else None)

    async def _transferred(self, reason: str) -> None:
        await self.close(CLOSE_NORMAL, reason)

    def _to_caller(self, stamped: CallEvent) -> None:
        """A committed event, to the caller (in order with the audio)."""
        if self.handover is not None:
            self.handover.on_event(stamped)
        if isinstance(stamped, BotAudioEndEvent) and self.encoder is not None:
            tail = self.encoder.flush()
            if tail:
                self.deliver_audio(tail)
        elif isinstance(stamped, BargeInEvent) and stamped.action == "stopped":
            # Audio queued but not yet sent would keep talking over the caller. A pause sends
            # nothing new and may resume ("mhm"), so what is queued stays.
            self.outbox.purge_audio()
            if self.encoder is not None:
                self.encoder.reset()
        self.deliver_event(stamped)
        self.on_call_event(stamped)
        if isinstance(stamped, CallEndEvent) and not self._finished and self._finish_task is None:
            # The session ended the call itself (goodbye said, or handed off): close the line.
            self._finish_task = asyncio.create_task(self.close(CLOSE_NORMAL, stamped.reason or "completed"))

    async def _send_audio(self, audio: BotAudio) -> None:
        if self.encoder is None or self.closing:
            return
        data = self.encoder.encode(audio.pcm, audio.sample_rate)
        if data and self.call is not None:
            # Behind any event still waiting for its commit, so events and audio keep their order.
            self.call.delivery.after(None, lambda: self.deliver_audio(data))

    def _on_slow(self) -> None:
        """The client stopped reading: record it, end the call, and stop waiting for the client."""
        self.closing = True
        if self.call is not None and self.call.state != "ended":
            self.runtime.hub.publish(self.call, error_event(
                "slow_consumer", "client did not read fast enough; connection dropped", fatal=True))
        if self._finish_task is None:
            self._finish_task = asyncio.create_task(self._drop_slow_client())

    async def _drop_slow_client(self) -> None:
        await self.finish("interrupted")
        await self.outbox.wait_closed(grace=self.settings.send_timeout_s * 2 + 1)
        if self._serve_task is not None and not self._serve_task.done():
            self._serve_task.cancel()  # it may wait forever on a client that neither reads nor writes

    async def finish(self, reason: str) -> None:
        """End the session and close the call in the hub (idempotent; bounded in time)."""
        if self._finished:
            return
        self._finished = True
        self.runtime.connections.discard(self)
        if self.call is None:
            return
        if self._pump_task is not None:
            # Audio already received is still transcribed and recorded, within a bound.
            self._inbound.put_nowait(None)
            with contextlib.suppress(TimeoutError, asyncio.CancelledError, Exception):
                await asyncio.wait_for(asyncio.shield(self._pump_task), _FINISH_TIMEOUT_S)
            self._pump_task.cancel()
        if self.session is not None and self.session.state != "ended":
            try:
                await asyncio.wait_for(self.session.end(reason), _FINISH_TIMEOUT_S)
            except Exception:  # noqa: BLE001 - the call is closed in the hub whatever the session does
                self.log.exception("session end failed")
        await self.call.delivery.drained()  # the last events reach the outbox before it closes
        self.runtime.hub.close_call(self.call, reason)
        self.log.info("call ended: %s", self.call.end_reason)

    async def shutdown(self) -> None:
        """Graceful server stop: end the call, deliver what is queued, close with 1001."""
        if self.closing:
            return
        self.closing = True
        await self.finish("shutdown")
        self.outbox.close(CLOSE_GOING_AWAY, "server shutting down")
        await self.outbox.wait_closed(grace=self.settings.send_timeout_s)


"""Stateless call workers: two real `voicebot serve` processes sharing one PostgreSQL store and its bus.

Calls on both workers complete; an agent on worker 1 lists the calls of both and
takes over a call held by worker 2 (whose bot stops); restarting worker 1 leaves
worker 2's live call alone (and the new worker 1 lists it from the store); kill -9
of worker 2 gets its live call marked interrupted (after its lease ran out) on
worker 1's list and in the store, with every event of worker 1's calls kept.
The engines are the fakes of ``fake_engines.py``: this is about orchestration.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from fakes import HealthyCall, ServeProcess, encode_frames, recv_events, send_paced, tone
from websockets.sync.client import ClientConnection, connect

pytest_plugins = ["pg_server"]  # fixtures: pg_server, pg_schema (a fresh schema on the session's PostgreSQL)

TESTS = Path(__file__).resolve().parent
LEASE_S = 3.0  # short, so a killed worker's lease runs out within the test; heartbeats renew it every second


def _worker(tmp_path: Path, name: str, worker_id: str, url: str) -> ServeProcess:
    (tmp_path / name).mkdir()
    env = {"VOICEBOT_STORE__URL": url, "VOICEBOT_STORE__WORKER_ID": worker_id, "VOICEBOT_STORE__LEASE_S": str(LEASE_S),
           "VOICEBOT_SERVER__ENGINES_LOADER": "fake_engines:load_fake_engines",
           "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    return ServeProcess(tmp_path / name, env=env, wait=None)


class Inbox:
    """A websocket's JSON messages, all kept (``seen``), waited for by condition with a bound.

    ``until`` returns the first message since ``mark`` not returned before that matches, so
    messages of interleaved calls are never lost; ``fresh()`` moves ``mark`` to now.
    """

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.seen: list[dict[str, Any]] = []
        self.mark = 0
        self._used: set[int] = set()

    def fresh(self) -> None:
        self.mark = len(self.seen)

    def until(self, match: Callable[[dict[str, Any]], bool], what: str, timeout: float = 15.0) -> dict[str, Any]:
        for i in range(self.mark, len(self.seen)):
            if i not in self._used and match(self.seen[i]):
                self._used.add(i)
                return self.seen[i]
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                message = self.ws.recv(timeout=left)
            except TimeoutError:
                break
            if isinstance(message, bytes):
                continue  # bot audio on a caller's socket
            self.seen.append(json.loads(message))
            if match(self.seen[-1]):
                self._used.add(len(self.seen) - 1)
                return self.seen[-1]
        raise TimeoutError(f"no {what} within {timeout} s; got {[m['type'] for m in self.seen[-30:]]}")

    def next(self, etype: str, timeout: float = 15.0, **fields: Any) -> dict[str, Any]:
        return self.until(lambda m: m["type"] == etype and all(m.get(k) == v for k, v in fields.items()),
                          f"{etype} {fields}", timeout)

    def send(self, **message: Any) -> None:
        self.ws.send(json.dumps(message))


@contextlib.contextmanager
def agent(worker: ServeProcess, name: str) -> Iterator[tuple[Inbox, list[dict[str, Any]]]]:
    """An agent on ``worker``: its inbox and the call list it got on login."""
    with connect(worker.ws_url(f"/v1/agent?token={worker.token}&agent={name}")) as ws:
        inbox = Inbox(ws)
        inbox.next("auth.ok")
        yield inbox, inbox.next("calls")["calls"]


def speak(inbox: Inbox) -> None:
    pcm = np.concatenate([tone(16000, 1.0), np.zeros(12000, np.int16)])
    send_paced(inbox.ws.send, encode_frames(pcm, "pcm_s16le", 16000))


def _row(call_id: str, state: str) -> Callable[[dict[str, Any]], bool]:
    """Matches the agents' list update that shows ``call_id`` in ``state``."""
    return lambda m: m["type"] == "call.update" and m["call"]["call_id"] == call_id and m["call"]["state"] == state


def _stored(url: str, call_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    import psycopg

    from voicebot.store import pg_peers

    with psycopg.connect(url, autocommit=True) as conn:
        found = pg_peers.call_with_events(conn, call_id)
    assert found is not None, call_id
    return found


def test_two_workers_share_calls_agents_takeover_restart_and_kill(pg_schema: str, tmp_path: Path) -> None:
    url = pg_schema
    w1, w2 = _worker(tmp_path, "w1", "cluster-w1", url), _worker(tmp_path, "w2", "cluster-w2", url)
    try:
        w1.wait_ready(120)
        w2.wait_ready(120)
        with agent(w1, "anna") as (anna, _):
            anna.send(type="subscribe", call_id="*")
            anna.next("subscribed", call_id="*")

            # A call on each worker completes, with transcripts and intents.
            calls = [HealthyCall(w.ws_url("/v1/call"), encoding="pcm_s16le", rate=16000) for w in (w1, w2)]
            for call in calls:
                call.check()
            ids = [call.events[0]["call_id"] for call in calls]
            for call_id in ids:  # worker 2's call reaches worker 1's agent over the bus, live
                anna.next("intent", call_id=call_id)
                anna.until(_row(call_id, "ended"), f"the end of {call_id}")
            anna.send(type="list")
            listed = {c["call_id"]: c for c in anna.next("calls")["calls"]}
            for call_id in ids:
                assert listed[call_id]["state"] == "ended" and listed[call_id]["end_reason"] == "completed"
                assert listed[call_id]["intent"] and listed[call_id]["turns"] == 1

            # A live call on worker 2, taken over by the agent on worker 1: worker 2's bot stops.
            with connect(w2.ws_url("/v1/call")) as ws:
                live = Inbox(ws)
                live.send(type="start", encoding="pcm_s16le", sample_rate=16000, call_id="w2-live")
                live.next("call.started")
                speak(live)
                live.next("intent")
                live.next("bot.audio.end")  # the bot's answer has been spoken
                anna.next("intent", call_id="w2-live")
                anna.send(type="takeover", call_id="no-such-call")
                assert anna.next("error", call_id="no-such-call")["code"] == "unknown_call"
                anna.send(type="takeover", call_id="w2-live")
                anna.next("ack", call_id="w2-live", action="takeover")
                assert anna.next("agent.takeover", call_id="w2-live")["agent_id"] == "anna"
                anna.until(_row("w2-live", "human"), "w2-live taken over")
                live.next("agent.takeover")
                taken = len(live.seen)
                live.fresh()
                anna.fresh()
                speak(live)
                live.next("transcript.final")
                anna.next("transcript.final", call_id="w2-live")

                # Restarting worker 1 leaves worker 2's live call alone; the new worker 1 lists it.
                first_call = _stored(url, ids[0])
                assert w1.stop() in (0, 130, -2)  # Ctrl+C: a clean stop
                w1 = _worker(tmp_path, "w1-again", "cluster-w1", url)
                w1.wait_ready(120)
                assert _stored(url, "w2-live")[0]["status"] == "active"
                with agent(w1, "bernd") as (bernd, listed_again):
                    bernd.send(type="subscribe", call_id="w2-live")
                    replay = bernd.next("replay", call_id="w2-live")
                    assert replay["call"]["state"] == "human" and replay["call"]["agent_id"] == "anna"
                    types = [e["type"] for e in replay["events"]]
                    for expected in ("call.started", "transcript.final", "intent", "agent.takeover"):
                        assert expected in types, types
                    assert [e["seq"] for e in replay["events"]] == sorted({e["seq"] for e in replay["events"]})
                    listed = {c["call_id"]: c for c in listed_again}  # live calls (recent ones are in memory)
                    assert listed["w2-live"]["state"] == "human"
                    live.fresh()
                    speak(live)  # worker 2's call goes on, and worker 1's agents hear it
                    live.next("transcript.final")
                    bernd.next("transcript.final", call_id="w2-live")

                    # kill -9 of worker 2: its live call is interrupted once its lease ran out.
                    w2.proc.kill()
                    w2.proc.wait(10)
                    rest, _ = recv_events(ws, timeout=5)
                    live.seen += rest
                    update = bernd.until(_row("w2-live", "ended"), "w2-live interrupted", timeout=LEASE_S * 4 + 10)
                    assert update["call"]["end_reason"] == "interrupted"
            after_takeover = [m["type"] for m in live.seen[taken:]]
            assert "transcript.final" in after_takeover
            assert not {"intent", "bot.utterance", "bot.audio.start"} & set(after_takeover), after_takeover
        row, _ = _stored(url, "w2-live")
        assert row["status"] == "interrupted" and row["handled_by"] == "human" and row["agent_id"] == "anna"
        assert _stored(url, ids[0]) == first_call  # worker 1's call: every event kept, still completed
        assert first_call[0]["status"] == "completed" and _stored(url, ids[1])[0]["status"] == "completed"
    finally:
        w1.stop()
        if w2.proc.poll() is None:
            w2.proc.kill()

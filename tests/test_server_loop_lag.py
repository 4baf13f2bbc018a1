"""The server's own lag is never blamed on a client: a caller who reads fine is not dropped as a
``slow_consumer`` when the server's event loop stalls (CPU saturation) and its backlog bursts out.

The real server and call core on fake engines; the stall is real: the server loop is blocked
for longer than ``server.send_timeout_s`` while the bot speaks, with a small send queue.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from fakes import LiveServer, fake_settings
from websockets.sync.client import connect


def test_a_stalled_server_sheds_audio_instead_of_dropping_the_caller(tmp_path: Path) -> None:
    settings = fake_settings(tmp_path, tts={"voice": "fake-long"}, send_timeout_s=1.0, send_queue_max=32)
    with LiveServer(settings) as server, connect(server.ws_url("/v1/call")) as ws:
        ws.send(json.dumps({"type": "start", "encoding": "pcm_s16le", "sample_rate": 16000, "call_id": "lag"}))
        events: list[dict[str, Any]] = []
        audio = 0
        stalled = threading.Event()
        while audio < 20:  # the greeting is playing
            message = ws.recv(timeout=10)
            if isinstance(message, bytes):
                audio += 1
            else:
                events.append(json.loads(message))
        loop = server.runtime.loop_lag.loop
        assert loop is not None
        # A 2.5 s stall of the server's loop (2.5 × send_timeout): its backlog then bursts out at once.
        loop.call_soon_threadsafe(lambda: (time.sleep(2.5), stalled.set()))
        while not stalled.is_set() or audio < 150:
            message = ws.recv(timeout=15)
            if isinstance(message, bytes):
                audio += 1
            else:
                events.append(json.loads(message))
        ws.send(json.dumps({"type": "ping", "id": 1}))
        while True:  # the call is alive and answers
            message = ws.recv(timeout=10)
            if isinstance(message, str):
                events.append(json.loads(message))
                if events[-1]["type"] == "pong":
                    break
    assert not [e for e in events if e["type"] == "error"], [e for e in events if e["type"] == "error"]
    assert server.runtime.loop_lag.lagged_since(0.0) >= 2.0  # the stall was seen as the server's own



def test_metrics_show_where_the_engines_time_goes(tmp_path: Path) -> None:
    """/metrics exposes the loop lag, the engine pools' jobs by kind and the ASR scheduler's queue."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    with LiveServer(fake_settings(tmp_path)) as server, connect(server.ws_url("/v1/call")) as ws:
        ws.send(json.dumps({"type": "start", "encoding": "pcm_s16le", "sample_rate": 16000, "call_id": "metrics"}))
        audio = 0
        while audio < 5:  # the greeting's speech was synthesized on the light-model pool
            if isinstance(ws.recv(timeout=10), bytes):
                audio += 1
        # The loop-lag ticker wakes every 50 ms; bot audio paced in real time (after the playback lead)
        # is the clock here: scrape again after more audio until the ticker has been observed.
        for _ in range(100):
            text = urllib.request.urlopen(server.http_url("/metrics"), timeout=10).read().decode()
            samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
                       for family in text_string_to_metric_families(text) for s in family.samples}
            if samples.get(("voicebot_loop_lag_seconds_count", ()), 0) >= 1:
                break
            while not isinstance(ws.recv(timeout=10), bytes):
                pass
    assert samples[("voicebot_pool_jobs_total", (("kind", "tts"), ("pool", "engine-light")))] >= 1
    assert samples[("voicebot_loop_lag_seconds_count", ())] >= 1
    assert ("voicebot_asr_scheduler", (("name", "queue_depth"),)) in samples
    assert ("voicebot_asr_request_seconds", (("kind", "final"), ("stat", "served"))) in samples
    assert ("voicebot_asr_decode_seconds", (("use", "discarded"),)) in samples  # the ASR work by what became of it
    assert samples[("voicebot_tts_cache", (("stat", "misses"),))] >= 1  # the greeting was synthesized once

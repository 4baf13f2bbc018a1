"""scripts/cluster.sh: PostgreSQL, a Ray head with the engines' Serve app and two call workers
come up with one command, take a real call each (real models, real German speech), and go away
with one command, leaving no process behind. Runs on ports of its own (CLUSTER_* variables).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import shutil
import socket
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import connect

from voicebot.audio.io import load_for_asr
from voicebot.audio.resample import resample
from voicebot.config import Settings

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
MORE_DIR = REPO.parent / "shared" / "data" / "speech-de-more"
CLIP = ("clips/cv61_17332094.flac", "Der Hafen bietet mit all seinen Lichtern einen einzigartigen Anblick bei Nacht.")
TOKEN = "cluster-test-token"


def _free_ports(count: int) -> int:
    """The first of ``count`` consecutive free loopback ports: two checkouts' test clusters never share a Ray
    head (the other's GCS would answer and refuse this one's token)."""
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(20000, 40000)
        try:
            with contextlib.ExitStack() as stack:
                for port in range(base, base + count):
                    sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
                    sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
    raise RuntimeError(f"no {count} consecutive free ports")


def words(text: str) -> set[str]:
    return set(re.findall(r"\w+", text.lower()))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").is_dir() and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()


def _tree(pid: int) -> set[int]:
    """``pid`` and every process below it, from /proc."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    tree, grew = {pid}, True
    while grew:
        grew = False
        for child, parent in parents.items():
            if parent in tree and child not in tree:
                tree.add(child)
                grew = True
    return tree


def _call(port: int, pcm8k: Any, out: dict[int, Any]) -> None:
    from test_server_e2e import PhoneLine, wait_for

    events: list[dict[str, Any]] = []
    try:
        with connect(f"ws://127.0.0.1:{port}/v1/call") as ws:
            ws.send(json.dumps({"type": "start", "protocol": "voicebot.v1", "encoding": "mulaw",
                                "sample_rate": 8000, "call_id": f"cluster-{port}"}))
            wait_for(ws, "call.started", 10, events)
            line = PhoneLine(ws.send, 8000, "mulaw")
            wait_for(ws, "bot.audio.end", 90, events)
            line.say(pcm8k)
            wait_for(ws, "intent", 90, events)
            line.hang_up()
            ws.send(json.dumps({"type": "stop"}))
            wait_for(ws, "call.end", 30, events)
        out[port] = events
    except BaseException as exc:  # noqa: BLE001 - reported by the test
        out[port] = exc


def _agent_list(port: int) -> set[str]:
    """The call ids an agent on the worker at ``port`` gets for `list`."""
    with connect(f"ws://127.0.0.1:{port}/v1/agent?token={TOKEN}&agent=anna") as ws:
        ws.send(json.dumps({"type": "list"}))
        while True:
            message = json.loads(ws.recv(timeout=15))
            if message["type"] == "calls":
                return {c["call_id"] for c in message["calls"]}


def test_cluster_up_call_on_each_worker_down(settings: Settings) -> None:
    if not (REPO / ".venv" / "bin" / "ray").is_file():
        pytest.skip("Ray is not installed: pip install -e '.[ray]'")
    if not (settings.models.dir / "whisper-base").is_dir():
        pytest.skip("models not provisioned: run `voicebot models pull`")
    if not (MORE_DIR / "manifest.jsonl").is_file():
        pytest.skip(f"shared German speech not found at {MORE_DIR}")
    # Not under pytest's tmp dirs (mode 700): as root, PostgreSQL runs as the `postgres` user.
    base = Path(tempfile.mkdtemp(prefix="voicebot-cluster-"))
    base.chmod(0o755)
    run_dir = base / "run"
    ray_port = _free_ports(4)  # the GCS, the client server, the dashboard agent and the dashboard
    first = _free_ports(2)
    ports = (first, first + 1)
    env = {**os.environ, "CLUSTER_DIR": str(run_dir), "CLUSTER_PORTS": " ".join(map(str, ports)),
           "CLUSTER_RAY_PORT": str(ray_port), "VOICEBOT_SERVER__AGENT_TOKENS": TOKEN}
    script = [str(REPO / "scripts" / "cluster.sh")]

    def run(action: str, timeout: float) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["bash", *script, action], env=env, capture_output=True, text=True, timeout=timeout)

    def processes() -> set[int]:
        """Every process the cluster runs: the trees of its pid files and of PostgreSQL's postmaster."""
        roots = [int(f.read_text()) for f in run_dir.glob("*.pid")]
        pg_pid = run_dir / "postgres" / "postmaster.pid"
        if pg_pid.is_file():
            roots.append(int(pg_pid.read_text().split()[0]))
        return set().union(set(), *(_tree(pid) for pid in roots))

    up = run("up", 900)
    pids = {f.name for f in run_dir.glob("*.pid")}
    trees = processes()
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        assert "cluster ready" in up.stdout.splitlines()
        assert pids == {"ray.pid", *(f"worker-{p}.pid" for p in ports)}
        status = run("status", 120)
        assert status.returncode == 0, status.stdout + status.stderr
        assert len(re.findall(r"^worker +\d+ ready$", status.stdout, re.M)) == 2 and "RUNNING" in status.stdout

        clip, expected = CLIP
        pcm8k = resample(load_for_asr(MORE_DIR / clip), 16000, 8000)
        results: dict[int, Any] = {}
        callers = [threading.Thread(target=_call, args=(port, pcm8k, results)) for port in ports]
        for caller in callers:
            caller.start()
        for caller in callers:
            caller.join(300)
        for port in ports:
            events = results.get(port)
            assert isinstance(events, list), f"the call on worker {port} failed: {events!r}"
            final = next(e for e in events if e["type"] == "transcript.final")
            assert len(words(final["text"]) & words(expected)) >= len(words(expected)) // 2, final["text"]
            assert next(e for e in events if e["type"] == "intent")["label"]
            assert events[-1]["type"] == "call.end"
        # The workers share their calls over the PostgreSQL bus: an agent on worker 1 lists both.
        listed = _agent_list(ports[0])
        assert {f"cluster-{port}" for port in ports} <= listed, listed
    finally:
        trees |= processes()  # with whatever Ray started for the calls
        down = run("down", 180)
    assert down.returncode == 0, down.stdout + down.stderr
    assert not list(run_dir.glob("*.pid"))
    left = sorted(pid for pid in trees if _alive(pid))
    assert not left, f"processes left after down: {left}"
    assert run("status", 60).returncode == 3
    shutil.rmtree(base, ignore_errors=True)
    shutil.rmtree(f"/tmp/vbray-{os.getuid()}-{ray_port}", ignore_errors=True)  # Ray's session logs

#!/usr/bin/env python
"""Transfer-on-handoff benchmark: how long from a handoff until the desk has the webhook / Twilio has the redirect.

A local receiver (stdlib ``http.server`` in a thread, checking the HMAC signature itself)
and a local stand-in for Twilio's call-update endpoint; ``HandoffTransfer.transfer`` runs
``--n`` times per scenario, and the receiver's arrival time minus the call's start is
reported (p50/p95/max, milliseconds). Scenarios:

* ``ok``: the receiver answers 200 at once;
* ``retry``: the first attempt gets a 500, the retry succeeds (``webhook_backoff_s`` in the path);
* ``twilio``: webhook and redirect side by side (the redirect's arrival is reported).

    .venv/bin/python scripts/bench_telephony.py --n 200
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import hashlib
import hmac
import statistics
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from voicebot.config import TelephonySettings
from voicebot.telephony import HandoffTransfer, TransferRequest
from voicebot.telephony.models import CallProtocol

SECRET = "bench-secret"
CALL = "CA" + "0" * 32


class Receiver(ThreadingHTTPServer):
    """Records (path, arrival time); fails the first ``fail_first`` requests of each delivery with 500."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.arrivals: list[tuple[str, float]] = []
        self.fail_first = 0
        self.seen: set[str] = set()
        self.bad_signatures = 0
        self.lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        now = time.perf_counter()
        status = 200
        with self.server.lock:
            if self.path == "/hook":
                expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
                if not hmac.compare_digest(self.headers.get("X-Voicebot-Signature", ""), expected):
                    self.server.bad_signatures += 1
                delivery = self.headers.get("X-Voicebot-Delivery", "")
                if self.server.fail_first and delivery not in self.server.seen:
                    self.server.seen.add(delivery)
                    status = 500
            if status == 200:
                self.server.arrivals.append((self.path, now))
        payload = b'{"sid": "%s"}' % CALL.encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def run(scenario: str, n: int, receiver: Receiver, base: str) -> list[float]:
    settings = dataclasses.replace(
        TelephonySettings(), handoff_webhook=f"{base}/hook", webhook_secret=SECRET, webhook_backoff_s=0.05,
        twilio_api_base=base, twilio_account_sid="AC" + "1" * 32, twilio_auth_token="t", handoff_queue="zentrale")
    receiver.fail_first = 1 if scenario == "retry" else 0
    protocol: CallProtocol = "twilio" if scenario == "twilio" else "voicebot.v1"
    redirect_path = f"/2010-04-01/Accounts/{settings.twilio_account_sid}/Calls/{CALL}.json"
    wanted = redirect_path if scenario == "twilio" else "/hook"
    latencies = []
    async with HandoffTransfer(settings) as transfer:
        for i in range(n):
            request = TransferRequest(f"call-{i}", protocol, "mitarbeiter", route="mensch", summary="Bench",
                                      twilio_call_sid=CALL if protocol == "twilio" else None)
            receiver.arrivals.clear()
            start = time.perf_counter()
            result = await transfer.transfer(request)
            if not result.ok:
                raise SystemExit(f"{scenario}: transfer failed: {result.to_event()}")
            arrival = next(t for path, t in receiver.arrivals if path == wanted)
            latencies.append((arrival - start) * 1000)
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100, help="transfers per scenario")
    args = parser.parse_args()
    receiver = Receiver()
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{receiver.server_address[1]}"
    print("| scenario | n | p50 ms | p95 ms | max ms |\n|---|---|---|---|---|")
    for scenario in ("ok", "retry", "twilio"):
        ms = asyncio.run(run(scenario, args.n, receiver, base))
        print(f"| {scenario} | {len(ms)} | {statistics.median(ms):.1f} | {percentile(ms, 0.95):.1f} | {max(ms):.1f} |")
    receiver.shutdown()
    if receiver.bad_signatures:
        raise SystemExit(f"{receiver.bad_signatures} webhook(s) with a bad signature")


if __name__ == "__main__":
    main()

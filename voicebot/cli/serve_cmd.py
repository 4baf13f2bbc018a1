"""`voicebot serve`: the call server (caller websockets, Twilio, agents, web pages, metrics)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import socket
import sys
from dataclasses import replace

import uvicorn

from voicebot.config import Settings
from voicebot.server.app import ServerRuntime, create_app


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="serve calls: native and Twilio websockets, the agents' live view, the softphone, metrics",
        description="One process serving many concurrent calls. Models are loaded once at start; /readyz "
        "answers 503 until they are. Ctrl+C (SIGINT) or SIGTERM ends every call cleanly, then exits.",
    )
    p.add_argument("--host", help="interface to listen on (default: server.host, 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default: server.port, 8765; 0 picks a free one)")
    # The global --config works too; repeated here so `voicebot serve --config FILE` reads naturally.
    p.add_argument("--config", default=argparse.SUPPRESS, help="a TOML settings file")
    p.add_argument("--log-json", action="store_true", help="log one JSON object per line (with call_id)")
    p.set_defaults(handler=cmd_serve)


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from voicebot.server.agent import fingerprint
    from voicebot.server.logs import JsonFormatter, install_log_hygiene

    server_settings = settings.server
    if args.host:
        server_settings = replace(server_settings, host=args.host)
    if args.port is not None:
        server_settings = replace(server_settings, port=args.port)
    settings = replace(settings, server=server_settings)
    if args.log_json:
        for handler in logging.getLogger().handlers:
            handler.setFormatter(JsonFormatter())
    # uvicorn logs every websocket path with its query (``/v1/agent?token=...``) on uvicorn.error, and
    # clients name themselves: every record is scrubbed of secrets and escaped to one line.
    install_log_hygiene()

    holder: dict[str, DrainingServer] = {}

    async def on_ready(runtime: ServerRuntime) -> None:
        server = holder["server"]
        # A quick load can finish before the socket is bound; uvicorn offers no event for that.
        while not server.started and not server.should_exit:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        host, port = _bound_address(server, settings)
        if runtime.auth.generated:
            token = runtime.auth.tokens[0]
        else:
            token = f"from config (sha256 {fingerprint(runtime.auth.tokens[0])})"
        print(f"voicebot ready: agent page http://{host}:{port}/ , softphone http://{host}:{port}/phone, "
              f"agent token {token}", flush=True)

    def on_fatal(exc: BaseException) -> None:
        print(f"voicebot: error: the models could not be loaded: {exc}", file=sys.stderr, flush=True)
        holder["server"].should_exit = True

    runtime = ServerRuntime(settings, on_ready=on_ready, on_fatal=on_fatal)
    config = uvicorn.Config(
        create_app(runtime),
        host=server_settings.host,
        port=server_settings.port,
        lifespan="on",
        log_config=None,  # keep the process's logging (and --log-json)
        access_log=False,  # HTTP lines add nothing; if turned on, the log hygiene filter covers them too
        # Above our own limit, so an oversized frame gets a proper frame_too_large error event.
        ws_max_size=max(4 * server_settings.max_frame_bytes, 1 << 20),
        # Audio hardly compresses; deflate would only burn CPU that ASR needs (and hide backpressure).
        ws_per_message_deflate=False,
        ws_ping_interval=20.0,
        ws_ping_timeout=20.0,
        timeout_graceful_shutdown=int(server_settings.shutdown_timeout_s) + 5,
    )
    server = DrainingServer(config, runtime)
    holder["server"] = server
    server.run()
    return 1 if runtime.state == "failed" else 0


class DrainingServer(uvicorn.Server):
    """uvicorn's server, with our drain (end calls, deliver queued events) before it closes sockets."""

    def __init__(self, config: uvicorn.Config, runtime: ServerRuntime) -> None:
        super().__init__(config)
        self.runtime = runtime

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await self.runtime.drain()
        await super().shutdown(sockets)


def _bound_address(server: DrainingServer, settings: Settings) -> tuple[str, int]:
    host, port = settings.server.host, settings.server.port
    for srv in getattr(server, "servers", []):
        for sock in srv.sockets:
            name = sock.getsockname()
            return host, int(name[1])
    return host, port

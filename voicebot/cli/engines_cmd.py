"""`voicebot engines serve|status|delete`: the engines' Ray Serve app on a Ray cluster.

The cluster comes first (``ray start --head ...``, see docs/SCALING.md); `serve` deploys the
ASR, intent and TTS deployments on it and returns once their models are loaded. The app stays
on the cluster after the command exits; call workers with ``engines.backend = "ray"`` use it.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace

from voicebot.config import Settings


def register(sub: argparse._SubParsersAction) -> None:
    engines = sub.add_parser("engines", help="the engines (ASR, intent, TTS) as a Ray Serve app (engines.backend=ray)")
    esub = engines.add_subparsers(dest="engines_command", metavar="ACTION", required=True)
    for name, handler, text in (
        ("serve", cmd_serve, "deploy (or update) the app on the cluster; returns once every replica is up"),
        ("status", cmd_status, "the app's status (exit 0 when RUNNING)"),
        ("delete", cmd_delete, "remove the app from the cluster"),
    ):
        p = esub.add_parser(name, help=text)
        p.add_argument("--address", default=None,
                       help="the Ray cluster (default: engines.ray_address, else 'auto': the cluster of this node)")
        p.add_argument("--json", action="store_true", help="print one JSON object")
        p.set_defaults(handler=handler)


def _connect(args: argparse.Namespace, settings: Settings) -> Settings | None:
    """The settings with --address applied, connected; None (after one line on stderr) when impossible."""
    if args.address is not None:
        settings = replace(settings, engines=replace(settings.engines, ray_address=args.address))
    try:
        from voicebot.engines_ray import cluster
    except ModuleNotFoundError as exc:
        print(f"voicebot: error: Ray is not installed ({exc.name}); install the ray extra: "
              "pip install -e '.[ray]'", file=sys.stderr)
        return None
    try:
        cluster.connect(settings)
    except cluster.RayUnavailableError as exc:
        print(f"voicebot: error: {exc}", file=sys.stderr)
        return None
    return settings


def _report(args: argparse.Namespace, settings: Settings, status: str) -> None:
    eng = settings.engines
    deployments = [eng.asr_deployment, eng.intent_deployment, eng.tts_deployment]
    if args.json:
        print(json.dumps({"app": eng.app_name, "status": status, "deployments": deployments}))
    else:
        print(f"engines app {eng.app_name}: {status} ({', '.join(deployments)})")


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    connected = _connect(args, settings)
    if connected is None:
        return 1
    from voicebot.engines_ray import cluster

    try:
        cluster.deploy(connected)
    except Exception as exc:  # noqa: BLE001 - a replica that cannot load its model fails the deploy
        print(f"voicebot: error: deploying the engines failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    _report(args, connected, cluster.app_status(connected))
    return 0


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    connected = _connect(args, settings)
    if connected is None:
        return 1
    from voicebot.engines_ray import cluster

    status = cluster.app_status(connected)
    _report(args, connected, status)
    return 0 if status == "RUNNING" else 1


def cmd_delete(args: argparse.Namespace, settings: Settings) -> int:
    connected = _connect(args, settings)
    if connected is None:
        return 1
    from ray import serve

    serve.delete(connected.engines.app_name)
    _report(args, connected, "DELETED")
    return 0

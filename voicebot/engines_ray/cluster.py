"""Reaching the Ray cluster: connect a call worker to it, deploy the engines' Serve app on it.

A call worker is a Ray driver (``ray.init(address=engines.ray_address)``): on a node of the
cluster (``ray start --address=...`` was run there) with the GCS address ``host:6379``, or
from anywhere through Ray Client with ``ray://head:10001``. It never starts a Ray of its own:
a missing cluster is a clear error at start, not a surprise local Ray.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from voicebot.config import Settings

log = logging.getLogger(__name__)

# Small on purpose: only handles and request payloads (audio of one turn) pass through it.
DEFAULT_OBJECT_STORE_BYTES = 200 * 1024 * 1024


class RayUnavailableError(RuntimeError):
    """The Ray cluster or the engines' Serve app is not there."""


def connect(settings: Settings) -> None:
    """Join the cluster at ``engines.ray_address`` ("auto" when empty) as a driver; idempotent."""
    import ray

    if ray.is_initialized():
        return
    address = settings.engines.ray_address or "auto"
    _check_reachable(address)
    try:
        ray.init(address=address, namespace=settings.engines.ray_namespace, logging_level=logging.WARNING,
                 log_to_driver=False)
    except (ConnectionError, RuntimeError) as exc:
        raise RayUnavailableError(f"no Ray cluster at {address!r} (engines.ray_address): {exc}") from exc


def _check_reachable(address: str, timeout_s: float = 3.0) -> None:
    """Fail fast on a GCS address nobody listens at (ray.init would retry for minutes)."""
    import socket

    if address in ("auto", "local") or "://" in address:
        return
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout_s).close()
    except (OSError, ValueError) as exc:
        raise RayUnavailableError(f"no Ray cluster at {address!r} (engines.ray_address): {exc}") from None


def start_local(settings: Settings, *, num_cpus: int = 2,
                object_store_bytes: int = DEFAULT_OBJECT_STORE_BYTES) -> None:
    """A single-node Ray in this process's session, on loopback, without the dashboard (tests, one box)."""
    import ray

    if ray.is_initialized():
        return
    ray.init(num_cpus=num_cpus, include_dashboard=False, object_store_memory=object_store_bytes,
             namespace=settings.engines.ray_namespace, _node_ip_address="127.0.0.1",
             logging_level=logging.WARNING, log_to_driver=False)


def deploy(settings: Settings) -> Any:
    """Deploy (or update) the engines' Serve app; returns once every replica is up (models loaded)."""
    from ray import serve

    from voicebot.engines_ray.deployments import build_app

    started = time.perf_counter()
    # No HTTP/gRPC proxy: the workers use handles, and the cluster opens no port for Serve.
    serve.start(proxy_location="Disabled")
    handle = serve.run(build_app(settings), name=settings.engines.app_name, route_prefix=None)
    log.info("engines app %r running after %.1f s", settings.engines.app_name, time.perf_counter() - started)
    return handle


def app_status(settings: Settings) -> str:
    """The Serve app's status ("RUNNING", "DEPLOYING", ...; "NOT_STARTED" when absent)."""
    from ray import serve

    app = serve.status().applications.get(settings.engines.app_name)
    return str(app.status.value if hasattr(app.status, "value") else app.status) if app else "NOT_STARTED"


def handles(settings: Settings) -> tuple[Any, Any, Any]:
    """Handles to the ASR, intent and TTS deployments of a running app."""
    from ray import serve

    eng = settings.engines
    try:
        return tuple(serve.get_deployment_handle(name, app_name=eng.app_name)  # type: ignore[return-value]
                     for name in (eng.asr_deployment, eng.intent_deployment, eng.tts_deployment))
    except Exception as exc:  # noqa: BLE001 - Serve raises several kinds; all mean "not deployed"
        raise RayUnavailableError(
            f"the engines app {eng.app_name!r} is not running on the cluster (run `voicebot engines serve`): {exc}"
        ) from exc


def shutdown() -> None:
    """Leave the cluster (a driver) or stop the local Ray (``start_local``)."""
    import ray

    if ray.is_initialized():
        ray.shutdown()

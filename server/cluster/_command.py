"""The ``python -m server.cluster`` command: connect to (or start) Ray, deploy, serve until stopped."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
from typing import Any

from server.app import load_or_create_signing_secret
from server.cluster._deployment import (
    APP_NAME,
    ReplicaPlan,
    build_application,
    forwarded_environment,
)
from server.cluster._metrics import BOARD_NAME, BOARD_NAMESPACE, MetricsBoard
from server.logs import configure_logging
from server.settings import Settings, get_settings
from server.storage import create_database, load_or_create_dev_key

logger = logging.getLogger("server.cluster")

# Ray Serve's proxy health checks assume an idle machine; on a busy node (CPU replicas loading networks)
# a proxy is killed and restarted for answering slowly. The operator's own values win.
SLOW_NODE_DEFAULTS = {
    "RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S": "60",
    "RAY_SERVE_PROXY_HEALTH_CHECK_TIMEOUT_S": "60",
}
PROXY_START_TIMEOUT_S = 600
# The proxies' middleware that retries, or answers 503, requests whose replica died (server.cluster._proxy).
# Nodes of a running cluster need it in the environment of `ray start` (docs/scaling.md).
PROXY_CALLBACK = ("RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH", "server.cluster:proxy_middlewares")


def plan_replicas(settings: Settings, gpus_in_cluster: float, replicas_flag: int | None = None) -> ReplicaPlan:
    """The replica plan for ``settings`` on a cluster with ``gpus_in_cluster`` GPUs: one replica per GPU
    by default, one CPU replica without GPUs; ``ENHANCE_REPLICAS`` (or ``--replicas``) overrides."""
    num_gpus = settings.replica_gpus if settings.replica_gpus is not None else (1.0 if gpus_in_cluster >= 1 else 0.0)
    wanted = replicas_flag or settings.replicas
    if not wanted:
        wanted = int(gpus_in_cluster // num_gpus) if num_gpus > 0 else 1
    wanted = max(1, wanted)
    # Serve sends a replica only what its worker admits, so a request waits for (or goes to) a replica
    # with room. A proxy holds at most as many waiting requests as the replicas hold (requests being
    # assigned count too, so this must not be small); beyond that, 503 with Retry-After (the proxies'
    # middleware gives it the service's error body).
    max_ongoing = settings.max_ongoing_requests or settings.max_concurrent_jobs + settings.max_queued_jobs
    max_queued = max_ongoing * max(wanted, settings.max_replicas or 0)
    autoscaling: dict[str, Any] = {}
    if settings.min_replicas is not None and settings.max_replicas is not None:
        if settings.min_replicas > settings.max_replicas:
            raise SystemExit("ENHANCE_MIN_REPLICAS must not exceed ENHANCE_MAX_REPLICAS")
        autoscaling = {
            "min_replicas": settings.min_replicas,
            "max_replicas": settings.max_replicas,
            "target_ongoing_requests": settings.target_ongoing_requests,
        }
    return ReplicaPlan(
        replicas=wanted,
        num_gpus=num_gpus,
        num_cpus=settings.replica_cpus,
        max_ongoing_requests=max_ongoing,
        max_queued_requests=max_queued,
        **autoscaling,
    )


def share_local_secrets(settings: Settings) -> None:
    """Give every replica the same URL-signing secret and API keys: when the operator set none, the
    data dir's (created once, here, not by racing replicas) go into the forwarded environment."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    # Replicas do not start in this command's directory: give them the data dir as an absolute path.
    os.environ["ENHANCE_DATA_DIR"] = str(settings.data_dir.resolve())
    database = create_database(settings.database_url, settings.data_dir)
    try:
        if not settings.signing_secret:
            secret = load_or_create_signing_secret(database, settings.data_dir)
            os.environ["ENHANCE_SIGNING_SECRET"] = secret.decode()
        if not settings.api_key_list:
            key, created = load_or_create_dev_key(database, settings.data_dir)
            os.environ["ENHANCE_API_KEYS"] = key
            logger.warning(
                "ENHANCE_API_KEYS is empty: every replica uses the development key %s (%s the database)",
                key,
                "created in" if created else "stored in",
            )
    finally:
        database.dispose()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m server.cluster", description="Run the enhance service on Ray Serve, one replica per GPU."
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface Serve's HTTP proxies bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port of Serve's HTTP proxies (default 8000)")
    parser.add_argument(
        "--address",
        default=None,
        help="a running Ray cluster ('auto', or HOST:PORT of its head); default: start Ray on this node",
    )
    parser.add_argument("--replicas", type=int, default=None, help="replica count (overrides ENHANCE_REPLICAS)")
    args = parser.parse_args(argv)
    settings = get_settings()
    configure_logging(settings, replica="driver")

    import ray
    from ray import serve

    share_local_secrets(settings)
    for name, value in (*SLOW_NODE_DEFAULTS.items(), PROXY_CALLBACK):
        os.environ.setdefault(name, value)
    if args.address and os.environ[PROXY_CALLBACK[0]] != PROXY_CALLBACK[1]:
        logger.warning("%s is not %s: requests of a dying replica will answer 500", *PROXY_CALLBACK)
    if args.address:
        ray.init(address=args.address, namespace=BOARD_NAMESPACE)
    else:
        ray.init(namespace=BOARD_NAMESPACE, include_dashboard=False)
    # After ray.init: Ray's core worker installs its own fatal-signal handler for SIGTERM, which logs a
    # stack and aborts the driver (SIGABRT) once the handler before it returns; this one replaces it.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    gpus = float(ray.cluster_resources().get("GPU", 0.0))
    plan = plan_replicas(settings, gpus, args.replicas)
    logger.info(
        "Ray sees %s GPU(s): %s replica(s)%s, %s GPU and %s CPU each, at most %d ongoing requests each",
        gpus,
        plan.replicas,
        f" (autoscaling {plan.min_replicas}..{plan.max_replicas})" if plan.autoscaling else "",
        plan.num_gpus,
        plan.num_cpus,
        plan.max_ongoing_requests,
    )
    board_class: Any = ray.remote(num_cpus=0)(MetricsBoard)
    board = board_class.options(
        name=BOARD_NAME, namespace=BOARD_NAMESPACE, lifetime="detached", get_if_exists=True
    ).remote()
    # serve.start waits a fixed 60 s for the HTTP proxies; on a busy node a proxy (which imports this
    # package for its middleware) takes longer, and Serve gives up although the proxy comes up. Serve
    # exposes no setting for it, so the wait is raised here (the proxy's own health checks still apply).
    from ray.serve._private import api as serve_internals

    if hasattr(serve_internals, "HTTP_PROXY_TIMEOUT"):
        serve_internals.HTTP_PROXY_TIMEOUT = max(serve_internals.HTTP_PROXY_TIMEOUT, PROXY_START_TIMEOUT_S)
    try:
        serve.start(http_options={"host": args.host, "port": args.port})
        application = build_application(plan, BOARD_NAME, BOARD_NAMESPACE, forwarded_environment())
        serve.run(application, name=APP_NAME, route_prefix="/", blocking=False)
        logger.info("serving on http://%s:%d (Ctrl-C or SIGTERM stops the deployment)", args.host, args.port)
        threading.Event().wait()
    except (KeyboardInterrupt, SystemExit):
        logger.info("stopping: removing the deployment")
    finally:
        # The application first, while the proxies still answer: its replicas finish the requests in
        # flight (graceful_shutdown_timeout_s) before they stop; then Serve itself.
        try:
            serve.delete(APP_NAME)
        except Exception:
            logger.exception("removing the deployment failed; shutting Serve down anyway")
        serve.shutdown()
        ray.kill(board)
        ray.shutdown()


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(0)

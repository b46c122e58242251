"""The Ray Serve deployment: one replica is one service process (its own app, lifespan, tile batcher,
memory budget and compiled network), placed with ``num_gpus`` per replica, routed to by Serve's proxy."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from prometheus_client import generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.app import Services, create_app
from server.logs import configure_logging
from server.settings import get_settings

logger = logging.getLogger(__name__)

DEPLOYMENT_NAME = "enhance"
APP_NAME = "enhance"
# Environment passed to every replica: the service's settings, the object store's credentials, and the
# interpreter's import path.
FORWARDED_PREFIXES = ("ENHANCE_", "AWS_")
FORWARDED_NAMES = ("PYTHONPATH",)


@dataclass(frozen=True)
class ReplicaPlan:
    """How many replicas, what each one reserves, and when Serve stops routing to one."""

    replicas: int
    num_gpus: float
    num_cpus: float
    max_ongoing_requests: int
    max_queued_requests: int
    min_replicas: int | None = None
    max_replicas: int | None = None
    target_ongoing_requests: float | None = None

    @property
    def autoscaling(self) -> bool:
        return self.min_replicas is not None and self.max_replicas is not None

    def deployment_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {
            "name": DEPLOYMENT_NAME,
            "ray_actor_options": {"num_gpus": self.num_gpus, "num_cpus": self.num_cpus},
            "max_ongoing_requests": self.max_ongoing_requests,
            "max_queued_requests": self.max_queued_requests,
            "health_check_period_s": 5.0,
            "health_check_timeout_s": 30.0,
            "graceful_shutdown_timeout_s": 20.0,
        }
        if self.autoscaling:
            options["autoscaling_config"] = {
                "min_replicas": self.min_replicas,
                "initial_replicas": max(self.min_replicas or 0, min(self.replicas, self.max_replicas or 1)),
                "max_replicas": self.max_replicas,
                "target_ongoing_requests": self.target_ongoing_requests,
            }
        else:
            options["num_replicas"] = self.replicas
        return options


def forwarded_environment(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The variables every replica gets (also on other nodes of a Ray cluster)."""
    source = dict(os.environ if environ is None else environ)
    return {
        name: value for name, value in source.items() if name.startswith(FORWARDED_PREFIXES) or name in FORWARDED_NAMES
    }


class ProxyRequestIdHeader:
    """Leaves ``X-Request-Id`` on responses to Serve's proxy, which sets it to the same id (the id it
    passed in, which the service echoes); without this the header would arrive twice."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def without_own_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {
                    **message,
                    "headers": [(k, v) for k, v in message["headers"] if k.lower() != b"x-request-id"],
                }
            await send(message)

        await self.app(scope, receive, without_own_header if scope["type"] == "http" else send)


class EnhanceReplica:
    """One replica. Serve calls :meth:`__serve_build_asgi_app__` inside the replica's process, after the
    constructor; Serve then runs the app's lifespan there (models, stores, worker, batcher)."""

    def __init__(self, board_name: str | None = None, board_namespace: str | None = None) -> None:
        self._board_name = board_name
        self._board_namespace = board_namespace
        self._publisher: Any = None

    def __serve_build_asgi_app__(self) -> FastAPI:
        from ray import serve

        context = serve.get_replica_context()
        replica = context.replica_id.unique_id
        settings = get_settings()
        configure_logging(settings, replica=replica)
        services = Services(settings, replica=replica)
        app = create_app(settings, services)
        app.add_middleware(ProxyRequestIdHeader)
        if self._board_name is not None:
            import ray

            from server.cluster._metrics import ReplicaMetricsPublisher

            board = ray.get_actor(self._board_name, namespace=self._board_namespace)

            def render() -> str:
                services.metrics.refresh(services)
                return generate_latest(services.metrics.registry).decode()

            self._publisher = ReplicaMetricsPublisher(board, replica, render)
            self._publisher.start()
            services.metrics_exposition = self._publisher.exposition
        logger.info("replica %s of %s: app built (device %s)", replica, DEPLOYMENT_NAME, settings.device)
        return app

    def __del__(self) -> None:
        if self._publisher is not None:
            self._publisher.stop()


def build_application(
    plan: ReplicaPlan, board_name: str | None, board_namespace: str | None, environment: dict[str, str]
) -> Any:
    """The Serve application: the ingress deployment, configured by ``plan``, its replicas started with
    ``environment``, bound and ready to run."""
    from ray import serve

    options = plan.deployment_options()
    options["ray_actor_options"]["runtime_env"] = {"env_vars": environment}
    ingress = serve.ingress()(EnhanceReplica)
    deployment = serve.deployment(**options)(ingress)
    return deployment.bind(board_name, board_namespace)

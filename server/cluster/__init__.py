"""The service on a Ray cluster: ``python -m server.cluster --host H --port P``.

The same FastAPI app as ``python -m server`` (same routes, headers, errors and OpenAPI), deployed on Ray
Serve as one replica per GPU (``num_gpus=1``) on this node or a running Ray cluster (``--address``).
Each replica runs the app's own lifespan: its own tile batcher, memory budget and compiled network.
Serve's proxy routes each request to a replica with room (``max_ongoing_requests``); a replica that is
full answers 503 with ``Retry-After`` exactly as one process does. Needs the ``cluster`` extra.
"""

from server.cluster._deployment import ReplicaPlan, build_application, forwarded_environment
from server.cluster._metrics import MetricsBoard, merge_expositions
from server.cluster._proxy import ReplicaLossMiddleware, proxy_middlewares

__all__ = [
    "MetricsBoard",
    "ReplicaLossMiddleware",
    "ReplicaPlan",
    "build_application",
    "forwarded_environment",
    "merge_expositions",
    "proxy_middlewares",
]

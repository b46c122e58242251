"""The HTTP service: FastAPI app, routes, auth, errors, settings, worker and storage adapters.

``create_app``, ``Settings`` and ``get_settings`` are imported on first use, so that commands which
need neither the app nor PyTorch (``python -m server keys ...``) start in a fraction of a second."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

# Before PyTorch allocates anything (it reads this once): large CPU tensors are 2 MiB-aligned and
# advised onto transparent huge pages, so a fresh output-sized buffer costs ~25x fewer page faults
# (a 2048² float image: 6 ms instead of 25 ms to first touch). An operator's own value is kept.
os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")

if TYPE_CHECKING:
    from server.app import create_app
    from server.settings import Settings, get_settings

__all__ = ["Settings", "create_app", "get_settings"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from server.app import create_app

        return create_app
    if name in ("Settings", "get_settings"):
        from server import settings

        return getattr(settings, name)
    raise AttributeError(f"module 'server' has no attribute {name!r}")

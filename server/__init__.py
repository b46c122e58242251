"""The HTTP service: FastAPI app, routes, auth, errors, settings, worker and storage adapters."""

from server.app import create_app
from server.settings import Settings, get_settings

__all__ = ["Settings", "create_app", "get_settings"]

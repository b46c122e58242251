"""Logging set-up: plain text (the default) or one JSON object per line (``ENHANCE_LOG_FORMAT=json``),
each record carrying the id of the request being handled and the replica that handled it."""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from typing import Any

from server.middleware import current_request_id
from server.settings import Settings

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class RequestContextFilter(logging.Filter):
    """Adds ``request_id`` (from the request's context) and ``replica`` to every record."""

    def __init__(self, replica: str | None) -> None:
        super().__init__()
        self.replica = replica

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = current_request_id.get()
        if not hasattr(record, "replica"):
            record.replica = self.replica
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC, ISO 8601), level, logger, message, request_id, replica,
    and the formatted exception when there is one. Never more than one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
            "replica": getattr(record, "replica", None),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(settings: Settings, replica: str | None = None) -> logging.Handler:
    """Route the root logger (and uvicorn's) to stderr in ``settings.log_format``; returns the handler."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RequestContextFilter(replica))
    handler.setFormatter(JsonFormatter() if settings.log_format == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(settings.log_level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        named = logging.getLogger(name)
        named.handlers = []
        named.propagate = True
    # Alembic reports each migration step, and on import each of its plugins, at INFO: a dozen lines on
    # every start and around --dev-key's key. They show at DEBUG (ENHANCE_LOG_LEVEL=DEBUG).
    logging.getLogger("alembic").setLevel(logging.NOTSET if root.level <= logging.DEBUG else logging.WARNING)
    return handler

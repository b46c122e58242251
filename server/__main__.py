"""``python -m server --host H --port P``: start the service on the settings from the environment."""

from __future__ import annotations

import argparse
import logging

import uvicorn

from server.app import create_app
from server.settings import get_settings


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m server", description="Run the enhance service.")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port to bind (default 8000)")
    args = parser.parse_args()
    settings = get_settings()
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    app = create_app(settings)
    uvicorn.run(app, host=args.host, port=args.port, log_level=settings.log_level.lower(), proxy_headers=True)


if __name__ == "__main__":
    main()

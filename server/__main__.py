"""``python -m server --host H --port P``: start the service on the settings from the environment.

``python -m server --mode test``: the offline test mode (no network weights; see the README, "Test mode").

``python -m server --warmup``: load the networks (pulling missing weights) and, with
``ENHANCE_COMPILE_MODE`` set, compile them into the compile cache, then exit — a build or deploy step,
so that the service's own start loads compiled kernels instead of compiling for minutes.

``python -m server keys create --name NAME | keys list | keys revoke NAME``: manage named API keys
(``server/keys.py``) while the service runs."""

from __future__ import annotations

import argparse
import math
import signal
import sys
from typing import Any


def main() -> None:
    if sys.argv[1:2] == ["keys"]:
        # Only the database: no app, no PyTorch (the command answers in well under a second).
        from server.keys import run_keys_command

        raise SystemExit(run_keys_command(sys.argv[2:]))
    import uvicorn

    from server.app import create_app
    from server.logs import configure_logging
    from server.runtime import ModelRuntime, load_face_models
    from server.settings import get_settings

    parser = argparse.ArgumentParser(prog="python -m server", description="Run the enhance service.")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port to bind (default 8000)")
    parser.add_argument(
        "--warmup",
        action="store_true",
        help="load (and compile, when ENHANCE_COMPILE_MODE is set) the networks, then exit",
    )
    parser.add_argument(
        "--mode",
        choices=["real", "test"],
        default=None,
        help="'test': no network weights, a fast deterministic stand-in upscaler (overrides ENHANCE_MODE)",
    )
    parser.add_argument(
        "--dev-key",
        action="store_true",
        help="print the development key (kept in the database; created when missing) and exit",
    )
    args = parser.parse_args()
    settings = get_settings()
    if args.mode is not None:
        settings = settings.model_copy(update={"mode": args.mode})
    configure_logging(settings)
    if args.dev_key:
        from server.dev_key import print_dev_key

        raise SystemExit(print_dev_key(settings))
    if args.warmup:
        ModelRuntime.load(settings, faces=load_face_models(settings)).close()
        return
    app = create_app(settings)
    # uvicorn stops gracefully on SIGTERM/SIGINT, then raises the signal again for the handler that was
    # there before it: this one, so that a graceful stop exits 0 instead of dying by the signal.
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, _stopped)
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        log_level=settings.log_level.lower(),
        proxy_headers=True,
        log_config=None,
        # SIGTERM: new connections are refused at once; requests in flight get this long to finish.
        timeout_graceful_shutdown=math.ceil(settings.shutdown_grace_s),
    )
    _draining_server(app, config).run()


def _draining_server(app: Any, config: Any) -> Any:
    """uvicorn's server, which on SIGTERM/SIGINT also stops this process's job runners and profile builder
    from claiming new work at once (while the requests in flight finish): the work waits in the database
    for the other processes instead of being started here and cut short."""
    import uvicorn

    from server.app import services_of

    class DrainingServer(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            super().handle_exit(sig, frame)
            services_of(app).drain()

        async def shutdown(self, sockets: Any = None) -> None:
            # uvicorn closes at once every connection it has not read a request from, including one it
            # accepted a moment ago whose request is on its way: that client gets its connection closed
            # without an answer. Stop listening first, then let each such connection bring its request
            # (served, with Connection: close) before uvicorn's own shutdown; one that sends nothing
            # within timeout_keep_alive is closed as before.
            for listener in self.servers:
                listener.close()
            await _await_first_requests(self.server_state.connections, self.config.timeout_keep_alive)
            await super().shutdown(sockets)

    return DrainingServer(config)


async def _await_first_requests(connections: Any, timeout_s: float) -> None:
    """Wait until no connection in ``connections`` (uvicorn's protocols) is still without its first request
    (``cycle`` None: accepted, nothing parsed yet), or ``timeout_s``."""
    import asyncio

    deadline = asyncio.get_running_loop().time() + timeout_s
    while any(getattr(c, "cycle", False) is None for c in list(connections)):
        if asyncio.get_running_loop().time() >= deadline:
            return
        await asyncio.sleep(0.01)


def _stopped(signum: int, frame: object) -> None:
    """The signal a graceful stop re-raises once the server has stopped: nothing left to do (exit 0)."""


if __name__ == "__main__":
    main()

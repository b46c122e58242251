"""``python -m server.cluster --host H --port P [--address ADDR]``: the service on Ray Serve, one replica
per GPU (see :mod:`server.cluster`)."""

from server.cluster._command import main

if __name__ == "__main__":
    main()

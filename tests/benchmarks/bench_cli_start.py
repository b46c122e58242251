"""Start-up of ``phota-enhance --url``: how long a run takes before its first request, and one small
photo through a test-mode service against the time of that request alone.

Starts ``python -m server --mode test`` on a free loopback port (``tests/live_server.py``), then
measures, each ``--repeat`` times (median printed, min..max beside it):

- ``python -c pass``: the interpreter alone;
- ``import server.cli``: the command's own imports (``--url`` mode needs no more);
- ``import server.cli, models.pipeline``: what the command imported before it left the pipeline (and
  PyTorch) to local mode;
- start to first request: from spawning ``python -m server.cli ... --url`` to its first HTTP request
  (the key check), timed by an httpx event hook in the child;
- the whole command on one photo (``--overwrite``): spawn to exit, outputs written;
- the request alone: the same ``POST /v1/phota/enhance`` from a warm client in this process.

    python tests/benchmarks/bench_cli_start.py
    python tests/benchmarks/bench_cli_start.py --repeat 7 --size 256

Not a test: pytest does not collect this folder's files (no ``test_`` prefix).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from PIL import Image
from skimage import data as skdata

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))

from tests.live_server import live_server  # noqa: E402

KEY = "bench-cli-key"
# Runs the command in the child and prints, on its last stderr line, the seconds from the parent's
# spawn time (argv[1]) to the first request the command sends.
_FIRST_REQUEST = """
import sys, time
spawned = float(sys.argv[1])
import httpx
first = []
original = httpx.Client.__init__
def init(self, *args, **kwargs):
    kwargs["event_hooks"] = {"request": [lambda request: first or first.append(time.time())]}
    original(self, *args, **kwargs)
httpx.Client.__init__ = init
from server import cli
code = cli.main(sys.argv[2:])
print(f"FIRST_REQUEST_S {first[0] - spawned:.4f}", file=sys.stderr)
sys.exit(code)
"""


def _timed(run: Callable[[], object], repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return times


def _python(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-2000:])
    return result


def _line(label: str, seconds: list[float]) -> str:
    return (
        f"{label:<44} {statistics.median(seconds):7.3f} s   ({min(seconds):.3f}..{max(seconds):.3f}, n={len(seconds)})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5, help="runs of each measurement (default 5)")
    parser.add_argument("--size", type=int, default=256, help="long side of the photo sent, px (default 256)")
    args = parser.parse_args()

    env = {name: value for name, value in os.environ.items() if not name.startswith("ENHANCE_")}
    env["PYTHONPATH"] = str(REPO_ROOT)
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        photo = folder / "photo.jpg"
        image = Image.fromarray(skdata.chelsea())
        image.thumbnail((args.size, args.size), Image.Resampling.LANCZOS)
        image.save(photo, quality=90)
        title = f"phota-enhance --url, one {photo.stat().st_size // 1024} KiB JPEG ({image.size[0]}x{image.size[1]})"
        (folder / "data").mkdir()
        with live_server(folder / "data", KEY, "--mode", "test") as server:
            command = [str(photo), "-o", str(folder / "out"), "--url", server.url, "--key", KEY]
            command += ["--overwrite", "--no-progress"]
            rows = [
                _line("python -c pass", _timed(lambda: _python("-c", "pass", env=env), args.repeat)),
                _line("import server.cli", _timed(lambda: _python("-c", "import server.cli", env=env), args.repeat)),
                _line(
                    "import server.cli, models.pipeline (before)",
                    _timed(lambda: _python("-c", "import server.cli, models.pipeline", env=env), args.repeat),
                ),
            ]
            first = []
            for _ in range(args.repeat):
                result = _python("-c", _FIRST_REQUEST, repr(time.time()), *command, env=env)
                first.append(float(result.stderr.strip().splitlines()[-1].split()[1]))
            rows.append(_line("start to first request (--url)", first))
            rows.append(
                _line(
                    "whole command, one photo (--url)",
                    _timed(lambda: _python("-m", "server.cli", *command, env=env), args.repeat),
                )
            )
            body = json.dumps({"image": base64.b64encode(photo.read_bytes()).decode(), "response_mode": "bytes"})
            with httpx.Client(timeout=600, headers={"X-API-Key": KEY, "Content-Type": "application/json"}) as client:

                def send() -> None:
                    client.post(f"{server.url}/v1/phota/enhance", content=body).raise_for_status()

                send()  # warm-up
                rows.append(_line("the request alone (warm client)", _timed(send, args.repeat)))
    print(f"{title}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print("\n".join(rows))


if __name__ == "__main__":
    main()

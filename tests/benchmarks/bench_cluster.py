"""Requests/s of ``python -m server.cluster`` with one and with two (or more) replicas under the same
loopback load, and the ratio.

For each replica count the script starts the cluster (a local Ray instance, or ``--address`` of a
running one), waits until every replica reports in ``/metrics``, warms up, then runs ``--concurrency``
clients sending ``--requests`` enhance requests back to back (a real photo, JPEG in, JPEG out, checked),
and stops the cluster. It prints a table and, with ``--json``, writes the figures.

CPU (what docs/scaling.md's table shows; both replicas share the same cores, so this measures the cluster's
overhead rather than its scaling):

    python tests/benchmarks/bench_cluster.py --device cpu --replicas 1,2 --side 64 --target-long-side 256

GPUs (one replica per GPU; the ratio is the scaling):

    python tests/benchmarks/bench_cluster.py --device cuda --replicas 1,2 --side 512 --target-long-side 2048 \
        --concurrency 32 --requests 400
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.benchmarks.bench_throughput import (  # noqa: E402 (the project root goes on the path first)
    API_KEY,
    free_port,
    make_input,
    output_size,
    run_load,
    summarise,
    tail,
)

START_TIMEOUT_S = 900.0


def log(message: str) -> None:
    print(f"[bench_cluster {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def replicas_reporting(url: str) -> set[str]:
    import httpx

    try:
        text = httpx.get(f"{url}/metrics", timeout=30).text
    except httpx.HTTPError:
        return set()
    return set(re.findall(r'replica="([^"]+)"', text))


def start_cluster(args: argparse.Namespace, replicas: int, directory: Path) -> tuple[subprocess.Popen[bytes], str]:
    import httpx

    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "ENHANCE_DATA_DIR": str(directory / f"data-{replicas}"),
        "ENHANCE_API_KEYS": API_KEY,
        "ENHANCE_REPLICAS": str(replicas),
        "ENHANCE_TARGET_LONG_SIDE": str(args.target_long_side),
        "ENHANCE_DEFAULT_OUTPUT_FORMAT": "jpg",
        "ENHANCE_LOG_LEVEL": "WARNING",
    }
    if args.device == "cpu":
        env |= {"ENHANCE_DEVICE": "cpu", "ENHANCE_REPLICA_GPUS": "0"}
    for item in args.server_env:
        name, _, value = item.partition("=")
        env[name] = value
    command = [sys.executable, "-m", "server.cluster", "--host", "127.0.0.1", "--port", str(port)]
    if args.address:
        command += ["--address", args.address]
    log_path = directory / f"cluster-{replicas}.log"
    with open(log_path, "wb") as sink:
        process = subprocess.Popen(command, env=env, stdout=sink, stderr=subprocess.STDOUT, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            ready = httpx.get(f"{url}/readyz", timeout=5).status_code == 200
        except httpx.HTTPError:
            ready = False
        if ready and len(replicas_reporting(url)) >= replicas:
            return process, url
        if process.poll() is not None or time.monotonic() > deadline:
            stop_cluster(process)
            raise SystemExit(f"the cluster with {replicas} replica(s) did not start:\n{tail(log_path)}")
        time.sleep(3)


def stop_cluster(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)


async def drive(url: str, body: bytes, expected: tuple[int, int], args: argparse.Namespace) -> dict[str, Any]:
    import httpx

    limits = httpx.Limits(max_connections=args.concurrency + 4)
    async with httpx.AsyncClient(base_url=url, timeout=args.timeout_s, limits=limits) as client:
        await run_load(client, body, expected, min(args.concurrency, args.warmup), args.warmup, 0)
        samples, wall_s = await run_load(client, body, expected, args.concurrency, args.requests, 0)
    ok = [sample for sample in samples if sample.ok]
    errors: dict[str, int] = {}
    for sample in samples:
        if not sample.ok:
            errors[sample.kind or "error"] = errors.get(sample.kind or "error", 0) + 1
    return {
        "requests": len(samples),
        "ok": len(ok),
        "errors": errors,
        "wall_s": wall_s,
        "rps": len(ok) / wall_s if wall_s > 0 else None,
        "latency_s": summarise([sample.latency_s for sample in ok]),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--replicas", default="1,2", help="comma-separated replica counts (default 1,2)")
    parser.add_argument("--side", type=int, default=64, help="input side in px (a real photo's crop)")
    parser.add_argument("--target-long-side", type=int, default=256, help="ENHANCE_TARGET_LONG_SIDE")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--requests", type=int, default=24, help="measured requests per replica count")
    parser.add_argument("--warmup", type=int, default=4)
    parser.add_argument("--timeout-s", type=float, default=600.0)
    parser.add_argument("--address", default=None, help="a running Ray cluster (default: a local instance)")
    parser.add_argument("--server-env", action="append", default=[], help="NAME=VALUE for the replicas")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    counts = [int(part) for part in args.replicas.split(",") if part.strip()]
    image = make_input(args.side)
    expected = output_size(args.side, args.side, max(args.side, args.target_long_side))
    body = json.dumps({"image": image.b64, "output_format": "jpg"}).encode()
    results: dict[int, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as scratch:
        for replicas in counts:
            log(f"starting the cluster with {replicas} replica(s)")
            started = time.monotonic()
            process, url = start_cluster(args, replicas, Path(scratch))
            log(f"ready in {time.monotonic() - started:.0f} s; {args.requests} requests, {args.concurrency} clients")
            try:
                results[replicas] = asyncio.run(drive(url, body, expected, args))
            finally:
                stop_cluster(process)
            log(f"{replicas} replica(s): {results[replicas]['rps']:.3f} requests/s")

    first = results[counts[0]]["rps"]
    print(
        f"\n{args.device}, input {args.side}² {image.photo} JPEG → {expected[0]}×{expected[1]} jpg, "
        f"{args.concurrency} clients, {args.requests} requests per run\n"
    )
    print("| replicas | requests | ok | errors | wall s | requests/s | p50 s | p95 s | ratio to first |")
    print("|---|---|---|---|---|---|---|---|---|")
    for replicas in counts:
        row = results[replicas]
        ratio = row["rps"] / first if first and row["rps"] else None
        errors = ", ".join(f"{kind} ×{count}" for kind, count in row["errors"].items()) or "0"
        print(
            f"| {replicas} | {row['requests']} | {row['ok']} | {errors} | {row['wall_s']:.1f} | {row['rps']:.3f} | "
            f"{row['latency_s'].get('p50', float('nan')):.2f} | {row['latency_s'].get('p95', float('nan')):.2f} | "
            f"{ratio:.2f} |"
        )
    if args.json:
        args.json.write_text(json.dumps({"args": vars(args) | {"json": str(args.json)}, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

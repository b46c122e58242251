"""Soak: start ``python -m server`` on a loopback port and drive a bounded mixed load at it for a
configurable time, sampling the server's RSS, open file descriptors, threads, GPU memory and database
size; fail when any of them grows without bound (the least-squares slope over the second half of the
run, times that half's length, passes the metric's allowance) or when any answer is a 500.

The load (``--clients`` threads, two accounts): synchronous enhance (bytes; urls then the download),
asynchronous enhance polled to the end and its result downloaded, profiles (add, status, list,
delete), bad input (corrupt and hostile images from the fuzzing corpus, bad JSON, unknown keys), and
clients that disconnect mid-request. Inputs are small real photos (scikit-image), so the real network
runs on every request.

    .venv/bin/python tests/benchmarks/soak.py --duration-s 900 --plot soak.png --json soak.json
    .venv/bin/python tests/benchmarks/soak.py --duration-s 3600 --server-env ENHANCE_MODE=test
"""

from __future__ import annotations

import argparse
import base64
import collections
import io
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
from PIL import Image
from skimage import data as skdata

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.image_corpus import corpus_case  # noqa: E402

KEYS = ("soak-key-account-a", "soak-key-account-b")


@dataclass(frozen=True)
class Allowance:
    """How much a metric may grow over the second half of the run: ``absolute`` or ``relative`` × its
    mean there, whichever is larger."""

    absolute: float
    relative: float
    unit: str


ALLOWANCES = {
    "rss_mib": Allowance(64.0, 0.05, "MiB"),
    "open_fds": Allowance(8.0, 0.10, ""),
    "threads": Allowance(4.0, 0.10, ""),
    "gpu_mib": Allowance(64.0, 0.05, "MiB"),
    "database_mib": Allowance(2.0, 0.25, "MiB"),
}


def _photos(side: int) -> list[str]:
    """Small real photos as base64 JPEG and PNG (one with alpha)."""
    out = []
    for name in ("astronaut", "coffee", "chelsea", "rocket"):
        image = Image.fromarray(getattr(skdata, name)())
        image.thumbnail((side, side))
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=90)
        out.append(base64.b64encode(buffer.getvalue()).decode())
    rgba = Image.fromarray(skdata.astronaut()).resize((side, side))
    rgba.putalpha(Image.fromarray(np.tile(np.linspace(0, 255, side, dtype=np.uint8), (side, 1))))
    buffer = io.BytesIO()
    rgba.save(buffer, format="PNG")
    out.append(base64.b64encode(buffer.getvalue()).decode())
    return out


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Tally:
    """Answers by request kind and status, and latencies by kind."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    statuses: dict[str, collections.Counter[str]] = field(
        default_factory=lambda: collections.defaultdict(collections.Counter)
    )
    latencies: dict[str, list[float]] = field(default_factory=lambda: collections.defaultdict(list))
    server_errors: list[str] = field(default_factory=list)

    def record(self, kind: str, status: int | str, seconds: float, body: str = "") -> None:
        with self.lock:
            self.statuses[kind][str(status)] += 1
            self.latencies[kind].append(seconds)
            if isinstance(status, int) and status >= 500 and status not in (503, 504):
                self.server_errors.append(f"{kind}: {status} {body[:200]}")


class Load:
    """The client side: one thread per client, each picking a scenario at random (seeded)."""

    def __init__(self, base: str, photos: list[str], tally: Tally, seed: int) -> None:
        self.base = base
        self.photos = photos
        self.tally = tally
        self.seed = seed
        self.stop = threading.Event()

    def _call(self, client: httpx.Client, kind: str, method: str, url: str, **kwargs: Any) -> httpx.Response | None:
        started = time.perf_counter()
        try:
            response = client.request(method, url, **kwargs)
        except httpx.HTTPError as error:
            self.tally.record(kind, type(error).__name__, time.perf_counter() - started)
            return None
        self.tally.record(kind, response.status_code, time.perf_counter() - started, response.text)
        return response

    def run_client(self, number: int) -> None:
        rng = random.Random(self.seed * 1000 + number)
        key = KEYS[number % 2]
        headers = {"X-API-Key": key}
        with httpx.Client(base_url=self.base, timeout=300) as client:
            while not self.stop.is_set():
                scenario = rng.choices(
                    ["sync", "urls", "async", "profiles", "bad", "disconnect", "unknown_key"],
                    weights=[30, 15, 15, 8, 20, 8, 4],
                )[0]
                getattr(self, f"_{scenario}")(client, headers, rng)

    def _sync(self, client: httpx.Client, headers: dict[str, str], rng: random.Random) -> None:
        body = {"image": rng.choice(self.photos), "num_output_images": rng.choice([1, 1, 2]), "output_format": "jpg"}
        self._call(client, "sync", "POST", "/v1/phota/enhance", headers=headers, json=body)

    def _urls(self, client: httpx.Client, headers: dict[str, str], rng: random.Random) -> None:
        body = {"image": rng.choice(self.photos), "response_mode": "urls"}
        response = self._call(client, "urls", "POST", "/v1/phota/enhance", headers=headers, json=body)
        if response is not None and response.status_code == 200:
            for url in response.json()["download_urls"]:
                self._call(client, "download", "GET", url)

    def _async(self, client: httpx.Client, headers: dict[str, str], rng: random.Random) -> None:
        body = {"image": rng.choice(self.photos), "async": True, "response_mode": rng.choice(["bytes", "urls"])}
        response = self._call(client, "async_submit", "POST", "/v1/phota/enhance", headers=headers, json=body)
        if response is None or response.status_code != 202:
            return
        poll = response.json()["poll_url"]
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and not self.stop.is_set():
            document = self._call(client, "async_poll", "GET", poll, headers=headers)
            if document is None or document.status_code != 200:
                return
            job = document.json()
            if job["status"] in ("SUCCEEDED", "FAILED"):
                for url in (job.get("result") or {}).get("download_urls", []):
                    self._call(client, "download", "GET", url)
                return
            time.sleep(0.5)

    def _profiles(self, client: httpx.Client, headers: dict[str, str], rng: random.Random) -> None:
        body = {"image_urls": [rng.choice(self.photos) for _ in range(5)], "training_tier": "fast", "tag": "soak"}
        response = self._call(client, "profile_add", "POST", "/v1/phota/profiles/add", headers=headers, json=body)
        if response is None or response.status_code != 200:
            return
        profile = response.json()["profile_id"]
        for _ in range(20):
            status = self._call(
                client, "profile_status", "GET", f"/v1/phota/profiles/{profile}/status", headers=headers
            )
            if status is None or status.json().get("status") in ("READY", "ERROR"):
                break
            time.sleep(0.5)
        self._call(client, "profile_ids", "GET", "/v1/phota/profiles/ids", headers=headers, params={"tag": "soak"})
        self._call(client, "profile_delete", "DELETE", f"/v1/phota/profiles/{profile}", headers=headers)

    def _bad(self, client: httpx.Client, headers: dict[str, str], rng: random.Random) -> None:
        choice = rng.randrange(3)
        if choice == 0:
            case = corpus_case(rng.randrange(25, 10_240))
            self._call(client, "bad_image", "POST", "/v1/phota/enhance", headers=headers, json={"image": case.payload})
        elif choice == 1:
            self._call(
                client,
                "bad_json",
                "POST",
                "/v1/phota/enhance",
                headers={**headers, "Content-Type": "application/json"},
                content=b'{"image": ',
            )
        else:
            body = {"image": rng.choice(self.photos), "num_output_images": 9}
            self._call(client, "bad_field", "POST", "/v1/phota/enhance", headers=headers, json=body)

    def _disconnect(self, client: httpx.Client, headers: dict[str, str], rng: random.Random) -> None:
        body = {"image": rng.choice(self.photos)}
        started = time.perf_counter()
        try:
            httpx.post(f"{self.base}/v1/phota/enhance", headers=headers, json=body, timeout=rng.uniform(0.05, 0.5))
            self.tally.record("disconnect", "finished", time.perf_counter() - started)
        except httpx.TimeoutException:
            self.tally.record("disconnect", "gone", time.perf_counter() - started)

    def _unknown_key(self, client: httpx.Client, headers: dict[str, str], rng: random.Random) -> None:
        self._call(
            client, "unknown_key", "GET", "/v1/phota/profiles/ids", headers={"X-API-Key": f"nope-{rng.random()}"}
        )


def _gpu_mib(base: str) -> float:
    try:
        text = httpx.get(f"{base}/metrics", timeout=10).text
    except httpx.HTTPError:
        return float("nan")
    for line in text.splitlines():
        if line.startswith("enhance_gpu_memory_bytes "):
            return float(line.split()[1]) / 2**20
    return 0.0


def _database_mib(data_dir: Path) -> float:
    return sum(p.stat().st_size for p in data_dir.glob("enhance.db*") if p.is_file()) / 2**20


def sample(process: psutil.Process, base: str, data_dir: Path) -> dict[str, float]:
    """One sample of the server process (its children included: there are none unless a tool forks)."""
    with process.oneshot():
        return {
            "rss_mib": process.memory_info().rss / 2**20,
            "open_fds": float(process.num_fds()),
            "threads": float(process.num_threads()),
            "gpu_mib": _gpu_mib(base),
            "database_mib": _database_mib(data_dir),
        }


def growth_over_second_half(times: list[float], values: list[float]) -> float:
    """Least-squares slope of the second half of the samples times that half's duration."""
    half = len(times) // 2
    t = np.asarray(times[half:])
    v = np.asarray(values[half:])
    if len(t) < 3 or not np.all(np.isfinite(v)):
        return 0.0
    slope = np.polyfit(t - t[0], v, 1)[0]
    return float(slope * (t[-1] - t[0]))


def judge(samples: list[dict[str, float]], times: list[float]) -> dict[str, dict[str, float | bool]]:
    verdicts = {}
    for name, allowance in ALLOWANCES.items():
        values = [s[name] for s in samples]
        half = values[len(values) // 2 :]
        mean = float(np.nanmean(half)) if half else 0.0
        growth = growth_over_second_half(times, values)
        limit = max(allowance.absolute, allowance.relative * mean)
        verdicts[name] = {
            "first": values[0],
            "last": values[-1],
            "max": float(np.nanmax(values)),
            "second_half_growth": growth,
            "allowed": limit,
            "ok": growth <= limit,
        }
    return verdicts


def plot(times: list[float], samples: list[dict[str, float]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(len(ALLOWANCES), 1, figsize=(8, 2.2 * len(ALLOWANCES)), sharex=True)
    minutes = np.asarray(times) / 60
    for axis, (name, allowance) in zip(axes, ALLOWANCES.items(), strict=True):
        axis.plot(minutes, [s[name] for s in samples], lw=1.2)
        axis.set_ylabel(f"{name}" + (f"\n({allowance.unit})" if allowance.unit else ""))
        axis.axvline(minutes[len(minutes) // 2] if len(minutes) else 0, color="grey", ls=":", lw=0.8)
        axis.grid(alpha=0.3)
    axes[-1].set_xlabel("minutes")
    axes[0].set_title(title)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration-s", type=float, default=900.0, help="length of the load")
    parser.add_argument("--clients", type=int, default=6, help="concurrent client threads")
    parser.add_argument("--sample-s", type=float, default=5.0, help="interval between samples")
    parser.add_argument("--photo-side", type=int, default=48, help="long side of the input photos")
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        help="KEY=VALUE for the server (repeatable); defaults: CPU, network input ≤ 32 px, 128-px outputs",
    )
    parser.add_argument("--plot", type=Path, default=None, help="write the curves (PNG) here")
    parser.add_argument("--json", type=Path, default=None, help="write the samples and verdicts here")
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="soak-"))
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "ENHANCE_DATA_DIR": str(data_dir),
        "ENHANCE_API_KEYS": ",".join(KEYS),
        "ENHANCE_DEVICE": "cpu",
        "ENHANCE_NETWORK_MAX_SIDE": "32",
        "ENHANCE_TARGET_LONG_SIDE": "128",
        "ENHANCE_URL_TTL_S": "60",
        "ENHANCE_CLEANUP_INTERVAL_S": "20",
        "ENHANCE_LOG_LEVEL": "WARNING",
    }
    for item in args.server_env:
        key, _, value = item.partition("=")
        env[key] = value
    log = open(data_dir / "server.log", "w")  # noqa: SIM115 (open for the server's lifetime)
    server = subprocess.Popen(
        [sys.executable, "-m", "server", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=REPO,
    )
    try:
        deadline = time.monotonic() + 600
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the server did not become ready (log: {data_dir / 'server.log'})")
            time.sleep(1)
        process = psutil.Process(server.pid)
        tally = Tally()
        load = Load(base, _photos(args.photo_side), tally, args.seed)
        threads = [threading.Thread(target=load.run_client, args=(n,), daemon=True) for n in range(args.clients)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        times: list[float] = []
        samples: list[dict[str, float]] = []
        while time.monotonic() - started < args.duration_s:
            if server.poll() is not None:
                raise SystemExit(f"the server died (exit {server.returncode}; log: {data_dir / 'server.log'})")
            times.append(time.monotonic() - started)
            samples.append(sample(process, base, data_dir))
            if len(samples) % 24 == 0:
                latest = samples[-1]
                print(
                    f"... {times[-1] / 60:.1f} min: " + ", ".join(f"{k} {v:.1f}" for k, v in latest.items()),
                    file=sys.stderr,
                    flush=True,
                )
            time.sleep(args.sample_s)
        load.stop.set()
        for thread in threads:
            thread.join(300)
        verdicts = judge(samples, times)
    finally:
        server.terminate()
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()

    duration = times[-1] if times else 0.0
    print(f"soak: {duration / 60:.1f} min, {args.clients} clients, {len(samples)} samples; server log {data_dir}")
    print(f"{'request':<16} {'count':>7} {'p50 s':>7} {'p95 s':>7}  statuses")
    for kind in sorted(tally.statuses):
        latencies = sorted(tally.latencies[kind])
        p50 = latencies[len(latencies) // 2]
        p95 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.95))]
        statuses = ", ".join(f"{s}: {n}" for s, n in sorted(tally.statuses[kind].items()))
        print(f"{kind:<16} {len(latencies):>7} {p50:>7.2f} {p95:>7.2f}  {statuses}")
    print(f"{'metric':<14} {'first':>9} {'last':>9} {'max':>9} {'2nd-half growth':>16} {'allowed':>9}  verdict")
    for name, verdict in verdicts.items():
        print(
            f"{name:<14} {verdict['first']:>9.1f} {verdict['last']:>9.1f} {verdict['max']:>9.1f} "
            f"{verdict['second_half_growth']:>16.2f} {verdict['allowed']:>9.1f}  {'ok' if verdict['ok'] else 'GROWS'}"
        )
    for error in tally.server_errors[:20]:
        print("SERVER ERROR", error)
    requests = sum(len(v) for v in tally.latencies.values())
    title = f"soak: {duration / 60:.0f} min, {args.clients} clients, {requests} requests"
    if args.plot:
        plot(times, samples, args.plot, title)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "duration_s": duration,
                    "times": times,
                    "samples": samples,
                    "verdicts": verdicts,
                    "statuses": {k: dict(v) for k, v in tally.statuses.items()},
                    "server_errors": tally.server_errors,
                },
                indent=1,
            )
        )
    failed = tally.server_errors or not all(v["ok"] for v in verdicts.values())
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()

"""Throughput and latency: Real-ESRGAN's own way of running x4plus against this server under load.

In one run, on one device, for each case (a square real photo of a given side and a wanted output
size) it measures:

(a) **The reference**: the Real-ESRGAN x4plus network applied per request the way the Real-ESRGAN
    project's own ``inference_realesrgan.py`` does (``RealESRGANer.enhance`` with ``tile=0``): decode
    the JPEG (Pillow), RGB float32 / 255, an NCHW tensor of batch 1 on the device, fp16 on CUDA (fp32 on
    CPU; no channels_last, no compilation, no batching), 10 px reflect pre-pad on the right and bottom,
    the network, the pre-pad (×4) cropped away, ``.float().cpu().clamp_(0, 1)``, ×255 rounded to
    uint8, a Lanczos resize (Pillow) to the wanted size when it is not ×4 (their ``--outscale``), JPEG
    q95 (Pillow). Colour stays RGB throughout (Pillow), so the OpenCV original's two BGR↔RGB swaps are
    left out. The network is built with spandrel from this project's own converted weights. Requests
    run one after another; the network alone is timed between ``torch.cuda.synchronize()`` calls,
    the whole request from the JPEG bytes to the output JPEG bytes; peak memory from
    ``torch.cuda.max_memory_allocated`` / ``max_memory_reserved``. Reference RPS = 1 / mean request.
(b) **This server**: ``python -m server`` started as a subprocess on a free loopback port (its own
    settings from ``ENHANCE_*``, extendable with ``--server-env KEY=VALUE``), driven by an
    ``httpx.AsyncClient`` with ``POST /v1/phota/enhance`` (jpg, bytes, one output; ``"Upscale to 4K."``
    as the prompt for 4K cases). Every answer is checked (200, a JPEG of exactly the expected size); any
    other answer, 503 included, is counted as an error and never retried. Per case: warm-up requests
    (not counted), latency alone (one request at a time), a concurrent warm-up (not counted), then
    ``--concurrency`` clients sending back to back: latency under load and requests/s at saturation
    (completed OK / wall time of the load phase). ``GET /metrics`` is scraped before and after each
    load phase for the network counters (tile pixels, busy seconds, batches, tiles per batch, peak
    memory, memory budget); counters the server does not export read "n/a".

FLOP: x4plus costs 37.6 TFLOP per 1024² network input (docs/design.md), 35.86e6 FLOP per input pixel.
"Useful" FLOP counts the image pixels the network should see (the reference's image, the server's
``network_input`` from ``X-Enhance-Parameters``), not padding, tile overlap or the pre-pad; the
server's "network-busy" TFLOP/s counts every pixel its network ran (padding included) over the time
its network worker was busy.

H100 run (a first start with compilation can take many minutes; ``--ready-timeout`` waits 1800 s)::

    .venv/bin/python tests/benchmarks/bench_throughput.py --device cuda \\
        --server-env ENHANCE_COMPILE_MODE=max-autotune-no-cudagraphs --server-env ENHANCE_MEMORY_BUDGET_GB=64 \\
        --server-env ENHANCE_TILE_BATCH_SIZE=8 --server-env ENHANCE_BATCH_WAIT_MS=4 \\
        --server-env ENHANCE_MAX_CONCURRENT_JOBS=32 --json bench_throughput_h100.json

CPU smoke run (a few minutes on 2 cores)::

    .venv/bin/python tests/benchmarks/bench_throughput.py --device cpu --cases 64:auto \\
        --target-long-side 256 --alone 2 --load-requests 4 --concurrency 2 --warmup 1

Cases are ``INPUT_SIDE:OUTPUT`` with OUTPUT ``2k`` (no prompt: the automatic size rule, long side
2048), ``4k`` (prompt "Upscale to 4K.": long side 3840) or ``auto`` (the automatic rule with
``--target-long-side``, which is also given to the server). Inputs are centre crops at native
resolution of scikit-image's bundled photos (coffee, astronaut, retina), encoded once as JPEG q95.

Not a test: pytest does not collect this folder's files (no ``test_`` prefix).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import gc
import hashlib
import io
import json
import os
import platform
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[2]
API_KEY = "bench-key"
ENHANCE_PATH = "/v1/phota/enhance"
WEIGHTS_NAME = "realesrgan-x4plus"
FLOP_PER_INPUT_PIXEL = 35.86e6  # 37.6 TFLOP per 1024² input (docs/design.md), linear in pixels
SCALE = 4
PRE_PAD = 10  # RealESRGANer's default pre_pad
JPEG_QUALITY = 95
UHD_LONG_SIDE = 3840
MAX_SIDE = 4096
AUTO_2K_LONG_SIDE = 2048
PROMPT_4K = "Upscale to 4K."
SIZE_4K_INTENT = "size_4k"  # models/prompt/_intents.py
OUTPUTS = ("2k", "4k", "auto")
DEFAULT_CASES = "256:2k,512:2k,1024:2k,512:4k,1024:4k"
# scikit-image's bundled photos (no download), smallest first: a crop comes from the first whose both
# sides reach the crop side. coffee 400×600, astronaut 512², retina 1411².
PHOTOS = ("coffee", "astronaut", "retina")
GIB = 1024**3
# Counters and gauges read from GET /metrics (sample names as exported).
METRIC_TILE_PIXELS = "enhance_network_tile_pixels_total"
METRIC_BUSY_SECONDS = "enhance_network_busy_seconds_total"
METRIC_BATCHES = "enhance_network_batches_total"
METRIC_BATCH_TILES_SUM = "enhance_network_batch_tiles_sum"
METRIC_BATCH_TILES_COUNT = "enhance_network_batch_tiles_count"
METRIC_GPU_PEAK = "enhance_gpu_peak_memory_bytes"
METRIC_MEMORY_BUDGET = "enhance_memory_budget_bytes"
METRIC_GPU_MEMORY = "enhance_gpu_memory_bytes"


def log(message: str) -> None:
    print(message, flush=True)


class StopRequested(RuntimeError):
    """Raised (once) in the main thread by SIGTERM: the run stops, stops its server, and still writes
    what it measured (``python -m server.acceptance`` ends a run this way at its time budget)."""


STOP = {"requested": False}


def _request_stop(signum: int, frame: object) -> None:
    if not STOP["requested"]:
        STOP["requested"] = True
        raise StopRequested(f"stopped by signal {signum}")


# ---------------------------------------------------------------------------------------------------
# Cases, sizes and inputs


def output_size(width: int, height: int, wanted_long_side: int) -> tuple[int, int]:
    """The server's size rule (models/pipeline/_policy.py, restated here to check it): the long side
    becomes ``wanted_long_side``, capped at 4096 unless the input is already larger, aspect kept."""
    long_side = max(width, height)
    out_long = min(wanted_long_side, max(MAX_SIDE, long_side))
    if out_long == long_side:
        return width, height
    ratio = out_long / long_side
    return max(1, round(width * ratio)), max(1, round(height * ratio))


@dataclass(frozen=True)
class Case:
    side: int
    output: str  # one of OUTPUTS

    @property
    def name(self) -> str:
        return f"{self.side}:{self.output}"

    @property
    def prompt(self) -> str | None:
        return PROMPT_4K if self.output == "4k" else None

    def expected_size(self, target_long_side: int) -> tuple[int, int]:
        if self.output == "4k":
            return output_size(self.side, self.side, UHD_LONG_SIDE)
        target = AUTO_2K_LONG_SIDE if self.output == "2k" else target_long_side
        return output_size(self.side, self.side, max(self.side, target))


@dataclass(frozen=True)
class InputImage:
    side: int
    photo: str
    box: tuple[int, int, int, int]  # left, top, right, bottom in the photo
    jpeg: bytes

    @property
    def b64(self) -> str:
        return base64.b64encode(self.jpeg).decode("ascii")

    def describe(self) -> dict[str, Any]:
        return {
            "photo": f"skimage.data.{self.photo}()",
            "crop_box": list(self.box),
            "size": [self.side, self.side],
            "jpeg_quality": JPEG_QUALITY,
            "jpeg_bytes": len(self.jpeg),
            "jpeg_sha256": hashlib.sha256(self.jpeg).hexdigest(),
        }


def make_input(side: int) -> InputImage:
    """A ``side``² centre crop at native resolution of a bundled real photo, encoded as JPEG q95."""
    from skimage import data as skdata

    for name in PHOTOS:
        pixels = np.asarray(getattr(skdata, name)())
        height, width = pixels.shape[:2]
        if min(height, width) >= side:
            break
    else:
        raise SystemExit(f"no bundled photo has both sides ≥ {side} px (the largest, retina, is 1411²)")
    top, left = (height - side) // 2, (width - side) // 2
    crop = np.ascontiguousarray(pixels[top : top + side, left : left + side, :3])
    buffer = io.BytesIO()
    Image.fromarray(crop).save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return InputImage(side, name, (left, top, left + side, top + side), buffer.getvalue())


def summarise(values: Sequence[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0, "mean": None, "p50": None, "p95": None, "min": None, "max": None}
    array = np.asarray(values, dtype=np.float64)
    return {
        "n": len(values),
        "mean": float(array.mean()),
        "p50": float(np.percentile(array, 50)),
        "p95": float(np.percentile(array, 95)),
        "min": float(array.min()),
        "max": float(array.max()),
    }


def tflops(pixels: float | None, seconds: float | None) -> float | None:
    if pixels is None or not seconds:
        return None
    return pixels * FLOP_PER_INPUT_PIXEL / seconds / 1e12


# ---------------------------------------------------------------------------------------------------
# (a) The reference: Real-ESRGAN's own inference, one request after another


def load_reference_model(device: Any, weights_dir: Path) -> Any:
    """x4plus built by spandrel from this project's weights: eval, fp16 on CUDA (fp32 on CPU), NCHW."""
    import spandrel
    import torch

    import weights

    state_dict = weights.load_state_dict(WEIGHTS_NAME, weights_dir)
    descriptor = spandrel.ModelLoader().load_from_state_dict(state_dict)
    if descriptor.scale != SCALE:
        raise RuntimeError(f"{WEIGHTS_NAME} loaded as scale {descriptor.scale}, expected {SCALE}")
    model = descriptor.model.eval()
    if device.type == "cuda":
        return model.half().cuda(device)
    return model.to(device=device, dtype=torch.float32)


def reference_request(
    model: Any, jpeg: bytes, out_size: tuple[int, int], device: Any, half: bool, sync: Callable[[], None]
) -> tuple[bytes, dict[str, float]]:
    """One request the way ``RealESRGANer.enhance(img, outscale=...)`` (tile=0) and
    ``inference_realesrgan.py`` run it. Returns the output JPEG and the time of each stage."""
    import torch
    import torch.nn.functional as F

    stages: dict[str, float] = {}
    started = time.perf_counter()
    with Image.open(io.BytesIO(jpeg)) as decoded:
        rgb = np.asarray(decoded.convert("RGB"))
    img = rgb.astype(np.float32) / 255.0
    mark = time.perf_counter()
    stages["decode_s"] = mark - started
    with torch.no_grad():
        # pre_process
        x = torch.from_numpy(np.transpose(img, (2, 0, 1))).float().unsqueeze(0).to(device)
        if half:
            x = x.half()
        x = F.pad(x, (0, PRE_PAD, 0, PRE_PAD), "reflect")
        if not x.is_contiguous():  # reflect pad already returns contiguous NCHW, as the original relies on
            x = x.contiguous()
        sync()
        net_start = time.perf_counter()
        stages["upload_s"] = net_start - mark
        # process
        output = model(x)
        sync()
        mark = time.perf_counter()
        stages["network_s"] = mark - net_start
        # post_process: remove the pre-pad
        _, _, height, width = output.size()
        output = output[:, :, 0 : height - PRE_PAD * SCALE, 0 : width - PRE_PAD * SCALE]
        output_img = output.data.squeeze().float().cpu().clamp_(0, 1).numpy()
    output_u8 = (np.transpose(output_img, (1, 2, 0)) * 255.0).round().astype(np.uint8)
    now = time.perf_counter()
    stages["download_s"] = now - mark
    mark = now
    image = Image.fromarray(output_u8)
    if image.size != out_size:  # their --outscale: cv2.resize(..., INTER_LANCZOS4)
        image = image.resize(out_size, Image.Resampling.LANCZOS)
    now = time.perf_counter()
    stages["resize_s"] = now - mark
    mark = now
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    now = time.perf_counter()
    stages["encode_s"] = now - mark
    stages["total_s"] = now - started
    return buffer.getvalue(), stages


def reference_case(model: Any, case: Case, image: InputImage, args: argparse.Namespace, device: Any) -> dict[str, Any]:
    import torch

    cuda = device.type == "cuda"
    sync: Callable[[], None] = (lambda: torch.cuda.synchronize(device)) if cuda else (lambda: None)
    expected = case.expected_size(args.target_long_side)
    if cuda:
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    for index in range(args.warmup):
        output, stages = reference_request(model, image.jpeg, expected, device, cuda, sync)
        log(f"[reference] {case.name}: warm-up {index + 1}/{args.warmup}: {stages['total_s'] * 1000:.0f} ms")
    records: list[dict[str, float]] = []
    output = b""
    for _ in range(args.alone):
        output, stages = reference_request(model, image.jpeg, expected, device, cuda, sync)
        records.append(stages)
    with Image.open(io.BytesIO(output)) as check:
        if check.size != expected:
            raise RuntimeError(f"reference output {check.size}, expected {expected}")
    totals = [r["total_s"] for r in records]
    networks = [r["network_s"] for r in records]
    request = summarise(totals)
    network = summarise(networks)
    pixels = image.side * image.side
    rps = 1.0 / request["mean"] if request["mean"] else None
    result: dict[str, Any] = {
        "input": [image.side, image.side],
        "padded_network_input": [image.side + PRE_PAD, image.side + PRE_PAD],
        "output": list(expected),
        "dtype": "float16" if cuda else "float32",
        "requests": len(records),
        "request_s": request,
        "network_s": network,
        "stages_s": {key: summarise([r[key] for r in records]) for key in records[0]} if records else {},
        "rps": rps,
        "network_tflops": tflops(pixels, network["p50"]),
        "effective_tflops": tflops(pixels, request["mean"]),
        "peak_allocated_bytes": torch.cuda.max_memory_allocated(device) if cuda else None,
        "peak_reserved_bytes": torch.cuda.max_memory_reserved(device) if cuda else None,
        "output_jpeg_bytes": len(output),
        "latencies_s": [round(t, 5) for t in totals],
        "network_latencies_s": [round(t, 5) for t in networks],
    }
    log(
        f"[reference] {case.name}: p50 {_ms(request['p50'])} ms, network p50 {_ms(network['p50'])} ms, "
        f"{_num(rps, 2)} req/s, network {_tf(result['network_tflops'])} TFLOP/s"
    )
    return result


def run_reference(cases: Sequence[Case], inputs: dict[int, InputImage], args: argparse.Namespace) -> dict[str, Any]:
    import torch

    import weights

    device = torch.device(args.device)
    weights_dir = args.weights_dir or weights.default_weights_dir()
    log(f"[reference] loading {WEIGHTS_NAME} from {weights_dir} on {device}")
    model = load_reference_model(device, weights_dir)
    results: dict[str, Any] = {}
    try:
        for case in cases:
            if STOP["requested"]:
                break
            failure = None
            try:
                results[case.name] = reference_case(model, case, inputs[case.side], args, device)
            except Exception as error:  # an OOM or a failure in one case must not lose the others
                failure = f"{type(error).__name__}: {error}"
            if failure is not None:  # out of the except block: its traceback no longer holds tensors
                log(f"[reference] {case.name}: FAILED: {failure}")
                results[case.name] = {"error": failure}
                gc.collect()
                if device.type == "cuda":
                    torch.cuda.empty_cache()
    finally:
        del model
        gc.collect()
        if device.type == "cuda":
            with contextlib.suppress(RuntimeError):
                torch.cuda.synchronize(device)
            torch.cuda.empty_cache()
    return results


# ---------------------------------------------------------------------------------------------------
# (b) This server, under load from a client on loopback


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


class ServerProcess:
    """``python -m server`` in its own session (so its compile workers can be stopped with it)."""

    def __init__(self, env: dict[str, str], port: int, log_path: Path, stop_timeout: float) -> None:
        self.env = env
        self.port = port
        self.log_path = log_path
        self.stop_timeout = stop_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def argv(self) -> list[str]:
        return [sys.executable, "-m", "server", "--host", "127.0.0.1", "--port", str(self.port)]

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            self.argv,
            cwd=REPO_ROOT,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log(f"[ours] started {shlex.join(self.argv)} (pid {self.process.pid}, log {self.log_path})")

    def wait_ready(self, timeout_s: float) -> dict[str, Any]:
        import httpx

        started = time.monotonic()
        next_report = started + 30.0
        last = "no answer yet"
        while True:
            if not self.alive():
                code = self.process.returncode if self.process else None
                raise RuntimeError(
                    f"the server exited with code {code} before it was ready; log tail:\n{tail(self.log_path)}"
                )
            try:
                response = httpx.get(f"{self.base_url}/readyz", timeout=10.0)
                if response.status_code == 200:
                    log(f"[ours] ready after {time.monotonic() - started:.0f} s: {response.text}")
                    body: dict[str, Any] = response.json()
                    return body
                last = f"/readyz answered {response.status_code}"
            except httpx.HTTPError as error:
                last = f"{type(error).__name__}"
            now = time.monotonic()
            if now - started > timeout_s:
                raise RuntimeError(
                    f"the server was not ready after {timeout_s:.0f} s ({last}); log tail:\n{tail(self.log_path)}"
                )
            if now >= next_report:
                last_line = tail(self.log_path, 1)[-200:]
                log(f"[ours] waiting for /readyz: {now - started:.0f} s ({last}); log: {last_line}")
                next_report = now + 30.0
            time.sleep(1.0)

    def stop(self) -> int | None:
        """SIGINT (uvicorn's graceful shutdown), then SIGTERM, then SIGKILL to its process group."""
        process = self.process
        try:
            if process is None:
                return None
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
                try:
                    process.wait(timeout=self.stop_timeout)
                except subprocess.TimeoutExpired:
                    log(f"[ours] no exit {self.stop_timeout:.0f} s after SIGINT: SIGTERM")
                    process.terminate()
                    try:
                        process.wait(timeout=15.0)
                    except subprocess.TimeoutExpired:
                        log("[ours] no exit after SIGTERM: SIGKILL to its process group")
                        with contextlib.suppress(ProcessLookupError):
                            os.killpg(process.pid, signal.SIGKILL)
                        process.wait(timeout=30.0)
            log(f"[ours] server stopped (exit code {process.returncode})")
            return process.returncode
        finally:
            if self._log is not None:
                self._log.close()
                self._log = None


@dataclass
class Sample:
    """One request's outcome: ``error`` is None for a 200 carrying one JPEG of the expected size."""

    latency_s: float
    status: int | None
    error: str | None = None
    kind: str | None = None  # short error class for counting: "HTTP 503", "ReadTimeout", "bad output"
    report: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def network_pixels(self) -> int | None:
        size = (self.report or {}).get("network_input")
        if isinstance(size, list) and len(size) == 2:
            return int(size[0]) * int(size[1])
        return None


def check_response(status: int, headers: Any, content: bytes, latency: float, expected: tuple[int, int]) -> Sample:
    report: dict[str, Any] | None = None
    raw = headers.get("X-Enhance-Parameters")
    if raw:
        with contextlib.suppress(ValueError):
            report = json.loads(raw)
    if status != 200:
        text = content[:300].decode("utf-8", "replace")
        return Sample(latency, status, f"HTTP {status}: {text}", f"HTTP {status}", report)
    try:
        images = json.loads(content)["images"]
        if len(images) != 1:
            raise ValueError(f"{len(images)} images, expected 1")
        with Image.open(io.BytesIO(base64.b64decode(images[0]))) as image:
            size, fmt = image.size, image.format
    except (ValueError, KeyError, TypeError, OSError) as error:
        return Sample(latency, status, f"bad body: {type(error).__name__}: {error}", "bad output", report)
    if fmt != "JPEG" or size != expected:
        detail = f"output {fmt} {size[0]}×{size[1]}, expected JPEG {expected[0]}×{expected[1]}"
        return Sample(latency, status, detail, "bad output", report)
    return Sample(latency, status, None, None, report)


async def post_once(client: Any, body: bytes, expected: tuple[int, int]) -> Sample:
    import httpx

    headers = {"X-API-Key": API_KEY, "Content-Type": "application/json"}
    started = time.perf_counter()
    try:
        response = await client.post(ENHANCE_PATH, content=body, headers=headers)
    except httpx.HTTPError as error:
        return Sample(time.perf_counter() - started, None, f"{type(error).__name__}: {error}", type(error).__name__)
    latency = time.perf_counter() - started  # the whole answer has been read: httpx reads it in post()
    return check_response(response.status_code, response.headers, response.content, latency, expected)


async def run_load(
    client: Any, body: bytes, expected: tuple[int, int], concurrency: int, total: int, seconds: float
) -> tuple[list[Sample], float]:
    """``concurrency`` clients sending back to back, ``total`` requests in all (or, when ``seconds`` > 0,
    starting new ones until that much time has passed). Returns the samples and the wall time."""
    samples: list[Sample] = []
    remaining = total
    started = time.perf_counter()
    deadline = started + seconds

    async def client_loop() -> None:
        nonlocal remaining
        while True:
            if seconds > 0:
                if time.perf_counter() >= deadline:
                    return
            else:
                if remaining <= 0:
                    return
                remaining -= 1
            samples.append(await post_once(client, body, expected))

    await asyncio.gather(*(client_loop() for _ in range(concurrency)))
    return samples, time.perf_counter() - started


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text → sample name → value, summed over label sets (buckets and _created left out)."""
    from prometheus_client.parser import text_string_to_metric_families

    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.endswith(("_created", "_bucket")):
                continue
            totals[sample.name] = totals.get(sample.name, 0.0) + float(sample.value)
    return totals


async def scrape_metrics(client: Any) -> dict[str, float] | None:
    import httpx

    try:
        response = await client.get("/metrics", timeout=30.0)
        if response.status_code != 200:
            return None
        return parse_metrics(response.text)
    except (httpx.HTTPError, ValueError) as error:
        log(f"[ours] /metrics unreadable: {type(error).__name__}: {error}")
        return None


def network_metrics(
    before: dict[str, float] | None, after: dict[str, float] | None, wall_s: float, useful_pixels: int
) -> dict[str, Any]:
    """What the server's network did during one load phase (None where the server lacks the metric)."""

    def delta(name: str) -> float | None:
        if before is None or after is None or name not in after:
            return None
        return after[name] - before.get(name, 0.0)

    def current(name: str) -> float | None:
        return None if after is None else after.get(name)

    tile_pixels = delta(METRIC_TILE_PIXELS)
    busy_s = delta(METRIC_BUSY_SECONDS)
    tiles_sum = delta(METRIC_BATCH_TILES_SUM)
    tiles_count = delta(METRIC_BATCH_TILES_COUNT)
    padding = tile_pixels / useful_pixels if tile_pixels is not None and useful_pixels else None
    return {
        "tile_pixels": tile_pixels,
        "busy_s": busy_s,
        "batches": delta(METRIC_BATCHES),
        "mean_batch_tiles": tiles_sum / tiles_count if tiles_sum is not None and tiles_count else None,
        "network_busy_tflops": tflops(tile_pixels, busy_s),
        "busy_fraction": busy_s / wall_s if busy_s is not None and wall_s > 0 else None,
        "tile_pixels_per_useful_pixel": padding,
        "gpu_peak_memory_bytes": current(METRIC_GPU_PEAK),
        "memory_budget_bytes": current(METRIC_MEMORY_BUDGET),
        "gpu_memory_bytes": current(METRIC_GPU_MEMORY),
    }


def _timings(samples: Sequence[Sample]) -> dict[str, dict[str, Any]]:
    """Per-stage summaries of the server's own timings (``X-Enhance-Parameters``)."""
    keys: dict[str, None] = {}
    for s in samples:
        keys.update(dict.fromkeys((s.report or {}).get("timings", {})))
    return {
        key: summarise([float(s.report["timings"][key]) for s in samples if s.report and key in s.report["timings"]])
        for key in keys
    }


def _errors(samples: Sequence[Sample]) -> dict[str, Any]:
    failed = [s for s in samples if not s.ok]
    return {
        "count": len(failed),
        "by_kind": dict(Counter(s.kind or "?" for s in failed)),
        "first": [s.error for s in failed[:3]],
    }


def _phase(samples: Sequence[Sample], wall_s: float | None = None) -> dict[str, Any]:
    ok = [s for s in samples if s.ok]
    latencies = [s.latency_s for s in ok]
    phase: dict[str, Any] = {
        "requests": len(samples),
        "ok": len(ok),
        "errors": _errors(samples),
        "latency_s": summarise(latencies),
        "server_timings_s": _timings(ok),
        "latencies_s": [round(t, 5) for t in latencies],
        # One request's whole X-Enhance-Parameters (sizes, tiles, per-stage timings), as the server sent it.
        "example": {"latency_s": ok[-1].latency_s, "parameters": ok[-1].report} if ok else None,
    }
    if wall_s is not None:
        useful = sum(s.network_pixels or 0 for s in ok)
        phase.update(
            wall_s=wall_s,
            rps=len(ok) / wall_s if wall_s > 0 else None,
            useful_network_pixels=useful,
            useful_tflops=tflops(useful, wall_s),
        )
    return phase


def _log_failures(label: str, samples: Sequence[Sample]) -> None:
    failed = [s for s in samples if not s.ok]
    if failed:
        log(f"[ours] {label}: {len(failed)} of {len(samples)} failed, e.g. {failed[0].error}")


async def server_case(client: Any, case: Case, image: InputImage, args: argparse.Namespace) -> dict[str, Any]:
    expected = case.expected_size(args.target_long_side)
    payload: dict[str, Any] = {
        "image": image.b64,
        "output_format": "jpg",
        "response_mode": "bytes",
        "num_output_images": 1,
    }
    if case.prompt is not None:
        payload["prompt"] = case.prompt
    body = json.dumps(payload).encode()

    warmup: list[Sample] = []
    for index in range(args.warmup):
        sample = await post_once(client, body, expected)
        warmup.append(sample)
        status = "ok" if sample.ok else f"FAILED: {sample.error}"
        log(f"[ours] {case.name}: warm-up {index + 1}/{args.warmup}: {sample.latency_s * 1000:.0f} ms, {status}")
    alone = [await post_once(client, body, expected) for _ in range(args.alone)]
    _log_failures(f"{case.name} alone", alone)

    load_warmup_n = args.concurrency if args.load_warmup is None else args.load_warmup
    load_warmup, _ = await run_load(client, body, expected, args.concurrency, load_warmup_n, 0.0)
    warmup.extend(load_warmup)
    _log_failures(f"{case.name} concurrent warm-up", load_warmup)

    before = await scrape_metrics(client)
    load, wall = await run_load(client, body, expected, args.concurrency, args.load_requests, args.load_seconds)
    after = await scrape_metrics(client)
    _log_failures(f"{case.name} load", load)

    reports = [s.report for s in (*alone, *load, *warmup) if s.ok and s.report]
    first = reports[0] if reports else {}
    network_inputs = Counter(
        tuple(r["network_input"]) for r in reports if isinstance(r.get("network_input"), list)
    ).most_common()
    prompt_report = first.get("prompt")
    intents = [i.get("name") for i in (prompt_report or {}).get("intents", [])]
    prompt_recognised = None if case.prompt is None else SIZE_4K_INTENT in intents
    if prompt_recognised is False:
        log(f"[ours] {case.name}: WARNING: prompt {case.prompt!r} not read as {SIZE_4K_INTENT}: {prompt_report}")
    devices = sorted({str(r.get("device")) for r in reports})
    if devices and devices != [args.device]:
        log(f"[ours] {case.name}: WARNING: the server ran on {devices}, not {args.device}")

    load_phase = _phase(load, wall)
    load_phase["metrics"] = network_metrics(before, after, wall, load_phase["useful_network_pixels"])
    load_phase["metrics_raw"] = {"before": _enhance_only(before), "after": _enhance_only(after)}
    result: dict[str, Any] = {
        "input": [image.side, image.side],
        "output": list(expected),
        "prompt": case.prompt,
        "prompt_report": prompt_report,
        "prompt_recognised": prompt_recognised,
        "network_inputs": [{"size": list(size), "requests": n} for size, n in network_inputs],
        "network_input": list(network_inputs[0][0]) if network_inputs else None,
        "device": devices,
        "dtype": sorted({str(r.get("dtype")) for r in reports}),
        "tile": first.get("tile"),
        "tiles": first.get("tiles"),
        "warmup": {"requests": len(warmup), "ok": sum(s.ok for s in warmup), "errors": _errors(warmup)},
        "alone": _phase(alone),
        "load": load_phase,
        "concurrency": args.concurrency,
    }
    a, lp, m = result["alone"]["latency_s"], load_phase["latency_s"], load_phase["metrics"]
    log(
        f"[ours] {case.name}: network input {result['network_input']}, alone p50 {_ms(a['p50'])} ms, "
        f"load p50 {_ms(lp['p50'])} / p95 {_ms(lp['p95'])} ms, {_num(load_phase['rps'], 2)} req/s, "
        f"useful {_tf(load_phase['useful_tflops'])} TFLOP/s, network-busy {_tf(m['network_busy_tflops'])}, "
        f"errors {result['alone']['errors']['count'] + load_phase['errors']['count']}"
    )
    return result


def _enhance_only(metrics: dict[str, float] | None) -> dict[str, float] | None:
    if metrics is None:
        return None
    return {k: v for k, v in metrics.items() if k.startswith("enhance_") and not k.startswith("enhance_http")}


async def drive_server(
    base_url: str,
    cases: Sequence[Case],
    inputs: dict[int, InputImage],
    args: argparse.Namespace,
    alive: Callable[[], bool],
    results: dict[str, Any],
) -> None:
    import httpx

    connections = args.concurrency + 4
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    timeout = httpx.Timeout(args.request_timeout, connect=30.0)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=timeout) as client:
        for case in cases:
            if not alive():
                raise RuntimeError(f"the server exited during the run, before case {case.name}")
            log(f"[ours] {case.name}: expecting {'×'.join(map(str, case.expected_size(args.target_long_side)))}")
            results[case.name] = await server_case(client, case, inputs[case.side], args)


def server_environment(args: argparse.Namespace, data_dir: str) -> tuple[dict[str, str], dict[str, str]]:
    """The subprocess's environment and its ``ENHANCE_*`` part (what is reported)."""
    env = dict(os.environ)
    ours = {
        "ENHANCE_API_KEYS": API_KEY,
        "ENHANCE_DATA_DIR": data_dir,
        "ENHANCE_MAX_QUEUED_JOBS": str(args.max_queued),
        "ENHANCE_TARGET_LONG_SIDE": str(args.target_long_side),
        "ENHANCE_DEVICE": args.device,
    }
    if args.weights_dir is not None:
        ours["ENHANCE_WEIGHTS_DIR"] = str(args.weights_dir)
    ours.update(dict(args.server_env))
    env.update(ours)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env, {k: v for k, v in sorted(env.items()) if k.startswith("ENHANCE_")}


def run_server(
    cases: Sequence[Case],
    inputs: dict[int, InputImage],
    args: argparse.Namespace,
    log_path: Path,
    info: dict[str, Any],
    results: dict[str, Any],
) -> None:
    """Start the server, measure every case into ``results``, stop it (always). ``info`` and
    ``results`` are filled as it goes, so what was measured survives a failure."""
    with tempfile.TemporaryDirectory(prefix="bench-throughput-") as data_dir:
        env, reported = server_environment(args, data_dir)
        info.update(env=reported, log=str(log_path))
        server = ServerProcess(env, free_port(), log_path, args.stop_timeout)
        info["argv"] = server.argv
        try:
            server.start()
            started = time.monotonic()
            info["readyz"] = server.wait_ready(args.ready_timeout)
            info["ready_after_s"] = time.monotonic() - started
            asyncio.run(drive_server(server.base_url, cases, inputs, args, server.alive, results))
        finally:
            info["exit_code"] = server.stop()


# ---------------------------------------------------------------------------------------------------
# Report


def _ms(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds * 1000:.0f}"


def _num(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _gib(value: float | None) -> str:
    return "n/a" if value is None else f"{value / GIB:.1f}"


def _tf(value: float | None) -> str:
    """TFLOP/s to three significant digits (CPU figures are tiny)."""
    return "n/a" if value is None else f"{value:.3g}"


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def comparisons(reference: dict[str, Any] | None, ours: dict[str, Any] | None) -> dict[str, float | None]:
    ref_ok = reference is not None and "error" not in reference
    ref_p50 = reference["request_s"]["p50"] if ref_ok and reference else None
    ref_rps = reference["rps"] if ref_ok and reference else None
    ours_p50 = ours["alone"]["latency_s"]["p50"] if ours else None
    ours_rps = ours["load"]["rps"] if ours else None
    return {
        "latency_ratio_ref_over_ours": _ratio(ref_p50, ours_p50),
        "throughput_ratio_ours_over_ref": _ratio(ours_rps, ref_rps),
    }


def markdown_table(cases: Sequence[Case], report: dict[str, Any]) -> str:
    header = [
        "case",
        "network in (ours)",
        "ref p50 ms",
        "ref p95 ms",
        "ref RPS",
        "ref net TFLOP/s",
        "ref peak GiB (alloc/reserved)",
        "ours alone p50/p95 ms",
        "ours load p50/p95 ms",
        "ours RPS",
        "ours TFLOP/s useful",
        "ours TFLOP/s network-busy",
        "mean batch",
        "ours peak GiB",
        "throughput ratio",
        "latency ratio",
        "errors",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for case in cases:
        entry = report["cases"][case.name]
        ref = entry.get("reference")
        ours = entry.get("ours")
        ratios = entry["comparison"]
        ref_ok = ref is not None and "error" not in ref
        cells = [case.name]
        cells.append("×".join(map(str, ours["network_input"])) if ours and ours["network_input"] else "n/a")
        if ref_ok and ref is not None:
            cells += [
                _ms(ref["request_s"]["p50"]),
                _ms(ref["request_s"]["p95"]),
                _num(ref["rps"], 2),
                _tf(ref["network_tflops"]),
                "n/a"
                if ref["peak_allocated_bytes"] is None
                else f"{_gib(ref['peak_allocated_bytes'])}/{_gib(ref['peak_reserved_bytes'])}",
            ]
        else:
            cells += ["failed" if ref else "skipped"] + ["n/a"] * 4
        if ours is not None:
            alone, load, metrics = ours["alone"]["latency_s"], ours["load"]["latency_s"], ours["load"]["metrics"]
            warm_errors = ours["warmup"]["errors"]["count"]
            errors = ours["alone"]["errors"]["count"] + ours["load"]["errors"]["count"]
            kinds = Counter(ours["alone"]["errors"]["by_kind"]) + Counter(ours["load"]["errors"]["by_kind"])
            error_text = str(errors) + (f" ({', '.join(f'{k}×{n}' for k, n in kinds.items())})" if kinds else "")
            if warm_errors:
                error_text += f" (+{warm_errors} warm-up)"
            cells += [
                f"{_ms(alone['p50'])}/{_ms(alone['p95'])}",
                f"{_ms(load['p50'])}/{_ms(load['p95'])}",
                _num(ours["load"]["rps"], 2),
                _tf(ours["load"]["useful_tflops"]),
                _tf(metrics["network_busy_tflops"]),
                _num(metrics["mean_batch_tiles"], 2),
                _gib(metrics["gpu_peak_memory_bytes"]),
            ]
        else:
            cells += ["skipped" if "ours_error" not in entry else "failed"] + ["n/a"] * 6
        cells += [_num(ratios["throughput_ratio_ours_over_ref"], 2), _num(ratios["latency_ratio_ref_over_ours"], 2)]
        cells.append(error_text if ours is not None else "n/a")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def stage_table(cases: Sequence[Case], report: dict[str, Any]) -> str:
    """Where a request's time goes (p50 ms): the reference's stages and the server's own timings."""
    ref_keys: dict[str, None] = {}
    our_keys: dict[str, None] = {}
    for case in cases:
        entry = report["cases"][case.name]
        ref = entry.get("reference") or {}
        ref_keys.update(dict.fromkeys(ref.get("stages_s", {})))
        ours = entry.get("ours") or {}
        our_keys.update(dict.fromkeys(ours.get("alone", {}).get("server_timings_s", {})))
    if not ref_keys and not our_keys:
        return ""
    header = ["case", *(f"ref {k}" for k in ref_keys), *(f"ours {k}" for k in our_keys)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for case in cases:
        entry = report["cases"][case.name]
        ref_stages = (entry.get("reference") or {}).get("stages_s", {})
        our_stages = ((entry.get("ours") or {}).get("alone") or {}).get("server_timings_s", {})
        cells = [case.name]
        cells += [_num(ref_stages[k]["p50"] * 1000, 1) if k in ref_stages else "n/a" for k in ref_keys]
        cells += [_num(our_stages[k]["p50"] * 1000, 1) if k in our_stages else "n/a" for k in our_keys]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def git_commit() -> str:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT, capture_output=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + (" (with uncommitted changes)" if dirty else "")


def environment(device: str) -> dict[str, Any]:
    import httpx
    import PIL
    import spandrel
    import torch

    info: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "spandrel": spandrel.__version__,
        "pillow": PIL.__version__,
        "httpx": httpx.__version__,
        "numpy": np.__version__,
        "git_commit": git_commit(),
        "device": device,
    }
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        info.update(
            device_name=torch.cuda.get_device_name(0),
            device_memory_bytes=props.total_memory,
            device_capability=f"{props.major}.{props.minor}",
        )
    else:
        info["device_name"] = platform.processor() or platform.machine()
    return info


# ---------------------------------------------------------------------------------------------------
# Command line


def parse_cases(text: str) -> list[Case]:
    cases = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        side_text, sep, output = part.partition(":")
        try:
            side = int(side_text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"bad case {part!r}: expected INPUT_SIDE:OUTPUT") from None
        if not sep or output.lower() not in OUTPUTS or not 16 <= side <= 4096:
            raise argparse.ArgumentTypeError(f"bad case {part!r}: side 16..4096, OUTPUT one of {', '.join(OUTPUTS)}")
        cases.append(Case(side, output.lower()))
    if not cases:
        raise argparse.ArgumentTypeError("no cases")
    return cases


def parse_env(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Reference Real-ESRGAN inference vs this server under loopback load (not a test).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda", help="where both sides run")
    parser.add_argument("--cases", type=parse_cases, default=parse_cases(DEFAULT_CASES), help="INPUT_SIDE:OUTPUT,...")
    parser.add_argument(
        "--target-long-side",
        type=int,
        default=AUTO_2K_LONG_SIDE,
        help="the server's automatic output long side (ENHANCE_TARGET_LONG_SIDE), used by 'auto' cases",
    )
    parser.add_argument("--warmup", type=int, default=3, help="uncounted requests per case, one at a time")
    parser.add_argument(
        "--load-warmup", type=int, default=None, help="uncounted concurrent requests before each load (default: C)"
    )
    parser.add_argument("--alone", type=int, default=20, help="timed requests one at a time per case (both sides)")
    parser.add_argument("--concurrency", type=int, default=32, help="concurrent clients in the load phase")
    parser.add_argument("--load-requests", type=int, default=200, help="requests per load phase")
    parser.add_argument(
        "--load-seconds", type=float, default=0.0, help="if > 0: load for this long instead of --load-requests"
    )
    parser.add_argument(
        "--server-env",
        type=parse_env,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment of the server (repeatable), e.g. ENHANCE_TILE_BATCH_SIZE=8",
    )
    parser.add_argument("--max-queued", type=int, default=1024, help="ENHANCE_MAX_QUEUED_JOBS of the server")
    parser.add_argument("--weights-dir", type=Path, default=None, help="converted weights (default: weights/files)")
    parser.add_argument("--ready-timeout", type=float, default=1800.0, help="seconds to wait for /readyz")
    parser.add_argument("--request-timeout", type=float, default=900.0, help="client timeout of one request (s)")
    parser.add_argument("--stop-timeout", type=float, default=60.0, help="seconds after SIGINT before SIGTERM")
    parser.add_argument("--skip-reference", action="store_true", help="do not run the reference")
    parser.add_argument("--skip-server", action="store_true", help="do not run the server")
    parser.add_argument("--json", type=Path, default=Path("bench_throughput.json"), help="results file")
    parser.add_argument(
        "--server-log", type=Path, default=None, help="the server's output (default: next to --json, .server.log)"
    )
    return parser


def validate(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.alone < 1 or args.concurrency < 1 or args.warmup < 0 or args.load_requests < 1:
        parser.error("--alone, --concurrency and --load-requests must be ≥ 1, --warmup ≥ 0")
    if not 64 <= args.target_long_side <= MAX_SIDE:
        parser.error("--target-long-side must be in 64..4096")
    if args.target_long_side != AUTO_2K_LONG_SIDE and any(c.output == "2k" for c in args.cases):
        parser.error("'2k' cases need --target-long-side 2048; use 'auto' cases with another target")
    if args.skip_reference and args.skip_server:
        parser.error("nothing to do: both --skip-reference and --skip-server")
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            parser.error("--device cuda, but torch sees no CUDA device (use --device cpu)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    validate(parser, args)
    cases: list[Case] = args.cases
    if len({c.name for c in cases}) != len(cases):
        parser.error("a case is listed twice")
    command = shlex.join(getattr(sys, "orig_argv", [sys.executable, *sys.argv]))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    log(f"$ {command}")
    inputs = {side: make_input(side) for side in sorted({c.side for c in cases})}
    for image in inputs.values():
        log(f"input {image.side}²: crop {image.box} of skimage.data.{image.photo}(), JPEG {len(image.jpeg)} bytes")

    signal.signal(signal.SIGTERM, _request_stop)
    failures: list[str] = []
    reference: dict[str, Any] = {}
    if not args.skip_reference:
        try:
            reference = run_reference(cases, inputs, args)
        except StopRequested as error:
            failures.append(f"reference: {error}")
        failures += [f"reference {name}: {r['error']}" for name, r in reference.items() if "error" in r]

    ours: dict[str, Any] = {}
    server_info: dict[str, Any] = {}
    server_error: str | None = None
    if STOP["requested"]:
        failures.append("stopped by a signal before the server ran")
    elif not args.skip_server:
        if args.device == "cuda" and not args.skip_reference:  # (else no CUDA context here: keep it so)
            import torch

            free, total = torch.cuda.mem_get_info()
            server_info["device_free_before_start_bytes"] = free
            server_info["bench_process_reserved_bytes"] = torch.cuda.memory_reserved()
            log(f"[ours] device memory free before the server starts: {free / GIB:.1f} of {total / GIB:.1f} GiB")
        log_path = args.server_log or args.json.with_suffix(".server.log")
        log_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            run_server(cases, inputs, args, log_path, server_info, ours)
        except Exception as error:  # report what was measured, then exit non-zero
            server_error = f"{type(error).__name__}: {error}"
            traceback.print_exc()
            failures.append(f"server: {server_error.splitlines()[0]} (see {log_path})")

    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    report: dict[str, Any] = {
        "command": command,
        "stopped_early": STOP["requested"],
        "settings": {
            **{k: v for k, v in vars(args).items() if k not in {"cases", "server_env", "json", "server_log"}},
            "cases": [c.name for c in cases],
            "server_env_flags": [f"{k}={v}" for k, v in args.server_env],
            "weights_dir": str(args.weights_dir) if args.weights_dir else None,
            "json": str(args.json),
            "flop_per_input_pixel": FLOP_PER_INPUT_PIXEL,
            "reference_pre_pad": PRE_PAD,
            "prompt_4k": PROMPT_4K,
        },
        "environment": environment(args.device),
        "server": {**server_info, "error": server_error} if not args.skip_server else None,
        "cases": {},
    }
    for case in cases:
        entry: dict[str, Any] = {
            "input_image": inputs[case.side].describe(),
            "expected_output": list(case.expected_size(args.target_long_side)),
            "reference": reference.get(case.name),
            "ours": ours.get(case.name),
        }
        if server_error is not None and case.name not in ours:
            entry["ours_error"] = server_error
        entry["comparison"] = comparisons(entry["reference"], entry["ours"])
        report["cases"][case.name] = entry

    env_info = report["environment"]
    server_env = (report["server"] or {}).get("env") or {}
    load_warmup = args.concurrency if args.load_warmup is None else args.load_warmup
    settings_line = (
        f"alone {args.alone}, warm-up {args.warmup} (+{load_warmup} concurrent), concurrency {args.concurrency}, "
        + (f"{args.load_seconds:g} s of load" if args.load_seconds > 0 else f"{args.load_requests} load requests")
        + " per case"
    )
    print()
    print("## Reference Real-ESRGAN inference vs this server under loopback load")
    print()
    print(f"- device: {env_info['device_name']} ({args.device}); torch {env_info['torch']}")
    print(f"- git commit: {env_info['git_commit']}")
    server_env_text = " ".join(f"{k}={v}" for k, v in server_env.items() if k != "ENHANCE_DATA_DIR")
    print(f"- server env: {server_env_text or 'n/a (server skipped)'}")
    print(f"- {settings_line}")
    print(f"- command: `{command}`")
    ref_dtype = "fp16" if args.device == "cuda" else "fp32"
    print(
        f"- ref = Real-ESRGAN's own per-request inference ({ref_dtype} NCHW, batch 1, one request at a time); "
        "throughput ratio = ours RPS / ref RPS (ref RPS = 1 / mean request); "
        "latency ratio = ref p50 / ours alone p50 (> 1: ours faster); TFLOP/s at 35.86 MFLOP per network input px"
    )
    print()
    print(markdown_table(cases, report))
    stages = stage_table(cases, report)
    if stages:
        print()
        print("Where the time goes (p50 ms, requests alone):")
        print()
        print(stages)
    if failures:
        print()
        print("Failures:")
        for failure in failures:
            print(f"- {failure}")
    args.json.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print()
    print(f"results written to {args.json}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

"""The super-resolution network on this CPU (issue 19): the reference beside ours in every precision
this CPU runs natively, the CPU's matrix-product peak, requests through the app, 1 and 2 clients.

In one run, on the same inputs (centre crops of scikit-image's astronaut photo, 512×320 and 512×512):

* **peak**: a 2048² matrix product in bfloat16 and in float32 (best of a few, by ``torch.mm`` and as a
  1×1 convolution through oneDNN; at the start and at the end), GFLOP/s: the CPU's practical peak
  that every network figure is a share of;
* **network** (512×320 input, whole image), rounds interleaved so that the ratios hold on a shared
  machine: the **reference**, Real-ESRGAN's own inference path for x4plus on a CPU
  (``RealESRGANer.enhance`` with ``tile=0``): float32, NCHW, batch 1, the whole image with the 10 px
  reflect pre-pad on the right and bottom, cropped away after the network. basicsr/realesrgan are
  not installed here, so that path is reimplemented faithfully (as in ``bench_throughput.py``) around
  x4plus built by spandrel from this project's own weights. Then **ours**: ``models.sr.upscale`` as the
  service runs it (channels_last, its CPU tile size, the tile quantum) in fp32 and in every reduced
  precision this CPU runs natively (bf16 with avx512_bf16/amx_bf16, fp16 with avx512_fp16/amx_fp16).
  Each with its time, useful GFLOP/s (35.86 MFLOP per image pixel; padding and overlap not counted),
  share of the peak of its own precision, and PSNR of its output against the reference's;
* **batching**: two tiles of the CPU tile size in one batch against two batches of one;
* **requests** through the app (``create_app`` with the default settings but ``device=cpu``, called
  with FastAPI's TestClient: JPEG bytes in, JPEG out): a 512×320 JPEG (the whole request against the
  reference network alone), a 512² JPEG → 2048 px (p50 of ``--requests``), and throughput with 1 and 2
  concurrent clients on 512² photos: rounds that alternate one client (2 photos back to back) and two
  (2 each), so that both see the same machine, each with its photos per minute, the CPU seconds this
  process spent per photo (every thread counted; what a photo costs whatever else runs) and the load
  average, then the CPU-time bound of the usable cores (cores × 60 / CPU s per photo, labelled as
  derived). ``--clients-only`` runs only these rounds: ``taskset -c 0`` in front gives one core;
* **memory**: peak resident memory (VmHWM) of one 512² upscale in a fresh process per precision
  (fp32 NCHW: the service before issue 19).

Targets (issue 19): the 512×320 request ≥ 2.2× faster than the reference network; the network at ≥ 60 %
of the bfloat16 peak; 512² → 2048 px ≤ 30 s p50; outputs ≥ 45 dB PSNR against float32. Each figure is
printed with the load average (other processes share the cores). Prints a markdown table.

    python tests/benchmarks/bench_cpu.py [--quick] [--rounds N] [--requests N] [--client-rounds N]
        [--clients-only] [--no-app] [--no-memory] [--json FILE]

About 8-10 minutes on two quiet cores (``--quick``: one round, no memory or client rounds, 2-3 min;
``--clients-only``: about 100 s a round on two quiet cores, twice that on one).
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

# As the service sets it before PyTorch allocates (server/__init__.py): large tensors on transparent huge pages.
os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from skimage import data as skdata

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import weights  # noqa: E402
from models.sr import (  # noqa: E402
    DirectRunner,
    PrecisionChoice,
    choose_precision,
    detect_capabilities,
    get_network,
    load_sr_model,
    network_supports,
    run_batch,
    upscale,
    usable_cpus,
)
from server.runtime import TILE_QUANTUM  # noqa: E402
from server.settings import Settings  # noqa: E402

FLOP_PER_PIXEL = 35.86e6  # x4plus, per input pixel (bench_throughput.py, docs/design.md)
PRE_PAD = 10  # RealESRGANer's default pre_pad
SCALE = 4
CPU = torch.device("cpu")
KEY = "bench-cpu-key"


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3]) if Path("/proc/loadavg").exists() else "n/a"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')} load {load_average()}] {message}", file=sys.stderr, flush=True)


def photo(height: int, width: int) -> np.ndarray:
    """A centre crop of scikit-image's astronaut (512×512) at native resolution, uint8 RGB."""
    image = skdata.astronaut()
    top, left = (image.shape[0] - height) // 2, (image.shape[1] - width) // 2
    return np.ascontiguousarray(image[top : top + height, left : left + width])


def jpeg(rgb: np.ndarray, quality: int = 95) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def matmul_peak(dtype: torch.dtype, side: int = 2048, tries: int = 5) -> float:
    """GFLOP/s of the best of ``tries`` ``side``² matrix products in ``dtype``, each done two ways: by
    ``torch.mm`` (BLAS) and as a 1×1 convolution (oneDNN, channels_last: the library the network's
    convolutions use; on AMD CPUs MKL's float32 ``mm`` can be well below it). The faster counts."""
    a = torch.rand(side, side).to(dtype)
    b = torch.rand(side, side).to(dtype)
    image = a.t().contiguous().view(1, side, 64, side // 64).contiguous(memory_format=torch.channels_last)
    kernel = b.view(side, side, 1, 1).contiguous(memory_format=torch.channels_last)
    best = float("inf")
    with torch.inference_mode():
        for product in (lambda: torch.mm(a, b), lambda: F.conv2d(image, kernel)):
            product()
            for _ in range(tries):
                started = time.perf_counter()
                product()
                best = min(best, time.perf_counter() - started)
    return 2 * side**3 / best / 1e9


def reference_network(model: torch.nn.Module, rgb: np.ndarray) -> tuple[torch.Tensor, float]:
    """RealESRGANer.enhance (tile=0) on a CPU, the network part: float32 NCHW batch 1, 10 px reflect
    pre-pad right and bottom, the network, the pre-pad cropped away, clamped. Returns the float32
    output (1, 3, 4H, 4W) and the seconds from the tensor to the clamped output."""
    img = rgb.astype(np.float32) / 255.0
    with torch.no_grad():
        x = torch.from_numpy(np.transpose(img, (2, 0, 1))).float().unsqueeze(0)
        started = time.perf_counter()
        x = F.pad(x, (0, PRE_PAD, 0, PRE_PAD), "reflect")
        output = model(x)
        _, _, height, width = output.size()
        output = output[:, :, 0 : height - PRE_PAD * SCALE, 0 : width - PRE_PAD * SCALE].float().clamp_(0, 1)
        return output, time.perf_counter() - started


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(F.mse_loss(a, b))
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


def supported_precisions() -> list[PrecisionChoice]:
    """fp32 and every reduced precision this CPU runs natively (as the service would accept them)."""
    capabilities = detect_capabilities(CPU)
    state = weights.load_state_dict(get_network("x4plus").weights_name, weights.default_weights_dir())
    half, bf16 = network_supports(state)
    found = []
    for name in ("fp32", "bf16", "fp16"):
        try:
            found.append(choose_precision(name, CPU, capabilities, supports_half=half, supports_bfloat16=bf16))
        except ValueError as refused:
            log(f"{name}: not run ({refused})")
    return found


def network_rounds(rounds: int, tile: int, overlap: int) -> dict[str, Any]:
    """The reference and ours in each precision on the 512×320 photo, interleaved ``rounds`` times."""
    network = get_network("x4plus")
    state = weights.load_state_dict(network.weights_name, weights.default_weights_dir())
    from spandrel import ModelLoader

    reference = ModelLoader().load_from_state_dict(state).model.eval().to(dtype=torch.float32)
    ours = {p.name: load_sr_model(network, state, CPU, precision=p) for p in supported_precisions()}
    rgb = photo(320, 512)
    image = torch.from_numpy(rgb.astype(np.float32) / 255.0).permute(2, 0, 1)[None].contiguous()
    # Warm-up on a small input: oneDNN's primitives and the allocator's first pages, for every one alike.
    reference_network(reference, rgb[:64, :64])
    for model in ours.values():
        upscale(model, image[:, :, :64, :64], tile=tile, overlap=overlap, quantum=TILE_QUANTUM)
    times: dict[str, list[float]] = {"reference": [], **{name: [] for name in ours}}
    outputs: dict[str, torch.Tensor] = {}
    for round_index in range(rounds):
        outputs["reference"], seconds = reference_network(reference, rgb)
        times["reference"].append(seconds)
        log(f"round {round_index + 1}: reference {seconds:.2f} s")
        for name, model in ours.items():
            started = time.perf_counter()
            outputs[name], report = upscale(
                model, image, tile=tile, overlap=overlap, quantum=TILE_QUANTUM, runner=DirectRunner(1)
            )
            seconds = time.perf_counter() - started
            times[name].append(seconds)
            log(f"round {round_index + 1}: ours {name} {seconds:.2f} s ({report.tiles} tiles of ≤{report.tile} px)")
    vs_reference = {name: psnr(outputs[name], outputs["reference"]) for name in ours}
    vs_fp32 = {name: psnr(outputs[name], outputs["fp32"]) for name in ours if name != "fp32"}
    return {"pixels": rgb.shape[0] * rgb.shape[1], "times": times, "psnr": vs_reference, "psnr_vs_fp32": vs_fp32}


def batching(tile: int, precision: PrecisionChoice) -> dict[str, float]:
    """Two tiles in one batch against two batches of one (the cross-request batcher's gain on a CPU)."""
    network = get_network("x4plus")
    state = weights.load_state_dict(network.weights_name, weights.default_weights_dir())
    model = load_sr_model(network, state, CPU, precision=precision)
    x = torch.rand((2, 3, tile, tile), generator=torch.Generator().manual_seed(0))
    run_batch(model, x[:1])
    started = time.perf_counter()
    run_batch(model, x)
    together = time.perf_counter() - started
    started = time.perf_counter()
    run_batch(model, x[:1])
    run_batch(model, x[1:])
    apart = time.perf_counter() - started
    return {"batch_of_2_s": together, "two_batches_of_1_s": apart}


def app_client(data_dir: Path) -> Any:
    from fastapi.testclient import TestClient

    from server import create_app

    settings = Settings(data_dir=data_dir, device="cpu", api_keys=KEY)  # type: ignore[call-arg]
    return TestClient(create_app(settings))


def post(client: Any, blob: bytes) -> tuple[float, dict[str, Any]]:
    body = {"image": base64.b64encode(blob).decode(), "output_format": "jpg"}
    started = time.perf_counter()
    response = client.post("/v1/phota/enhance", headers={"X-API-Key": KEY}, json=body)
    seconds = time.perf_counter() - started
    if response.status_code != 200:
        raise RuntimeError(f"request failed: {response.status_code} {response.text[:300]}")
    return seconds, json.loads(response.headers["X-Enhance-Parameters"])


def cpu_seconds() -> float:
    """CPU time of this process so far, every thread (the app's, the network's, OpenMP's) counted."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def clients_phase(client: Any, blob: bytes, clients: int, each: int) -> dict[str, Any]:
    """``clients`` threads sending ``each`` requests back to back: photos per minute (wall), CPU
    seconds of this process per photo (what the photos cost, whatever else runs on the machine),
    latencies and the load average before and after."""
    latencies: list[float] = []
    errors: list[BaseException] = []

    def loop() -> None:
        try:
            for _ in range(each):
                latencies.append(post(client, blob)[0])
        except BaseException as exc:  # reported below
            errors.append(exc)

    load_before, cpu_before = load_average(), cpu_seconds()
    started = time.perf_counter()
    threads = [threading.Thread(target=loop) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    if errors:
        raise errors[0]
    return {
        "clients": clients,
        "photos": len(latencies),
        "wall_s": wall,
        "photos_per_minute": 60 * len(latencies) / wall,
        "cpu_s_per_photo": (cpu_seconds() - cpu_before) / len(latencies),
        "p50_s": statistics.median(latencies),
        "load": f"{load_before.split()[0]} -> {load_average().split()[0]}",
    }


def throughput(client: Any, blob: bytes, rounds: int) -> list[dict[str, Any]]:
    """1 and 2 concurrent clients, alternated for ``rounds`` rounds (1 client sending 2 photos back to
    back, then 2 clients sending 2 each), so that both see the same machine: on a shared machine the
    load drifts by minutes, and two phases run one after the other compare the load, not the clients.
    """
    phases = []
    for index in range(rounds):
        for clients, each in ((1, 2), (2, 2)):
            phase = clients_phase(client, blob, clients, each) | {"round": index + 1}
            log(
                f"round {index + 1}, {clients} client(s): {phase['photos_per_minute']:.2f} photos/min, "
                f"{phase['cpu_s_per_photo']:.1f} CPU s per photo"
            )
            phases.append(phase)
    return phases


def requests_through_app(requests: int, clients_rounds: int, one_off: bool = True) -> dict[str, Any]:
    """``one_off``: the 512×320 request and the 512² p50; ``clients_rounds``: rounds of 1 against 2
    concurrent clients on 512² photos (0: none)."""
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp, app_client(Path(tmp)) as client:
        small, square = jpeg(photo(320, 512)), jpeg(photo(512, 512))
        post(client, small)  # warm-up: first-call costs (allocator, oneDNN primitives)
        seconds, header = post(client, small)
        results["dtype"] = header["dtype"]
        if one_off:
            results["request_512x320_s"] = seconds
            results["header_512x320"] = {k: header.get(k) for k in ("input", "network_input", "output")}
            log(f"512x320 request {seconds:.2f} s ({results['dtype']})")
            latencies = []
            for index in range(requests):
                seconds, header = post(client, square)
                latencies.append(seconds)
                log(f"512² → {header.get('output')} request {index + 1}: {seconds:.2f} s")
            results["request_512_s"] = latencies
        if clients_rounds:
            results["clients"] = throughput(client, square, clients_rounds)
    return results


# VmHWM (this process's own peak RSS): ru_maxrss would carry the parent's peak across fork and exec.
MEMORY_CHILD = """
import sys, time, torch, numpy as np
sys.path.insert(0, {root!r})
sys.path.insert(0, {here!r})
from bench_cpu import photo
import weights
from models.sr import get_network, load_sr_model, upscale, PrecisionChoice, DirectRunner
from server.runtime import TILE_QUANTUM
name, dtype = {name!r}, getattr(torch, {dtype!r})
net = get_network("x4plus")
model = load_sr_model(net, weights.load_state_dict(net.weights_name, weights.default_weights_dir()),
                      torch.device("cpu"), precision=PrecisionChoice(name, dtype, name, ""),
                      channels_last={channels_last!r})
image = torch.from_numpy(photo(512, 512).astype(np.float32) / 255).permute(2, 0, 1)[None].contiguous()
def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
before = hwm()
upscale(model, image, tile={tile}, overlap={overlap}, quantum=TILE_QUANTUM, runner=DirectRunner(1))
print(before, hwm())
"""


def peak_memory(choice: PrecisionChoice, tile: int, overlap: int, channels_last: bool) -> dict[str, float]:
    """Peak RSS (MiB) of a fresh process: after loading, and after one 512² upscale."""
    code = MEMORY_CHILD.format(
        root=str(ROOT),
        here=str(Path(__file__).resolve().parent),
        name=choice.name,
        dtype=str(choice.dtype).removeprefix("torch."),
        tile=tile,
        overlap=overlap,
        channels_last=channels_last,
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded, peak = (int(v) / 1024 for v in done.stdout.split()[-2:])
    return {"loaded_mib": loaded, "peak_mib": peak}


def fmt(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def network_report(results: dict[str, Any]) -> list[str]:
    peak = results["peak_gflops"]
    net = results["network"]
    pixels = net["pixels"]
    ref_best = min(net["times"]["reference"])
    lines = [
        f"Matrix-product peak (2048²): bf16 {peak['bf16']:.0f} GFLOP/s, fp32 {peak['fp32']:.0f} GFLOP/s",
        "",
        "| x4plus on a 512×320 photo | precision | best s | median s | GFLOP/s | share of peak | vs reference"
        " | PSNR vs reference | PSNR vs our fp32 |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, times in net["times"].items():
        best, median = min(times), statistics.median(times)
        gflops = pixels * FLOP_PER_PIXEL / best / 1e9
        precision = "fp32" if name == "reference" else name
        share = gflops / peak["bf16" if precision in ("bf16", "fp16") else "fp32"]
        label = "reference (RealESRGANer, NCHW, whole image)" if name == "reference" else "ours (service path)"
        quality = "—" if name == "reference" else fmt(net["psnr"][name], 1) + " dB"
        exact = fmt(net["psnr_vs_fp32"][name], 1) + " dB" if name in net["psnr_vs_fp32"] else "—"
        lines.append(
            f"| {label} | {precision} | {best:.2f} | {median:.2f} | {gflops:.0f} | {share:.0%} "
            f"| {ref_best / best:.2f}× | {quality} | {exact} |"
        )
    lines += [
        "",
        "PSNR vs reference differs from 'vs our fp32' at the right and bottom edges: the reference's 10 px reflect "
        "pre-pad changes what the network sees there.",
    ]
    if "batching" in results:
        b = results["batching"]
        lines += [
            "",
            f"Batching ({results['batching_tile']}² tiles, {results['auto']}): 2 tiles in one batch "
            f"{b['batch_of_2_s']:.2f} s, "
            f"two batches of 1 {b['two_batches_of_1_s']:.2f} s",
        ]
    return lines


def clients_report(phases: list[dict[str, Any]], cores: int) -> list[str]:
    lines = [
        "| 512² JPEG → 2048², round | clients | photos | photos/min | CPU s per photo | p50 s | load average |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for p in phases:
        lines.append(
            f"| {p['round']} | {p['clients']} | {p['photos']} | {p['photos_per_minute']:.2f} "
            f"| {p['cpu_s_per_photo']:.1f} | {p['p50_s']:.1f} | {p['load']} |"
        )
    one = [p for p in phases if p["clients"] == 1]
    two = [p for p in phases if p["clients"] == 2]
    ratios = [b["photos_per_minute"] / a["photos_per_minute"] for a, b in zip(one, two, strict=True)]
    cpu_one = statistics.median(p["cpu_s_per_photo"] for p in one)
    cpu_two = statistics.median(p["cpu_s_per_photo"] for p in two)
    best = min(cpu_one, cpu_two)
    lines += [
        "",
        f"2 clients against 1 (photos/min, each round against the 1-client phase just before it): "
        f"{', '.join(f'{r:.2f}×' for r in ratios)}; CPU s per photo (median) 1 client {cpu_one:.1f}, "
        f"2 clients {cpu_two:.1f} ({cpu_two / cpu_one:.2f}×).",
        f"CPU-time bound on {cores} core(s) with nothing else on them: {cores} × 60 / {best:.1f} CPU s = "
        f"{cores * 60 / best:.2f} photos/min (derived from CPU time, not a wall-clock measurement; other "
        f"processes sharing the cores inflate the CPU time too, so it errs low).",
    ]
    return lines


def report(results: dict[str, Any]) -> str:
    lines = [
        f"CPU: {results['cpu']}; {results['threads']} threads on {results['cores']} usable core(s); "
        f"torch {results['torch']}; load average at start {results['load_start']}, at end {results['load_end']}",
        "",
    ]
    if "network" in results:
        lines += network_report(results)
    if "app" in results:
        app = results["app"]
        if "request_512_s" in app:
            ref_best = min(results["network"]["times"]["reference"])
            p50 = statistics.median(app["request_512_s"])
            lines += [
                "",
                f"| request through the app ({app['dtype']}) | figure | target |",
                "| --- | --- | --- |",
                f"| 512×320 JPEG, whole request (network input {app['header_512x320']['network_input']}) "
                f"| {app['request_512x320_s']:.2f} s = "
                f"{ref_best / app['request_512x320_s']:.2f}× faster than the reference network alone | ≥ 2.2× |",
                f"| 512² JPEG → 2048 px, p50 of {len(app['request_512_s'])} | {p50:.2f} s | ≤ 30 s |",
            ]
        if "clients" in app:
            lines += ["", *clients_report(app["clients"], results["cores"])]
    if "memory" in results:
        lines += [
            "",
            "| peak RSS, one 512² upscale, fresh process | after load MiB | peak MiB |",
            "| --- | --- | --- |",
        ]
        for label, mem in results["memory"].items():
            lines.append(f"| {label} | {mem['loaded_mib']:.0f} | {mem['peak_mib']:.0f} |")
    return "\n".join(lines)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one round; no batching, two-client or memory runs")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved network rounds, best taken (default 2)")
    parser.add_argument("--requests", type=int, default=3, help="512² requests for the p50 (default 3)")
    parser.add_argument(
        "--client-rounds", type=int, default=2, help="rounds of 1 against 2 concurrent clients (default 2)"
    )
    parser.add_argument(
        "--clients-only",
        action="store_true",
        help="only the 1 against 2 clients rounds (e.g. under `taskset -c 0` for one core)",
    )
    parser.add_argument("--no-app", action="store_true", help="skip the requests through the app")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory processes")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.requests, args.client_rounds, args.no_memory = 1, 1, 0, True
    if not os.environ.get("OMP_NUM_THREADS"):
        torch.set_num_threads(usable_cpus())
    settings = Settings(device="cpu")  # type: ignore[call-arg]
    tile, overlap = settings.cpu_tile_size, settings.tile_overlap
    auto = choose_precision("auto", CPU, detect_capabilities(CPU))
    results: dict[str, Any] = {
        "cpu": cpu_name(),
        "cores": usable_cpus(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "load_start": load_average(),
        "tile": tile,
        "auto": f"{auto.name}: {auto.reason}",
    }
    log(f"auto precision here: {auto.name} ({auto.reason}); CPU tile {tile}, overlap {overlap}")
    if args.clients_only:
        results["app"] = requests_through_app(0, max(1, args.client_rounds), one_off=False)
    else:
        results["peak_gflops"] = {"bf16": matmul_peak(torch.bfloat16), "fp32": matmul_peak(torch.float32)}
        log(f"matmul peak at start {results['peak_gflops']}")
        results["network"] = network_rounds(args.rounds, tile, overlap)
        if not args.quick:
            results["batching_tile"] = min(tile, 128)
            results["batching"] = batching(results["batching_tile"], auto)
            log(f"batching {results['batching']}")
        if not args.no_app:
            results["app"] = requests_through_app(args.requests, args.client_rounds)
        if not args.no_memory:
            fp32 = PrecisionChoice("fp32", torch.float32, "fp32", "")
            results["memory"] = {"fp32, NCHW (before issue 19)": peak_memory(fp32, tile, overlap, channels_last=False)}
            if auto.name != "fp32":
                results["memory"][f"{auto.name}, channels_last (auto)"] = peak_memory(auto, tile, overlap, True)
            log(f"memory {results['memory']}")
        # The peak again at the end (best of both): a busy moment at the start must not inflate the shares.
        for dtype, key in ((torch.bfloat16, "bf16"), (torch.float32, "fp32")):
            results["peak_gflops"][key] = max(results["peak_gflops"][key], matmul_peak(dtype))
        log(f"matmul peak, best of start and end {results['peak_gflops']}")
    results["load_end"] = load_average()
    print(report(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()

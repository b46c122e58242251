"""End-to-end latency of ``POST /v1/phota/enhance``, in process, on a real photo.

Builds the app with ``create_app(Settings(...))`` and drives it with FastAPI's ``TestClient`` (its
lifespan loads the network), so the numbers include everything a request pays except the network
socket: JSON and base64, decoding, the network, blending, encoding. For each input size (long side)
it sends one warm-up request and then ``--repeat`` timed ones (jpg), plus one png request, and
reports latency, the server's own timing breakdown (from ``X-Enhance-Parameters``), peak memory.

    python tests/benchmarks/bench_enhance.py                       # CPU: 64,128,256; CUDA: 256..2048
    python tests/benchmarks/bench_enhance.py --sizes 64,128 --repeat 2 --json bench.json
    python tests/benchmarks/bench_enhance.py --device cuda --setting tile_size=512

Not a test: pytest does not collect this folder's files (no ``test_`` prefix).
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import logging
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[2]
API_KEY = "bench-key"
ENHANCE_PATH = "/v1/phota/enhance"
CPU_SIZES = (64, 128, 256)
CUDA_SIZES = (256, 512, 1024, 2048)
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")  # bundled with scikit-image, no download
MIB = 1024 * 1024


def _parse_sizes(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"sizes must be comma-separated integers: {error}") from None
    if not sizes or any(not 16 <= size <= 4096 for size in sizes):
        raise argparse.ArgumentTypeError("each size must be in 16..4096")
    return sizes


def _parse_setting(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--sizes",
        type=_parse_sizes,
        default=None,
        help=f"input long sides, comma-separated (default: {','.join(map(str, CPU_SIZES))} on CPU, "
        f"{','.join(map(str, CUDA_SIZES))} on CUDA)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="timed jpg requests per size (default 3)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed requests per size first (default 1)")
    parser.add_argument("--device", default="auto", help="'auto', 'cpu', 'cuda', 'cuda:N' (default auto)")
    parser.add_argument("--photo", choices=PHOTOS, default="astronaut", help="scikit-image photo (default astronaut)")
    parser.add_argument("--no-png", action="store_true", help="skip the png request per size")
    parser.add_argument("--weights-dir", type=Path, default=None, help="converted weights (default: the settings')")
    parser.add_argument(
        "--setting",
        type=_parse_setting,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other Settings field, e.g. tile_size=512 or half_precision=false (repeatable)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")
    return parser


def resolve_device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def make_input(photo: str, long_side: int) -> tuple[str, tuple[int, int]]:
    """The photo resized (Lanczos) to ``long_side`` and encoded as JPEG q90, as base64."""
    from skimage import data as skdata

    image = Image.fromarray(getattr(skdata, photo)())
    width, height = image.size
    ratio = long_side / max(width, height)
    size = (max(1, round(width * ratio)), max(1, round(height * ratio)))
    image = image.resize(size, Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return base64.b64encode(buffer.getvalue()).decode("ascii"), size


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / MIB if sys.platform == "darwin" else peak / 1024


def _median_timings(reports: list[dict[str, Any]]) -> dict[str, float]:
    keys = sorted({key for report in reports for key in report.get("timings", {})})
    return {key: statistics.median(r["timings"][key] for r in reports if key in r.get("timings", {})) for key in keys}


def _post(client: Any, image_b64: str, output_format: str) -> tuple[float, dict[str, Any], bytes]:
    """One request; returns (seconds, the X-Enhance-Parameters report, the output image bytes)."""
    body = {"image": image_b64, "output_format": output_format, "response_mode": "bytes"}
    started = time.perf_counter()
    response = client.post(ENHANCE_PATH, json=body, headers={"X-API-Key": API_KEY})
    seconds = time.perf_counter() - started
    if response.status_code != 200:
        raise RuntimeError(f"enhance answered {response.status_code}: {response.text[:500]}")
    report = json.loads(response.headers.get("X-Enhance-Parameters", "{}"))
    return seconds, report, base64.b64decode(response.json()["images"][0])


def bench_size(
    client: Any, args: argparse.Namespace, long_side: int, cuda_peak: Callable[[], float | None]
) -> dict[str, Any]:
    image_b64, input_size = make_input(args.photo, long_side)
    for _ in range(args.warmup):
        _post(client, image_b64, "jpg")
    latencies, reports = [], []
    output = b""
    for _ in range(args.repeat):
        seconds, report, output = _post(client, image_b64, "jpg")
        latencies.append(seconds)
        reports.append(report)
    out_image = Image.open(io.BytesIO(output))
    last = reports[-1]
    row: dict[str, Any] = {
        "input": list(input_size),
        "input_jpeg_bytes": len(base64.b64decode(image_b64)),
        "output": list(out_image.size),
        "network_input": last.get("network_input"),
        "jpg_bytes": len(output),
        "latency_s": {
            "p50": statistics.median(latencies),
            "min": min(latencies),
            "max": max(latencies),
            "all": latencies,
        },
        "server_timings_s": _median_timings(reports),
        "tile": last.get("tile"),
        "tiles": last.get("tiles"),
        "batches": last.get("batches"),
        "device": last.get("device"),
        "dtype": last.get("dtype"),
        "oom_retries": sum(r.get("oom_retries", 0) for r in reports),
        "nan_fallbacks": sum(r.get("nan_fallbacks", 0) for r in reports),
    }
    if not args.no_png:
        seconds, report, png = _post(client, image_b64, "png")
        row["png"] = {"latency_s": seconds, "bytes": len(png), "timings_s": report.get("timings", {})}
    row["peak_rss_mib"] = peak_rss_mib()
    row["cuda_peak_allocated_mib"] = cuda_peak()
    return row


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def markdown_table(rows: list[dict[str, Any]]) -> str:
    header = (
        "| input | network in | output | jpg KiB | p50 s | min s | max s | decode s | network s | blend s "
        "| encode s | server total s | tile × tiles | device / dtype | png s | png encode s | png KiB "
        "| peak RSS MiB | CUDA peak MiB |"
    )
    lines = [header, "|" + "---|" * header.count(" | ") + "---|"]
    for row in rows:
        t = row["server_timings_s"]
        png = row.get("png")
        net_in = row["network_input"]
        lines.append(
            "| "
            + " | ".join(
                [
                    "{}×{}".format(*row["input"]),
                    "{}×{}".format(*net_in) if net_in else "-",
                    "{}×{}".format(*row["output"]),
                    f"{row['jpg_bytes'] / 1024:.0f}",
                    _fmt(row["latency_s"]["p50"]),
                    _fmt(row["latency_s"]["min"]),
                    _fmt(row["latency_s"]["max"]),
                    _fmt(t.get("decode_s"), 3),
                    _fmt(t.get("network_s")),
                    _fmt(t.get("blend_s"), 3),
                    _fmt(t.get("encode_s"), 3),
                    _fmt(t.get("total_s")),
                    f"{row['tile']} × {row['tiles']}",
                    f"{row['device']} / {row['dtype']}",
                    _fmt(png["latency_s"]) if png else "-",
                    _fmt(png["timings_s"].get("encode_s"), 3) if png else "-",
                    f"{png['bytes'] / 1024:.0f}" if png else "-",
                    f"{row['peak_rss_mib']:.0f}",
                    _fmt(row["cuda_peak_allocated_mib"], 0),
                ]
            )
            + " |"
        )
    return "\n".join(lines)


def environment(device: str) -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": device,
        "load_average": [round(load, 2) for load in os.getloadavg()],
    }
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.repeat < 1 or args.warmup < 0:
        raise SystemExit("--repeat must be >= 1 and --warmup >= 0")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    warnings.filterwarnings("ignore", message=r".*starlette\.testclient.*")
    # Run from a checkout without installing the project: its packages live at the repository root.
    sys.path.insert(0, str(REPO_ROOT))
    import torch
    from fastapi.testclient import TestClient

    from server.app import create_app
    from server.settings import Settings

    device = resolve_device(args.device)
    sizes = args.sizes or list(CUDA_SIZES if device.startswith("cuda") else CPU_SIZES)
    on_cuda = device.startswith("cuda")

    def cuda_peak() -> float | None:
        if not on_cuda:
            return None
        peak = torch.cuda.max_memory_allocated(torch.device(device)) / MIB
        torch.cuda.reset_peak_memory_stats(torch.device(device))
        return peak

    with tempfile.TemporaryDirectory(prefix="enhance-bench-") as data_dir:
        overrides: dict[str, Any] = dict(args.setting)
        if args.weights_dir is not None:
            overrides["weights_dir"] = args.weights_dir
        settings = Settings(data_dir=Path(data_dir), api_keys=API_KEY, device=device, **overrides)
        started = time.perf_counter()
        with TestClient(create_app(settings)) as client:
            load_s = time.perf_counter() - started
            env = environment(device)
            print(
                f"# enhance benchmark: {args.photo}, device {device}"
                + (f" ({env['gpu']})" if "gpu" in env else f" ({env['cpu_count']} CPUs)")
                + f", torch {env['torch']}, model load {load_s:.1f} s, "
                f"{args.warmup} warm-up + {args.repeat} timed jpg requests per size, "
                f"load average {env['load_average'][0]}",
                flush=True,
            )
            if on_cuda:
                cuda_peak()  # reset: the first size's peak then excludes loading
            rows = []
            for size in sizes:
                row = bench_size(client, args, size, cuda_peak)
                rows.append(row)
                print(
                    f"  {size}: p50 {row['latency_s']['p50']:.2f} s "
                    f"(network {row['server_timings_s'].get('network_s', float('nan')):.2f} s)",
                    file=sys.stderr,
                    flush=True,
                )
    print()
    print(markdown_table(rows))
    print()
    print(
        "Latency: whole request through the in-process client (after warm-up). Server timings: medians "
        "of the timed jpg requests' X-Enhance-Parameters. Peak RSS: this process, cumulative. "
        "CUDA peak: torch.cuda.max_memory_allocated, reset per size."
    )
    if args.json is not None:
        result = {
            "environment": env,
            "model_load_s": load_s,
            "photo": args.photo,
            "settings": settings.model_dump(mode="json", exclude={"api_keys", "signing_secret"}),
            "repeat": args.repeat,
            "warmup": args.warmup,
            "sizes": rows,
        }
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

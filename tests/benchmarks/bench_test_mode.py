"""Latency of test mode (``ENHANCE_MODE=test``): a 512² JPEG → 2048 px, on one CPU core.

Builds the app in test mode with ``create_app`` and drives it with FastAPI's ``TestClient`` (so every
stage a client pays is in: JSON and base64, decoding, analysis, the stand-in upscaler, rendering, the
identity step, encoding), pinned to ``--cores`` CPU cores (default 1) with torch on as many threads.
For each photo (scikit-image's, resized to 512², JPEG q90) it sends one warm-up request, then
``--repeat`` timed ones, and prints wall time, this process's CPU time (less sensitive to a busy
machine) and the server's own stage timings from ``X-Enhance-Parameters``. The target is under 1 s.

    python tests/benchmarks/bench_test_mode.py
    python tests/benchmarks/bench_test_mode.py --repeat 5 --variations 4 --format png --json bench.json

Not a test: pytest does not collect this folder's files (no ``test_`` prefix).
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
API_KEY = "bench-key"
PHOTOS = ("astronaut", "coffee", "chelsea")  # bundled with scikit-image, no download
TARGET_S = 1.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cores", type=int, default=1, help="CPU cores to pin this process to (default 1)")
    parser.add_argument("--size", type=int, default=512, help="input side in px (default 512)")
    parser.add_argument("--repeat", type=int, default=5, help="timed requests per photo (default 5)")
    parser.add_argument("--variations", type=int, default=1, help="num_output_images (default 1)")
    parser.add_argument("--format", choices=["jpg", "png"], default="jpg")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args()

    cores = sorted(os.sched_getaffinity(0))[: args.cores]
    os.sched_setaffinity(0, cores)
    # Before torch is imported, so that its thread pools follow.
    os.environ["OMP_NUM_THREADS"] = str(len(cores))
    sys.path.insert(0, str(REPO_ROOT))

    import numpy as np
    import torch
    from fastapi.testclient import TestClient
    from PIL import Image
    from skimage import data as skdata

    from server import Settings, create_app

    torch.set_num_threads(len(cores))
    logging.basicConfig(level=logging.WARNING)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as data_dir:
        settings = Settings(data_dir=Path(data_dir), api_keys=API_KEY, device="cpu", mode="test")
        with TestClient(create_app(settings)) as client:
            for name in PHOTOS:
                photo = Image.fromarray(np.asarray(getattr(skdata, name)())).convert("RGB")
                photo = photo.resize((args.size, args.size), Image.Resampling.LANCZOS)
                buffer = io.BytesIO()
                photo.save(buffer, format="JPEG", quality=90)
                body = {
                    "image": base64.b64encode(buffer.getvalue()).decode(),
                    "output_format": args.format,
                    "num_output_images": args.variations,
                }
                walls, cpus, stages = [], [], []
                for attempt in range(args.repeat + 1):
                    wall, cpu = time.perf_counter(), time.process_time()
                    response = client.post("/v1/phota/enhance", headers={"X-API-Key": API_KEY}, json=body)
                    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                    if response.status_code != 200:
                        raise SystemExit(f"{name}: HTTP {response.status_code} {response.text[:300]}")
                    parameters = json.loads(response.headers["X-Enhance-Parameters"])
                    assert parameters["mode"] == "test" and parameters["network"] == "none"
                    if attempt:  # the first request warms up
                        walls.append(wall)
                        cpus.append(cpu)
                        stages.append(parameters["timings"])
                row = {
                    "photo": name,
                    "input": [args.size, args.size],
                    "output": parameters["output"],
                    "wall_p50_s": statistics.median(walls),
                    "wall_min_s": min(walls),
                    "cpu_p50_s": statistics.median(cpus),
                    "stages_p50_s": {k: statistics.median(s[k] for s in stages) for k in stages[0]},
                }
                rows.append(row)
    load = os.getloadavg()[0]
    print(
        f"test mode, {len(cores)} core(s) {cores}, torch threads {torch.get_num_threads()}, "
        f"{args.variations} output(s) as {args.format}, {args.repeat} timed requests each; load average {load:.1f}"
    )
    stage_names = [k for k in rows[0]["stages_p50_s"] if k != "total_s"]
    print("| photo | input → output | wall p50 s | wall min s | CPU p50 s | " + " | ".join(stage_names) + " |")
    print("|---|---|---|---|---|" + "---|" * len(stage_names))
    for row in rows:
        stages_text = " | ".join(f"{row['stages_p50_s'].get(k, 0):.3f}" for k in stage_names)
        print(
            f"| {row['photo']} | {row['input'][0]}² → {row['output'][0]}×{row['output'][1]} | "
            f"{row['wall_p50_s']:.3f} | {row['wall_min_s']:.3f} | {row['cpu_p50_s']:.3f} | {stages_text} |"
        )
    worst = max(row["wall_p50_s"] for row in rows)
    print(f"worst wall p50 {worst:.3f} s: {'within' if worst < TARGET_S else 'OVER'} the {TARGET_S:.0f} s target")
    if args.json:
        args.json.write_text(json.dumps({"cores": cores, "load_average": load, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()

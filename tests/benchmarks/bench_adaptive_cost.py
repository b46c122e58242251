"""What the region-adaptive render costs in a request (not collected by pytest).

    python tests/benchmarks/bench_adaptive_cost.py [--repeats 3] [--precision auto]

One request as the service runs it on this CPU: scikit-image's astronaut (512×512) → 2048×2048, one
output, the photo network in ``--precision`` (``auto``: what ENHANCE_PRECISION=auto picks here). The
request is timed by the pipeline's own timings (analysis, network, render); then the steps the
region-adaptive render added are timed on their own, on the same tensors and sizes: the detail map
(computed at the network input's size, upsampled to the output), the overshoot bounds, the second
(tone-guard) back-projection, the limit, the base's ringing clamp (against the plain bicubic), and on
degraded inputs the softened network output and the network's blurred output blended into the base.
Each figure is the fastest of ``--repeats`` runs after a warm-up; the added share is their sum over the
request's total (issue 22's target: ≤ 5 %).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from skimage import data as skdata

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import weights
from models.pipeline import EnhanceOptions, enhance_image
from models.pipeline._ops import detail_map, gaussian_blur, limit_overshoot, local_range, resize, upscale_bounded
from models.pipeline._render import _OVERSHOOT_MARGIN, _keep_tone
from models.sr import choose_precision, detect_capabilities, get_network, load_sr_model


def fastest(repeats: int, run: Callable[[], object]) -> float:
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--precision", default="auto")
    args = parser.parse_args()
    cpu = torch.device("cpu")
    network = get_network("x4plus")
    choice = choose_precision(args.precision, cpu, detect_capabilities(cpu))
    model = load_sr_model(
        network, weights.load_state_dict(network.weights_name, weights.default_weights_dir()), cpu, precision=choice
    )
    rgb = skdata.astronaut().astype(np.float32) / 255.0
    options = EnhanceOptions(num_outputs=1, detect_faces=False)
    enhance_image(rgb, None, model, options)  # warm-up
    result = enhance_image(rgb, None, model, options)
    timings = result.explanation.timings
    total = (timings.analysis_s or 0.0) + timings.prepare_s + timings.network_s + timings.render_s
    print(
        f"request 512² → 2048², {choice.name}: analysis {timings.analysis_s:.2f} s, network {timings.network_s:.2f} s,"
    )
    print(f"  render {timings.render_s:.2f} s, total {total:.2f} s (threads {torch.get_num_threads()})")

    source = torch.from_numpy(rgb).permute(2, 0, 1)[None].contiguous()
    restored = resize(source, 2048, 2048).clamp(0.0, 1.0)  # the network's output's size and range
    out = restored.clone()
    steps = {
        "detail map": lambda: resize(detail_map(source, restored, 2.0), 2048, 2048).clamp_(0.0, 1.0),
        "overshoot bounds": lambda: local_range(source, 2048, 2048),
    }
    detail = steps["detail map"]()
    bounds = local_range(source, 2048, 2048)
    steps["tone guard (clean)"] = lambda: _keep_tone(out, source, detail, 0.0, 1.0)
    steps["tone guard (degraded)"] = lambda: _keep_tone(out, source, detail, 3.0, 1.0)
    steps["limit"] = lambda: limit_overshoot(out.clone(), bounds, margin=_OVERSHOOT_MARGIN, share=0.1)
    steps["bounded base"] = lambda: upscale_bounded(source, 2048, 2048).clamp_(0.0, 1.0)
    steps["(the plain bicubic base, subtracted)"] = lambda: resize(source, 2048, 2048).clamp(0.0, 1.0)
    steps["softened network output (degraded)"] = lambda: resize(gaussian_blur(restored, 0.6), 2048, 2048)
    # The network's output blurred by 1 input px (4 of its own) and blended into the bicubic base.
    steps["network base (degraded)"] = lambda: torch.lerp(
        restored, resize(gaussian_blur(restored, 4.0), 2048, 2048), 0.9
    )
    steps["(a clone, subtracted from the limit)"] = lambda: out.clone()
    seconds = {name: fastest(args.repeats, step) for name, step in steps.items()}
    for name, value in seconds.items():
        print(f"  {name:38s} {value * 1000:7.1f} ms")
    added = (
        seconds["detail map"]
        + seconds["overshoot bounds"]
        + seconds["tone guard (degraded)"]
        + seconds["limit"]
        + seconds["softened network output (degraded)"]
        + seconds["network base (degraded)"]
        - seconds["(a clone, subtracted from the limit)"]
        + seconds["bounded base"]
        - seconds["(the plain bicubic base, subtracted)"]
    )
    print(
        f"added by the adaptive render (degraded input, the dearer case): {added:.3f} s = {100 * added / total:.1f} %"
    )


if __name__ == "__main__":
    main()

"""The int8 quality gate of issue 19: x4plus quantized with PyTorch's PT2E flow (X86InductorQuantizer),
calibrated on the tuning half of the scene set, scored on the held-out half against float32.

The gate: at every degradation level (``bench_quality.LEVELS``), the held-out mean PSNR (against the
original) loses at most 0.1 dB and the mean NIQE rises by at most 0.2 against float32. The figures
this prints are the ones recorded in ``models/sr/_int8.py`` (``INT8_GATE``), which decides whether
``ENHANCE_PRECISION=int8`` is offered.

The quantizer lives in torchao (``torchao.quantization.pt2e``) since PyTorch 2.10 dropped
``torch.ao.quantization.quantize_pt2e``; torchao is not a dependency of the service. Install it
outside the project's environment and point PYTHONPATH at it:

    pip install --no-deps --target /tmp/torchao torchao==0.18.0
    PYTHONPATH=/tmp/torchao python tests/benchmarks/int8_gate.py [--limit N]

The int8 model is scored as the converted reference graph (quantize/dequantize around float32
convolutions): numerically what inductor's int8 kernels compute, up to rounding order. About 10
minutes on two shared cores.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_quality import FACTOR, LEVELS, LONG_SIDE, degrade, to_u8
from niqe import niqe
from skimage.metrics import peak_signal_noise_ratio

import weights
from models.imageio import decode_image
from models.sr import get_network, load_sr_model
from tests.scene_photos import SCENE_PHOTOS, load_original

SIDE = LONG_SIDE // FACTOR  # every input is padded to SIDE x SIDE: one shape to export and calibrate


def inputs(half: str, limit: int | None) -> list[tuple[str, str, torch.Tensor, np.ndarray]]:
    """(photo, level, degraded input padded to (1, 3, SIDE, SIDE), original) of every photo of ``half``."""
    found = []
    photos = [(seed, p) for seed, p in enumerate(SCENE_PHOTOS) if p.half == half and p.kind != "illustration"]
    for seed, photo in photos[:limit]:
        truth = load_original(photo.name, LONG_SIDE)
        for level in LEVELS:
            small = decode_image(degrade(truth, level, seed)).rgb
            tensor = torch.from_numpy(np.ascontiguousarray(small)).permute(2, 0, 1)[None]
            h, w = small.shape[:2]
            mode = "reflect" if SIDE - h < h and SIDE - w < w else "replicate"
            found.append((photo.name, level, F.pad(tensor, (0, SIDE - w, 0, SIDE - h), mode=mode), truth))
    return found


def network_output(module: torch.nn.Module, x: torch.Tensor, truth: np.ndarray) -> np.ndarray:
    out = module(x).clamp(0, 1)[0, :, : truth.shape[0], : truth.shape[1]]
    return to_u8(out.permute(1, 2, 0).numpy())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=None, help="at most N photos per half (a quick look)")
    args = parser.parse_args()
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    from torchao.quantization.pt2e.quantizer import x86_inductor_quantizer as xiq

    started = time.perf_counter()
    network = get_network("x4plus")
    state = weights.load_state_dict(network.weights_name, weights.default_weights_dir())
    model = load_sr_model(network, state, torch.device("cpu"), half=False, channels_last=False)
    tune, held = inputs("tune", args.limit), inputs("held", args.limit)
    example = (tune[0][2],)
    with torch.no_grad():
        exported = torch.export.export(model.exact, example).module()
        quantizer = xiq.X86InductorQuantizer()
        quantizer.set_global(xiq.get_default_x86_inductor_quantization_config())
        prepared = prepare_pt2e(exported, quantizer)
        for _name, _level, x, _truth in tune:
            prepared(x)
        quantized = convert_pt2e(prepared)
    print(f"calibrated on {len(tune)} tuning inputs in {time.perf_counter() - started:.0f} s", flush=True)
    rows: dict[str, list[tuple[float, float, float, float]]] = {level: [] for level in LEVELS}
    with torch.no_grad():
        for name, level, x, truth in held:
            exact = network_output(model.exact, x, truth)
            int8 = network_output(quantized, x, truth)
            scores = (
                peak_signal_noise_ratio(truth, exact, data_range=255),
                peak_signal_noise_ratio(truth, int8, data_range=255),
                niqe(exact),
                niqe(int8),
            )
            rows[level].append(scores)
            print(
                f"{name:15s} {level:5s} PSNR {scores[0]:.2f} -> {scores[1]:.2f}"
                f"  NIQE {scores[2]:.2f} -> {scores[3]:.2f}",
                flush=True,
            )
    print("\n| level | photos | PSNR fp32 | PSNR int8 | loss dB | NIQE fp32 | NIQE int8 | rise | gate |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for level, values in rows.items():
        a = np.mean(np.asarray(values), axis=0)
        ok = a[0] - a[1] <= 0.1 and a[3] - a[2] <= 0.2
        print(
            f"| {level} | {len(values)} | {a[0]:.2f} | {a[1]:.2f} | {a[0] - a[1]:.2f} | {a[2]:.2f} | {a[3]:.2f} |"
            f" {a[3] - a[2]:+.2f} | {'pass' if ok else 'FAIL'} |"
        )
    load = Path("/proc/loadavg").read_text().split()[:3]
    print(f"\n{time.perf_counter() - started:.0f} s; load average {' '.join(load)}")


if __name__ == "__main__":
    main()

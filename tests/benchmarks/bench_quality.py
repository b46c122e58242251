"""Quality benchmark: Lanczos vs fixed x4plus (full strength) vs the automatic pipeline.

Real photos bundled with scikit-image, centre crops of 384×288, each degraded at three levels in the
Real-ESRGAN way (blur at full resolution, ×4 bicubic downscale, noise, JPEG; seeded), then brought
back to 384×288 by each method and scored against the original:

* PSNR (dB, RGB) and SSIM (scikit-image, RGB): fidelity, higher is better;
* NIQE (``tests/benchmarks/niqe.py``: BasicSR's port of the authors' MATLAB code with the pristine
  model from the ``basicsr==1.4.2`` source distribution): naturalness, lower is better;
* detail: high-frequency energy (Laplacian RMS) of the output over the original's (1 = as detailed
  as the truth, below = blurred, above = over-sharpened or noisy).

    python tests/benchmarks/bench_quality.py [--photos N] [--json FILE] [--save DIR]

About 5-10 minutes on two CPU cores (the network runs 2 × photos × levels times at 96×72).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from scipy import ndimage
from skimage import data as skdata
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from niqe import niqe

import weights
from models.imageio import decode_image
from models.pipeline import EnhanceOptions, enhance_image
from models.sr import SRModel, get_network, load_sr_model, upscale

PHOTOS = ("astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg", "motorcycle_left.png", "camera.png")
WIDTH, HEIGHT, FACTOR = 384, 288, 4


# Real-ESRGAN's first-order degradation with fixed draws per level: Gaussian blur (sigma in
# full-resolution pixels), bicubic ×4 downscale, Poisson noise (scale: share of the shot-noise of a
# 100-electron full well), Gaussian noise (8-bit sigma), JPEG quality (None: a lossless PNG).
LEVELS: dict[str, dict[str, float | None]] = {
    "clean": {"blur": 0.0, "poisson": 0.0, "noise": 0.0, "jpeg": None},
    "mild": {"blur": 1.2, "poisson": 0.0, "noise": 4.0, "jpeg": 80},
    "heavy": {"blur": 2.4, "poisson": 0.5, "noise": 10.0, "jpeg": 45},
}


def load_photo(name: str) -> np.ndarray:
    image = np.asarray(Image.open(Path(os.path.dirname(skdata.__file__)) / name).convert("RGB"))
    y0, x0 = (image.shape[0] - HEIGHT) // 2, (image.shape[1] - WIDTH) // 2
    return np.ascontiguousarray(image[y0 : y0 + HEIGHT, x0 : x0 + WIDTH])


def degrade(original: np.ndarray, level: str, seed: int) -> bytes:
    """The file a client would send: the degraded, ×4 smaller photo as PNG or JPEG bytes."""
    params = LEVELS[level]
    rng = np.random.default_rng(seed)
    x = original.astype(np.float32)
    if params["blur"]:
        x = ndimage.gaussian_filter(x, (params["blur"], params["blur"], 0))
    size = (WIDTH // FACTOR, HEIGHT // FACTOR)
    small = np.stack(
        [np.asarray(Image.fromarray(x[:, :, c]).resize(size, Image.Resampling.BICUBIC)) for c in range(3)], axis=2
    ).astype(np.float64)
    if params["poisson"]:
        scale = 255.0 / (params["poisson"] * 100.0)
        small = rng.poisson(np.clip(small, 0, 255) / scale) * scale
    if params["noise"]:
        small = small + rng.normal(0.0, params["noise"], small.shape)
    pil = Image.fromarray(np.clip(np.round(small), 0, 255).astype(np.uint8))
    buffer = io.BytesIO()
    if params["jpeg"] is None:
        pil.save(buffer, "PNG")
    else:
        pil.save(buffer, "JPEG", quality=int(params["jpeg"]))
    return buffer.getvalue()


def load_model(name: str) -> SRModel:
    network = get_network(name)
    directory = weights.default_weights_dir()
    try:
        weights.verify_weights(directory, [network.weights_name])
    except weights.WeightsError:
        weights.pull_weights(directory, [network.weights_name])
    return load_sr_model(network, weights.load_state_dict(network.weights_name, directory), torch.device("cpu"))


def to_u8(rgb: np.ndarray) -> np.ndarray:
    return np.clip(np.round(rgb * 255.0), 0, 255).astype(np.uint8)


def laplacian_rms(image: np.ndarray) -> float:
    gray = image.astype(np.float64).mean(axis=2)
    return float(np.sqrt(np.mean(ndimage.laplace(gray)[4:-4, 4:-4] ** 2)))


def scores(output: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    return {
        "psnr": float(peak_signal_noise_ratio(truth, output, data_range=255)),
        "ssim": float(structural_similarity(truth, output, channel_axis=2, data_range=255)),
        "niqe": niqe(output),
        "detail": laplacian_rms(output) / laplacian_rms(truth),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=len(PHOTOS), help="how many of the photos to use")
    parser.add_argument("--json", type=Path, help="also write the per-image scores to this file")
    parser.add_argument("--save", type=Path, help="write every output as PNG into this directory")
    args = parser.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    models = {"photo": load_model("x4plus"), "illustration": load_model("x4plus-anime")}
    options = EnhanceOptions(
        num_outputs=1, target_long_side=WIDTH, network_max_side=WIDTH // FACTOR, tile=WIDTH // FACTOR
    )
    started = time.perf_counter()
    rows: list[dict[str, object]] = []
    for index, name in enumerate(PHOTOS[: args.photos]):
        truth = load_photo(name)
        for level in LEVELS:
            blob = degrade(truth, level, seed=index)
            decoded = decode_image(blob)
            small = decoded.rgb
            lanczos = np.asarray(
                Image.open(io.BytesIO(blob)).convert("RGB").resize((WIDTH, HEIGHT), Image.Resampling.LANCZOS)
            )
            with torch.inference_mode():
                fixed, _ = upscale(
                    models["photo"], torch.from_numpy(small).permute(2, 0, 1)[None].contiguous(), tile=128
                )
            fixed_u8 = to_u8(fixed[0].permute(1, 2, 0).numpy())
            result = enhance_image(small, None, models, options, source=blob)
            auto_u8 = result.images[0].rgb
            chosen = result.images[0].parameters
            for method, output in (("lanczos", lanczos), ("x4plus", fixed_u8), ("auto", auto_u8)):
                rows.append({"photo": name, "level": level, "method": method, **scores(output, truth)})
                if args.save:
                    args.save.mkdir(parents=True, exist_ok=True)
                    Image.fromarray(output).save(args.save / f"{Path(name).stem}_{level}_{method}.png")
            estimates = result.report["estimates"]
            print(
                f"{name:22s} {level:5s}  noise {estimates['noise_sigma']:5.1f}  jpeg {estimates['jpeg_quality']!s:4s}"
                f"  degradation {result.report['degradation']:.2f}  strength {chosen.strength:.2f}"
                f"  fidelity {chosen.fidelity:.2f}/{chosen.fidelity_smoothing:.1f}  sharpen {chosen.sharpen:.2f}"
                f"  network {result.report['network']}",
                flush=True,
            )
    print(
        f"\n{len(PHOTOS[: args.photos])} photos, {WIDTH}×{HEIGHT} from {WIDTH // FACTOR}×{HEIGHT // FACTOR}, "
        f"{time.perf_counter() - started:.0f} s\n"
    )
    print("| level | method | PSNR (dB) ↑ | SSIM ↑ | NIQE ↓ | detail (1 = truth) |")
    print("|---|---|---|---|---|---|")
    summary: dict[str, dict[str, dict[str, float]]] = {}
    for level in LEVELS:
        for method in ("lanczos", "x4plus", "auto"):
            picked = [r for r in rows if r["level"] == level and r["method"] == method]
            means = {k: float(np.mean([r[k] for r in picked])) for k in ("psnr", "ssim", "niqe", "detail")}  # type: ignore[misc]
            summary.setdefault(level, {})[method] = means
            print(
                f"| {level} | {method} | {means['psnr']:.2f} | {means['ssim']:.4f} | {means['niqe']:.2f} |"
                f" {means['detail']:.2f} |"
            )
    print()
    for level, methods in summary.items():
        auto = methods["auto"]
        best_psnr = max(methods["lanczos"]["psnr"], methods["x4plus"]["psnr"])
        best_ssim = max(methods["lanczos"]["ssim"], methods["x4plus"]["ssim"])
        best_niqe = min(methods["lanczos"]["niqe"], methods["x4plus"]["niqe"])
        print(
            f"{level}: auto − best other: PSNR {auto['psnr'] - best_psnr:+.2f} dB,"
            f" SSIM {auto['ssim'] - best_ssim:+.4f}, NIQE {auto['niqe'] - best_niqe:+.2f}"
        )
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "summary": summary}, indent=2))


if __name__ == "__main__":
    main()

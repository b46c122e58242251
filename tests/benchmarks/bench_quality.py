"""Quality benchmark on real photos of every scene kind: Lanczos, fixed x4plus and every variation of ours.

The set is ``tests/scene_photos.py``: 51 images (Debian's wallpaper packages, scikit-image,
matplotlib) labelled by scene kind and split once into a tuning half and a held-out half. The policy's
numbers were chosen on the tuning half; docs/quality.md reports the held-out half (the default here).
``--half check`` scores the check set instead: 30 KDE Plasma wallpapers nobody tuned on.

Each image is Lanczos-downsized to a 512 px long side (the "original"; 256 px with ``--fast``),
degraded at three levels in the Real-ESRGAN way (blur at the original's size, ×4 bicubic downscale,
noise, JPEG; seeded per image), then brought back to the original's size by each method and scored
against it:

* ``lanczos``: a Lanczos upscale of the degraded input;
* ``x4plus``: the photo network alone, at full strength (no blend, no back-projection, no tone);
* ``inferred``, ``natural``, ``detail``, ``tone``: the four outputs of one request to our pipeline
  (``num_outputs=4``: one network pass, every variation rendered from it).

Scores: PSNR (dB, RGB) and SSIM (RGB), higher is better; NIQE (``tests/benchmarks/niqe.py``), lower is
more natural; ΔE: mean CIEDE2000 against the original after blurring both with a Gaussian of σ = 4 px
(tone and colour only: detail does not count; lower is more faithful); halo: the mean distance (8-bit
levels) by which an output leaves the original's range over the 7×7 pixels around each pixel (light
fringes along edges, ringing; :func:`overshoot`). Then the targets of issue 22 are checked and
printed (PASS/MISS with the margin).

    python tests/benchmarks/bench_quality.py [--half held|tune|all|check] [--fast] [--precision fp32|bf16|auto]
        [--cache DIR] [--json FILE] [--save DIR]

With ``--cache`` the network outputs are kept on disk (per precision), and a rerun after a policy
change costs only the renders and the scores. Timings on the shared 2-core CPU machine: docs/quality.md.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from scipy import ndimage
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from niqe import niqe

import weights
from models.imageio import decode_image
from models.pipeline import VARIATIONS, EnhanceOptions, enhance_image
from models.sr import SRModel, choose_precision, detect_capabilities, get_network, load_sr_model, upscale
from tests.scene_photos import (
    CHECK_PHOTOS,
    KINDS,
    SCENE_PHOTOS,
    ScenePhoto,
    blurred_ciede2000,
    ensure_installed,
    load_original,
)

FACTOR = 4
METHODS = ("lanczos", "x4plus", *(v.name for v in VARIATIONS))
METRICS = ("psnr", "ssim", "niqe", "de", "halo")
# The overshoot (halo) figure's window: a pixel of an output is compared with the original's
# minimum and maximum over the (2·r + 1)² pixels around it.
HALO_RADIUS = 3

# Real-ESRGAN's first-order degradation with fixed draws per level: Gaussian blur (sigma in
# original pixels), bicubic ×4 downscale, Poisson noise (scale: share of the shot-noise of a
# 100-electron full well), Gaussian noise (8-bit sigma), JPEG quality (None: a lossless PNG).
LEVELS: dict[str, dict[str, float | None]] = {
    "clean": {"blur": 0.0, "poisson": 0.0, "noise": 0.0, "jpeg": None},
    "mild": {"blur": 1.2, "poisson": 0.0, "noise": 4.0, "jpeg": 80},
    "heavy": {"blur": 2.4, "poisson": 0.5, "noise": 10.0, "jpeg": 45},
}


def degrade(original: np.ndarray, level: str, seed: int) -> bytes:
    """The file a client would send: the degraded, ×4 smaller image as PNG or JPEG bytes."""
    params = LEVELS[level]
    rng = np.random.default_rng(seed)
    x = original.astype(np.float32)
    if params["blur"]:
        x = ndimage.gaussian_filter(x, (params["blur"], params["blur"], 0))
    size = (original.shape[1] // FACTOR, original.shape[0] // FACTOR)
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


class CachedNetwork(torch.nn.Module):
    """``inner`` with its outputs kept on disk under ``directory``, keyed by the input's bytes (the
    network is deterministic on CPU, so a cached output is the output)."""

    def __init__(self, inner: torch.nn.Module, directory: Path, name: str) -> None:
        super().__init__()
        self.inner, self.directory, self.name = inner, directory, name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        data = x.float().cpu().numpy().tobytes()
        key = hashlib.sha256(f"{self.name} {tuple(x.shape)} {x.dtype}".encode() + data).hexdigest()
        path = self.directory / f"{key}.npy"
        if path.is_file():
            return torch.from_numpy(np.load(path)).to(device=x.device, dtype=x.dtype)
        out = self.inner(x)
        self.directory.mkdir(parents=True, exist_ok=True)
        np.save(path, out.float().cpu().numpy())
        return out


def load_model(name: str, cache: Path | None, precision: str = "fp32") -> SRModel:
    """The network ``name`` on the CPU in ``precision`` (ENHANCE_PRECISION's values). A cache stores
    the outputs of both paths (the chosen precision's and the float32 fallback's), keyed by precision."""
    network = get_network(name)
    directory = weights.default_weights_dir()
    try:
        weights.verify_weights(directory, [network.weights_name])
    except weights.WeightsError:
        weights.pull_weights(directory, [network.weights_name])
    cpu = torch.device("cpu")
    choice = choose_precision(precision, cpu, detect_capabilities(cpu))
    model = load_sr_model(network, weights.load_state_dict(network.weights_name, directory), cpu, precision=choice)
    print(f"{name}: {choice.name} ({choice.reason})", file=sys.stderr)
    if cache is None:
        return model
    return replace(
        model,
        fast=CachedNetwork(model.fast, cache, f"{name} {choice.name}"),
        exact=CachedNetwork(model.exact, cache, f"{name} fp32"),
    )


def to_u8(rgb: np.ndarray) -> np.ndarray:
    return np.clip(np.round(rgb * 255.0), 0, 255).astype(np.uint8)


def overshoot(output: np.ndarray, truth: np.ndarray, radius: int = HALO_RADIUS) -> float:
    """Halos and ringing: the mean, over pixels and channels, of how far (8-bit levels) ``output`` lies
    outside the original's range over the (2·radius + 1)² window around each pixel. 0 for any output
    that never leaves its neighbourhood's range; light fringes along strong edges raise it."""
    window = (2 * radius + 1, 2 * radius + 1, 1)
    t = truth.astype(np.float32)
    high = ndimage.maximum_filter(t, size=window, mode="nearest")
    low = ndimage.minimum_filter(t, size=window, mode="nearest")
    o = output.astype(np.float32)
    return float(np.mean(np.maximum(o - high, 0.0) + np.maximum(low - o, 0.0)))


def scores(output: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    return {
        "psnr": float(peak_signal_noise_ratio(truth, output, data_range=255)),
        "ssim": float(structural_similarity(truth, output, channel_axis=2, data_range=255)),
        "niqe": niqe(output),
        "de": blurred_ciede2000(output, truth),
        "halo": overshoot(output, truth),
    }


def run_photo(
    photo: ScenePhoto, seed: int, models: dict[str, SRModel], save: Path | None, long_side: int
) -> list[dict[str, object]]:
    """Every method on every level of one image: one row of scores per (level, method)."""
    truth = load_original(photo.name, long_side)
    truth_niqe = niqe(truth)
    height, width = truth.shape[:2]
    options = EnhanceOptions(
        num_outputs=len(VARIATIONS),
        target_long_side=max(width, height),
        network_max_side=max(width, height) // FACTOR,
        tile=max(width, height) // FACTOR,
    )
    rows: list[dict[str, object]] = []
    for level in LEVELS:
        blob = degrade(truth, level, seed)
        small = decode_image(blob).rgb
        outputs = {
            "lanczos": np.asarray(
                Image.open(io.BytesIO(blob)).convert("RGB").resize((width, height), Image.Resampling.LANCZOS)
            )
        }
        with torch.inference_mode():
            fixed, _ = upscale(models["photo"], torch.from_numpy(small).permute(2, 0, 1)[None].contiguous(), tile=128)
        outputs["x4plus"] = to_u8(fixed[0].permute(1, 2, 0).numpy())
        result = enhance_image(small, None, models, options, source=blob)
        for image in result.images:
            outputs[image.variation.name] = image.rgb
        inferred = result.images[0].parameters
        # The reference itself: only its NIQE means anything (what the no-reference targets compare to).
        rows.append({"photo": photo.name, "kind": photo.kind, "level": level, "method": "original", "niqe": truth_niqe})
        for method, output in outputs.items():
            rows.append(
                {"photo": photo.name, "kind": photo.kind, "level": level, "method": method, **scores(output, truth)}
            )
            if save:
                save.mkdir(parents=True, exist_ok=True)
                Image.fromarray(output).save(save / f"{photo.name}_{level}_{method}.png")
        explained = result.explanation
        got = {r["method"]: r for r in rows[-len(outputs) :]}
        print(
            f"{photo.name:15s} {photo.kind:12s} {level:5s} {explained.run.network:13s}"
            f" deg {explained.decision.degradation:.2f} ev {inferred.exposure_ev:+.2f} ct {inferred.contrast:.2f}"
            f" wb {inferred.white_balance:.2f} | key {explained.estimates.tone.exposure_ev:+.1f}"
            f" | PSNR lz {got['lanczos']['psnr']:.2f} x4 {got['x4plus']['psnr']:.2f} inf {got['inferred']['psnr']:.2f}"
            f" | NIQE lz {got['lanczos']['niqe']:.2f} x4 {got['x4plus']['niqe']:.2f} inf {got['inferred']['niqe']:.2f}"
            f" orig {truth_niqe:.2f}"
            f" | ΔE inf {got['inferred']['de']:.2f} tone {got['tone']['de']:.2f}"
            f" | halo lz {got['lanczos']['halo']:.2f} inf {got['inferred']['halo']:.2f}",
            flush=True,
        )
    return rows


def mean_of(rows: list[dict[str, object]], **where: str) -> dict[str, float]:
    """The mean of every metric the picked rows all carry (the ``original`` rows carry only NIQE)."""
    picked = [r for r in rows if all(r[k] == v for k, v in where.items())]
    present = [m for m in METRICS if all(m in r for r in picked)]
    return {m: float(np.mean([float(r[m]) for r in picked])) for m in present} | {"n": float(len(picked))}  # type: ignore[arg-type]


def print_tables(rows: list[dict[str, object]]) -> None:
    kinds = [k for k in KINDS if any(r["kind"] == k for r in rows)]
    for level in LEVELS:
        print(f"\n**{level}** (PSNR dB ↑ / SSIM ↑ / NIQE ↓ / blurred ΔE ↓ / halo ↓; n = photos)\n")
        print("| method | " + " | ".join(["all", *kinds]) + " |")
        print("|---|" + "---|" * (len(kinds) + 1))
        for method in METHODS:
            cells = []
            for kind in ["all", *kinds]:
                where = {"level": level, "method": method} | ({} if kind == "all" else {"kind": kind})
                m = mean_of(rows, **where)
                cells.append(f"{m['psnr']:.2f} / {m['ssim']:.3f} / {m['niqe']:.2f} / {m['de']:.2f} / {m['halo']:.2f}")
            print(f"| {method} | " + " | ".join(cells) + " |")
        cells = []
        for kind in ["all", *kinds]:
            where = {"level": level, "method": "original"} | ({} if kind == "all" else {"kind": kind})
            cells.append(f"— / — / {mean_of(rows, **where)['niqe']:.2f} / — / —")
        print("| *original* | " + " | ".join(cells) + " |")
        counts = [
            int(mean_of(rows, level=level, method="lanczos", **({} if k == "all" else {"kind": k}))["n"])
            for k in ["all", *kinds]
        ]
        print("| n | " + " | ".join(str(c) for c in counts) + " |")


def check_targets(rows: list[dict[str, object]]) -> list[str]:
    """Issue 22's targets, one line each: PASS or MISS with the margin (positive = met with room)."""
    lines = []

    def line(ok: bool, text: str) -> None:
        lines.append(f"{'PASS' if ok else 'MISS'}  {text}")

    def value(row: dict[str, object], metric: str) -> float:
        return float(row[metric])  # type: ignore[arg-type]

    def originals(level: str) -> str:
        return f"the originals themselves: {mean_of(rows, level=level, method='original')['niqe']:.2f}"

    ours, lz = mean_of(rows, level="clean", method="inferred"), mean_of(rows, level="clean", method="lanczos")
    margin = ours["psnr"] - (lz["psnr"] + 0.5)
    line(margin >= 0, f"clean: PSNR {ours['psnr']:.2f} ≥ Lanczos {lz['psnr']:.2f} + 0.5 ({margin:+.2f} dB)")
    margin = (lz["niqe"] - 2.5) - ours["niqe"]
    line(
        margin >= 0,
        f"clean: NIQE {ours['niqe']:.2f} ≤ Lanczos {lz['niqe']:.2f} − 2.5 ({margin:+.2f}; {originals('clean')})",
    )
    by_photo = {(r["photo"], r["method"]): r for r in rows if r["level"] == "clean"}
    photos = sorted({str(r["photo"]) for r in rows})
    gaps = {p: value(by_photo[p, "inferred"], "psnr") - value(by_photo[p, "lanczos"], "psnr") for p in photos}
    worst = min(photos, key=gaps.__getitem__)
    line(gaps[worst] >= -0.5, f"clean, every photo: PSNR ≥ Lanczos − 0.5 dB (worst {worst}: {gaps[worst]:+.2f} dB)")
    worst = max(photos, key=lambda p: value(by_photo[p, "inferred"], "de"))
    de = value(by_photo[worst, "inferred"], "de")
    line(de <= 0.5, f"clean, every photo: blurred ΔE of inferred ≤ 0.5 (worst {worst}: {de:.2f})")
    for level in ("mild", "heavy"):
        ours, fixed = mean_of(rows, level=level, method="inferred"), mean_of(rows, level=level, method="x4plus")
        margin = ours["psnr"] - (fixed["psnr"] + 0.5)
        line(margin >= 0, f"{level}: PSNR {ours['psnr']:.2f} ≥ x4plus {fixed['psnr']:.2f} + 0.5 ({margin:+.2f} dB)")
        margin = (fixed["niqe"] - 0.3) - ours["niqe"]
        line(
            margin >= 0,
            f"{level}: NIQE {ours['niqe']:.2f} ≤ x4plus {fixed['niqe']:.2f} − 0.3 ({margin:+.2f}; {originals(level)})",
        )
    for level in LEVELS:
        ours, lz = mean_of(rows, level=level, method="inferred"), mean_of(rows, level=level, method="lanczos")
        margin = lz["halo"] - ours["halo"]
        line(margin >= 0, f"{level}: halo {ours['halo']:.3f} ≤ Lanczos {lz['halo']:.3f} ({margin:+.3f})")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--half",
        choices=("held", "tune", "all", "check"),
        default="held",
        help="which half to score (check: the 30 images of tests/scene_photos.py's CHECK_PHOTOS)",
    )
    parser.add_argument(
        "--fast", action="store_true", help="256 px originals from 64 px inputs (the default is 512 from 128)"
    )
    parser.add_argument("--kind", choices=KINDS, action="append", help="only these scene kinds (repeatable)")
    parser.add_argument("--cache", type=Path, help="keep network outputs in this directory between runs")
    parser.add_argument("--json", type=Path, help="also write the per-image scores to this file")
    parser.add_argument("--save", type=Path, help="write every output as PNG into this directory")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch CPU threads")
    parser.add_argument(
        "--precision", default="fp32", help="the networks' precision, as ENHANCE_PRECISION (auto, fp32, bf16)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    long_side = 256 if args.fast else 512
    models = {
        "photo": load_model("x4plus", args.cache, args.precision),
        "illustration": load_model("x4plus-anime", args.cache, args.precision),
    }
    # The check set's seeds start at 1000, clear of the tuning and held-out halves' (their indices).
    photos, first_seed = (CHECK_PHOTOS, 1000) if args.half == "check" else (SCENE_PHOTOS, 0)
    ensure_installed(photos)
    chosen = [
        (seed, photo)
        for seed, photo in enumerate(photos, start=first_seed)
        if args.half in ("all", photo.half) and (not args.kind or photo.kind in args.kind)
    ]
    started = time.perf_counter()
    rows: list[dict[str, object]] = []
    for seed, photo in chosen:
        rows += run_photo(photo, seed, models, args.save, long_side)
    print(
        f"\n{len(chosen)} images ({args.half} half), long side {long_side} from {long_side // FACTOR},"
        f" {time.perf_counter() - started:.0f} s"
    )
    print_tables(rows)
    print()
    targets = check_targets(rows)
    print("\n".join(targets))
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "targets": targets}, indent=2))


if __name__ == "__main__":
    main()

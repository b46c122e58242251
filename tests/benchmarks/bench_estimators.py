"""Accuracy of every estimator in ``models.analysis`` against synthetic degradations of known truth.

Real photos bundled with scikit-image (astronaut, coffee, chelsea, rocket, motorcycle, and the grey
camera photo as RGB), central 256² crops, degraded on a grid; prints one table per estimator (mean
absolute error, bias, worst case) and a summary line each. About a minute on two CPU cores:

    python tests/benchmarks/bench_estimators.py [--json FILE]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage
from skimage import data as skdata

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from models.analysis import (
    classify_content,
    estimate_blur_sigma,
    estimate_colour_cast,
    estimate_noise_sigma,
    estimate_tone,
    estimate_upscale_factor,
    find_face_boxes,
    illuminant_angle,
    jpeg_quality_from_bytes,
    jpeg_quality_from_pixels,
    linear_to_srgb,
    srgb_to_linear,
)
from models.pipeline import default_face_detector

DATA_DIR = Path(os.path.dirname(skdata.__file__))


def load(name: str) -> np.ndarray:
    """A bundled scikit-image picture as uint8 RGB (alpha composited onto white, grey expanded)."""
    image = Image.open(DATA_DIR / name)
    if image.mode in ("RGBA", "LA", "P"):
        image = image.convert("RGBA")
        white = Image.new("RGBA", image.size, (255, 255, 255, 255))
        white.alpha_composite(image)
        image = white
    return np.asarray(image.convert("RGB"))


def crop(image: np.ndarray, side: int = 256) -> np.ndarray:
    y0, x0 = (image.shape[0] - side) // 2, (image.shape[1] - side) // 2
    return image[y0 : y0 + side, x0 : x0 + side]


PHOTO_FILES = ("astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg", "motorcycle_left.png", "camera.png")


def f32(image: np.ndarray) -> np.ndarray:
    return (np.asarray(image, dtype=np.float32) / 255.0).astype(np.float32)


def u8(values: np.ndarray) -> np.ndarray:
    return np.clip(np.round(values), 0, 255).astype(np.uint8)


def jpeg(image: np.ndarray, quality: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def from_bytes(blob: bytes) -> np.ndarray:
    return f32(np.asarray(Image.open(io.BytesIO(blob)).convert("RGB")))


def cartoon(seed: int, side: int = 320) -> np.ndarray:
    rng = np.random.default_rng(seed)
    image = Image.new("RGB", (side, side), tuple(int(v) for v in rng.integers(150, 256, 3)))
    draw = ImageDraw.Draw(image)
    for _ in range(12):
        x0, y0 = (int(v) for v in rng.integers(0, side, 2))
        w, h = (int(v) for v in rng.integers(20, side // 2, 2))
        fill = tuple(int(v) for v in rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            draw.ellipse([x0, y0, x0 + w, y0 + h], fill=fill, outline=(20, 20, 20), width=3)
        else:
            draw.polygon([(x0, y0), (x0 + w, y0 + 10), (x0 + w // 2, y0 + h)], fill=fill, outline=(0, 0, 0), width=3)
    draw.text((12, 12), "rendered illustration", fill=(0, 0, 0))
    return np.asarray(image)


Rows = list[dict[str, object]]


def table(title: str, rows: Rows, columns: list[str]) -> None:
    print(f"\n## {title}\n")
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join(_fmt(row.get(c)) for c in columns) + " |")


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    return "" if value is None else str(value)


def errors_row(label: str, truths: list[float], estimates: list[float], **extra: object) -> dict[str, object]:
    diff = np.array(estimates) - np.array(truths)
    return {
        "case": label,
        "truth": float(np.mean(truths)),
        "estimate": float(np.mean(estimates)),
        "mae": float(np.mean(np.abs(diff))),
        "bias": float(np.mean(diff)),
        "worst": float(np.max(np.abs(diff))),
        **extra,
    }


def bench_noise(photos: dict[str, np.ndarray]) -> Rows:
    rng = np.random.default_rng(0)
    rows = []
    for sigma in (0, 2, 5, 10, 15, 20, 30):
        truths, estimates, lossless = [], [], []
        for image in photos.values():
            noisy = u8(image.astype(np.float64) + rng.normal(0, sigma, image.shape))
            truths.append(float(np.std(noisy.astype(np.float64) - image)))
            estimates.append(estimate_noise_sigma(f32(noisy)))
            lossless.append(estimate_noise_sigma(f32(noisy), full_chroma=True))
        rows.append(errors_row(f"gaussian σ={sigma}", truths, estimates))
        rows.append(errors_row(f"gaussian σ={sigma}, lossless file (chroma cap)", truths, lossless))
    # Noise that is the same in every channel: in a lossless colour file the chroma cap reads it as texture.
    for sigma in (5, 10):
        truths, lossless = [], []
        for image in photos.values():
            noisy = u8(image.astype(np.float64) + rng.normal(0, sigma, image.shape[:2])[:, :, None])
            truths.append(float(np.std(noisy.astype(np.float64) - image)))
            lossless.append(estimate_noise_sigma(f32(noisy), full_chroma=True))
        rows.append(errors_row(f"grey gaussian σ={sigma}, lossless file (chroma cap)", truths, lossless))
    for peak in (255.0, 100.0, 40.0):
        truths, estimates = [], []
        for image in photos.values():
            noisy = u8(rng.poisson(image / 255.0 * peak) / peak * 255.0)
            truths.append(float(np.std(noisy.astype(np.float64) - image)))
            estimates.append(estimate_noise_sigma(f32(noisy)))
        rows.append(errors_row(f"poisson peak={peak:g}", truths, estimates))
    return rows


def bench_jpeg(photos: dict[str, np.ndarray]) -> Rows:
    rows = []
    for quality in (10, 20, 30, 40, 50, 60, 70, 80, 90, 95):
        exact, truths, estimates, missed = 0, [], [], 0
        for image in photos.values():
            blob = jpeg(image, quality)
            from_tables = jpeg_quality_from_bytes(blob)
            exact += int(from_tables is not None and from_tables.quality == quality)
            found = jpeg_quality_from_pixels(from_bytes(blob)).quality
            if found is None:
                missed += 1
            else:
                truths.append(float(quality))
                estimates.append(float(found))
        row = errors_row(f"q={quality}", truths, estimates) if estimates else {"case": f"q={quality}"}
        row.update(tables_exact=f"{exact}/{len(photos)}", pixels_found=f"{len(photos) - missed}/{len(photos)}")
        rows.append(row)
    clean_none = sum(jpeg_quality_from_pixels(f32(image)).quality is None for image in photos.values())
    rows.append({"case": "never compressed", "pixels_found": f"{len(photos) - clean_none}/{len(photos)} (false)"})
    return rows


def bench_blur(photos: dict[str, np.ndarray]) -> Rows:
    bases = {name: estimate_blur_sigma(f32(image)) for name, image in photos.items()}
    rows = [errors_row("none (photo's own)", [0.0] * len(bases), list(bases.values()))]
    for sigma in (0.5, 1.0, 1.5, 2.0, 3.0, 4.0):
        truths, estimates = [], []
        for name, image in photos.items():
            blurred = u8(ndimage.gaussian_filter(image.astype(np.float32), (sigma, sigma, 0)))
            truths.append(float(np.hypot(bases[name], sigma)))
            estimates.append(estimate_blur_sigma(f32(blurred)))
        rows.append(errors_row(f"gaussian σ={sigma}", truths, estimates))
    return rows


def bench_resolution(photos: dict[str, np.ndarray]) -> Rows:
    rows = []
    kernels = {
        "bicubic": Image.Resampling.BICUBIC,
        "lanczos": Image.Resampling.LANCZOS,
        "bilinear": Image.Resampling.BILINEAR,
    }
    for factor in (1.0, 1.5, 2.0, 3.0, 4.0):
        for kernel_name, kernel in kernels.items():
            if factor == 1.0 and kernel_name != "bicubic":
                continue
            truths, estimates, hits = [], [], 0
            for image in photos.values():
                big = crop(image, 240)
                small = Image.fromarray(big).resize((round(240 / factor),) * 2, Image.Resampling.LANCZOS)
                upscaled = f32(np.asarray(small.resize((240, 240), kernel)))
                found, _ = estimate_upscale_factor(
                    upscaled, blur_sigma=estimate_blur_sigma(upscaled), jpeg_compressed=False
                )
                truths.append(factor)
                estimates.append(found)
                hits += int(abs(found - factor) <= 0.5)
            label = "native" if factor == 1.0 else f"×{factor:g} {kernel_name}"
            rows.append(errors_row(label, truths, estimates, within_half=f"{hits}/{len(photos)}"))
    return rows


def _gain(image: np.ndarray, gains: tuple[float, float, float]) -> np.ndarray:
    return linear_to_srgb(srgb_to_linear(f32(image)) * np.array(gains, dtype=np.float32))


def bench_tone(photos: dict[str, np.ndarray]) -> Rows:
    rows = []
    for ev in (-1.5, -1.0, -0.5, 0.5, 1.0):
        truths, estimates = [], []
        for image in photos.values():
            before = estimate_tone(f32(image)).exposure_ev
            after = estimate_tone(_gain(image, (2.0**ev,) * 3)).exposure_ev
            truths.append(ev)
            estimates.append(after - before)
        rows.append(errors_row(f"exposure {ev:+g} EV (Δ)", truths, estimates))
    for factor in (0.4, 0.6, 0.8, 1.2):
        truths, estimates = [], []
        for image in photos.values():
            rgb = f32(image)
            changed = np.clip(0.5 + factor * (rgb - 0.5), 0, 1).astype(np.float32)
            truths.append(factor)
            estimates.append(estimate_tone(changed).contrast / estimate_tone(rgb).contrast)
        rows.append(errors_row(f"contrast ×{factor:g} (ratio)", truths, estimates))
    return rows


def bench_colour(photos: dict[str, np.ndarray]) -> Rows:
    rows = []
    casts = [(1.25, 1.0, 0.8), (0.8, 1.0, 1.25), (1.0, 0.85, 1.0), (1.15, 1.0, 1.1), (1.5, 1.0, 0.6)]
    for cast in casts:
        angles = []
        for image in photos.values():
            before = np.array(estimate_colour_cast(f32(image)).gains)
            after = np.array(estimate_colour_cast(_gain(image, cast)).gains)
            angles.append(illuminant_angle(after / before, np.array(cast)))
        rows.append(
            {
                "case": f"gains {cast}",
                "truth": illuminant_angle(np.array(cast), np.ones(3)),
                "mae": float(np.mean(angles)),
                "worst": float(np.max(angles)),
            }
        )
    natural = [estimate_colour_cast(f32(image)).angle_deg for image in photos.values()]
    rows.append({"case": "untouched photos (scene colour)", "estimate": float(np.mean(natural)), "worst": max(natural)})
    return rows


def bench_content() -> Rows:
    photos = [
        "astronaut.png",
        "coffee.png",
        "chelsea.png",
        "rocket.jpg",
        "motorcycle_left.png",
        "hubble_deep_field.jpg",
        "retina.jpg",
        "ihc.png",
        "camera.png",
        "moon.png",
        "coins.png",
        "brick.png",
        "grass.png",
        "gravel.png",
        "page.png",
        "text.png",
        "cell.png",
    ]
    drawings = {
        name: load(name) for name in ("logo.png", "horse.png", "chessboard_RGB.png", "color.png", "phantom.png")
    }
    drawings.update({f"cartoon{seed}": cartoon(seed) for seed in range(4, 8)})  # seeds unseen by the fit
    variants: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        "as is": f32,
        "jpeg q75": lambda im: from_bytes(jpeg(im, 75)),
        "÷3": lambda im: f32(np.asarray(Image.fromarray(im).resize((im.shape[1] // 3, im.shape[0] // 3), 1))),
        "×2 bicubic": lambda im: f32(np.asarray(Image.fromarray(im).resize((im.shape[1] * 2, im.shape[0] * 2), 3))),
    }
    rows = []
    for label, group, truth in (
        ("photographs", {n: load(n) for n in photos}, "photo"),
        ("illustrations", drawings, "illustration"),
    ):
        for variant, transform in variants.items():
            right, wrong = 0, []
            for name, image in group.items():
                rgb = transform(image)
                if classify_content(rgb, estimate_noise_sigma(rgb)).kind == truth:
                    right += 1
                else:
                    wrong.append(name)
            rows.append({"case": f"{label}, {variant}", "right": f"{right}/{len(group)}", "misses": ", ".join(wrong)})
    return rows


def bench_faces() -> Rows:
    lfw = skdata.lfw_subset()  # 100 face crops, then 100 non-face crops (25×25)
    found = []
    for index in range(200):
        face = Image.fromarray((lfw[index] * 255).astype(np.uint8)).resize((64, 64), Image.Resampling.BICUBIC)
        canvas = Image.new("RGB", (128, 128), (128, 128, 128))
        canvas.paste(face.convert("RGB"), (32, 32))
        found.append(len(find_face_boxes(f32(np.asarray(canvas)), default_face_detector())))
    rows = [
        {"case": "LFW faces (64 px, grey)", "right": f"{sum(n == 1 for n in found[:100])}/100"},
        {"case": "LFW non-faces", "right": f"{sum(n == 0 for n in found[100:])}/100"},
    ]
    astronaut = skdata.astronaut()
    face = astronaut[20:220, 130:300]
    for count, (rows_n, cols_n) in ((1, (1, 1)), (2, (1, 2)), (4, (2, 2)), (6, (2, 3))):
        row = np.concatenate([face if i % 2 == 0 else face[:, ::-1] for i in range(cols_n)], axis=1)
        group = np.concatenate([row] * rows_n, axis=0)
        got = len(find_face_boxes(f32(group), default_face_detector()))
        rows.append({"case": f"group of {count} (astronaut face tiles)", "right": f"{got} found"})
    rows.append(
        {
            "case": "astronaut photo (1 face)",
            "right": f"{len(find_face_boxes(f32(astronaut), default_face_detector()))} found",
        }
    )
    for name in ("coffee.png", "chelsea.png", "rocket.jpg", "motorcycle_left.png"):
        rows.append(
            {
                "case": f"{name} (no face)",
                "right": f"{len(find_face_boxes(f32(load(name)), default_face_detector()))} found",
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", type=Path, help="also write every table to this file")
    args = parser.parse_args()
    photos = {name: crop(load(name)) for name in PHOTO_FILES}
    started = time.perf_counter()
    results: dict[str, Rows] = {}
    error_columns = ["case", "truth", "estimate", "mae", "bias", "worst"]
    results["noise sigma (8-bit units; truth = rms of the added noise)"] = bench_noise(photos)
    table(*list(results.items())[-1], error_columns)
    results["JPEG quality (tables: exact matches; pixels: PNG re-encode)"] = bench_jpeg(photos)
    table(*list(results.items())[-1], [*error_columns, "tables_exact", "pixels_found"])
    results["blur sigma (px; truth = hypot(photo's own, added))"] = bench_blur(photos)
    table(*list(results.items())[-1], error_columns)
    results["effective resolution (upscale factor; 240² crops)"] = bench_resolution(photos)
    table(*list(results.items())[-1], [*error_columns, "within_half"])
    results["exposure (Δ EV) and contrast (ratio)"] = bench_tone(photos)
    table(*list(results.items())[-1], error_columns)
    results["colour cast (angular error, degrees)"] = bench_colour(photos)
    table(*list(results.items())[-1], ["case", "truth", "estimate", "mae", "worst"])
    results["content type"] = bench_content()
    table(*list(results.items())[-1], ["case", "right", "misses"])
    results["faces"] = bench_faces()
    table(*list(results.items())[-1], ["case", "right"])
    print(f"\n({time.perf_counter() - started:.0f} s)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()

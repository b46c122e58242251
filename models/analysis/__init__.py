"""Image analysis: measurements of one decoded image, each checked against synthetic degradations.

Public face:

* :func:`analyse_image` → :class:`ImageAnalysis`: every estimator at once (what the pipeline uses).
* :func:`estimate_noise_sigma` — additive noise level, 8-bit units (Chen et al. 2015, weak-texture patches).
* :func:`jpeg_quality_from_bytes` / :func:`jpeg_quality_from_pixels` → :class:`JpegEstimate` — exact
  from quantisation tables, or recovered from the DCT coefficient lattice of re-encoded pixels.
* :func:`estimate_blur_sigma` — Gaussian edge radius (re-blur gradient ratio).
* :func:`estimate_upscale_factor` — effective resolution (resampling periodicity, else edge blur).
* :func:`estimate_tone` → :class:`ToneEstimate` — exposure (EV from middle grey) and contrast.
* :func:`estimate_colour_cast` → :class:`ColourCast` — illuminant by grey-edge.
* :func:`classify_content` → :class:`ContentEstimate` — photo or illustration.
* :func:`find_face_boxes` → :class:`FaceBox` list — the identity's face detector (dlib's MMOD CNN,
  ported) on a bounded working copy.

Every function takes ``rgb`` as float32 H×W×3 in [0, 1], sRGB-encoded, RGB order, and is deterministic.
The estimators are PyTorch tensor code: they also take a tensor on any device and run there
(``analyse_image(..., device=...)`` uploads once); the face detector takes the host array.
Accuracy against known truth: ``tests/benchmarks/bench_estimators.py``.
"""

from models.analysis._analyse import ImageAnalysis, analyse_image
from models.analysis._blur import estimate_blur_sigma
from models.analysis._colour import ColourCast, estimate_colour_cast, illuminant_angle
from models.analysis._common import linear_to_srgb, srgb_to_linear
from models.analysis._content import CONTENT_MODEL, ContentEstimate, ContentModel, classify_content
from models.analysis._faces import FaceBox, find_face_boxes
from models.analysis._jpeg import JpegEstimate, jpeg_quality_from_bytes, jpeg_quality_from_pixels
from models.analysis._noise import estimate_noise_sigma
from models.analysis._resolution import estimate_upscale_factor
from models.analysis._tone import ToneEstimate, estimate_tone

__all__ = [
    "CONTENT_MODEL",
    "ColourCast",
    "ContentEstimate",
    "ContentModel",
    "FaceBox",
    "ImageAnalysis",
    "JpegEstimate",
    "ToneEstimate",
    "analyse_image",
    "classify_content",
    "estimate_blur_sigma",
    "estimate_colour_cast",
    "estimate_noise_sigma",
    "estimate_tone",
    "estimate_upscale_factor",
    "find_face_boxes",
    "illuminant_angle",
    "jpeg_quality_from_bytes",
    "jpeg_quality_from_pixels",
    "linear_to_srgb",
    "srgb_to_linear",
]

"""All estimators over one image: the measurements the enhance policy starts from."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from models.analysis._blur import estimate_blur_sigma
from models.analysis._colour import MAX_SIDE as COLOUR_SIDE
from models.analysis._colour import ColourCast, estimate_colour_cast
from models.analysis._common import check_rgb, shrink_t
from models.analysis._content import MAX_SIDE as CONTENT_SIDE
from models.analysis._content import ContentEstimate, classify_content
from models.analysis._faces import FaceBox, find_face_boxes
from models.analysis._jpeg import JpegEstimate, jpeg_quality_from_bytes, jpeg_quality_from_pixels
from models.analysis._noise import estimate_noise_sigma
from models.analysis._resolution import estimate_upscale_factor
from models.analysis._tone import MAX_SIDE as TONE_SIDE
from models.analysis._tone import ToneEstimate, estimate_tone
from models.faces import FaceDetector

SHRUNK_SIDE = TONE_SIDE
assert SHRUNK_SIDE == COLOUR_SIDE == CONTENT_SIDE, "one shared reduction serves tone, colour and content"


@dataclass(frozen=True)
class ImageAnalysis:
    """What the estimators measured on one image (units in each estimator's docstring).

    ``faces`` is None when face detection was not run (``detect=False``), else the boxes found.
    """

    width: int
    height: int
    noise_sigma: float
    jpeg: JpegEstimate
    blur_sigma: float
    upscale_factor: float
    upscale_evidence: str
    tone: ToneEstimate
    colour: ColourCast
    content: ContentEstimate
    faces: list[FaceBox] | None
    timings: dict[str, float] = field(default_factory=dict)


def analyse_image(
    rgb: np.ndarray,
    source: bytes | None = None,
    *,
    detect: bool = True,
    face_detector: FaceDetector | None = None,
    device: torch.device | str = "cpu",
) -> ImageAnalysis:
    """Run every estimator on ``rgb`` (float32 H×W×3 in [0, 1], sRGB, as decoded).

    ``source``: the original file bytes, when available: a JPEG's quantisation tables then give its
    quality exactly (otherwise it is recovered from the pixels). ``detect``: run face detection, with
    ``face_detector`` (loaded by the caller: the service's, on its device; required when ``detect``).
    ``device``: where the estimators run (the service passes its networks' device): the image is
    uploaded there once and every estimator works on that copy; only their scalar results come back.
    Deterministic; raises ``ValueError`` for arrays of the wrong type or shape, or for ``detect``
    without a ``face_detector``.
    """
    check_rgb(rgb)
    if detect and face_detector is None:
        raise ValueError("face detection needs a face_detector (or detect=False)")
    timings: dict[str, float] = {}
    target = torch.device(device)
    rgb = np.clip(rgb, 0.0, 1.0)
    image = torch.from_numpy(np.ascontiguousarray(rgb)).to(target)
    # On the CPU the working copies (≤ 768²) are too small for intra-op threads to pay: on a busy host
    # their synchronisation made analysis 4-10× slower. The setting is per calling thread (OpenMP's),
    # so a network running in another thread keeps its own.
    threads = torch.get_num_threads()
    if target.type == "cpu":
        torch.set_num_threads(1)
    try:
        return _estimate(rgb, image, source, detect, face_detector, timings)
    finally:
        torch.set_num_threads(threads)


def _estimate(
    rgb: np.ndarray,
    image: torch.Tensor,
    source: bytes | None,
    detect: bool,
    face_detector: FaceDetector | None,
    timings: dict[str, float],
) -> ImageAnalysis:
    """Every estimator on the uploaded ``image`` (faces on the host copy ``rgb``); fills ``timings``."""

    def timed(name: str, fn, *args, **kwargs):  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        value = fn(*args, **kwargs)
        timings[name] = time.perf_counter() - started
        return value

    # The tables (parsing the file's bytes) are read on the host; pixels are only looked at on the device.
    jpeg = (jpeg_quality_from_bytes(source) if source is not None else None) or timed(
        "jpeg_s", jpeg_quality_from_pixels, image
    )
    noise = timed("noise_s", estimate_noise_sigma, image, jpeg_quality=jpeg.quality, full_chroma=_lossless(source))
    blur = timed("blur_s", estimate_blur_sigma, image)
    upscale, evidence = timed(
        "resolution_s", estimate_upscale_factor, image, blur_sigma=blur, jpeg_compressed=jpeg.quality is not None
    )
    # Tone, colour and content look at the same ≤ 512 px reduction: made once (they keep it as is).
    small = shrink_t(image, SHRUNK_SIDE)
    tone = timed("tone_s", estimate_tone, small)
    colour = timed("colour_s", estimate_colour_cast, small)
    content = timed("content_s", classify_content, small, noise)
    faces = timed("faces_s", find_face_boxes, rgb, face_detector) if face_detector is not None and detect else None
    return ImageAnalysis(
        width=int(rgb.shape[1]),
        height=int(rgb.shape[0]),
        noise_sigma=noise,
        jpeg=jpeg,
        blur_sigma=blur,
        upscale_factor=upscale,
        upscale_evidence=evidence,
        tone=tone,
        colour=colour,
        content=content,
        faces=faces,
        timings=timings,
    )


def _lossless(source: bytes | None) -> bool:
    """Whether ``source`` is a file format that keeps chroma at full resolution without loss: PNG, BMP,
    or lossless WebP (the noise estimate may then use the chroma planes: see ``_noise``)."""
    if source is None:
        return False
    return (
        source.startswith(b"\x89PNG\r\n\x1a\n")
        or source.startswith(b"BM")
        or (source[:4] == b"RIFF" and source[8:16] == b"WEBPVP8L")
    )

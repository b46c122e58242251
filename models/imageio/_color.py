"""Colour management: bring decoded pixels from their embedded ICC profile (or CMYK, LAB) to sRGB."""

from __future__ import annotations

import functools
import io
import logging

import numpy as np
from PIL import Image, ImageCms

logger = logging.getLogger(__name__)

# Perceptual is the profiles' default intent and what viewers use; for matrix/TRC profiles LittleCMS
# falls back to relative colorimetric, for LUT (CMYK) profiles it gives the intended gamut mapping.
_INTENT = ImageCms.Intent.PERCEPTUAL
# The profile colour space each 8-bit Pillow mode needs.
_MODE_COLOR_SPACE = {"RGB": "RGB", "L": "GRAY", "CMYK": "CMYK"}


def srgb_profile() -> ImageCms.ImageCmsProfile:
    """A fresh LittleCMS built-in sRGB profile (tens of microseconds; LittleCMS profile handles are not
    meant to be shared between threads, so none is cached)."""
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


@functools.cache
def srgb_icc_bytes() -> bytes:
    """The built-in sRGB profile as ICC bytes, for embedding in encoded files."""
    return srgb_profile().tobytes()


def _open_profile(icc: bytes) -> ImageCms.ImageCmsProfile | None:
    """Parse an embedded ICC profile; ``None`` when it is corrupt (the image is then taken as sRGB)."""
    try:
        return ImageCms.ImageCmsProfile(io.BytesIO(icc))
    except Exception:  # LittleCMS reports corrupt profiles as various errors
        logger.debug("ignoring unreadable embedded ICC profile", exc_info=True)
        return None


def _color_space(profile: ImageCms.ImageCmsProfile) -> str:
    """The profile's data colour space signature without padding ("RGB", "GRAY", "CMYK", "Lab", ...)."""
    return str(profile.profile.xcolor_space).strip()


def _is_srgb(profile: ImageCms.ImageCmsProfile) -> bool:
    """Whether a profile declares itself sRGB (then converting would only cost time)."""
    description = str(profile.profile.profile_description or "").strip().lower()
    return description.startswith("srgb") or description in {"srgb built-in", "srgb iec61966-2.1"}


def to_srgb_8bit(color: Image.Image, icc: bytes | None) -> tuple[Image.Image, bool]:
    """Convert an 8-bit colour image (mode RGB, L, CMYK or LAB) to sRGB.

    Returns ``(image, icc_converted)``: the image in mode ``RGB``, or ``L`` when it is grayscale and
    stays so, and whether the embedded profile was applied. A profile that is corrupt, sRGB already, or
    of a colour space that does not match the pixels is ignored. CMYK without a usable profile uses
    Pillow's plain conversion; LAB uses LittleCMS's built-in LAB profile.

    Raises:
        ValueError: ``color`` is in another mode.
    """
    mode = color.mode
    if mode not in ("RGB", "L", "CMYK", "LAB"):
        raise ValueError(f"to_srgb_8bit needs mode RGB, L, CMYK or LAB, got {mode}")
    profile = _open_profile(icc) if icc else None
    if mode == "LAB":
        source = profile if profile is not None and _color_space(profile) == "Lab" else None
        lab = source or ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB"))
        out = ImageCms.applyTransform(color, ImageCms.buildTransform(lab, srgb_profile(), "LAB", "RGB", _INTENT))
        assert out is not None
        return out, source is not None
    if profile is not None and _color_space(profile) == _MODE_COLOR_SPACE[mode] and not _is_srgb(profile):
        try:
            transform = ImageCms.buildTransform(profile, srgb_profile(), mode, "RGB", _INTENT)
            out = ImageCms.applyTransform(color, transform)
        except (ImageCms.PyCMSError, OSError, ValueError):
            logger.debug("ICC transform failed; keeping the pixels as they are", exc_info=True)
        else:
            assert out is not None
            return out, True
    if mode == "CMYK":
        return color.convert("RGB"), False
    return color, False


def to_srgb_float(pixels: np.ndarray, icc: bytes | None) -> tuple[np.ndarray, bool]:
    """Convert float32 RGB (H×W×3) or gray (H×W) pixels in [0, 1] from their ICC profile to sRGB.

    Used for high-bit-depth sources, whose precision an 8-bit Pillow transform would lose. Needs
    ``imagecodecs`` (LittleCMS in floating point); without it, or when the profile is absent, sRGB,
    corrupt or of another colour space, the pixels are returned unchanged. Returns ``(pixels,
    icc_converted)``; converted RGB is H×W×3 float32 clipped to [0, 1], converted gray becomes RGB.
    """
    if not icc:
        return pixels, False
    profile = _open_profile(icc)
    wanted = "RGB" if pixels.ndim == 3 else "GRAY"
    if profile is None or _color_space(profile) != wanted or _is_srgb(profile):
        return pixels, False
    try:
        import imagecodecs
    except ImportError:
        logger.debug("imagecodecs missing: high-bit-depth pixels keep their embedded profile's colours")
        return pixels, False
    try:
        out = imagecodecs.cms_transform(
            np.ascontiguousarray(pixels, dtype=np.float32),
            icc,
            imagecodecs.cms_profile("srgb"),
            colorspace="rgb" if pixels.ndim == 3 else "gray",
            outcolorspace="rgb",
            outdtype=np.float32,
        )
    except Exception:  # imagecodecs raises its own error types for profiles it cannot use
        logger.debug("float ICC transform failed; keeping the pixels as they are", exc_info=True)
        return pixels, False
    out = np.asarray(out, dtype=np.float32).reshape(*pixels.shape[:2], 3)
    np.clip(out, 0.0, 1.0, out=out)
    return out, True

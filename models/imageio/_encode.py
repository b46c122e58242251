"""Encoding uint8 or float sRGB pixels into PNG or JPEG bytes, with the sRGB ICC profile and the given EXIF."""

from __future__ import annotations

import io
from typing import Literal

import numpy as np
from PIL import Image

from models.imageio._color import srgb_icc_bytes
from models.imageio._exif import clean_exif

#: JPEG qualities at or above this keep full chroma resolution (4:4:4); below it 4:2:0 is used.
FULL_CHROMA_QUALITY = 90
_JPEG_MAX_SIDE = 65_535


def _check_pixels(values: np.ndarray, name: str) -> None:
    """Refuse dtypes other than uint8 and floating point, and non-finite floats.

    Raises:
        ValueError: another dtype (uint16, int32, bool, ...), or NaN/infinite floating-point values.
    """
    if values.dtype == np.uint8:
        return
    if not np.issubdtype(values.dtype, np.floating):
        raise ValueError(f"{name} must be uint8 or floating point in [0, 1] (float32), got dtype {values.dtype}")
    if not np.isfinite(values).all():
        raise ValueError(f"{name} contains NaN or infinite values")


def _check_rgb(rgb: np.ndarray, name: str = "rgb") -> None:
    """Validate an H×W×3 array: uint8, or floating point with finite values.

    Raises:
        ValueError: wrong type, dtype, shape, an empty side, or NaN/infinite floating-point values.
    """
    if not isinstance(rgb, np.ndarray):
        raise ValueError(f"{name} must be a numpy array, got {type(rgb).__name__}")
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[0] < 1 or rgb.shape[1] < 1:
        raise ValueError(f"{name} must have shape H×W×3 with H, W ≥ 1, got {rgb.shape}")
    _check_pixels(rgb, name)


def _check_alpha(alpha: np.ndarray, shape: tuple[int, int]) -> None:
    """Validate an H×W alpha matching the colour image: uint8, or floating point with finite values.

    Raises:
        ValueError: wrong type, dtype, shape, or NaN/infinite floating-point values.
    """
    if not isinstance(alpha, np.ndarray):
        raise ValueError(f"alpha must be a numpy array or None, got {type(alpha).__name__}")
    if alpha.shape != shape:
        raise ValueError(f"alpha must have shape {shape} (H×W of rgb), got {alpha.shape}")
    _check_pixels(alpha, "alpha")


def _to_uint8(values: np.ndarray) -> np.ndarray:
    """uint8 → unchanged (the same array); [0, 1] floats → uint8 with clipping and rounding to nearest
    (not truncation)."""
    if values.dtype == np.uint8:
        return values
    scaled = np.multiply(values, 255.0, dtype=np.float32)
    np.clip(scaled, 0.0, 255.0, out=scaled)
    np.rint(scaled, out=scaled)
    return scaled.astype(np.uint8)


def _to_unit_float(values: np.ndarray) -> np.ndarray:
    """uint8 → float32 level/255; floats → float32 clipped to [0, 1]."""
    if values.dtype == np.uint8:
        return np.divide(values, np.float32(255.0), dtype=np.float32)
    return np.clip(values, 0.0, 1.0).astype(np.float32)


def flatten_alpha(
    rgb: np.ndarray, alpha: np.ndarray, background: tuple[float, float, float] = (1.0, 1.0, 1.0)
) -> np.ndarray:
    """Composite straight-alpha ``rgb`` over a solid ``background`` colour (sRGB values in [0, 1]).

    Contract: ``rgb`` H×W×3 and ``alpha`` H×W, each either uint8 (level/255) or floating point in [0, 1]
    (values outside are clipped), in any mix; returns H×W×3 **float32** whatever the input dtypes,
    C-contiguous, ``rgb·alpha + background·(1 − alpha)`` (compositing in the encoded sRGB values, as
    browsers do). The result is not quantised: :func:`encode_image` rounds it once, so flattening uint8
    pixels costs no second rounding.

    Raises:
        ValueError: bad shapes or dtypes, or a background that is not three numbers in [0, 1].
    """
    _check_rgb(rgb)
    _check_alpha(alpha, rgb.shape[:2])
    if len(background) != 3 or not all(0.0 <= float(v) <= 1.0 for v in background):
        raise ValueError(f"background must be three values in [0, 1], got {background!r}")
    weight = _to_unit_float(alpha)[..., None]
    color = _to_unit_float(rgb)
    backdrop = np.asarray(background, dtype=np.float32)
    out = color * weight + backdrop * (np.float32(1.0) - weight)
    return np.ascontiguousarray(out, dtype=np.float32)


def encode_image(
    rgb: np.ndarray,
    alpha: np.ndarray | None,
    fmt: Literal["png", "jpg"],
    *,
    exif: bytes | None = None,
    jpeg_quality: int = 95,
    png_compress_level: int = 1,
) -> bytes:
    """Encode sRGB pixels as an 8-bit PNG or JPEG file with the sRGB ICC profile embedded.

    Contract: ``rgb`` H×W×3, sRGB-encoded, RGB order, either uint8 (written as is, no rescaling: the
    pipeline's normal output, quantised on the device) or floating point in [0, 1] (float32 expected;
    clipped and rounded to the nearest 8-bit level, so float ``x`` and uint8 ``round(x·255)`` give the
    same file). ``alpha`` H×W straight alpha, uint8 or floating point in [0, 1] likewise (in any mix with
    ``rgb``'s dtype), or ``None``; only PNG carries alpha — a JPEG with alpha is refused: flatten first
    with :func:`flatten_alpha`. ``exif`` (with or without the ``Exif\\0\\0`` header) is written without
    its Orientation tag (the pixels are upright) and with PixelX/YDimension updated to the output size
    when present. JPEG uses 4:4:4 chroma at quality ≥ 90 (else 4:2:0) and no optimisation pass (speed);
    PNG uses ``png_compress_level`` (1 is about twice as fast as 6 for ~11 % more bytes; see the package
    docstring).

    Raises:
        ValueError: bad shapes, a dtype other than uint8 or floating point, NaN/infinite floats, alpha
            with ``jpg``, an unknown ``fmt``, a quality or compression level out of range, a JPEG over
            65535 px, or ``exif`` that is not an EXIF block.
    """
    _check_rgb(rgb)
    if fmt not in ("png", "jpg"):
        raise ValueError(f"fmt must be 'png' or 'jpg', got {fmt!r}")
    if alpha is not None:
        if fmt == "jpg":
            raise ValueError("jpg cannot carry alpha: flatten it first (flatten_alpha) or encode png")
        _check_alpha(alpha, rgb.shape[:2])
    height, width = rgb.shape[:2]
    exif_block = _prepare_exif(exif, (width, height))
    pixels = _to_uint8(rgb)
    if alpha is not None:
        pixels = np.concatenate([pixels, _to_uint8(alpha)[..., None]], axis=2)
    image = Image.fromarray(pixels)
    buffer = io.BytesIO()
    options: dict[str, object] = {"icc_profile": srgb_icc_bytes()}
    if exif_block is not None:
        options["exif"] = exif_block
    if fmt == "png":
        if isinstance(png_compress_level, bool) or png_compress_level not in range(10):
            raise ValueError(f"png_compress_level must be an integer 0..9, got {png_compress_level!r}")
        image.save(buffer, "PNG", compress_level=png_compress_level, optimize=False, **options)
    else:
        if isinstance(jpeg_quality, bool) or jpeg_quality not in range(1, 101):
            raise ValueError(f"jpeg_quality must be an integer 1..100, got {jpeg_quality!r}")
        if max(width, height) > _JPEG_MAX_SIDE:
            raise ValueError(f"JPEG sides are limited to {_JPEG_MAX_SIDE} px, got {width}×{height}")
        subsampling = 0 if jpeg_quality >= FULL_CHROMA_QUALITY else 2
        image.save(buffer, "JPEG", quality=jpeg_quality, subsampling=subsampling, optimize=False, **options)
    return buffer.getvalue()


def _prepare_exif(exif: bytes | None, size: tuple[int, int]) -> bytes | None:
    """Parse the caller's EXIF block and re-serialise it without Orientation, sized for the output.

    Raises:
        ValueError: ``exif`` is not bytes or not a parseable EXIF block.
    """
    if exif is None:
        return None
    if not isinstance(exif, bytes | bytearray):
        raise ValueError(f"exif must be bytes or None, got {type(exif).__name__}")
    block = bytes(exif)
    body = block[6:] if block.startswith(b"Exif\x00\x00") else block
    if body[:4] not in (b"II*\x00", b"MM\x00*"):
        raise ValueError("exif is not an EXIF block (no TIFF header)")
    parsed = Image.Exif()
    try:
        parsed.load(block)
    except Exception as exc:  # Pillow raises several types on malformed IFDs
        raise ValueError("exif is not a valid EXIF block") from exc
    return clean_exif(parsed, strip_gps=False, size=size)

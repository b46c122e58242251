"""Decoding image bytes into float32 sRGB pixels: sniff, open, refuse bombs, orient, colour-manage, cap."""

from __future__ import annotations

import importlib.util
import io
import logging
import math
import threading
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError, features

from models.errors import InvalidImageError, UnsupportedFormatError
from models.imageio._color import to_srgb_8bit, to_srgb_float
from models.imageio._exif import ORIENTATION_TRANSPOSE, read_exif
from models.imageio._sniff import PIL_FORMAT_IDS, sniff_format

logger = logging.getLogger(__name__)

_HIGH_BIT_GRAY_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I", "F"})
_RESAMPLE = Image.Resampling.LANCZOS
# JPEG draft (DCT-domain downscale) is asked for this multiple of the final size, so that a LANCZOS pass
# still does the last step: see the module docstring of models.imageio for the measurement.
_DRAFT_MARGIN = 2.0

_heif_lock = threading.Lock()
_heif_registered = False


def register_heif_opener() -> None:
    """Register pillow-heif's HEIF opener with Pillow, once per process (idempotent, thread-safe).

    This is the package's only global side effect, and it happens on first use, not at import time.
    """
    global _heif_registered
    if _heif_registered:
        return
    with _heif_lock:
        if not _heif_registered:
            import pillow_heif

            pillow_heif.register_heif_opener()
            _heif_registered = True


@dataclass(frozen=True, eq=False)
class DecodedImage:
    """A decoded image, upright and in sRGB.

    Attributes:
        rgb: H×W×3 float32 in [0, 1], sRGB-encoded (not linear), RGB order, C-contiguous.
        alpha: H×W float32 in [0, 1] (straight, not premultiplied), C-contiguous; ``None`` exactly when
            the source has no alpha channel and no transparency key (an all-opaque alpha is kept).
        exif: the source's EXIF block (``b"Exif\\x00\\x00"`` + TIFF structure) without the Orientation
            tag and without the GPS IFD, or ``None`` (no EXIF, TIFF source, or nothing left).
        source_format: the sniffed format: "jpeg", "png", "webp", "heif", "avif", "tiff", "bmp", "gif".
        source_mode: the Pillow mode of the source as opened ("RGB", "P", "CMYK", "I;16", ...).
        bit_depth: 16 when the pixels came from a source with more than 8 bits per sample and kept that
            precision, else 8.
        icc_converted: whether an embedded ICC profile was applied to reach sRGB.
        original_size: (width, height) after orientation, before the size cap.
    """

    rgb: np.ndarray
    alpha: np.ndarray | None
    exif: bytes | None
    source_format: str
    source_mode: str
    bit_depth: int
    icc_converted: bool
    original_size: tuple[int, int]

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of ``rgb``."""
        return int(self.rgb.shape[1]), int(self.rgb.shape[0])


def decode_image(data: bytes, *, max_side: int = 4096, max_pixels: int = 100_000_000) -> DecodedImage:
    """Decode image file bytes into an upright, sRGB, float32 :class:`DecodedImage`.

    The format is sniffed from the bytes. Images with more than ``max_pixels`` pixels are refused from
    their header, before any pixel is decoded; images whose long side exceeds ``max_side`` are resized
    down (LANCZOS, aspect kept) so that the long side is ``max_side``.

    Raises:
        InvalidImageError: not an image, empty, truncated, corrupt, or over ``max_pixels``.
        UnsupportedFormatError: an image in a format or pixel mode that is not decoded here.
        ValueError: ``max_side`` or ``max_pixels`` is not a positive integer.
        TypeError: ``data`` is not bytes-like.
    """
    for name, value in (("max_side", max_side), ("max_pixels", max_pixels)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"data must be bytes, got {type(data).__name__}")
    data = bytes(data)
    fmt = sniff_format(data)
    if fmt == "heif":
        register_heif_opener()
    if fmt == "avif" and not features.check("avif"):
        raise UnsupportedFormatError("AVIF is not supported here (Pillow was built without libavif)")
    im = _open(data, fmt, max_pixels)
    try:
        return _decode_opened(im, data, fmt, max_side)
    finally:
        im.close()


def _open(data: bytes, fmt: str, max_pixels: int) -> ImageFile.ImageFile:
    """Open (header only) with the one Pillow plugin of the sniffed format and refuse bombs.

    Raises:
        InvalidImageError: the header cannot be read, or declares more than ``max_pixels`` pixels.
    """
    name = fmt.upper()
    try:
        im = Image.open(io.BytesIO(data), formats=[PIL_FORMAT_IDS[fmt]])
    except Image.DecompressionBombError as exc:
        raise InvalidImageError(
            f"{name} image dimensions exceed the pixel limit (decompression bomb refused before decoding)"
        ) from exc
    except UnidentifiedImageError as exc:
        raise InvalidImageError(f"data starts like {name} but its header is corrupt or truncated") from exc
    except MemoryError:
        raise
    except Exception as exc:  # Pillow plugins raise SyntaxError, struct.error, ValueError, ... on bad headers
        raise InvalidImageError(f"data starts like {name} but its header is corrupt or truncated") from exc
    width, height = im.size
    if width < 1 or height < 1:
        im.close()
        raise InvalidImageError(f"{name} image has an empty size ({width}×{height})")
    if width * height > max_pixels:
        im.close()
        raise InvalidImageError(
            f"{name} image is {width}×{height} ({width * height} pixels), more than the limit of "
            f"{max_pixels} pixels (decompression bomb refused before decoding)"
        )
    return im


def _decode_opened(im: ImageFile.ImageFile, data: bytes, fmt: str, max_side: int) -> DecodedImage:
    """Decode the pixels of an opened, size-checked image into a :class:`DecodedImage`."""
    width, height = im.size
    source_mode = im.mode
    wide_source = _is_wide_source(im, fmt)
    if fmt == "jpeg":
        _draft_jpeg(im, max_side)
    _load(im, fmt)
    orientation, exif = read_exif(im, keep_block=fmt != "tiff")
    icc = im.info.get("icc_profile") or None
    original_size = (height, width) if orientation >= 5 else (width, height)

    channels = _decode_wide(data, fmt, im) if wide_source else None
    if channels is not None:
        rgb, alpha, converted = _finish_float(channels, icc, orientation, max_side)
        bit_depth = 16
    elif im.mode in _HIGH_BIT_GRAY_MODES:
        rgb, alpha, converted = _finish_float(_gray_channels(im), icc, orientation, max_side)
        bit_depth = 16
    else:
        rgb, alpha, converted = _finish_8bit(im, icc, orientation, max_side)
        bit_depth = 8
    return DecodedImage(
        rgb=rgb,
        alpha=alpha,
        exif=exif,
        source_format=fmt,
        source_mode=source_mode,
        bit_depth=bit_depth,
        icc_converted=converted,
        original_size=original_size,
    )


def _load(im: Image.Image, fmt: str) -> None:
    """Decode the pixels (Pillow's LOAD_TRUNCATED_IMAGES stays off: truncated data is an error).

    Raises:
        InvalidImageError: the pixel data is truncated or corrupt.
    """
    name = fmt.upper()
    try:
        im.load()
    except MemoryError:
        raise
    except Exception as exc:  # OSError, SyntaxError, ValueError, EOFError, ... from the codecs
        text = str(exc).lower()
        if "truncated" in text or isinstance(exc, EOFError):
            raise InvalidImageError(f"{name} image data is truncated") from exc
        raise InvalidImageError(f"{name} image data is corrupt and cannot be decoded") from exc


def _is_wide_source(im: ImageFile.ImageFile, fmt: str) -> bool:
    """Whether Pillow would reduce this PNG/TIFF's 16-bit colour (or gray+alpha) samples to 8 bits."""
    if fmt not in ("png", "tiff") or im.mode not in ("RGB", "RGBA", "LA"):
        return False
    for tile in im.tile:
        args = tile.args
        rawmode = args[0] if isinstance(args, tuple) and args else args
        if isinstance(rawmode, str) and ";16" in rawmode:
            return True
    return False


def high_bit_depth_available() -> bool:
    """Whether 16-bit colour inputs keep their precision: ``imagecodecs`` is installed (offline bundles
    made with ``--without imagecodecs`` leave it out; such inputs are then decoded at 8 bits)."""
    return importlib.util.find_spec("imagecodecs") is not None


def _decode_wide(data: bytes, fmt: str, im: Image.Image) -> list[np.ndarray] | None:
    """Decode 16-bit colour samples with imagecodecs; ``None`` (use Pillow's 8 bits) when impossible.

    Returns the channels as 2-D float32 arrays in [0, 1]: [gray, alpha], [r, g, b] or [r, g, b, alpha].
    """
    if "transparency" in im.info:
        return None  # a 16-bit colour key: rare; Pillow's 8-bit path handles transparency
    try:
        import imagecodecs
    except ImportError:
        logger.debug("imagecodecs missing: 16-bit %s colour decoded at 8 bits", fmt)
        return None
    try:
        pixels = imagecodecs.png_decode(data) if fmt == "png" else imagecodecs.tiff_decode(data, index=0)
    except Exception:  # the codec disagrees with Pillow about the file: keep Pillow's (checked) result
        logger.debug("imagecodecs could not decode the 16-bit %s; using 8 bits", fmt, exc_info=True)
        return None
    width, height = im.size
    if pixels.dtype != np.uint16 or pixels.ndim != 3 or pixels.shape[:2] != (height, width):
        return None
    count = pixels.shape[2]
    if count not in (2, 3, 4) or (fmt == "tiff" and count != len(im.getbands())):
        return None
    scale = np.float32(1.0 / 65535.0)
    return [np.multiply(pixels[..., i], scale, dtype=np.float32) for i in range(count)]


def _gray_channels(im: Image.Image) -> list[np.ndarray]:
    """A high-bit gray image (I;16*, I, F) as [gray] or [gray, alpha] float32 channels in [0, 1].

    "I;16" is scaled by 1/65535; "I" (32-bit integer) is taken as 16-bit data and clipped; "F" is taken
    as [0, 1] and clipped. A PNG gray transparency key becomes an alpha channel.
    """
    values = np.asarray(im)
    if im.mode == "F":
        gray = np.clip(values.astype(np.float32, copy=False), 0.0, 1.0)
    else:
        gray = np.clip(values.astype(np.float32) * np.float32(1.0 / 65535.0), 0.0, 1.0)
    key = im.info.get("transparency")
    if isinstance(key, int) and im.mode != "F":
        return [gray, (values != key).astype(np.float32)]
    return [gray]


def _finish_float(
    channels: list[np.ndarray], icc: bytes | None, orientation: int, max_side: int
) -> tuple[np.ndarray, np.ndarray | None, bool]:
    """Orient, resize and colour-manage float channels; return (rgb, alpha, icc_converted)."""
    alpha = channels[-1] if len(channels) in (2, 4) else None
    color = channels[:3] if len(channels) >= 3 else channels[:1]
    color = [_orient_array(c, orientation) for c in color]
    if alpha is not None:
        alpha = _orient_array(alpha, orientation)
    height, width = color[0].shape
    target = _capped_size(width, height, max_side)
    if target != (width, height):
        color, alpha = _resize_float(color, alpha, target)
    pixels = np.stack(color, axis=-1) if len(color) == 3 else color[0]
    pixels, converted = to_srgb_float(pixels, icc)
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[..., None], 3, axis=2)
    rgb = np.ascontiguousarray(pixels, dtype=np.float32)
    out_alpha = None if alpha is None else np.ascontiguousarray(alpha, dtype=np.float32)
    return rgb, out_alpha, converted


def _finish_8bit(
    im: Image.Image, icc: bytes | None, orientation: int, max_side: int
) -> tuple[np.ndarray, np.ndarray | None, bool]:
    """Colour-manage, orient and resize an 8-bit image with Pillow; return (rgb, alpha, icc_converted)."""
    color, alpha = _split_alpha(_normalise_mode(im))
    color, converted = to_srgb_8bit(color, icc)
    merged = color if alpha is None else Image.merge(color.mode + "A", (*color.split(), alpha))
    method = ORIENTATION_TRANSPOSE[orientation]
    if method is not None:
        merged = merged.transpose(method)
    target = _capped_size(merged.width, merged.height, max_side)
    if target != merged.size:
        merged = merged.resize(target, _RESAMPLE)  # Pillow premultiplies RGBA/LA while resampling
    values = np.asarray(merged)
    scale = np.float32(1.0 / 255.0)
    if values.ndim == 2:
        values = values[..., None]
    bands = values.shape[2]
    has_alpha = bands in (2, 4)
    color_values = values[..., : bands - 1] if has_alpha else values
    rgb = np.multiply(color_values, scale, dtype=np.float32)
    if rgb.shape[2] == 1:
        rgb = np.repeat(rgb, 3, axis=2)
    out_alpha = np.multiply(values[..., -1], scale, dtype=np.float32) if has_alpha else None
    return np.ascontiguousarray(rgb), out_alpha, converted


def _normalise_mode(im: Image.Image) -> Image.Image:
    """Bring any 8-bit Pillow mode to one of RGB, RGBA, L, LA, CMYK, LAB (transparency becomes alpha).

    Raises:
        UnsupportedFormatError: a pixel mode Pillow cannot convert to RGB.
    """
    mode = im.mode
    has_key = "transparency" in im.info
    if mode in ("RGB", "L"):
        return im.convert(mode + "A") if has_key else im
    if mode in ("RGBA", "LA", "CMYK", "LAB"):
        return im
    if mode == "1":
        return im.convert("L")
    if mode in ("La", "RGBa"):
        return im.convert(mode.upper())
    if mode in ("P", "PA"):
        palette_mode = im.palette.mode if im.palette is not None else "RGB"
        return im.convert("RGBA" if mode == "PA" or has_key or palette_mode == "RGBA" else "RGB")
    try:
        return im.convert("RGB")
    except (ValueError, OSError) as exc:
        raise UnsupportedFormatError(f"pixel mode {mode} is not supported") from exc


def _split_alpha(im: Image.Image) -> tuple[Image.Image, Image.Image | None]:
    """Split an RGBA/LA image into its colour part and its alpha band; others have no alpha."""
    if im.mode == "RGBA":
        red, green, blue, alpha = im.split()
        return Image.merge("RGB", (red, green, blue)), alpha
    if im.mode == "LA":
        gray, alpha = im.split()
        return gray, alpha
    return im, None


def _draft_jpeg(im: Image.Image, max_side: int) -> None:
    """Let libjpeg decode a JPEG larger than needed at 1/2, 1/4 or 1/8 scale (DCT scaling).

    Only reductions that keep at least ``_DRAFT_MARGIN`` × the final size are used, so LANCZOS still
    does the last, quality-defining step.
    """
    width, height = im.size
    long_side = max(width, height)
    if long_side <= max_side * _DRAFT_MARGIN:
        return
    factor = max_side * _DRAFT_MARGIN / long_side
    im.draft(im.mode, (math.ceil(width * factor), math.ceil(height * factor)))


def _capped_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """(width, height) scaled so that the long side is at most ``max_side``, aspect kept."""
    long_side = max(width, height)
    if long_side <= max_side:
        return width, height
    scale = max_side / long_side
    if width >= height:
        return max_side, max(1, round(height * scale))
    return max(1, round(width * scale)), max_side


def _orient_array(values: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1..8) to a 2-D array, as Pillow's transpose for that value does."""
    if orientation == 2:
        return values[:, ::-1]
    if orientation == 3:
        return values[::-1, ::-1]
    if orientation == 4:
        return values[::-1]
    if orientation == 5:
        return values.T
    if orientation == 6:
        return values.T[:, ::-1]
    if orientation == 7:
        return values[::-1, ::-1].T
    if orientation == 8:
        return values.T[::-1]
    return values


def _resize_float(
    color: list[np.ndarray], alpha: np.ndarray | None, size: tuple[int, int]
) -> tuple[list[np.ndarray], np.ndarray | None]:
    """LANCZOS-resize float32 channels to ``size`` (w, h), with alpha premultiplied while resampling."""

    def resample(channel: np.ndarray) -> np.ndarray:
        band = Image.fromarray(np.ascontiguousarray(channel, dtype=np.float32))
        return np.asarray(band.resize(size, _RESAMPLE), dtype=np.float32)

    if alpha is None:
        return [np.clip(resample(c), 0.0, 1.0) for c in color], None
    small_alpha = np.clip(resample(alpha), 0.0, 1.0)
    visible = small_alpha > 1e-6
    safe_alpha = np.where(visible, small_alpha, 1.0)
    out = []
    for channel in color:
        premultiplied = resample(channel * alpha)
        out.append(np.clip(np.where(visible, premultiplied / safe_alpha, 0.0), 0.0, 1.0).astype(np.float32))
    return out, small_alpha

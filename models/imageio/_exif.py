"""EXIF: read the orientation, and clean the block that travels with the image (no orientation, no GPS)."""

from __future__ import annotations

import logging

from PIL import Image

logger = logging.getLogger(__name__)

ORIENTATION_TAG = 0x0112
GPS_IFD_TAG = 0x8825
EXIF_IFD_TAG = 0x8769
PIXEL_X_DIMENSION_TAG = 0xA002
PIXEL_Y_DIMENSION_TAG = 0xA003

#: EXIF orientation → the Pillow transpose that makes the pixels upright (1 needs none).
ORIENTATION_TRANSPOSE: dict[int, Image.Transpose | None] = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def read_exif(im: Image.Image, *, keep_block: bool) -> tuple[int, bytes | None]:
    """Return the orientation (1..8) of an opened image and its EXIF block without orientation and GPS.

    ``keep_block`` says whether the format carries a real EXIF block worth passing on (JPEG, PNG, WebP,
    HEIF, AVIF); for TIFF, whose "EXIF" is its own file structure, only the orientation is read. A
    malformed EXIF block is dropped (orientation 1) rather than failing the decode. The returned block
    is as Pillow writes it (``b"Exif\\x00\\x00"`` + TIFF structure), or ``None`` when nothing is left.
    """
    try:
        exif = im.getexif()
        raw_orientation = exif.get(ORIENTATION_TAG, 1)
    except Exception:  # Pillow raises many types on malformed EXIF; the image itself may still be fine
        logger.debug("ignoring malformed EXIF", exc_info=True)
        return 1, None
    orientation = raw_orientation if isinstance(raw_orientation, int) and 1 <= raw_orientation <= 8 else 1
    if not keep_block or "exif" not in im.info:
        return orientation, None
    return orientation, clean_exif(exif)


def clean_exif(exif: Image.Exif, *, strip_gps: bool = True, size: tuple[int, int] | None = None) -> bytes | None:
    """Serialise ``exif`` without its Orientation tag (and GPS IFD when ``strip_gps``); ``None`` if empty.

    A block that Pillow cannot re-serialise also gives ``None``.
    With ``size`` (width, height), the Exif IFD's PixelXDimension/PixelYDimension, when present, are set
    to it so that the block describes the pixels it travels with.
    """
    try:
        exif.pop(ORIENTATION_TAG, None)
        if strip_gps:
            exif.pop(GPS_IFD_TAG, None)
        if size is not None and EXIF_IFD_TAG in exif:
            sub_ifd = exif.get_ifd(EXIF_IFD_TAG)
            for tag, value in ((PIXEL_X_DIMENSION_TAG, size[0]), (PIXEL_Y_DIMENSION_TAG, size[1])):
                if tag in sub_ifd:
                    sub_ifd[tag] = value
        if len(exif) == 0:
            return None
        return exif.tobytes()
    except Exception:  # a block Pillow cannot re-serialise is dropped, never fatal
        logger.debug("dropping EXIF that cannot be re-serialised", exc_info=True)
        return None

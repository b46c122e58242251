"""Format sniffing: name an image format from its leading bytes, never from a file name or Content-Type."""

from __future__ import annotations

import re

from models.errors import InvalidImageError, UnsupportedFormatError

#: Formats this package decodes, mapped to the Pillow plugin id that opens them.
PIL_FORMAT_IDS: dict[str, str] = {
    "jpeg": "JPEG",
    "png": "PNG",
    "webp": "WEBP",
    "heif": "HEIF",
    "avif": "AVIF",
    "tiff": "TIFF",
    "bmp": "BMP",
    "gif": "GIF",
}

# Leading bytes of image (and image-like) formats that are recognised but not decoded here.
_UNSUPPORTED_PREFIXES: tuple[tuple[bytes, str], ...] = (
    (b"8BPS", "PSD (Photoshop)"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "JPEG 2000"),
    (b"\xff\x4f\xff\x51", "JPEG 2000 codestream"),
    (b"\x00\x00\x00\x0cJXL \r\n\x87\n", "JPEG XL"),
    (b"\xff\x0a", "JPEG XL"),
    (b"%PDF-", "PDF"),
    (b"%!PS", "PostScript/EPS"),
    (b"\xc5\xd0\xd3\xc6", "EPS"),
    (b"qoif", "QOI"),
    (b"DDS ", "DDS"),
    (b"v/1\x01", "OpenEXR"),
    (b"#?RADIANCE", "Radiance HDR"),
    (b"#?RGBE", "Radiance HDR"),
    (b"gimp xcf", "GIMP XCF"),
    (b"icns", "ICNS"),
    (b"\x8aMNG\r\n\x1a\n", "MNG"),
    (b"\x8bJNG\r\n\x1a\n", "JNG"),
    (b"FLIF", "FLIF"),
    (b"BPG\xfb", "BPG"),
    (b"SIMPLE  =", "FITS"),
    (b"\x59\xa6\x6a\x95", "Sun raster"),
    (b"FUJIFILMCCD-RAW", "Fujifilm RAF camera raw"),
    (b"\x01\xda", "SGI"),
)

# ISO base media file ("ftyp") brands: HEIF family, AVIF, and the ones that are not still images.
_HEIF_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs"})
_AVIF_BRANDS = frozenset({b"avif", b"avis"})
_GENERIC_HEIF_BRANDS = frozenset({b"mif1", b"msf1", b"mif2", b"miaf"})
_BMP_DIB_HEADER_SIZES = frozenset({12, 16, 40, 52, 56, 64, 108, 124})
_PNM_RE = re.compile(rb"P[1-7][ \t\r\n]")
_TEXT_HEAD_RE = re.compile(rb"^(?:\xef\xbb\xbf)?[ \t\r\n]*")


def sniff_format(data: bytes) -> str:
    """Name the image format of ``data`` from its leading bytes.

    Returns one of the keys of :data:`PIL_FORMAT_IDS` ("jpeg", "png", "webp", "heif", "avif", "tiff",
    "bmp", "gif").

    Raises:
        InvalidImageError: ``data`` is empty, or is not an image at all (text, HTML, unknown bytes).
        UnsupportedFormatError: ``data`` is an image (or image-like document) in a format that is not
            decoded here, such as PSD, ICO, JPEG 2000, JPEG XL, PDF or SVG.
    """
    if len(data) == 0:
        raise InvalidImageError("image data is empty")
    head = bytes(data[:256])
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head.startswith((b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")):
        return "tiff"
    if head[:2] == b"BM" and len(head) >= 18 and int.from_bytes(head[14:18], "little") in _BMP_DIB_HEADER_SIZES:
        return "bmp"
    if head[4:8] == b"ftyp":
        return _sniff_iso_media(head)
    for prefix, name in _UNSUPPORTED_PREFIXES:
        if head.startswith(prefix):
            raise _unsupported(name)
    if head[:4] in (b"\x00\x00\x01\x00", b"\x00\x00\x02\x00") and len(head) >= 6 and head[4:6] != b"\x00\x00":
        kind = "ICO" if head[2] == 1 else "CUR"
        raise _unsupported(kind)
    if len(data) > 132 and bytes(data[128:132]) == b"DICM":
        raise _unsupported("DICOM")
    if _PNM_RE.match(head):
        raise _unsupported("PNM/PPM")
    if head[0] == 0x0A and head[1:2] in (b"\x00", b"\x02", b"\x03", b"\x04", b"\x05") and head[2:3] == b"\x01":
        raise _unsupported("PCX")
    _raise_for_text(bytes(data[:2048]))
    raise InvalidImageError(
        f"data is not a recognised image (unknown leading bytes {head[:8].hex(' ')}); "
        f"supported formats: {_supported_list()}"
    )


def _unsupported(name: str) -> UnsupportedFormatError:
    """The error for a recognised format that is not decoded here."""
    return UnsupportedFormatError(f"{name} is not a supported image format (supported: {_supported_list()})")


def _supported_list() -> str:
    """The supported formats as a short human list."""
    return "JPEG, PNG, WebP, HEIC/HEIF, AVIF, TIFF, BMP, GIF"


def _sniff_iso_media(head: bytes) -> str:
    """Classify an ISO base media file (its ``ftyp`` box) as HEIF, AVIF or something unsupported."""
    box_size = int.from_bytes(head[0:4], "big")
    major = head[8:12]
    end = min(max(box_size, 16), len(head))
    compatible = {head[i : i + 4] for i in range(16, end - 3, 4)}
    brands = {major} | compatible
    if major in _AVIF_BRANDS:
        return "avif"
    if major in _HEIF_BRANDS:
        return "heif"
    if major in _GENERIC_HEIF_BRANDS or brands & (_AVIF_BRANDS | _HEIF_BRANDS):
        if brands & _AVIF_BRANDS:
            return "avif"
        return "heif"
    if major == b"crx ":
        raise _unsupported("Canon CR3 camera raw")
    brand = major.decode("latin-1").strip()
    raise UnsupportedFormatError(f"ISO media files of brand '{brand}' (video or other media) are not images")


def _raise_for_text(head: bytes) -> None:
    """Raise a precise error when the data is text: SVG (unsupported) or HTML/XML/JSON (not an image)."""
    start = _TEXT_HEAD_RE.match(head)
    text = head[start.end() if start else 0 :].lower()
    if text.startswith((b"<svg", b"<?xml", b"<!doctype svg")) and b"<svg" in head.lower():
        raise _unsupported("SVG (vector graphics)")
    if text.startswith((b"<!doctype html", b"<html", b"<head", b"<body")):
        raise InvalidImageError("data is an HTML document, not an image")
    if text.startswith(b"<?xml"):
        raise InvalidImageError("data is an XML document, not an image")
    if text.startswith((b"{", b"[")):
        raise InvalidImageError("data looks like JSON text, not an image")

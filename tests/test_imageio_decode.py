"""Decoding: formats, sources (base64, data URLs), orientation, colour, alpha, depth, bombs, size cap.

The photos (``astronaut``, ``chelsea``) are the shared scikit-image fixtures of ``conftest.py``.
"""

from __future__ import annotations

import base64
import io
import itertools
import struct
import time
import zlib

import numpy as np
import pytest
import skimage.data
from PIL import Image, ImageCms, features

from models.errors import ImageFetchError, InvalidImageError, UnsupportedFormatError
from models.imageio import DecodedImage, decode_image
from models.imageio._decode import _orient_array
from models.imageio._exif import ORIENTATION_TRANSPOSE
from server.image_source import load_image_source
from server.outbound import FetchPolicy

ORIENTATION = 0x0112
MAKE = 0x010F
GPS_IFD = 0x8825


def pil_bytes(image: Image.Image | np.ndarray, fmt: str, **options: object) -> bytes:
    """Encode an image (or uint8 array) with Pillow."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    """One PNG chunk with its length and CRC."""
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png16(values: np.ndarray, icc: bytes | None = None) -> bytes:
    """A 16-bit PNG (gray, gray+alpha, RGB or RGBA by the last axis) written by hand: Pillow cannot."""
    if values.ndim == 2:
        values = values[..., None]
    height, width, channels = values.shape
    color_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    rows = b"".join(b"\x00" + values[y].astype(">u2").tobytes() for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 16, color_type, 0, 0, 0)
    profile = b"" if icc is None else png_chunk(b"iCCP", b"test\x00\x00" + zlib.compress(icc))
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + profile
        + png_chunk(b"IDAT", zlib.compress(rows))
        + png_chunk(b"IEND", b"")
    )


def s15(value: float) -> bytes:
    """An ICC s15Fixed16Number."""
    return struct.pack(">i", round(value * 65536))


def xyz_tag(values: tuple[float, float, float]) -> bytes:
    """An ICC XYZType tag."""
    return b"XYZ \x00\x00\x00\x00" + b"".join(s15(v) for v in values)


def desc_tag(name: str) -> bytes:
    """An ICC v2 textDescriptionType tag."""
    text = name.encode("ascii") + b"\x00"
    return b"desc\x00\x00\x00\x00" + struct.pack(">I", len(text)) + text + bytes(8 + 3 + 67)


def matrix_shaper_profile(colorants: list[tuple[float, float, float]], gamma: float, name: str) -> bytes:
    """A minimal ICC v2 RGB display profile (matrix/TRC) from D50-adapted colorants and a pure gamma."""
    curve = b"curv\x00\x00\x00\x00" + struct.pack(">IH", 1, round(gamma * 256)) + b"\x00\x00"
    tags = [
        (b"desc", desc_tag(name)),
        (b"wtpt", xyz_tag((0.9642, 1.0, 0.8249))),
        (b"rXYZ", xyz_tag(colorants[0])),
        (b"gXYZ", xyz_tag(colorants[1])),
        (b"bXYZ", xyz_tag(colorants[2])),
        (b"rTRC", curve),
        (b"gTRC", curve),
        (b"bTRC", curve),
    ]
    return icc_profile(b"mntr", b"RGB ", b"XYZ ", tags)


def gray_gamma_profile(gamma: float) -> bytes:
    """A minimal ICC v2 gray display profile with a pure gamma curve (D50 white)."""
    curve = b"curv\x00\x00\x00\x00" + struct.pack(">IH", 1, round(gamma * 256)) + b"\x00\x00"
    tags = [
        (b"desc", desc_tag(f"gray gamma {gamma} test profile")),
        (b"wtpt", xyz_tag((0.9642, 1.0, 0.8249))),
        (b"kTRC", curve),
    ]
    return icc_profile(b"mntr", b"GRAY", b"XYZ ", tags)


def cmyk_lut_profile() -> bytes:
    """A minimal ICC v2 CMYK input profile: an A2B0 lut16 (2-point grid) to Lab, made from the naive
    CMYK → RGB formula at the 16 corners of the CMYK cube (plausible, not a press profile)."""
    corners = list(itertools.product((0, 1), repeat=4))  # (c, m, y, k), first channel slowest
    rgb = np.array([[(1 - c) * (1 - k), (1 - m) * (1 - k), (1 - y) * (1 - k)] for c, m, y, k in corners])
    srgb, lab_profile = ImageCms.createProfile("sRGB"), ImageCms.createProfile("LAB")
    to_lab = ImageCms.buildTransform(srgb, lab_profile, "RGB", "LAB")
    lab = ImageCms.applyTransform(Image.fromarray((rgb * 255).astype(np.uint8).reshape(1, 16, 3)), to_lab)
    assert lab is not None
    # Pillow's LAB bytes (L·2.55, a+128, b+128) times 256 are exactly ICC v2's 16-bit Lab encoding.
    clut = (np.asarray(lab).reshape(16, 3).astype(np.uint32) * 256).astype(">u2").tobytes()
    identity = b"".join(s15(v) for v in (1, 0, 0, 0, 1, 0, 0, 0, 1))
    ramp = struct.pack(">HH", 0, 65535)
    lut = b"mft2" + bytes(4) + bytes([4, 3, 2, 0]) + identity + struct.pack(">HH", 2, 2)
    lut += ramp * 4 + clut + ramp * 3
    tags = [
        (b"desc", desc_tag("naive CMYK test profile")),
        (b"wtpt", xyz_tag((0.9642, 1.0, 0.8249))),
        (b"A2B0", lut),
    ]
    return icc_profile(b"scnr", b"CMYK", b"Lab ", tags)


def icc_profile(device_class: bytes, color_space: bytes, pcs: bytes, tags: list[tuple[bytes, bytes]]) -> bytes:
    """Assemble an ICC v2.1 profile from its tags."""
    offset = 128 + 4 + 12 * len(tags)
    table, blobs = b"", b""
    for signature, blob in tags:
        blob += b"\x00" * (-len(blob) % 4)
        table += signature + struct.pack(">II", offset + len(blobs), len(blob))
        blobs += blob
    size = offset + len(blobs)
    header = (
        struct.pack(">I", size)
        + b"lcms"
        + bytes([2, 0x10, 0, 0])
        + device_class
        + color_space
        + pcs
        + bytes(12)
        + b"acsp"
        + bytes(24)
        + struct.pack(">I", 0)
        + s15(0.9642)
        + s15(1.0)
        + s15(0.8249)
        + bytes(48)
    )
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + table + blobs


# Adobe RGB (1998), D50-adapted colorants as in Adobe's own profile; gamma 563/256.
ADOBE_RGB_LIKE = matrix_shaper_profile(
    [(0.60974, 0.31111, 0.01947), (0.20528, 0.62567, 0.06087), (0.14919, 0.06322, 0.74457)],
    2.19921875,
    "Adobe RGB-like test profile",
)


def asymmetric_image() -> np.ndarray:
    """A 3×5 RGB image whose every pixel differs, so any flip or rotation is visible."""
    return np.arange(3 * 5 * 3, dtype=np.uint8).reshape(3, 5, 3) * 5


def upright(values: np.ndarray, orientation: int) -> np.ndarray:
    """What a viewer shows for stored ``values`` with EXIF ``orientation`` (from the EXIF spec's words)."""
    return {
        1: lambda a: a,
        2: lambda a: a[:, ::-1],  # mirrored horizontally
        3: lambda a: np.rot90(a, 2),  # rotated 180
        4: lambda a: a[::-1],  # mirrored vertically
        5: lambda a: np.rot90(a[:, ::-1], 1),  # mirrored horizontally, then rotated 270 CW
        6: lambda a: np.rot90(a, -1),  # rotated 90 CW
        7: lambda a: np.rot90(a[:, ::-1], -1),  # mirrored horizontally, then rotated 90 CW
        8: lambda a: np.rot90(a, 1),  # rotated 270 CW
    }[orientation](values)


# ---------------------------------------------------------------- formats


FORMAT_CASES = [
    ("JPEG", {"quality": 95}, "jpeg", 3.0),
    ("PNG", {}, "png", 0.0),
    ("WEBP", {"quality": 95}, "webp", 4.0),
    ("HEIF", {"quality": 95}, "heif", 4.0),
    ("AVIF", {"quality": 95}, "avif", 4.0),
    ("TIFF", {}, "tiff", 0.0),
    ("BMP", {}, "bmp", 0.0),
    ("GIF", {}, "gif", 12.0),
]


@pytest.mark.parametrize(("pil_format", "options", "expected_format", "tolerance"), FORMAT_CASES)
def test_decode_round_trips_real_photo_for_each_format(
    astronaut: np.ndarray, pil_format: str, options: dict[str, object], expected_format: str, tolerance: float
) -> None:
    if pil_format == "AVIF" and not features.check("avif"):
        pytest.skip("this Pillow has no AVIF support")
    if pil_format == "HEIF":
        import pillow_heif

        buffer = io.BytesIO()
        pillow_heif.from_pillow(Image.fromarray(astronaut)).save(buffer, quality=95)
        data = buffer.getvalue()
    else:
        data = pil_bytes(astronaut, pil_format, **options)

    decoded = decode_image(data)

    assert decoded.source_format == expected_format
    assert decoded.rgb.shape == (512, 512, 3)
    assert decoded.rgb.dtype == np.float32
    assert decoded.rgb.flags.c_contiguous
    assert decoded.alpha is None
    assert decoded.bit_depth == 8
    mean_abs_error = float(np.abs(decoded.rgb * 255.0 - astronaut).mean())
    assert mean_abs_error <= tolerance + 1e-3


def test_decode_lossless_png_is_exact(astronaut: np.ndarray) -> None:
    decoded = decode_image(pil_bytes(astronaut, "PNG"))
    np.testing.assert_array_equal(np.rint(decoded.rgb * 255.0).astype(np.uint8), astronaut)
    assert decoded.rgb.min() >= 0.0
    assert decoded.rgb.max() <= 1.0


def test_decode_gif_reads_first_frame_only(chelsea: np.ndarray) -> None:
    first = Image.fromarray(chelsea)
    second = Image.fromarray(255 - chelsea)
    data = pil_bytes(first, "GIF", save_all=True, append_images=[second])

    decoded = decode_image(data)

    assert decoded.source_format == "gif"
    assert float(np.abs(decoded.rgb * 255.0 - chelsea).mean()) < 12.0


def test_decode_size_property_is_width_height(chelsea: np.ndarray) -> None:
    decoded = decode_image(pil_bytes(chelsea, "PNG"))
    assert decoded.size == (451, 300)
    assert decoded.original_size == (451, 300)


# ---------------------------------------------------------------- sources


def test_load_source_decodes_raw_base64(astronaut: np.ndarray) -> None:
    data = pil_bytes(astronaut, "PNG")
    assert load_image_source(base64.b64encode(data).decode(), FetchPolicy()) == data


def test_load_source_tolerates_newlines_and_missing_padding() -> None:
    data = bytes(range(256)) + b"x"  # 257 bytes: base64 needs '==' padding
    encoded = base64.b64encode(data).decode().rstrip("=")
    wrapped = "\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76))
    assert load_image_source("  " + wrapped + "\r\n", FetchPolicy()) == data


def test_load_source_decodes_data_url(chelsea: np.ndarray) -> None:
    data = pil_bytes(chelsea, "JPEG")
    url = "data:image/jpeg;base64," + base64.b64encode(data).decode()
    assert load_image_source(url, FetchPolicy()) == data


def test_load_source_decodes_urlsafe_base64() -> None:
    data = bytes(range(250, 256)) * 50  # yields '-' and '_' in the URL-safe alphabet
    encoded = base64.urlsafe_b64encode(data).decode()
    assert "-" in encoded or "_" in encoded
    assert load_image_source(encoded, FetchPolicy()) == data


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("iVBORw0KGgo!AAAA", "'!' at position 11"),
        ("iVBORw0KGgoAAAAAA", "not a possible length"),  # 17 characters: no base64 has that length
        ("iVBORw0KGgo=AAAA", "padding '='"),
        ("abc+def-ghij", "mixes the standard"),
        ("   ", "empty"),
    ],
)
def test_load_source_refuses_bad_base64_with_precise_detail(text: str, fragment: str) -> None:
    with pytest.raises(InvalidImageError) as caught:
        load_image_source(text, FetchPolicy())
    assert fragment in caught.value.detail


def test_load_source_refuses_data_url_without_base64() -> None:
    with pytest.raises(InvalidImageError, match="base64"):
        load_image_source("data:image/png,rawbytes", FetchPolicy())


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/a.jpg", "gopher://h/1", "FILE:/x"])
def test_load_source_refuses_other_url_schemes(url: str) -> None:
    with pytest.raises(ImageFetchError) as caught:
        load_image_source(url, FetchPolicy())
    assert "scheme" in caught.value.detail
    assert caught.value.code == "IMAGE_FETCH_FAILED"


def test_load_source_refuses_inline_payload_over_byte_limit() -> None:
    encoded = base64.b64encode(bytes(4096)).decode()
    with pytest.raises(InvalidImageError, match="limit"):
        load_image_source(encoded, FetchPolicy(max_bytes=1000))


# ---------------------------------------------------------------- invalid and unsupported data


def test_decode_refuses_garbage_bytes() -> None:
    garbage = np.random.default_rng(1234).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    with pytest.raises(InvalidImageError) as caught:
        decode_image(garbage)
    assert caught.value.code == "INVALID_IMAGE"


def test_decode_refuses_empty_bytes() -> None:
    with pytest.raises(InvalidImageError, match="empty"):
        decode_image(b"")


def test_decode_refuses_html_page_with_precise_detail() -> None:
    with pytest.raises(InvalidImageError, match="HTML"):
        decode_image(b"<!DOCTYPE html><html><body>Not found</body></html>")


@pytest.mark.parametrize("keep", [0.5, 0.95])
def test_decode_refuses_truncated_jpeg(astronaut: np.ndarray, keep: float) -> None:
    data = pil_bytes(astronaut, "JPEG", quality=90)
    with pytest.raises(InvalidImageError, match="truncated"):
        decode_image(data[: int(len(data) * keep)])


def test_decode_refuses_corrupt_png_header() -> None:
    data = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\x0dIHDR" + b"\xff" * 30
    with pytest.raises(InvalidImageError, match="PNG"):
        decode_image(data)


@pytest.mark.parametrize(("pil_format", "name"), [("ICO", "ICO"), ("PDF", "PDF"), ("JPEG2000", "JPEG 2000")])
def test_decode_refuses_unsupported_format_written_by_pillow(chelsea: np.ndarray, pil_format: str, name: str) -> None:
    data = pil_bytes(chelsea[:64, :64], pil_format)
    with pytest.raises(UnsupportedFormatError) as caught:
        decode_image(data)
    assert name in caught.value.detail
    assert caught.value.code == "UNSUPPORTED_FORMAT"


def test_decode_refuses_svg_text_as_unsupported() -> None:
    svg = b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"></svg>'
    with pytest.raises(UnsupportedFormatError, match="SVG"):
        decode_image(svg)


def test_decode_refuses_psd_signature_as_unsupported() -> None:
    with pytest.raises(UnsupportedFormatError, match="PSD"):
        decode_image(b"8BPS\x00\x01" + bytes(64))


# ---------------------------------------------------------------- bombs and size cap


def test_decode_refuses_header_claiming_huge_png_quickly() -> None:
    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    data = (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + png_chunk(b"IEND", b"")
    )
    started = time.perf_counter()
    with pytest.raises(InvalidImageError, match="decompression bomb"):
        decode_image(data)
    assert time.perf_counter() - started < 0.5


def test_decode_refuses_small_file_over_pixel_limit_before_decoding() -> None:
    data = pil_bytes(Image.new("L", (4000, 4000)), "PNG", compress_level=9)
    assert len(data) < 100_000  # a tiny file that would inflate to 16 MB
    started = time.perf_counter()
    with pytest.raises(InvalidImageError) as caught:
        decode_image(data, max_pixels=1_000_000)
    assert "4000×4000" in caught.value.detail
    assert "decompression bomb" in caught.value.detail
    assert time.perf_counter() - started < 0.2


def test_decode_resizes_long_side_to_max_side_keeping_aspect(chelsea: np.ndarray) -> None:
    big = Image.fromarray(chelsea).resize((5000, 3326), Image.Resampling.BICUBIC)
    decoded = decode_image(pil_bytes(big, "JPEG", quality=90))

    assert decoded.original_size == (5000, 3326)
    assert decoded.size == (4096, round(3326 * 4096 / 5000))
    assert decoded.rgb.flags.c_contiguous
    reference = np.asarray(big.resize(decoded.size, Image.Resampling.LANCZOS), dtype=np.float32)
    assert float(np.abs(decoded.rgb * 255.0 - reference).mean()) < 3.0


def test_decode_resizes_portrait_by_its_height(chelsea: np.ndarray) -> None:
    decoded = decode_image(pil_bytes(np.ascontiguousarray(chelsea.transpose(1, 0, 2)), "PNG"), max_side=200)
    assert decoded.size == (133, 200)
    assert decoded.original_size == (300, 451)


def test_decode_large_jpeg_draft_matches_full_decode(astronaut: np.ndarray) -> None:
    big = Image.fromarray(astronaut).resize((2048, 2048), Image.Resampling.LANCZOS)
    data = pil_bytes(big, "JPEG", quality=95)
    decoded = decode_image(data, max_side=512)  # 4× reduction: libjpeg draft at 1/2, then LANCZOS
    reference = np.asarray(big.resize((512, 512), Image.Resampling.LANCZOS), dtype=np.float32) / 255.0
    psnr = 10 * np.log10(1.0 / float(np.mean((decoded.rgb - reference) ** 2)))
    assert decoded.size == (512, 512)
    assert psnr > 38.0


def test_decode_refuses_non_positive_limits() -> None:
    with pytest.raises(ValueError, match="max_side"):
        decode_image(b"x", max_side=0)


# ---------------------------------------------------------------- orientation and EXIF


@pytest.mark.parametrize("orientation", range(1, 9))
def test_decode_applies_exif_orientation_8bit(orientation: int) -> None:
    stored = asymmetric_image()
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    exif[MAKE] = "TestCam"
    data = pil_bytes(stored, "PNG", exif=exif.tobytes())

    decoded = decode_image(data)

    expected = upright(stored, orientation)
    np.testing.assert_array_equal(np.rint(decoded.rgb * 255).astype(np.uint8), expected)
    assert decoded.original_size == (expected.shape[1], expected.shape[0])
    assert decoded.exif is not None
    kept = Image.Exif()
    kept.load(decoded.exif)
    assert ORIENTATION not in kept
    assert kept[MAKE] == "TestCam"


@pytest.mark.parametrize("orientation", range(1, 9))
def test_decode_applies_exif_orientation_16bit(orientation: int) -> None:
    stored = (np.arange(3 * 5, dtype=np.uint16).reshape(3, 5) * 3001 + 7).astype(np.uint16)
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    image = Image.frombytes("I;16", (5, 3), stored.astype("<u2").tobytes())
    data = pil_bytes(image, "PNG", exif=exif.tobytes())

    decoded = decode_image(data)

    assert decoded.bit_depth == 16
    expected = upright(stored, orientation).astype(np.float64) / 65535.0
    np.testing.assert_allclose(decoded.rgb[..., 1], expected, atol=1e-6)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orient_array_matches_pillow_transpose(orientation: int) -> None:
    values = asymmetric_image()[..., 0]
    method = ORIENTATION_TRANSPOSE[orientation]
    image = Image.fromarray(values)
    expected = np.asarray(image if method is None else image.transpose(method))
    np.testing.assert_array_equal(_orient_array(values, orientation), expected)


@pytest.mark.parametrize("pil_format", ["JPEG", "WEBP", "AVIF", "HEIF"])
def test_decode_applies_orientation_six_in_lossy_formats(chelsea: np.ndarray, pil_format: str) -> None:
    if pil_format == "AVIF" and not features.check("avif"):
        pytest.skip("this Pillow has no AVIF support")
    if pil_format == "HEIF":
        from models.imageio._decode import register_heif_opener

        register_heif_opener()
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    data = pil_bytes(chelsea, pil_format, exif=exif.tobytes(), quality=95)

    decoded = decode_image(data)

    assert decoded.size == (300, 451)
    assert float(np.abs(decoded.rgb * 255.0 - np.rot90(chelsea, -1)).mean()) < 4.0


def test_decode_strips_gps_and_keeps_other_exif(chelsea: np.ndarray) -> None:
    exif = Image.Exif()
    exif[MAKE] = "Canon"
    exif[ORIENTATION] = 1
    exif.get_ifd(GPS_IFD)[2] = (48.0, 51.0, 24.0)  # GPSLatitude
    exif.get_ifd(GPS_IFD)[1] = "N"
    data = pil_bytes(chelsea, "JPEG", exif=exif.tobytes())
    assert GPS_IFD in Image.open(io.BytesIO(data)).getexif()

    decoded = decode_image(data)

    assert decoded.exif is not None
    kept = Image.Exif()
    kept.load(decoded.exif)
    assert kept[MAKE] == "Canon"
    assert GPS_IFD not in kept
    assert ORIENTATION not in kept


def test_decode_without_exif_reports_none(chelsea: np.ndarray) -> None:
    assert decode_image(pil_bytes(chelsea, "JPEG")).exif is None


# ---------------------------------------------------------------- colour


def test_decode_converts_wide_gamut_icc_profile_to_srgb() -> None:
    patch = np.zeros((8, 16, 3), dtype=np.uint8)
    patch[:, :8] = (60, 160, 60)  # a green in the source profile's space
    patch[:, 8:] = (128, 128, 128)  # a neutral gray
    tagged = decode_image(pil_bytes(patch, "PNG", icc_profile=ADOBE_RGB_LIKE))
    untagged = decode_image(pil_bytes(patch, "PNG"))

    assert tagged.icc_converted
    assert not untagged.icc_converted
    green = tagged.rgb[0, 0] * 255.0
    # The same numbers mean a more saturated green in Adobe RGB: in sRGB red and blue fall (Adobe RGB's
    # green primary lies outside sRGB's), green itself stays about where it was, so the chroma grows.
    assert green[0] < 60 - 20
    assert green[2] < 60 - 10
    assert abs(float(green[1]) - 160) < 4
    assert float(np.ptp(green)) > 100 + 20
    gray = tagged.rgb[0, 12] * 255.0
    assert float(np.ptp(gray)) < 1.5  # neutrals stay neutral
    np.testing.assert_allclose(untagged.rgb[0, 0] * 255.0, (60, 160, 60), atol=1e-3)


def test_decode_matches_littlecms_reference_for_icc_photo(chelsea: np.ndarray) -> None:
    data = pil_bytes(chelsea, "JPEG", quality=95, icc_profile=ADOBE_RGB_LIKE)
    decoded = decode_image(data)
    source = Image.open(io.BytesIO(data)).convert("RGB")
    profile = ImageCms.ImageCmsProfile(io.BytesIO(ADOBE_RGB_LIKE))
    srgb = ImageCms.createProfile("sRGB")
    reference = ImageCms.profileToProfile(source, profile, srgb, renderingIntent=ImageCms.Intent.PERCEPTUAL)
    assert reference is not None
    np.testing.assert_allclose(decoded.rgb * 255.0, np.asarray(reference, dtype=np.float32), atol=1.0)


def test_decode_gray_with_gray_profile_converts_to_srgb() -> None:
    gray = np.full((4, 4), 128, np.uint8)
    decoded = decode_image(pil_bytes(gray, "PNG", icc_profile=gray_gamma_profile(1.8)))
    assert decoded.icc_converted
    # 128 under gamma 1.8 is linear 0.289, which sRGB encodes as about 0.575 (147): lighter.
    np.testing.assert_allclose(decoded.rgb[0, 0] * 255.0, (147, 147, 147), atol=1.5)


def test_decode_16bit_gray_with_gray_profile_converts_in_float() -> None:
    pytest.importorskip("imagecodecs")
    values = np.full((4, 4), 32896, np.uint16)  # 128.0 in 8-bit terms
    decoded = decode_image(png16(values, icc=gray_gamma_profile(1.8)))
    assert decoded.icc_converted
    assert decoded.bit_depth == 16
    np.testing.assert_allclose(decoded.rgb[0, 0] * 255.0, (147, 147, 147), atol=1.5)


def test_decode_ignores_corrupt_icc_profile(chelsea: np.ndarray) -> None:
    decoded = decode_image(pil_bytes(chelsea, "PNG", icc_profile=b"not really a profile" * 10))
    assert not decoded.icc_converted
    np.testing.assert_allclose(decoded.rgb * 255.0, chelsea, atol=1e-3)


def test_decode_cmyk_jpeg_close_to_original(chelsea: np.ndarray) -> None:
    data = pil_bytes(Image.fromarray(chelsea).convert("CMYK"), "JPEG", quality=95)
    assert Image.open(io.BytesIO(data)).info.get("adobe")  # Adobe-marked, inverted CMYK
    decoded = decode_image(data)
    assert decoded.source_mode == "CMYK"
    assert not decoded.icc_converted
    assert float(np.abs(decoded.rgb * 255.0 - chelsea).mean()) < 3.0


def test_decode_cmyk_jpeg_with_profile_uses_it(chelsea: np.ndarray) -> None:
    profile_bytes = cmyk_lut_profile()
    cmyk = Image.fromarray(chelsea).convert("CMYK")
    data = pil_bytes(cmyk, "JPEG", quality=95, icc_profile=profile_bytes)

    decoded = decode_image(data)

    assert decoded.icc_converted
    source = Image.open(io.BytesIO(data))
    profile = ImageCms.ImageCmsProfile(io.BytesIO(profile_bytes))
    reference = ImageCms.profileToProfile(
        source,
        profile,
        ImageCms.createProfile("sRGB"),
        outputMode="RGB",
        renderingIntent=ImageCms.Intent.PERCEPTUAL,
    )
    assert reference is not None
    np.testing.assert_allclose(decoded.rgb * 255.0, np.asarray(reference, dtype=np.float32), atol=1.0)
    naive = np.asarray(source.convert("RGB"), dtype=np.float32)
    assert float(np.abs(decoded.rgb * 255.0 - naive).mean()) > 1.0  # the profile, not the formula, was used


def test_decode_lab_tiff_converts_to_srgb(chelsea: np.ndarray) -> None:
    srgb, lab = ImageCms.createProfile("sRGB"), ImageCms.createProfile("LAB")
    converted = ImageCms.applyTransform(Image.fromarray(chelsea), ImageCms.buildTransform(srgb, lab, "RGB", "LAB"))
    assert converted is not None
    decoded = decode_image(pil_bytes(converted, "TIFF"))
    assert decoded.source_mode == "LAB"
    assert float(np.abs(decoded.rgb * 255.0 - chelsea).mean()) < 2.0


# ---------------------------------------------------------------- alpha, grayscale, palette


def test_decode_rgba_png_keeps_alpha(chelsea: np.ndarray) -> None:
    alpha = np.tile(np.linspace(0, 255, chelsea.shape[1]).astype(np.uint8), (chelsea.shape[0], 1))
    data = pil_bytes(np.dstack([chelsea, alpha]), "PNG")
    decoded = decode_image(data)
    assert decoded.alpha is not None
    assert decoded.alpha.shape == chelsea.shape[:2]
    assert decoded.alpha.dtype == np.float32
    np.testing.assert_allclose(decoded.alpha * 255.0, alpha, atol=1e-3)
    np.testing.assert_allclose(decoded.rgb * 255.0, chelsea, atol=1e-3)


def test_decode_opaque_alpha_channel_is_kept_not_dropped(chelsea: np.ndarray) -> None:
    data = pil_bytes(np.dstack([chelsea, np.full(chelsea.shape[:2], 255, np.uint8)]), "PNG")
    decoded = decode_image(data)
    assert decoded.alpha is not None
    assert float(decoded.alpha.min()) == 1.0


def test_decode_la_png_keeps_alpha_and_gray() -> None:
    gray = skimage.data.camera()[:64, :96]
    alpha = np.random.default_rng(7).integers(0, 256, gray.shape, dtype=np.uint8)
    data = pil_bytes(Image.merge("LA", (Image.fromarray(gray), Image.fromarray(alpha))), "PNG")
    decoded = decode_image(data)
    assert decoded.source_mode == "LA"
    assert decoded.alpha is not None
    np.testing.assert_allclose(decoded.alpha * 255.0, alpha, atol=1e-3)
    np.testing.assert_allclose(decoded.rgb[..., 0] * 255.0, gray, atol=1e-3)


def test_decode_palette_with_transparency_keeps_alpha(chelsea: np.ndarray) -> None:
    palette_image = Image.fromarray(chelsea).quantize(colors=16)
    indices = np.asarray(palette_image)
    transparent_index = int(indices[0, 0])
    data = pil_bytes(palette_image, "PNG", transparency=transparent_index)

    decoded = decode_image(data)

    assert decoded.source_mode == "P"
    assert decoded.alpha is not None
    np.testing.assert_array_equal(decoded.alpha == 0.0, indices == transparent_index)
    assert float(decoded.alpha.max()) == 1.0


def test_decode_palette_gif_with_transparency_keeps_alpha(chelsea: np.ndarray) -> None:
    palette_image = Image.fromarray(chelsea).quantize(colors=32)
    indices = np.asarray(palette_image)
    data = pil_bytes(palette_image, "GIF", transparency=int(indices[5, 5]))
    decoded = decode_image(data)
    assert decoded.alpha is not None
    assert bool((decoded.alpha == 0.0)[indices == indices[5, 5]].all())


def test_decode_grayscale_gives_three_equal_channels() -> None:
    gray = skimage.data.camera()
    decoded = decode_image(pil_bytes(gray, "PNG"))
    assert decoded.rgb.shape == (*gray.shape, 3)
    assert decoded.alpha is None
    np.testing.assert_array_equal(decoded.rgb[..., 0], decoded.rgb[..., 1])
    np.testing.assert_array_equal(decoded.rgb[..., 1], decoded.rgb[..., 2])
    np.testing.assert_allclose(decoded.rgb[..., 0] * 255.0, gray, atol=1e-3)


def test_decode_bilevel_image_gives_black_and_white() -> None:
    bits = skimage.data.camera()[:100, :100] > 128
    decoded = decode_image(pil_bytes(Image.fromarray(bits), "TIFF"))
    np.testing.assert_array_equal(decoded.rgb[..., 2], bits.astype(np.float32))


# ---------------------------------------------------------------- 16-bit


def smooth_16bit(height: int, width: int, channels: int) -> np.ndarray:
    """A smooth 16-bit ramp whose values are not multiples of 257 (so 8 bits cannot hold them)."""
    ramp = np.linspace(1000, 64000, width)[None, :] + np.linspace(0, 300, height)[:, None]
    planes = [np.rint(ramp + 17 * c).astype(np.uint16) for c in range(channels)]
    return np.stack(planes, axis=-1) if channels > 1 else planes[0]


def test_decode_16bit_gray_png_keeps_precision() -> None:
    values = smooth_16bit(32, 300, 1)
    decoded = decode_image(png16(values))
    assert decoded.bit_depth == 16
    assert decoded.source_mode == "I;16"
    error = np.abs(decoded.rgb[..., 0].astype(np.float64) * 65535.0 - values)
    assert float(error.max()) < 0.05  # far below an 8-bit step (257 units)


def test_decode_16bit_rgb_png_keeps_precision() -> None:
    pytest.importorskip("imagecodecs")
    values = smooth_16bit(32, 300, 3)
    decoded = decode_image(png16(values))
    assert decoded.bit_depth == 16
    error = np.abs(decoded.rgb.astype(np.float64) * 65535.0 - values)
    assert float(error.max()) < 0.05


def test_decode_16bit_rgba_png_keeps_alpha_precision() -> None:
    pytest.importorskip("imagecodecs")
    values = smooth_16bit(16, 200, 4)
    decoded = decode_image(png16(values))
    assert decoded.alpha is not None
    np.testing.assert_allclose(decoded.alpha * 65535.0, values[..., 3], atol=0.05)
    np.testing.assert_allclose(decoded.rgb * 65535.0, values[..., :3], atol=0.05)


def test_decode_16bit_rgb_tiff_keeps_precision() -> None:
    tifffile = pytest.importorskip("tifffile")
    pytest.importorskip("imagecodecs")
    values = smooth_16bit(24, 100, 3)
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, values, photometric="rgb")
    decoded = decode_image(buffer.getvalue())
    assert decoded.source_format == "tiff"
    assert decoded.bit_depth == 16
    np.testing.assert_allclose(decoded.rgb * 65535.0, values, atol=0.05)


def test_decode_16bit_rgb_png_with_icc_converts_in_float() -> None:
    pytest.importorskip("imagecodecs")
    ramp = np.linspace(30000, 32000, 256)  # spans only ~8 eight-bit levels
    values = np.rint(np.stack([ramp, ramp + 5000, ramp - 9000], axis=-1)[None].repeat(4, 0)).astype(np.uint16)
    decoded = decode_image(png16(values, icc=ADOBE_RGB_LIKE))
    assert decoded.icc_converted
    assert decoded.bit_depth == 16
    # Reference: LittleCMS on the 8-bit version of the same pixels.
    as_8bit = Image.fromarray(np.rint(values / 257.0).astype(np.uint8))
    profile = ImageCms.ImageCmsProfile(io.BytesIO(ADOBE_RGB_LIKE))
    reference = ImageCms.profileToProfile(as_8bit, profile, ImageCms.createProfile("sRGB"))
    assert reference is not None
    np.testing.assert_allclose(decoded.rgb * 255.0, np.asarray(reference, dtype=np.float32), atol=1.5)
    steps = np.unique(np.rint(decoded.rgb[0, :, 1] * 65535.0))
    assert len(steps) > 100  # 8 bits would leave about 8 distinct levels along this ramp


def test_decode_16bit_rgb_png_falls_back_to_8bit_without_imagecodecs(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "imagecodecs", None)  # makes `import imagecodecs` fail
    values = smooth_16bit(8, 64, 3)
    decoded = decode_image(png16(values))
    assert decoded.bit_depth == 8
    np.testing.assert_allclose(decoded.rgb * 65535.0, values, atol=300)


def test_decode_16bit_resize_keeps_range_and_aspect() -> None:
    values = smooth_16bit(50, 400, 1)
    decoded = decode_image(png16(values), max_side=100)
    assert decoded.size == (100, 12)
    assert decoded.bit_depth == 16
    assert float(decoded.rgb.min()) >= 0.0
    assert float(decoded.rgb.max()) <= 1.0


def test_decoded_image_is_frozen(chelsea: np.ndarray) -> None:
    decoded = decode_image(pil_bytes(chelsea, "PNG"))
    assert isinstance(decoded, DecodedImage)
    with pytest.raises(AttributeError):
        decoded.bit_depth = 16  # type: ignore[misc]


def test_decode_concurrent_calls_do_not_mix_outputs(chelsea: np.ndarray) -> None:
    from concurrent.futures import ThreadPoolExecutor

    inputs = [
        pil_bytes(np.roll(chelsea, shift * 37, axis=1), fmt, icc_profile=ADOBE_RGB_LIKE)
        for shift, fmt in enumerate(["PNG", "JPEG", "WEBP", "TIFF"] * 3)
    ]
    expected = [decode_image(data).rgb for data in inputs]
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda data: decode_image(data).rgb, inputs))
    for got, want in zip(results, expected, strict=True):
        np.testing.assert_array_equal(got, want)

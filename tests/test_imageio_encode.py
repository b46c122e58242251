"""Encoding: PNG/JPEG round trips, the sRGB ICC profile, EXIF handling, alpha, validation, flattening."""

from __future__ import annotations

import io

import numpy as np
import pytest
import skimage.data
from PIL import Image, ImageCms

from models.imageio import decode_image, encode_image, flatten_alpha

ORIENTATION = 0x0112
MAKE = 0x010F
EXIF_IFD = 0x8769
PIXEL_X_DIMENSION = 0xA002
PIXEL_Y_DIMENSION = 0xA003


@pytest.fixture(scope="module")
def photo(coffee: np.ndarray) -> np.ndarray:
    """A real photo (the shared ``coffee`` fixture, 600×400) as float32 [0, 1]."""
    return coffee.astype(np.float32) / 255.0


def open_encoded(data: bytes) -> Image.Image:
    """Open encoded bytes with Pillow, pixels loaded."""
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def test_encode_png_round_trips_exactly(photo: np.ndarray) -> None:
    data = encode_image(photo, None, "png")
    image = open_encoded(data)
    assert image.format == "PNG"
    assert image.mode == "RGB"
    assert image.size == (600, 400)
    np.testing.assert_array_equal(np.asarray(image), skimage.data.coffee())


def test_encode_png_round_trips_uint8_exactly(coffee: np.ndarray) -> None:
    image = open_encoded(encode_image(coffee, None, "png"))
    assert image.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(image), coffee)


def test_encode_png_round_trips_uint8_alpha_exactly(coffee: np.ndarray) -> None:
    alpha = np.random.default_rng(5).integers(0, 256, coffee.shape[:2], dtype=np.uint8)
    image = open_encoded(encode_image(coffee, alpha, "png"))
    assert image.mode == "RGBA"
    np.testing.assert_array_equal(np.asarray(image), np.dstack([coffee, alpha]))


def test_encode_uint8_does_not_rescale_dark_images() -> None:
    rgb = np.array([[[0, 1, 2], [3, 4, 5]]], np.uint8)  # would become 0 or 255 if read as [0, 1] floats
    np.testing.assert_array_equal(np.asarray(open_encoded(encode_image(rgb, None, "png"))), rgb)


@pytest.mark.parametrize("fmt", ["png", "jpg"])
def test_encode_gives_identical_bytes_for_float_and_its_uint8_rounding(photo: np.ndarray, fmt: str) -> None:
    # Off-level floats (as a float pipeline gives), some outside [0, 1], against their rounding.
    noise = np.random.default_rng(6).uniform(-0.49 / 255, 0.49 / 255, photo.shape).astype(np.float32)
    rgb = photo + noise
    rgb[:8, :8] = 1.2
    rgb[-8:, -8:] = -0.1
    quantised = np.rint(np.clip(rgb, 0.0, 1.0) * 255).astype(np.uint8)
    assert encode_image(rgb, None, fmt) == encode_image(quantised, None, fmt)  # type: ignore[arg-type]


def test_encode_gives_identical_png_bytes_for_float_and_uint8_alpha_in_any_mix(coffee: np.ndarray) -> None:
    alpha_u8 = np.random.default_rng(7).integers(0, 256, coffee.shape[:2], dtype=np.uint8)
    alpha = alpha_u8.astype(np.float32) / 255.0
    rgb = coffee.astype(np.float32) / 255.0
    expected = encode_image(coffee, alpha_u8, "png")
    assert encode_image(rgb, alpha, "png") == expected
    assert encode_image(coffee, alpha, "png") == expected
    assert encode_image(rgb, alpha_u8, "png") == expected


def test_encode_jpg_round_trips_within_tolerance(photo: np.ndarray) -> None:
    data = encode_image(photo, None, "jpg")
    image = open_encoded(data)
    assert image.format == "JPEG"
    assert image.size == (600, 400)
    error = np.abs(np.asarray(image, dtype=np.float32) - skimage.data.coffee())
    assert float(error.mean()) < 2.0


def test_encode_jpg_uses_full_chroma_at_high_quality(photo: np.ndarray) -> None:
    from PIL import JpegImagePlugin

    high = open_encoded(encode_image(photo, None, "jpg", jpeg_quality=95))
    low = open_encoded(encode_image(photo, None, "jpg", jpeg_quality=80))
    assert JpegImagePlugin.get_sampling(high) == 0  # 4:4:4
    assert JpegImagePlugin.get_sampling(low) == 2  # 4:2:0


def test_encode_rounds_to_nearest_level_and_clips() -> None:
    rgb = np.array([[[0.5 / 255 + 1e-4, 254.6 / 255, 1.7], [-0.3, 127.49 / 255, 127.51 / 255]]], np.float32)
    image = open_encoded(encode_image(rgb, None, "png"))
    np.testing.assert_array_equal(np.asarray(image), [[[1, 255, 255], [0, 127, 128]]])


@pytest.mark.parametrize("fmt", ["png", "jpg"])
def test_encode_embeds_srgb_icc_profile(photo: np.ndarray, fmt: str) -> None:
    image = open_encoded(encode_image(photo, None, fmt))  # type: ignore[arg-type]
    icc = image.info.get("icc_profile")
    assert icc
    profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    assert "sRGB" in ImageCms.getProfileDescription(profile)
    assert profile.profile.xcolor_space.strip() == "RGB"


@pytest.mark.parametrize("fmt", ["png", "jpg"])
def test_encode_keeps_exif_without_orientation(photo: np.ndarray, fmt: str) -> None:
    source = Image.Exif()
    source[MAKE] = "Nikon"
    source[ORIENTATION] = 6
    source.get_ifd(EXIF_IFD)[PIXEL_X_DIMENSION] = 10
    source.get_ifd(EXIF_IFD)[PIXEL_Y_DIMENSION] = 20

    image = open_encoded(encode_image(photo, None, fmt, exif=source.tobytes()))  # type: ignore[arg-type]

    written = image.getexif()
    assert written[MAKE] == "Nikon"
    assert ORIENTATION not in written
    assert written.get_ifd(EXIF_IFD)[PIXEL_X_DIMENSION] == 600
    assert written.get_ifd(EXIF_IFD)[PIXEL_Y_DIMENSION] == 400


def test_encode_accepts_exif_without_header(photo: np.ndarray) -> None:
    source = Image.Exif()
    source[MAKE] = "Fuji"
    block = source.tobytes()
    assert block.startswith(b"Exif\x00\x00")
    image = open_encoded(encode_image(photo, None, "jpg", exif=block[6:]))
    assert image.getexif()[MAKE] == "Fuji"


def test_encode_refuses_exif_that_is_not_exif(photo: np.ndarray) -> None:
    with pytest.raises(ValueError, match="EXIF"):
        encode_image(photo, None, "jpg", exif=b"definitely not exif")


def test_encode_png_keeps_alpha(photo: np.ndarray) -> None:
    alpha = np.random.default_rng(3).random(photo.shape[:2]).astype(np.float32)
    image = open_encoded(encode_image(photo, alpha, "png"))
    assert image.mode == "RGBA"
    values = np.asarray(image)
    np.testing.assert_array_equal(values[..., 3], np.rint(alpha * 255).astype(np.uint8))
    np.testing.assert_array_equal(values[..., :3], skimage.data.coffee())


def test_encode_then_decode_round_trips_alpha_and_exif(photo: np.ndarray) -> None:
    alpha = np.linspace(0, 1, photo.shape[1], dtype=np.float32)[None, :].repeat(photo.shape[0], 0)
    exif = Image.Exif()
    exif[MAKE] = "Leica"
    decoded = decode_image(encode_image(photo, alpha, "png", exif=exif.tobytes()))
    assert decoded.alpha is not None
    np.testing.assert_allclose(decoded.alpha, alpha, atol=0.5 / 255 + 1e-6)
    np.testing.assert_allclose(decoded.rgb, photo, atol=0.5 / 255 + 1e-6)
    assert not decoded.icc_converted  # our own sRGB profile needs no conversion
    assert decoded.exif is not None
    kept = Image.Exif()
    kept.load(decoded.exif)
    assert kept[MAKE] == "Leica"


def test_encode_jpg_with_alpha_is_refused(photo: np.ndarray) -> None:
    with pytest.raises(ValueError, match="flatten"):
        encode_image(photo, np.ones(photo.shape[:2], np.float32), "jpg")


@pytest.mark.parametrize(
    ("rgb", "fragment"),
    [
        (np.zeros((4, 4, 3), np.uint16), "uint8 or floating point"),
        (np.zeros((4, 4, 3), np.int32), "uint8 or floating point"),
        (np.zeros((4, 4, 3), np.bool_), "uint8 or floating point"),
        (np.zeros((4, 4), np.float32), "H×W×3"),
        (np.zeros((4, 4, 4), np.float32), "H×W×3"),
        (np.zeros((0, 4, 3), np.float32), "H×W×3"),
        (np.full((2, 2, 3), np.nan, np.float32), "NaN"),
    ],
)
def test_encode_refuses_bad_rgb_arrays(rgb: np.ndarray, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        encode_image(rgb, None, "png")


@pytest.mark.parametrize("dtype", [np.uint16, np.int32, np.int8])
def test_encode_refuses_alpha_of_other_integer_dtypes(photo: np.ndarray, dtype: type) -> None:
    with pytest.raises(ValueError, match="alpha must be uint8 or floating point"):
        encode_image(photo, np.zeros(photo.shape[:2], dtype), "png")


def test_encode_refuses_nan_in_float_alpha(coffee: np.ndarray) -> None:
    alpha = np.ones(coffee.shape[:2], np.float32)
    alpha[3, 4] = np.nan
    with pytest.raises(ValueError, match="alpha contains NaN"):
        encode_image(coffee, alpha, "png")


def test_encode_refuses_mismatched_alpha(photo: np.ndarray) -> None:
    with pytest.raises(ValueError, match="alpha must have shape"):
        encode_image(photo, np.ones((3, 3), np.float32), "png")


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"fmt": "jpeg"}, "'png' or 'jpg'"),
        ({"fmt": "jpg", "jpeg_quality": 0}, "jpeg_quality"),
        ({"fmt": "jpg", "jpeg_quality": 101}, "jpeg_quality"),
        ({"fmt": "png", "png_compress_level": 10}, "png_compress_level"),
    ],
)
def test_encode_refuses_bad_options(photo: np.ndarray, kwargs: dict[str, object], fragment: str) -> None:
    fmt = kwargs.pop("fmt")
    with pytest.raises(ValueError, match=fragment):
        encode_image(photo, None, fmt, **kwargs)  # type: ignore[arg-type]


def test_encode_accepts_float64_input(photo: np.ndarray) -> None:
    image = open_encoded(encode_image(photo.astype(np.float64), None, "png"))
    np.testing.assert_array_equal(np.asarray(image), skimage.data.coffee())


def test_encode_png_level_changes_size_not_pixels(photo: np.ndarray) -> None:
    fast = encode_image(photo, None, "png", png_compress_level=1)
    small = encode_image(photo, None, "png", png_compress_level=6)
    assert len(small) < len(fast)
    np.testing.assert_array_equal(np.asarray(open_encoded(fast)), np.asarray(open_encoded(small)))


def test_flatten_alpha_onto_white() -> None:
    rgb = np.zeros((2, 2, 3), np.float32)
    rgb[..., 0] = 1.0  # pure red
    alpha = np.array([[1.0, 0.0], [0.5, 0.25]], np.float32)
    flat = flatten_alpha(rgb, alpha)
    assert flat.dtype == np.float32
    assert flat.flags.c_contiguous
    np.testing.assert_allclose(flat[0, 0], (1.0, 0.0, 0.0))
    np.testing.assert_allclose(flat[0, 1], (1.0, 1.0, 1.0))
    np.testing.assert_allclose(flat[1, 0], (1.0, 0.5, 0.5))
    np.testing.assert_allclose(flat[1, 1], (1.0, 0.75, 0.75))


def test_flatten_alpha_onto_custom_background() -> None:
    rgb = np.ones((1, 1, 3), np.float32)
    flat = flatten_alpha(rgb, np.zeros((1, 1), np.float32), background=(0.0, 0.5, 1.0))
    np.testing.assert_allclose(flat[0, 0], (0.0, 0.5, 1.0))


def test_flatten_alpha_refuses_bad_background() -> None:
    with pytest.raises(ValueError, match="background"):
        flatten_alpha(np.ones((1, 1, 3), np.float32), np.ones((1, 1), np.float32), background=(2.0, 0.0, 0.0))


def test_flattened_image_encodes_as_jpg(photo: np.ndarray) -> None:
    alpha = np.full(photo.shape[:2], 0.5, np.float32)
    image = open_encoded(encode_image(flatten_alpha(photo, alpha), None, "jpg"))
    expected = skimage.data.coffee() * 0.5 + 127.5
    assert float(np.abs(np.asarray(image, dtype=np.float32) - expected).mean()) < 2.0


def test_flatten_alpha_reads_uint8_as_levels_over_255() -> None:
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[..., 0] = 255  # pure red
    alpha = np.array([[255, 0], [51, 204]], np.uint8)
    flat = flatten_alpha(rgb, alpha)
    assert flat.dtype == np.float32
    assert flat.flags.c_contiguous
    np.testing.assert_allclose(flat[0, 0], (1.0, 0.0, 0.0), atol=1e-6)
    np.testing.assert_allclose(flat[0, 1], (1.0, 1.0, 1.0), atol=1e-6)
    np.testing.assert_allclose(flat[1, 0], (1.0, 0.8, 0.8), atol=1e-6)
    np.testing.assert_allclose(flat[1, 1], (1.0, 0.2, 0.2), atol=1e-6)


def test_flatten_alpha_gives_the_same_for_uint8_and_float_inputs_in_any_mix(coffee: np.ndarray) -> None:
    alpha_u8 = np.random.default_rng(8).integers(0, 256, coffee.shape[:2], dtype=np.uint8)
    rgb, alpha = coffee.astype(np.float32) / 255.0, alpha_u8.astype(np.float32) / 255.0
    expected = flatten_alpha(rgb, alpha, background=(0.2, 0.4, 0.6))
    for colour, weight in ((coffee, alpha_u8), (coffee, alpha), (rgb, alpha_u8)):
        flat = flatten_alpha(colour, weight, background=(0.2, 0.4, 0.6))
        assert flat.dtype == np.float32
        np.testing.assert_array_equal(flat, expected)


def test_flattened_uint8_image_encodes_as_jpg_like_its_float_twin(coffee: np.ndarray) -> None:
    alpha_u8 = np.full(coffee.shape[:2], 128, np.uint8)
    from_uint8 = encode_image(flatten_alpha(coffee, alpha_u8), None, "jpg")
    from_float = encode_image(
        flatten_alpha(coffee.astype(np.float32) / 255.0, alpha_u8.astype(np.float32) / 255.0), None, "jpg"
    )
    assert from_uint8 == from_float
    expected = coffee * (128 / 255) + 255 * (127 / 255)
    assert float(np.abs(np.asarray(open_encoded(from_uint8), dtype=np.float32) - expected).mean()) < 2.0


def test_flatten_alpha_refuses_integer_alpha_other_than_uint8(coffee: np.ndarray) -> None:
    with pytest.raises(ValueError, match="alpha must be uint8 or floating point"):
        flatten_alpha(coffee, np.zeros(coffee.shape[:2], np.uint16))

"""Estimators on real photos with synthetic degradations of known truth: direction and rough accuracy."""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
import pytest
from PIL import Image, ImageDraw
from scipy import ndimage
from skimage import data as skdata

from models.analysis import (
    analyse_image,
    classify_content,
    estimate_blur_sigma,
    estimate_colour_cast,
    estimate_noise_sigma,
    estimate_tone,
    estimate_upscale_factor,
    find_face_boxes,
    illuminant_angle,
    jpeg_quality_from_bytes,
    jpeg_quality_from_pixels,
    linear_to_srgb,
    srgb_to_linear,
)
from models.pipeline import default_face_detector
from tests.conftest import to_float

PHOTOS = ("astronaut", "coffee", "chelsea")


def photo(name: str, side: int = 256) -> np.ndarray:
    """A central ``side``² crop of a scikit-image photo, uint8 RGB."""
    image = getattr(skdata, name)()
    y0, x0 = (image.shape[0] - side) // 2, (image.shape[1] - side) // 2
    return image[y0 : y0 + side, x0 : x0 + side]


def add_noise(image: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    noisy = image.astype(np.float64) + np.random.default_rng(seed).normal(0, sigma, image.shape)
    return np.clip(np.round(noisy), 0, 255).astype(np.uint8)


def _file(image: np.ndarray, fmt: str, **options: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, fmt, **options)
    return buffer.getvalue()


def jpeg_bytes(image: np.ndarray, quality: int) -> bytes:
    return _file(image, "JPEG", quality=quality)


def decoded(blob: bytes) -> np.ndarray:
    return to_float(np.asarray(Image.open(io.BytesIO(blob)).convert("RGB")))


def cartoon(seed: int, side: int = 256) -> np.ndarray:
    """A rendered illustration: flat fills with dark outlines and lettering."""
    rng = np.random.default_rng(seed)
    image = Image.new("RGB", (side, side), tuple(int(v) for v in rng.integers(150, 256, 3)))
    draw = ImageDraw.Draw(image)
    for _ in range(10):
        x0, y0 = (int(v) for v in rng.integers(0, side, 2))
        w, h = (int(v) for v in rng.integers(20, side // 2, 2))
        fill = tuple(int(v) for v in rng.integers(0, 256, 3))
        draw.ellipse([x0, y0, x0 + w, y0 + h], fill=fill, outline=(20, 20, 20), width=3)
    draw.text((10, 10), "illustration", fill=(0, 0, 0))
    return np.asarray(image)


@pytest.mark.parametrize("name", PHOTOS)
def test_noise_sigma_tracks_added_gaussian_noise_on_photos(name: str) -> None:
    clean = photo(name)
    estimates = [estimate_noise_sigma(to_float(add_noise(clean, s))) for s in (0, 5, 10, 20)]
    assert estimates == sorted(estimates)
    assert estimates[0] < 6.0  # the photo's own grain and fine texture
    for truth, estimate in zip((10, 20), estimates[2:], strict=True):
        assert abs(estimate - truth) < 0.2 * truth + 1.0


def test_noise_sigma_tracks_poisson_noise_rms() -> None:
    clean = photo("coffee").astype(np.float64)
    rng = np.random.default_rng(1)
    for peak in (255.0, 60.0):
        noisy = np.clip(np.round(rng.poisson(clean / 255 * peak) / peak * 255), 0, 255)
        truth = float(np.std(noisy - clean))
        estimate = estimate_noise_sigma(to_float(noisy.astype(np.uint8)))
        assert abs(estimate - truth) < 0.25 * truth + 1.0


def _small_dense_texture(scene_photo: Callable[..., np.ndarray]) -> np.ndarray:
    """``life`` (a forest stream, tuning half) bicubic-downscaled ×4 to 128 px: clean, but so full of
    fine texture that its luma reads like noise of σ ≈ 8."""
    original = scene_photo("life", 512)
    size = (original.shape[1] // 4, original.shape[0] // 4)
    return np.asarray(Image.fromarray(original).resize(size, Image.Resampling.BICUBIC))


def test_a_clean_lossless_photo_of_dense_texture_reads_clean_through_its_chroma(
    scene_photo: Callable[..., np.ndarray],
) -> None:
    small = _small_dense_texture(scene_photo)
    luma_only = estimate_noise_sigma(to_float(small))
    assert luma_only > 6.0  # the failure the chroma planes fix: texture read as noise
    png = _file(small, "PNG")
    assert analyse_image(to_float(small), png, detect=False).noise_sigma < 4.5
    # Decoded from a lossy file, where chroma is not kept at full resolution, the planes are not used.
    jpeg = _file(small, "JPEG", quality=95, subsampling=2)
    assert analyse_image(decoded(jpeg), jpeg, detect=False).noise_sigma == pytest.approx(
        estimate_noise_sigma(decoded(jpeg)), abs=1e-9
    )


@pytest.mark.parametrize("sigma", [6.0, 12.0])
def test_colour_noise_in_a_lossless_photo_of_dense_texture_still_reads(
    sigma: float, scene_photo: Callable[..., np.ndarray]
) -> None:
    noisy = add_noise(_small_dense_texture(scene_photo), sigma)
    estimate = analyse_image(to_float(noisy), _file(noisy, "PNG"), detect=False).noise_sigma
    assert estimate > 4.5 + sigma / 2  # read as noisy: the degraded path
    assert estimate == pytest.approx(estimate_noise_sigma(to_float(noisy)), rel=0.25)


@pytest.mark.parametrize("name", PHOTOS)
def test_grey_noise_on_a_photo_of_ordinary_texture_still_reads_in_a_lossless_file(name: str) -> None:
    """Noise the same in every channel has no chroma; where it dominates the reading (it halves at half
    scale) the chroma planes are not consulted and it reads as before."""
    clean = photo(name).astype(np.float64)
    noisy = np.clip(np.round(clean + np.random.default_rng(0).normal(0, 10, clean.shape[:2])[:, :, None]), 0, 255)
    noisy = noisy.astype(np.uint8)
    estimate = analyse_image(to_float(noisy), _file(noisy, "PNG"), detect=False).noise_sigma
    assert abs(estimate - 10.0) < 1.5


def test_grey_noise_in_a_grey_lossless_photo_still_reads() -> None:
    """A grey image has no chroma to compare with: its noise is read from luma alone, as before."""
    grey = np.repeat(skdata.camera()[::2, ::2, None], 3, axis=2)
    noisy = np.repeat(add_noise(grey[:, :, :1], 8.0), 3, axis=2)
    estimate = analyse_image(to_float(noisy), _file(noisy, "PNG"), detect=False).noise_sigma
    assert estimate == pytest.approx(estimate_noise_sigma(to_float(noisy)), abs=1e-9)
    assert 6.0 < estimate < 10.0


@pytest.mark.parametrize("quality", [20, 45, 75, 90, 97])
def test_jpeg_quality_is_exact_from_the_file_tables(quality: int) -> None:
    estimate = jpeg_quality_from_bytes(jpeg_bytes(photo("chelsea"), quality))
    assert estimate is not None
    assert (estimate.quality, estimate.source, estimate.standard_tables) == (quality, "tables", True)


def test_jpeg_quality_from_bytes_is_none_for_png() -> None:
    buffer = io.BytesIO()
    Image.fromarray(photo("chelsea")).save(buffer, "PNG")
    assert jpeg_quality_from_bytes(buffer.getvalue()) is None


@pytest.mark.parametrize("name", PHOTOS)
@pytest.mark.parametrize("quality", [25, 50, 70, 85])
def test_jpeg_quality_is_recovered_from_pixels_after_a_png_reencode(name: str, quality: int) -> None:
    estimate = jpeg_quality_from_pixels(decoded(jpeg_bytes(photo(name), quality)))
    assert estimate.quality is not None
    assert abs(estimate.quality - quality) <= 3


@pytest.mark.parametrize("name", PHOTOS)
def test_jpeg_quality_from_pixels_is_none_for_uncompressed_photos(name: str) -> None:
    assert jpeg_quality_from_pixels(to_float(photo(name))).quality is None


@pytest.mark.parametrize("name", PHOTOS)
def test_blur_sigma_tracks_added_gaussian_blur(name: str) -> None:
    clean = photo(name).astype(np.float32)
    base = estimate_blur_sigma(to_float(clean.astype(np.uint8)))
    estimates = []
    for sigma in (1.0, 2.0, 3.0):
        blurred = np.clip(np.round(ndimage.gaussian_filter(clean, (sigma, sigma, 0))), 0, 255).astype(np.uint8)
        estimates.append(estimate_blur_sigma(to_float(blurred)))
    assert base < 1.0
    assert estimates == sorted(estimates)
    for sigma, estimate in zip((1.0, 2.0, 3.0), estimates, strict=True):
        truth = float(np.hypot(base, sigma))
        assert abs(estimate - truth) < 0.3 * truth


@pytest.mark.parametrize("name", PHOTOS)
@pytest.mark.parametrize("factor", [1.5, 3.0, 4.0])
def test_upscale_factor_is_found_for_bicubic_upscales(name: str, factor: float) -> None:
    image = Image.fromarray(photo(name, 384))
    small = image.resize((round(384 / factor), round(384 / factor)), Image.Resampling.LANCZOS)
    upscaled = to_float(np.asarray(small.resize((384, 384), Image.Resampling.BICUBIC)))
    found, _evidence = estimate_upscale_factor(
        upscaled, blur_sigma=estimate_blur_sigma(upscaled), jpeg_compressed=False
    )
    assert abs(found - factor) <= 0.5


@pytest.mark.parametrize("name", PHOTOS)
def test_upscale_factor_is_one_for_native_photos(name: str) -> None:
    rgb = to_float(photo(name, 384))
    assert estimate_upscale_factor(rgb, blur_sigma=estimate_blur_sigma(rgb), jpeg_compressed=False)[0] == 1.0


def _scale_linear(image: np.ndarray, gains: tuple[float, float, float]) -> np.ndarray:
    linear = srgb_to_linear(to_float(image)) * np.array(gains, dtype=np.float32)
    return linear_to_srgb(linear)


@pytest.mark.parametrize("name", PHOTOS)
@pytest.mark.parametrize("ev", [-1.0, 0.5])
def test_exposure_tracks_a_brightness_change(name: str, ev: float) -> None:
    image = photo(name)
    before = estimate_tone(to_float(image)).exposure_ev
    after = estimate_tone(_scale_linear(image, (2**ev,) * 3)).exposure_ev
    assert abs((after - before) - ev) < 0.25


@pytest.mark.parametrize("name", PHOTOS)
def test_contrast_tracks_a_contrast_reduction(name: str) -> None:
    rgb = to_float(photo(name))
    flattened = (0.5 + 0.6 * (rgb - 0.5)).astype(np.float32)
    ratio = estimate_tone(flattened).contrast / estimate_tone(rgb).contrast
    assert abs(ratio - 0.6) < 0.05


@pytest.mark.parametrize("name", PHOTOS)
@pytest.mark.parametrize("cast", [(1.25, 1.0, 0.8), (0.85, 1.0, 1.2)])
def test_colour_cast_is_recovered_as_gains(name: str, cast: tuple[float, float, float]) -> None:
    image = photo(name)
    before = np.array(estimate_colour_cast(to_float(image)).gains)
    after = np.array(estimate_colour_cast(_scale_linear(image, cast)).gains)
    assert illuminant_angle(after / before, np.array(cast)) < 4.0


@pytest.mark.parametrize("name", ["astronaut", "coffee", "chelsea", "rocket"])
@pytest.mark.parametrize("quality", [None, 60])
def test_photos_are_classified_as_photos(name: str, quality: int | None) -> None:
    image = getattr(skdata, name)()
    rgb = to_float(image) if quality is None else decoded(jpeg_bytes(image, quality))
    assert classify_content(rgb, estimate_noise_sigma(rgb)).kind == "photo"


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("quality", [None, 75])
def test_rendered_cartoons_are_classified_as_illustrations(seed: int, quality: int | None) -> None:
    image = cartoon(seed)
    rgb = to_float(image) if quality is None else decoded(jpeg_bytes(image, quality))
    assert classify_content(rgb, estimate_noise_sigma(rgb)).kind == "illustration"


def test_the_python_logo_is_classified_as_an_illustration() -> None:
    logo = Image.fromarray(skdata.logo())
    flat = Image.new("RGBA", logo.size, (255, 255, 255, 255))
    flat.alpha_composite(logo)
    rgb = to_float(np.asarray(flat.convert("RGB")))
    assert classify_content(rgb, estimate_noise_sigma(rgb)).kind == "illustration"


def test_faces_finds_the_astronaut_face_only() -> None:
    faces = find_face_boxes(to_float(skdata.astronaut()), default_face_detector())
    assert len(faces) == 1
    face = faces[0]
    assert 150 < face.x + face.size / 2 < 270 and 70 < face.y + face.size / 2 < 170
    assert 60 < face.size < 130


@pytest.mark.parametrize("name", ["coffee", "chelsea", "rocket"])
def test_faces_finds_none_in_photos_without_people(name: str) -> None:
    assert find_face_boxes(to_float(getattr(skdata, name)()), default_face_detector()) == []


def test_faces_counts_every_face_of_a_group() -> None:
    face = skdata.astronaut()[20:220, 130:300]
    group = np.concatenate([np.concatenate([face, face[:, ::-1]], axis=1)] * 2, axis=0)
    assert len(find_face_boxes(to_float(group), default_face_detector())) == 4


def test_analysis_measures_every_estimate_and_skips_faces_on_request() -> None:
    rgb = to_float(photo("chelsea", 128))
    analysis = analyse_image(rgb, detect=False)
    assert analysis.faces is None and "faces_s" not in analysis.timings
    assert (analysis.width, analysis.height) == (128, 128)
    assert analysis.noise_sigma >= 0 and analysis.blur_sigma >= 0 and analysis.upscale_factor >= 1.0
    assert analysis.jpeg.source == "pixels" and analysis.content.kind == "photo"
    assert 0.0 <= analysis.tone.black_point < analysis.tone.white_point <= 1.0
    assert {"noise_s", "blur_s", "resolution_s", "tone_s", "colour_s", "content_s"} <= set(analysis.timings)


def test_analysis_reads_the_jpeg_tables_when_given_the_source() -> None:
    blob = jpeg_bytes(photo("coffee", 128), 63)
    analysis = analyse_image(decoded(blob), blob, detect=False)
    assert (analysis.jpeg.quality, analysis.jpeg.source) == (63, "tables")


def test_analysis_rejects_non_float_input() -> None:
    with pytest.raises(ValueError, match="float32"):
        analyse_image(photo("coffee", 32))


# --- Tensor estimators (run on the service's device) ---------------------------------------------


def test_tensor_filters_match_scipy_ndimage_on_a_photo() -> None:
    import torch

    from models.analysis import _common

    grey = photo("coffee", 96).astype(np.float64).mean(axis=2)[:, :77] / 255.0
    t = torch.from_numpy(grey)
    pairs = {
        "gaussian": (ndimage.gaussian_filter(grey, 1.5), _common.gaussian_filter(t, 1.5)),
        "sobel0": (ndimage.sobel(grey, axis=0), _common.sobel(t, 0)),
        "sobel1": (ndimage.sobel(grey, axis=1), _common.sobel(t, 1)),
        "uniform": (ndimage.uniform_filter(grey, 7), _common.uniform_filter(t, 7)),
        "maximum": (ndimage.maximum_filter(grey, 3), _common.maximum_filter3(t)),
        "minimum": (ndimage.minimum_filter(grey, 3), _common.minimum_filter3(t)),
        "laplace": (ndimage.laplace(grey), _common.laplace(t)),
    }
    for name, (expected, got) in pairs.items():
        np.testing.assert_allclose(got.numpy(), expected, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("long_side", [256, 100, 77])
def test_tensor_shrink_matches_pillow_box_reduction(long_side: int) -> None:
    """The device form (two matrix products; on a CPU the tensor form calls Pillow itself) on a CPU."""
    import torch

    from models.analysis._common import _shrink_by_products, shrink, shrink_t

    rgb = to_float(skdata.astronaut()[:300, :211])
    expected = shrink(rgb, long_side)
    for got in (_shrink_by_products(torch.from_numpy(rgb), long_side), shrink_t(torch.from_numpy(rgb), long_side)):
        assert got.shape == expected.shape
        np.testing.assert_allclose(got.numpy(), expected, atol=1e-6)


def test_estimators_give_the_same_results_on_a_tensor_as_on_an_array() -> None:
    import torch

    rgb = decoded(jpeg_bytes(photo("astronaut"), 70))
    tensor = torch.from_numpy(rgb)
    assert estimate_noise_sigma(tensor) == estimate_noise_sigma(rgb)
    assert jpeg_quality_from_pixels(tensor) == jpeg_quality_from_pixels(rgb)
    assert jpeg_quality_from_pixels(tensor).quality == 70
    assert estimate_blur_sigma(tensor) == estimate_blur_sigma(rgb)
    assert estimate_tone(tensor) == estimate_tone(rgb)
    assert estimate_colour_cast(tensor) == estimate_colour_cast(rgb)


@pytest.mark.gpu
@pytest.mark.parametrize("name", PHOTOS)
def test_analysis_on_cuda_agrees_with_the_cpu(name: str) -> None:
    image = add_noise(photo(name), 6.0)
    upscaled = np.asarray(Image.fromarray(photo(name, 128)).resize((256, 256), Image.Resampling.BICUBIC))
    for rgb in (to_float(image), decoded(jpeg_bytes(image, 55)), to_float(upscaled)):
        cpu = analyse_image(rgb, detect=False, device="cpu")
        cuda = analyse_image(rgb, detect=False, device="cuda")
        assert cuda.jpeg == cpu.jpeg
        assert (cuda.upscale_factor, cuda.upscale_evidence) == (cpu.upscale_factor, cpu.upscale_evidence)
        assert cuda.content.kind == cpu.content.kind
        assert cuda.noise_sigma == pytest.approx(cpu.noise_sigma, abs=0.02)
        assert cuda.blur_sigma == pytest.approx(cpu.blur_sigma, abs=0.01)
        assert cuda.tone.exposure_ev == pytest.approx(cpu.tone.exposure_ev, abs=1e-4)
        assert cuda.tone.contrast == pytest.approx(cpu.tone.contrast, abs=1e-4)
        assert cuda.colour.gains == pytest.approx(cpu.colour.gains, abs=1e-4)
        assert cuda.content.illustration_probability == pytest.approx(cpu.content.illustration_probability, abs=1e-3)


def test_analysis_refuses_face_detection_without_a_detector() -> None:
    # The stage takes its detector from the caller: it never loads one from the weights store itself.
    with pytest.raises(ValueError, match="face_detector"):
        analyse_image(to_float(photo("coffee", 64)))

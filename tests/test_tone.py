"""Faithful by default: real night, low-key, high-key and coloured photos keep their own tone and colour
in the ``inferred`` output; exposure, contrast and white balance change only when the prompt asks or in
the ``tone`` variation (issue 12). Photos: ``tests/scene_photos.py`` (Debian wallpapers, scikit-image).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from PIL import Image

from models.analysis import analyse_image, linear_to_srgb, srgb_to_linear
from models.pipeline import EnhanceOptions, OutputParameters, enhance_image, infer_parameters
from models.prompt import parse_prompt
from models.sr import SRModel
from tests.scene_photos import blurred_ciede2000

# Photos whose tone a "correction" would destroy: night, low light, sunsets, high-key, monochrome,
# deliberately coloured, dark illustrations.
MOODY = (
    "infinite_sea",
    "aurora_cold",
    "hubble",
    "storm",
    "wine",
    "yellow_flower",
    "sunset",
    "seeding",
    "kleiber",
    "free",
    "greentock",
    "camera",
    "brushes",
    "fresh_flower",
    "blinds",
    "adwaita_dark",
    "the_mouse",
)
SMALL = 256  # original long side in the render tests: the network sees 64 px


def shrink(original: np.ndarray) -> np.ndarray:
    """The ×4 smaller input (bicubic), float32 in [0, 1]."""
    size = (original.shape[1] // 4, original.shape[0] // 4)
    return np.asarray(Image.fromarray(original).resize(size, Image.Resampling.BICUBIC)).astype(np.float32) / 255.0


def outputs_of(decided) -> dict[str, OutputParameters]:  # type: ignore[no-untyped-def]
    return {variation.name: params for variation, params in decided.outputs}


def mean_luminance(rgb: np.ndarray) -> float:
    """Mean linear luminance of uint8 or float [0, 1] sRGB."""
    x = rgb.astype(np.float32) / 255.0 if rgb.dtype == np.uint8 else rgb
    linear = srgb_to_linear(x)
    return float(np.mean(linear @ np.array([0.2126, 0.7152, 0.0722], np.float32)))


def render(model: SRModel, small: np.ndarray, prompt: str | None = None) -> dict[str, np.ndarray]:
    options = EnhanceOptions(
        num_outputs=4, target_long_side=4 * max(small.shape[:2]), network_max_side=256, tile=256, detect_faces=False
    )
    result = enhance_image(small, None, model, options, steering=parse_prompt(prompt) if prompt else None)
    return {image.variation.name: image.rgb for image in result.images}


@pytest.mark.parametrize("name", MOODY)
def test_inferred_keeps_tone_and_colour_of_moody_photo(name: str, scene_photo: Callable[..., np.ndarray]) -> None:
    small = shrink(scene_photo(name, 384))
    inferred = outputs_of(infer_parameters(analyse_image(small, None, detect=False), None, 4))["inferred"]
    assert (inferred.exposure_ev, inferred.contrast, inferred.white_balance, inferred.warmth) == (0.0, 0.0, 0.0, 0.0)


@pytest.mark.parametrize("name", ["aurora_cold", "yellow_flower", "brushes"])
def test_rendered_inferred_keeps_tone_of_night_low_key_and_coloured_photo(
    name: str, scene_photo: Callable[..., np.ndarray], x4plus_cpu: SRModel
) -> None:
    original = scene_photo(name, SMALL)
    images = render(x4plus_cpu, shrink(original))
    lanczos = np.asarray(
        Image.fromarray(np.round(shrink(original) * 255).astype(np.uint8)).resize(
            (original.shape[1], original.shape[0]), Image.Resampling.LANCZOS
        )
    )
    assert blurred_ciede2000(images["inferred"], original) <= max(1.0, 1.5 * blurred_ciede2000(lanczos, original))
    # The bound can fail: the tone variation, which does change tone on these photos, is far outside it.
    if name != "brushes":
        assert blurred_ciede2000(images["tone"], original) > 2.0


def test_darkened_photo_is_brightened_by_the_prompt_and_the_tone_variation(
    scene_photo: Callable[..., np.ndarray], x4plus_cpu: SRModel
) -> None:
    original = scene_photo("fig", SMALL)
    dark = linear_to_srgb(srgb_to_linear(shrink(original)) * 2.0**-1.5).astype(np.float32)
    before = mean_luminance(dark)
    plain = render(x4plus_cpu, dark)
    asked = render(x4plus_cpu, dark, "a bit brighter please")
    assert abs(np.log2(mean_luminance(plain["inferred"]) / before)) < 0.1  # left alone unless asked
    assert np.log2(mean_luminance(asked["inferred"]) / before) > 0.3
    assert np.log2(mean_luminance(plain["tone"]) / before) > 0.6
    assert np.log2(mean_luminance(asked["tone"]) / before) > 0.3


def test_prompt_wins_over_the_tone_variation_corrections(scene_photo: Callable[..., np.ndarray]) -> None:
    original = scene_photo("fig", 384)
    dark = linear_to_srgb(srgb_to_linear(shrink(original)) * 2.0**-1.5).astype(np.float32)
    analysis = analyse_image(dark, None, detect=False)
    assert outputs_of(infer_parameters(analysis, None, 4))["tone"].exposure_ev > 0.5
    darker = outputs_of(infer_parameters(analysis, parse_prompt("darker"), 4))
    assert darker["tone"].exposure_ev == darker["inferred"].exposure_ev == -0.5


def test_tone_variation_removes_a_strong_cast_unless_the_prompt_sets_warmth(
    scene_photo: Callable[..., np.ndarray],
) -> None:
    small = shrink(scene_photo("yellow_flower", 384))
    analysis = analyse_image(small, None, detect=False)
    decided = infer_parameters(analysis, None, 4)
    assert decided.tone_corrections[2] > 0.2
    assert outputs_of(decided)["tone"].white_balance == decided.tone_corrections[2]
    warmer = outputs_of(infer_parameters(analysis, parse_prompt("warmer"), 4))
    assert warmer["tone"].warmth == warmer["inferred"].warmth == 0.25
    assert warmer["tone"].white_balance == 0.0


def test_blur_only_upscale_evidence_is_not_trusted_on_a_clean_smooth_photo(
    scene_photo: Callable[..., np.ndarray],
) -> None:
    small = shrink(scene_photo("aurora_warm", 256))  # 64 px: too small for the periodicity test
    analysis = analyse_image(small, None, detect=False)
    assert analysis.upscale_evidence == "blur" and analysis.upscale_factor > 1.0  # it reads as upscaled
    assert infer_parameters(analysis, None, 1).plan.network_scale == 1.0  # but keeps its real pixels

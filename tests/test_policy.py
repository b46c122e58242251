"""The policy on clear cases: clean photos left nearly alone, noisy JPEGs cleaned, illustrations to
the illustration network, tone corrected only outside its dead bands, prompt and variations applied."""

from __future__ import annotations

import io
from dataclasses import fields

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from models.analysis import analyse_image, linear_to_srgb, srgb_to_linear
from models.pipeline import (
    RESTORATION_TABLE,
    VARIATIONS,
    OutputParameters,
    PlanParameters,
    UnknownParameterError,
    apply_changes,
    infer_parameters,
    output_size,
    restoration_at,
)
from models.prompt import INTENTS, Change, parse_prompt
from tests.conftest import to_float
from tests.test_analysis import add_noise, cartoon, decoded, jpeg_bytes

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")


def analysis_of(rgb: np.ndarray, source: bytes | None = None):  # type: ignore[no-untyped-def]
    return analyse_image(rgb, source, detect=False)


@pytest.mark.parametrize("name", PHOTOS)
def test_clean_photo_is_left_nearly_alone(name: str) -> None:
    decided = infer_parameters(analysis_of(to_float(getattr(skdata, name)())), None, 1)
    params = decided.outputs[0][1]
    assert decided.degradation < 0.15
    assert decided.plan == PlanParameters()  # photo network, DESIGN's size rule, full resolution
    assert params.fidelity >= 0.9 and params.fidelity_smoothing <= 0.5  # faithful to the input
    assert params.sharpen <= 0.15 and params.grain == 0.0
    assert (params.exposure_ev, params.contrast, params.white_balance, params.warmth) == (0.0, 0.0, 0.0, 0.0)


@pytest.mark.parametrize("name", PHOTOS)
def test_noisy_jpeg_is_cleaned(name: str) -> None:
    blob = jpeg_bytes(add_noise(getattr(skdata, name)()[:256, :256], 12.0), 40)
    decided = infer_parameters(analysis_of(decoded(blob), blob), None, 1)
    params = decided.outputs[0][1]
    assert decided.degradation > 0.8
    assert params.fidelity <= 0.6 and params.fidelity_smoothing >= 2.5  # noise and blocks stay out
    assert params.grain == 0.0


@pytest.mark.parametrize("seed", [0, 3])
def test_illustration_gets_the_illustration_network(seed: int) -> None:
    decided = infer_parameters(analysis_of(to_float(cartoon(seed))), None, 1)
    assert decided.plan.content == "illustration"


def tone_of(decided) -> tuple[OutputParameters, OutputParameters]:  # type: ignore[no-untyped-def]
    """The ``inferred`` and ``tone`` outputs' parameters of a 4-output decision."""
    outputs = {v.name: p for v, p in decided.outputs}
    return outputs["inferred"], outputs["tone"]


def test_dark_photo_is_brightened_within_the_cap_in_the_tone_variation_only() -> None:
    dark = linear_to_srgb(srgb_to_linear(to_float(skdata.coffee())) * 0.2)
    inferred, tone = tone_of(infer_parameters(analysis_of(dark), None, 4))
    assert inferred.exposure_ev == 0.0
    assert 0.3 < tone.exposure_ev <= 1.5


def test_flat_photo_gets_contrast_within_the_cap_in_the_tone_variation_only() -> None:
    flat = (0.5 + 0.25 * (to_float(skdata.astronaut()) - 0.5)).astype(np.float32)
    decided = infer_parameters(analysis_of(flat), None, 4)
    inferred, tone = tone_of(decided)
    assert inferred.contrast == 0.0
    assert 0.05 < decided.tone_corrections[1] <= 0.2
    assert tone.contrast == pytest.approx(decided.tone_corrections[1] + 0.1)


def test_strong_colour_cast_is_partly_removed_in_the_tone_variation_only() -> None:
    cast = linear_to_srgb(srgb_to_linear(to_float(skdata.astronaut())) * np.array([1.0, 1.0, 0.3], np.float32))
    decided = infer_parameters(analysis_of(cast), None, 4)
    inferred, tone = tone_of(decided)
    assert inferred.white_balance == 0.0
    assert 0.2 < decided.tone_corrections[2] <= 0.6
    assert tone.white_balance == decided.tone_corrections[2]


def test_upscaled_input_is_seen_at_its_true_resolution() -> None:
    small = Image.fromarray(skdata.chelsea()).resize((150, 100), Image.Resampling.LANCZOS)
    upscaled = to_float(np.asarray(small.resize((450, 300), Image.Resampling.BICUBIC)))
    assert infer_parameters(analysis_of(upscaled), None, 1).plan.network_scale == 3.0


def test_prompt_changes_apply_on_top_of_the_inferred_parameters() -> None:
    analysis = analysis_of(to_float(skdata.chelsea()))
    plain = infer_parameters(analysis, None, 1)
    steered = infer_parameters(analysis, parse_prompt("sharper, warmer, keep size, illustration, leave faces"), 1)
    assert steered.outputs[0][1].sharpen == pytest.approx(plain.outputs[0][1].sharpen + 0.4)
    assert steered.outputs[0][1].warmth == 0.25
    assert (steered.plan.size, steered.plan.content, steered.plan.protect_faces) == ("keep", "illustration", True)


def test_a_softer_prompt_softens_the_networks_output_and_a_sharper_one_does_not() -> None:
    analysis = analysis_of(to_float(skdata.chelsea()))
    plain = infer_parameters(analysis, None, 1).outputs[0][1]
    softer = infer_parameters(analysis, parse_prompt("a softer look"), 1).outputs[0][1]
    assert plain.soften == 0.0 and softer.soften == 0.6
    assert softer.sharpen == 0.0 and softer.strength == pytest.approx(0.8 * plain.strength)
    assert infer_parameters(analysis, parse_prompt("sharper"), 1).outputs[0][1].soften == 0.0


def test_unrecognised_prompt_changes_nothing() -> None:
    analysis = analysis_of(to_float(skdata.chelsea()))
    assert infer_parameters(analysis, parse_prompt("plus de contraste"), 2) == infer_parameters(analysis, None, 2)


def test_variations_are_distinct_and_in_the_documented_order() -> None:
    decided = infer_parameters(analysis_of(to_float(skdata.coffee())), None, 4)
    assert [v.name for v, _ in decided.outputs] == ["inferred", "natural", "detail", "tone"]
    parameters = [p for _, p in decided.outputs]
    assert len(set(parameters)) == 4
    inferred, natural, detail, tone = parameters
    assert natural.strength < inferred.strength and natural.sharpen == 0.0
    assert detail.sharpen > inferred.sharpen and detail.strength == 1.0
    assert tone.contrast > inferred.contrast


def test_prompt_settings_bind_every_variation() -> None:
    analysis = analysis_of(to_float(skdata.coffee()))
    decided = infer_parameters(analysis, parse_prompt("don't sharpen, no colour changes"), 4)
    parameters = [p for _, p in decided.outputs]
    assert all(p.sharpen == 0.0 and p.white_balance == 0.0 and p.warmth == 0.0 for p in parameters)
    assert len(set(parameters)) == 4


@pytest.mark.parametrize(
    ("size", "mode", "expected"),
    [
        ((512, 341), "auto", (2048, 1364)),
        ((3000, 2000), "auto", (3000, 2000)),
        ((512, 341), "2x", (1024, 682)),
        ((512, 341), "4x", (2048, 1364)),
        ((1500, 1000), "4x", (4096, 2731)),
        ((512, 341), "4k", (3840, 2558)),
        ((512, 341), "keep", (512, 341)),
    ],
)
def test_output_size_follows_the_size_rules(size: tuple[int, int], mode: str, expected: tuple[int, int]) -> None:
    assert output_size(*size, mode) == expected  # type: ignore[arg-type]


def test_restoration_table_is_interpolated_between_knots() -> None:
    lo, hi = RESTORATION_TABLE[0], RESTORATION_TABLE[1]
    middle = restoration_at((lo.score + hi.score) / 2)
    assert middle.fidelity == pytest.approx((lo.fidelity + hi.fidelity) / 2)
    assert restoration_at(5.0) == RESTORATION_TABLE[-1]


def test_every_intent_and_variation_changes_a_real_parameter() -> None:
    known = {f.name for f in fields(PlanParameters)} | {f.name for f in fields(OutputParameters)}
    for change in [c for i in INTENTS for c in i.changes] + [c for v in VARIATIONS for c in v.changes]:
        assert change.target in known


def test_apply_changes_refuses_unknown_parameters_and_clamps() -> None:
    with pytest.raises(UnknownParameterError):
        apply_changes(OutputParameters(), [Change("saturation", "add", 1.0)])
    assert apply_changes(OutputParameters(strength=0.9), [Change("strength", "add", 0.5)]).strength == 1.0


def test_policy_decision_is_identical_for_a_jpeg_and_its_png_reencode() -> None:
    blob = jpeg_bytes(skdata.chelsea(), 55)
    png = io.BytesIO()
    Image.open(io.BytesIO(blob)).save(png, "PNG")
    from_jpeg = infer_parameters(analysis_of(decoded(blob), blob), None, 1)
    from_png = infer_parameters(analysis_of(decoded(png.getvalue()), png.getvalue()), None, 1)
    assert abs(from_jpeg.degradation - from_png.degradation) < 0.05

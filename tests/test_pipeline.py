"""The enhance pipeline on real photos: size rules, fidelity, variations, network choice, prompt, alpha."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data as skdata

import weights
from models.analysis import analyse_image, estimate_noise_sigma
from models.pipeline import EnhanceOptions, enhance_image, plan_output_size
from models.prompt import parse_prompt
from models.sr import SRModel, get_network, load_sr_model
from tests.conftest import to_float
from tests.test_analysis import add_noise, cartoon, decoded, jpeg_bytes


@pytest.fixture(scope="module")
def anime_cpu(weights_dir: Path) -> SRModel:
    network = get_network("x4plus-anime")
    try:
        weights.verify_weights(weights_dir, [network.weights_name])
    except weights.WeightsError:
        weights.pull_weights(weights_dir, [network.weights_name])
    return load_sr_model(network, weights.load_state_dict(network.weights_name, weights_dir), torch.device("cpu"))


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ((512, 341), (2048, 1364)),
        ((341, 512), (1364, 2048)),
        ((2048, 1536), (2048, 1536)),
        ((4096, 100), (4096, 100)),
        ((3000, 2000), (3000, 2000)),
        ((64, 64), (2048, 2048)),
    ],
)
def test_plan_output_size_follows_the_2048_rule(size: tuple[int, int], expected: tuple[int, int]) -> None:
    assert plan_output_size(*size) == expected


def _gradient_energy(image: np.ndarray) -> float:
    gray = image.mean(axis=2)
    return float(np.abs(np.diff(gray, axis=0)).mean() + np.abs(np.diff(gray, axis=1)).mean())


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((a - b) ** 2)))


def _shrink(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    pil = Image.fromarray(np.round(np.clip(image, 0, 1) * 255).astype(np.uint8))
    return to_float(np.asarray(pil.resize(size, Image.Resampling.BICUBIC, reducing_gap=None)))


def test_clean_photo_is_sharper_than_lanczos_and_at_least_as_faithful(x4plus_cpu: SRModel) -> None:
    original = Image.fromarray(skdata.astronaut()[64:448, 64:448])  # 384×384
    small = original.resize((96, 96), Image.Resampling.BICUBIC)
    options = EnhanceOptions(num_outputs=1, target_long_side=384, network_max_side=96, tile=96, detect_faces=False)
    result = enhance_image(to_float(np.asarray(small)), None, x4plus_cpu, options)
    ours = to_float(result.images[0].rgb)
    lanczos = to_float(np.asarray(small.resize((384, 384), Image.Resampling.LANCZOS)))
    truth = to_float(np.asarray(original))
    assert ours.shape == (384, 384, 3)
    assert _gradient_energy(ours) > 1.1 * _gradient_energy(lanczos)
    # Back-projection keeps the clean input's content: near Lanczos's fidelity, not ~2 dB below it.
    assert _psnr(ours, truth) > _psnr(lanczos, truth) - 0.6
    assert result.explanation.network_input == (96, 96)
    assert result.explanation.output == (384, 384)


def test_clean_photo_downscaled_back_matches_its_input(x4plus_cpu: SRModel) -> None:
    rgb = to_float(skdata.coffee()[100:164, 200:264])
    options = EnhanceOptions(num_outputs=1, target_long_side=256, network_max_side=64, tile=64, detect_faces=False)
    ours = to_float(enhance_image(rgb, None, x4plus_cpu, options).images[0].rgb)
    assert _psnr(_shrink(ours, (64, 64)), rgb) > 32.0


def test_noisy_jpeg_comes_back_clean(x4plus_cpu: SRModel) -> None:
    blob = jpeg_bytes(add_noise(skdata.chelsea()[80:144, 160:224], 15.0), 50)
    noisy = decoded(blob)
    options = EnhanceOptions(num_outputs=1, target_long_side=256, network_max_side=64, tile=64, detect_faces=False)
    result = enhance_image(noisy, None, x4plus_cpu, options, source=blob)
    assert result.explanation.estimates.jpeg.quality == 50
    assert result.explanation.decision.degradation > 0.8
    # Seen at the input's scale, the output keeps well under half of the input's noise (both measured
    # as the analysis measures a quality-50 JPEG).
    output = _shrink(to_float(result.images[0].rgb), (64, 64))
    assert estimate_noise_sigma(output, jpeg_quality=50) < 0.5 * estimate_noise_sigma(noisy, jpeg_quality=50)


def test_illustration_goes_through_the_illustration_network(x4plus_cpu: SRModel, anime_cpu: SRModel) -> None:
    rgb = to_float(cartoon(2, side=64))
    options = EnhanceOptions(num_outputs=1, target_long_side=128, network_max_side=64, tile=64, detect_faces=False)
    result = enhance_image(rgb, None, {"photo": x4plus_cpu, "illustration": anime_cpu}, options)
    assert result.explanation.estimates.content.kind == "illustration"
    assert result.explanation.run.network == "x4plus-anime"


def test_prompt_steers_network_and_size(x4plus_cpu: SRModel, anime_cpu: SRModel) -> None:
    rgb = to_float(skdata.chelsea()[100:148, 150:214])
    options = EnhanceOptions(num_outputs=1, target_long_side=256, network_max_side=64, tile=64, detect_faces=False)
    models = {"photo": x4plus_cpu, "illustration": anime_cpu}
    result = enhance_image(rgb, None, models, options, steering=parse_prompt("keep the size, it's a drawing"))
    assert result.explanation.run.network == "x4plus-anime"
    assert result.images[0].rgb.shape == (48, 64, 3)
    assert result.explanation.prompt is not None
    assert [i.name for i in result.explanation.prompt.intents] == ["keep_size", "illustration"]


def test_sharper_prompt_gives_a_sharper_output(x4plus_cpu: SRModel) -> None:
    rgb = to_float(skdata.astronaut()[100:148, 200:248])
    options = EnhanceOptions(num_outputs=1, target_long_side=192, network_max_side=48, tile=64, detect_faces=False)
    plain = enhance_image(rgb, None, x4plus_cpu, options).images[0]
    sharper = enhance_image(rgb, None, x4plus_cpu, options, steering=parse_prompt("sharper")).images[0]
    assert sharper.parameters.sharpen > plain.parameters.sharpen
    assert _gradient_energy(to_float(sharper.rgb)) > 1.05 * _gradient_energy(to_float(plain.rgb))


def test_leave_faces_alone_keeps_the_face_as_in_the_input(x4plus_cpu: SRModel) -> None:
    rgb = to_float(np.asarray(Image.fromarray(skdata.astronaut()[0:256, 128:384]).resize((96, 96))))
    options = EnhanceOptions(num_outputs=1, target_long_side=192, network_max_side=96, tile=96)
    plain = enhance_image(rgb, None, x4plus_cpu, options)
    kept = enhance_image(rgb, None, x4plus_cpu, options, steering=parse_prompt("leave the faces alone"))
    faces = kept.explanation.estimates.faces
    assert faces is not None and len(faces) == 1
    x, y, size = (v * 2 for v in (faces[0].x, faces[0].y, faces[0].size))
    bicubic = to_float(np.asarray(Image.fromarray(np.round(rgb * 255).astype(np.uint8)).resize((192, 192), 3)))
    region = (slice(y + size // 4, y + 3 * size // 4), slice(x + size // 4, x + 3 * size // 4))

    def distance(image: np.ndarray) -> float:
        return float(np.abs(image[region] - bicubic[region]).mean())

    assert distance(to_float(kept.images[0].rgb)) < 0.5 * distance(to_float(plain.images[0].rgb))


def test_variations_are_distinct_and_deterministic(x4plus_cpu: SRModel) -> None:
    # The cat's eye and fur: the variations differ where the input has detail to restore (on a flat
    # crop "inferred" and "natural" are both faithful, and close).
    rgb = to_float(skdata.chelsea()[60:100, 80:130])
    options = EnhanceOptions(num_outputs=4, target_long_side=100, network_max_side=64, tile=64, detect_faces=False)
    first = enhance_image(rgb, None, x4plus_cpu, options)
    second = enhance_image(rgb, None, x4plus_cpu, options)
    assert [v.variation.name for v in first.images] == ["inferred", "natural", "detail", "tone"]
    for a, b in zip(first.images, second.images, strict=True):
        assert np.array_equal(a.rgb, b.rgb)
    for i in range(4):
        for j in range(i + 1, 4):
            assert np.abs(to_float(first.images[i].rgb) - to_float(first.images[j].rgb)).mean() > 2e-3


def test_alpha_is_resized_and_kept(x4plus_cpu: SRModel, chelsea: np.ndarray) -> None:
    rgb = to_float(chelsea[:30, :40])
    alpha = np.zeros((30, 40), dtype=np.float32)
    alpha[:, 20:] = 1.0
    options = EnhanceOptions(num_outputs=1, target_long_side=160, network_max_side=64, tile=64)
    image = enhance_image(rgb, alpha, x4plus_cpu, options).images[0]
    assert image.alpha is not None and image.alpha.shape == (120, 160)
    assert image.alpha.dtype == np.uint8
    assert image.alpha[:, :70].max() < 13 and image.alpha[:, 90:].min() > 242


def test_analysis_judges_an_image_with_alpha_as_seen_over_white(x4plus_cpu: SRModel) -> None:
    drawing = to_float(cartoon(5, side=64))
    alpha = np.ones((64, 64), dtype=np.float32)
    alpha[:, :24] = 0.0
    hidden = drawing.copy()
    hidden[:, :24] = np.random.default_rng(0).random((64, 24, 3), dtype=np.float32)  # noise nobody sees
    options = EnhanceOptions(num_outputs=1, target_long_side=128, network_max_side=64, tile=64, detect_faces=False)
    estimates = enhance_image(hidden, alpha, x4plus_cpu, options).explanation.estimates
    seen = (drawing * alpha[:, :, None] + (1 - alpha[:, :, None])).astype(np.float32)
    expected = analyse_image(seen, detect=False)
    assert replace(estimates, timings={}) == replace(expected, timings={})
    assert estimates.content.kind == "illustration"


def test_network_input_is_capped_for_large_inputs(x4plus_cpu: SRModel, coffee: np.ndarray) -> None:
    rgb = to_float(coffee[:120, :180])
    options = EnhanceOptions(num_outputs=1, target_long_side=180, network_max_side=48, tile=64)
    result = enhance_image(rgb, None, x4plus_cpu, options)
    assert result.explanation.network_input == (48, 32)
    assert result.images[0].rgb.shape == (120, 180, 3)


def test_upscaled_input_is_fed_to_the_network_at_its_true_resolution(x4plus_cpu: SRModel) -> None:
    small = Image.fromarray(skdata.coffee()[100:148, 200:264])  # 64×48
    upscaled = to_float(np.asarray(small.resize((192, 144), Image.Resampling.BICUBIC)))
    options = EnhanceOptions(num_outputs=1, target_long_side=256, network_max_side=192, tile=64, detect_faces=False)
    result = enhance_image(upscaled, None, x4plus_cpu, options)
    assert result.explanation.estimates.upscale_factor == 3.0
    assert result.explanation.network_input == (64, 48)


def test_enhance_rejects_non_float_input(x4plus_cpu: SRModel, coffee: np.ndarray) -> None:
    with pytest.raises(ValueError, match="float32"):
        enhance_image(coffee[:8, :8], None, x4plus_cpu, EnhanceOptions())


# --- loading (models.pipeline.load_pipeline) -----------------------------------------------------


def test_load_pipeline_builds_the_networks_from_their_weights_and_the_face_models(
    weights_dir: Path, x4plus_cpu: SRModel
) -> None:
    from models.pipeline import FACE_DETECTOR_FILE, NetworkWeights, load_pipeline

    roles = {"embedder": "dlib-face-recognition-resnet-v1", "landmarks": "dlib-shape-predictor-5"}
    roles["detector"] = FACE_DETECTOR_FILE
    weights.pull_model_files(weights_dir, list(roles.values()))
    state = weights.load_state_dict(get_network("x4plus").weights_name, weights_dir)
    loaded = load_pipeline(
        "cpu",
        networks={"photo": NetworkWeights("x4plus", state)},
        face_files={role: weights.model_file_path(name, weights_dir) for role, name in roles.items()},
    )
    photo = loaded.networks["photo"]
    assert list(loaded.networks) == ["photo"] and photo.network.name == "x4plus" and photo.device.type == "cpu"
    tile = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        assert torch.equal(photo.exact(tile), x4plus_cpu.exact(tile))  # the same weights, the same network
    assert loaded.faces is not None and loaded.faces.device.type == "cpu"


def test_load_pipeline_gives_the_test_stand_in_one_model_for_every_content() -> None:
    from models.pipeline import TEST_NETWORK, load_pipeline

    loaded = load_pipeline("cpu", stand_in=["photo", "illustration"])
    assert loaded.faces is None
    assert loaded.networks["photo"] is loaded.networks["illustration"]
    assert loaded.networks["photo"].network.name == get_network(TEST_NETWORK).name

"""Region-adaptive restoration on a real photo: the detail map (network where the input has detail it
agrees with, the faithful path elsewhere), the overshoot limit, both through the pipeline, and the
softened network output on heavily degraded inputs."""

from __future__ import annotations

import io
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage
from skimage import data as skdata
from skimage.metrics import peak_signal_noise_ratio

from models.imageio import decode_image
from models.pipeline import EnhanceOptions, analyse, infer_parameters, super_resolve
from models.pipeline._ops import (
    back_project,
    detail_map,
    gaussian_blur,
    limit_overshoot,
    local_range,
    resize,
    sharpen,
    upscale_bounded,
)
from models.pipeline._policy import RESTORATION_TABLE, VARIATIONS, OutputParameters
from models.pipeline._render import _OVERSHOOT_MARGIN
from models.prompt import parse_prompt
from models.sr import SRModel
from tests.benchmarks.bench_quality import overshoot
from tests.conftest import stand_in_model, to_float

# scikit-image's rocket at 160×107: a dusk sky (a smooth gradient) behind lattice towers (fine texture
# and strong edges against the sky, where halos show).
SKY = (slice(8, 40), slice(60, 130))
LATTICE = (slice(60, 95), slice(0, 20))


@pytest.fixture(scope="module")
def rocket() -> np.ndarray:
    return np.asarray(Image.fromarray(skdata.rocket()).resize((160, 107), Image.Resampling.LANCZOS))


def tensor(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(to_float(rgb))).permute(2, 0, 1)[None]


def upscaled(x: torch.Tensor) -> torch.Tensor:
    return resize(x, x.shape[-2] * 4, x.shape[-1] * 4).clamp(0.0, 1.0)


def test_detail_map_is_low_on_the_sky_and_high_on_the_lattice(rocket: np.ndarray) -> None:
    source = tensor(rocket)
    detail = detail_map(source, upscaled(source), noise_sigma=1.0)[0, 0]
    assert detail.shape == source.shape[-2:]
    assert float(detail[SKY].mean()) < 0.15
    assert float(detail[LATTICE].mean()) > 0.5


def test_noise_on_the_sky_is_not_read_as_detail(rocket: np.ndarray) -> None:
    noisy = np.clip(rocket + np.random.default_rng(0).normal(0, 8.0, rocket.shape), 0, 255).astype(np.uint8)
    source = tensor(noisy)
    told = detail_map(source, upscaled(source), noise_sigma=8.0)[0, 0]
    untold = detail_map(source, upscaled(source), noise_sigma=0.0)[0, 0]
    assert float(told[SKY].mean()) < 0.3
    # Without the noise level the same grain looks like texture: the noise term is what keeps it out.
    assert float(untold[SKY].mean()) > float(told[SKY].mean()) + 0.2


def test_where_the_network_disagrees_with_the_input_its_detail_is_not_trusted(rocket: np.ndarray) -> None:
    source = tensor(rocket)
    agreeing = upscaled(source)
    # A network that misread the lattice: a strong invented pattern, 2 input pixels per period.
    ys, xs = torch.meshgrid(torch.arange(agreeing.shape[-2]), torch.arange(agreeing.shape[-1]), indexing="ij")
    pattern = 0.25 * torch.sign(torch.sin(ys * torch.pi / 4) * torch.sin(xs * torch.pi / 4))
    misread = (agreeing + pattern).clamp(0.0, 1.0)
    trusted = detail_map(source, agreeing, noise_sigma=1.0)[0, 0]
    distrusted = detail_map(source, misread, noise_sigma=1.0)[0, 0]
    assert float(distrusted[LATTICE].mean()) < 0.5 * float(trusted[LATTICE].mean())


def test_the_detail_map_is_smooth_enough_to_leave_no_seam(rocket: np.ndarray) -> None:
    source = tensor(rocket)
    detail = resize(detail_map(source, upscaled(source), noise_sigma=1.0), 428, 640)[0, 0]
    # Output pixels are 4 per input pixel: the blend may not jump between neighbours.
    steps = max(float(detail.diff(dim=0).abs().max()), float(detail.diff(dim=1).abs().max()))
    assert steps < 0.08


def _as_u8(x: torch.Tensor) -> np.ndarray:
    return (x[0].permute(1, 2, 0).numpy() * 255).round().clip(0, 255).astype(np.uint8)


def _rocket_at(width: int, height: int) -> np.ndarray:
    return np.asarray(Image.fromarray(skdata.rocket()).resize((width, height), Image.Resampling.LANCZOS))


def _widened(bounds: tuple[torch.Tensor, torch.Tensor], share: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``bounds`` widened as the render widens them: its margin plus ``share`` of their width."""
    low, high = bounds
    slack = _OVERSHOOT_MARGIN + share * (high - low)
    return low - slack, high + slack


def test_the_limit_removes_halos_along_the_towers_edges(rocket: np.ndarray) -> None:
    source = tensor(rocket)
    oversharpened = sharpen(upscaled(source), amount=2.0, sigma=1.5)
    bounds = local_range(source, 428, 640)
    original = _rocket_at(640, 428)
    halos = {}
    for share in (0.1, 0.05):
        limited = limit_overshoot(oversharpened.clone(), bounds, margin=_OVERSHOOT_MARGIN, share=share)
        low, high = _widened(bounds, share)
        assert bool((limited >= low - 1e-6).all()) and bool((limited <= high + 1e-6).all())
        halos[share] = overshoot(_as_u8(limited), original)
    before = overshoot(_as_u8(oversharpened), original)
    print(f"overshoot against the original: {before:.3f} unlimited, {halos}")
    assert halos[0.1] < 0.9 * before
    assert halos[0.05] < halos[0.1]  # the clean row's tighter share takes more of the fringe out
    # Without widening the limit is the input neighbourhood's range itself.
    tight = limit_overshoot(oversharpened.clone(), bounds, margin=0.0, share=0.0)
    assert bool((tight >= bounds[0] - 1e-6).all()) and bool((tight <= bounds[1] + 1e-6).all())


def test_the_faithful_base_has_no_ringing_along_the_towers_edges(rocket: np.ndarray) -> None:
    source = tensor(rocket)
    bicubic = resize(source, 428, 640)
    bounded = upscale_bounded(source, 428, 640)
    original = _rocket_at(640, 428)
    before, after = overshoot(_as_u8(bicubic.clamp(0, 1)), original), overshoot(_as_u8(bounded), original)
    print(f"overshoot against the original: bicubic {before:.3f}, bounded {after:.3f}")
    assert after < 0.7 * before
    # Nothing leaves the range of the four input pixels around it: never brighter than the brightest
    # input pixel within one pixel of it, never darker than the darkest.
    high = torch.nn.functional.max_pool2d(source, 3, stride=1, padding=1)
    low = -torch.nn.functional.max_pool2d(-source, 3, stride=1, padding=1)
    nearest = (torch.arange(428) * 107 // 428, torch.arange(640) * 160 // 640)
    assert bool((bounded <= high[:, :, nearest[0]][:, :, :, nearest[1]] + 1e-6).all())
    assert bool((bounded >= low[:, :, nearest[0]][:, :, :, nearest[1]] - 1e-6).all())
    # On the sky (a smooth gradient) bicubic stays inside that range: a few hundredths of a level change
    # there, on average, where the towers' edges lose fringes of ten levels and more.
    change = (bounded - bicubic).abs() * 255
    assert float(change[..., 30:150, 240:520].mean()) < 0.1
    assert float(change.max()) > 10
    # A size that does not grow is the plain resize.
    assert torch.equal(upscale_bounded(source, 107, 160), source)


def test_back_projection_adds_no_fringe_along_a_strong_edge(rocket: np.ndarray) -> None:
    """Pulling the lattice's edges back to the input must not draw a light line on the sky beside
    them: the residual is upsampled bilinearly (no negative lobes)."""
    source = tensor(rocket)
    start = gaussian_blur(upscale_bounded(source, 428, 640), 2.0)  # an output that lost the edges
    pulled = back_project(start, source, weight=1.0, smoothing=0.0)
    original = _rocket_at(640, 428)
    assert peak_signal_noise_ratio(original, _as_u8(pulled)) > peak_signal_noise_ratio(original, _as_u8(start)) + 0.4

    def pulled_bicubic(output: torch.Tensor) -> torch.Tensor:
        for _ in range(3):
            output = output + resize(source - resize(output, 107, 160), 428, 640)
        return output.clamp(0.0, 1.0)

    ours, bicubic = overshoot(_as_u8(pulled), original), overshoot(_as_u8(pulled_bicubic(start)), original)
    print(f"overshoot after back-projection: bilinear {ours:.3f}, bicubic {bicubic:.3f}")
    assert ours < 0.8 * bicubic


def test_the_pipeline_restores_the_lattice_and_leaves_the_sky_faithful(rocket: np.ndarray, x4plus_cpu: SRModel) -> None:
    small = to_float(rocket)
    options = EnhanceOptions(num_outputs=1, target_long_side=640, network_max_side=160, tile=160, detect_faces=False)
    measured = analyse(small, detect=False)
    decided = infer_parameters(measured, None, 1)
    variation, params = decided.outputs[0]
    assert params.flat_strength < params.strength
    # A clean input: the tighter overshoot limit of the clean row, checked on the output below.
    assert params.overshoot_share == RESTORATION_TABLE[0].overshoot_share < RESTORATION_TABLE[1].overshoot_share

    def render(flat_strength: float, strength: float) -> np.ndarray:
        changed = replace(params, flat_strength=flat_strength, strength=strength)
        plan = replace(decided, outputs=((variation, changed),))
        return super_resolve(small, None, measured, plan, x4plus_cpu, options).images[0].rgb.astype(np.float32) / 255

    adaptive = render(params.flat_strength, params.strength)
    flat_out = render(params.strength, params.strength)  # one strength everywhere
    base = render(0.0, 0.0)  # no network at all: the faithful path alone

    source = tensor(rocket)
    detail = resize(detail_map(source, upscaled(source), noise_sigma=measured.noise_sigma), *adaptive.shape[:2])[0, 0]
    textured, flat = detail.numpy() > 0.8, detail.numpy() < 0.05
    assert textured.mean() > 0.02 and flat.mean() > 0.3

    def share(where: np.ndarray) -> float:
        """How much of the uniform blend's network contribution the adaptive output keeps there."""
        return float(np.abs(adaptive - base)[where].mean() / np.abs(flat_out - base)[where].mean())

    # Where the input has detail the network's share stays high (below 1 where the network's output
    # disagrees with the input: the pipeline's map also weighs that); where it has none, the share falls
    # to flat_strength / strength (a third, here).
    print(f"share of the uniform blend's change: textured {share(textured):.2f}, flat {share(flat):.2f}")
    assert share(textured) > 0.6 and share(flat) < 0.4
    # And the output stays inside the input's neighbourhood: nothing beyond the limit's bounds.
    low, high = _widened(local_range(tensor(rocket), *adaptive.shape[:2]), params.overshoot_share)
    out = torch.from_numpy(adaptive).permute(2, 0, 1)[None]
    assert float((out - high).max()) <= 1 / 255 + 1e-6
    assert float((low - out).max()) <= 1 / 255 + 1e-6


def test_flat_strength_follows_the_variations(rocket: np.ndarray) -> None:
    assert all(row.flat_strength <= row.strength for row in RESTORATION_TABLE)
    decided = infer_parameters(analyse(to_float(rocket), detect=False), None, len(VARIATIONS))
    by_name = {variation.name: params for variation, params in decided.outputs}
    inferred = by_name["inferred"]
    assert inferred.flat_strength < inferred.strength
    assert by_name["natural"].flat_strength == pytest.approx(inferred.flat_strength * 0.25)
    assert by_name["detail"].flat_strength == by_name["detail"].strength == 1.0


def heavily_degraded(name: str) -> tuple[np.ndarray, bytes]:
    """A scikit-image photo at 256 px wide (the truth) and the file a client would send of it: blurred,
    ×4 smaller, noise σ 10, JPEG quality 45 (the quality benchmark's heavy level)."""
    image = getattr(skdata, name)()
    height = round(256 * image.shape[0] / image.shape[1]) // 4 * 4
    truth = np.asarray(Image.fromarray(image).resize((256, height), Image.Resampling.LANCZOS))
    blurred = ndimage.gaussian_filter(truth.astype(np.float32), (2.4, 2.4, 0))
    small = np.stack(
        [
            np.asarray(Image.fromarray(blurred[:, :, c]).resize((64, height // 4), Image.Resampling.BICUBIC))
            for c in range(3)
        ],
        axis=2,
    )
    noisy = small + np.random.default_rng(0).normal(0.0, 10.0, small.shape)
    buffer = io.BytesIO()
    Image.fromarray(np.clip(np.round(noisy), 0, 255).astype(np.uint8)).save(buffer, "JPEG", quality=45)
    return truth, buffer.getvalue()


@pytest.mark.parametrize("name", ["rocket", "chelsea"])
def test_softening_the_network_brings_a_heavily_degraded_photo_closer(name: str, x4plus_cpu: SRModel) -> None:
    truth, blob = heavily_degraded(name)
    small = decode_image(blob).rgb
    measured = analyse(small, blob, detect=False)
    decided = infer_parameters(measured, None, 1)
    variation, params = decided.outputs[0]
    assert decided.degradation > 0.8 and params.soften > 0.3
    options = EnhanceOptions(num_outputs=1, target_long_side=256, network_max_side=64, tile=64, detect_faces=False)

    def psnr_with(soften: float) -> float:
        plan = replace(decided, outputs=((variation, replace(params, soften=soften)),))
        out = super_resolve(small, None, measured, plan, x4plus_cpu, options).images[0].rgb
        return float(peak_signal_noise_ratio(truth, out, data_range=255))

    softened, unsoftened = psnr_with(params.soften), psnr_with(0.0)
    print(f"{name}: PSNR {softened:.2f} dB softened, {unsoftened:.2f} dB not")
    # The network's finest invented texture is mostly wrong here: blurring it slightly is closer to the
    # scene (+0.25 and +0.11 dB here).
    assert softened > unsoftened + 0.05


def test_softening_is_for_degraded_inputs_and_never_for_detail_or_a_sharper_prompt(rocket: np.ndarray) -> None:
    assert RESTORATION_TABLE[0].soften == 0.0 and RESTORATION_TABLE[-1].soften > 0.0
    _, blob = heavily_degraded("rocket")
    measured = analyse(decode_image(blob).rgb, blob, detect=False)
    by_name = {v.name: p for v, p in infer_parameters(measured, None, len(VARIATIONS)).outputs}
    assert by_name["inferred"].soften > 0.3 and by_name["detail"].soften == 0.0
    assert infer_parameters(measured, parse_prompt("sharper"), 1).outputs[0][1].soften == 0.0
    clean = infer_parameters(analyse(to_float(rocket), detect=False), None, 1)
    assert clean.outputs[0][1].soften == 0.0


def test_the_base_under_a_heavily_degraded_sky_is_the_networks_own_so_its_noise_stays_out(
    x4plus_cpu: SRModel,
) -> None:
    truth, blob = heavily_degraded("rocket")
    small = decode_image(blob).rgb
    measured = analyse(small, blob, detect=False)
    decided = infer_parameters(measured, None, 1)
    variation, params = decided.outputs[0]
    assert params.network_base > 0.8 and params.flat_strength < 1.0
    options = EnhanceOptions(num_outputs=1, target_long_side=256, network_max_side=64, tile=64, detect_faces=False)
    grey = truth.astype(np.float32).mean(axis=2)
    spread = np.sqrt(np.maximum(ndimage.uniform_filter(grey**2, 9) - ndimage.uniform_filter(grey, 9) ** 2, 0.0))
    sky = spread < 2.0  # where the original is flat: half of the picture
    assert sky.mean() > 0.3

    def on_the_sky(network_base: float) -> tuple[float, float]:
        """RMS error against the original and mean fine-scale ripple (8-bit levels) over the sky."""
        plan = replace(decided, outputs=((variation, replace(params, network_base=network_base)),))
        out = super_resolve(small, None, measured, plan, x4plus_cpu, options).images[0].rgb.astype(np.float32)
        ripple = np.abs(out - ndimage.gaussian_filter(out, (2, 2, 0)))
        return float(np.sqrt(((out - truth)[sky] ** 2).mean())), float(ripple[sky].mean())

    (error, ripple), (input_error, input_ripple) = on_the_sky(params.network_base), on_the_sky(0.0)
    print(f"sky: RMS error {error:.2f} / {input_error:.2f}, ripple {ripple:.3f} / {input_ripple:.3f}")
    # The share of the input's bicubic left in flat parts brings its noise back as mottling; the
    # network's own output, blurred, does not (measured: ripple 0.35 against 0.39, error 3.26 / 3.27).
    assert ripple < 0.95 * input_ripple and error <= input_error + 0.02


class _Smoothing(torch.nn.Module):
    """A stand-in network that smooths away what is smaller than a few pixels (as x4plus smooths away a
    compressed sky's JPEG blocks): its output is the input blurred by 4 px, ×4 by nearest neighbour."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.interpolate(gaussian_blur(x, 4.0), scale_factor=4, mode="nearest")


def test_the_networks_own_base_keeps_a_compressed_inputs_blotches_out_of_flat_parts() -> None:
    # A flat grey gradient with the broad blotches of a heavily compressed JPEG (8-pixel blocks, in
    # tone and colour) and noise, rendered with the heavy row under a network that smooths them away.
    rng = np.random.default_rng(0)
    height, width = 48, 64
    grey = np.repeat(np.linspace(0.35, 0.65, width, dtype=np.float32)[None, :, None], height, axis=0)
    blocks = np.kron(rng.uniform(-0.06, 0.06, (height // 8, width // 8, 3)), np.ones((8, 8, 1)))
    noise = rng.normal(0.0, 0.04, (height, width, 3))
    small = np.clip(grey + blocks + noise, 0.0, 1.0).astype(np.float32)
    measured = analyse(small, detect=False)
    decided = infer_parameters(measured, None, 1)
    variation, params = decided.outputs[0]
    heavy = RESTORATION_TABLE[-1]
    assert heavy.network_base == 1.0 and heavy.flat_strength < 1.0
    params = replace(
        params,
        strength=heavy.strength,
        flat_strength=heavy.flat_strength,
        network_base=heavy.network_base,
        fidelity=0.0,
        tone_guard=0.0,
        sharpen=0.0,
        soften=0.0,
    )
    options = EnhanceOptions(
        num_outputs=1, target_long_side=4 * width, network_max_side=width, tile=64, detect_faces=False
    )

    def render(p: OutputParameters) -> np.ndarray:
        plan = replace(decided, outputs=((variation, p),))
        return super_resolve(small, None, measured, plan, stand_in_model(_Smoothing()), options).images[0].rgb

    def blotches(out: np.ndarray) -> float:
        """RMS of the output's 8-pixel blocks around the network's, 8-bit levels."""
        network = render(replace(params, strength=1.0, flat_strength=1.0)).astype(np.float64)
        return float(np.sqrt((ndimage.uniform_filter(out.astype(np.float64) - network, (8, 8, 1)) ** 2).mean()))

    own, inputs = blotches(render(params)), blotches(render(replace(params, network_base=0.0)))
    share = (1.0 - heavy.flat_strength) * 255 * float(np.sqrt((blocks**2).mean()))
    print(f"blotches: {own:.2f} levels on the network's base, {inputs:.2f} on the input's, their share {share:.2f}")
    # On the input's bicubic the flat parts keep their share of the blotches; on the network's own
    # output, blurred, almost nothing of them.
    assert inputs > 0.6 * share
    assert own < 0.25 * inputs

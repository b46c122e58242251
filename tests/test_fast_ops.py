"""The fast CPU forms of the render's operations give what their plain forms give (issue 14: speed).

Each fast path replaces a PyTorch call or a loop with cheaper arithmetic that is the same function, so
each is checked against the plain form on real photos and on awkward shapes, to float rounding."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage import data

from models.pipeline._ops import back_project, gaussian_blur, resize
from models.sr import correlate, resize_bicubic


def _photo(height: int, width: int) -> torch.Tensor:
    """scikit-image's astronaut, cropped, as (1, 3, H, W) float32 in [0, 1]."""
    rgb = np.ascontiguousarray(data.astronaut()[100 : 100 + height, 150 : 150 + width])
    return torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255.0


@pytest.mark.parametrize(
    ("shape", "size"),
    [
        ((1, 3, 64, 48), (256, 192)),  # whole factors: evenly spaced windows
        ((2, 1, 5, 7), (10, 21)),
        ((1, 3, 1, 1), (4, 4)),
        ((1, 3, 3, 9), (3, 18)),  # one axis unchanged
        ((1, 3, 6, 2), (18, 2)),
        ((1, 3, 480, 300), (2048, 1280)),  # 4.27×: gathered windows, blocks overrunning the end
        ((1, 3, 31, 100), (1365, 2048)),
        ((1, 2, 100, 7), (33, 5)),  # shrinking without antialiasing
        ((1, 3, 1, 5), (2048, 9)),  # a huge factor from one row
    ],
)
def test_resize_bicubic_matches_interpolate(shape: tuple[int, int, int, int], size: tuple[int, int]) -> None:
    x = torch.rand(shape, generator=torch.Generator().manual_seed(0))
    expected = F.interpolate(x, size=size, mode="bicubic", align_corners=False)
    got = resize_bicubic(x, *size)
    assert got.shape == expected.shape
    # PyTorch places the samples in float32; a few 1e-5 apart from the exact positions at 1000+ pixels.
    assert (got - expected).abs().max().item() < 5e-5


def test_resize_bicubic_reads_strided_inputs_by_their_strides() -> None:
    """A plane whose pixels are not adjacent in memory (here every other value of a wider tensor)."""
    wide = torch.rand((1, 1, 12, 32), generator=torch.Generator().manual_seed(4))
    strided = wide[..., ::2]  # (1, 1, 12, 16), last stride 2
    for size in [(48, 64), (37, 50)]:
        expected = F.interpolate(strided.contiguous(), size=size, mode="bicubic", align_corners=False)
        assert (resize_bicubic(strided, *size) - expected).abs().max().item() < 5e-5


def test_resize_matches_interpolate_on_a_photo_both_ways() -> None:
    photo = _photo(120, 96)
    for size in [(480, 384), (451, 300), (1000, 800)]:  # whole factor, and not
        expected = F.interpolate(photo, size=size, mode="bicubic", align_corners=False)
        assert (resize(photo, *size) - expected).abs().max().item() < 5e-5
    # Shrinking is antialiased: PyTorch's own kernel, exactly.
    assert torch.equal(
        resize(photo, 60, 40), F.interpolate(photo, size=(60, 40), mode="bicubic", align_corners=False, antialias=True)
    )


def test_resize_bicubic_refuses_an_empty_size() -> None:
    with pytest.raises(ValueError):
        resize_bicubic(torch.zeros(1, 3, 4, 4), 0, 2)


def _back_project_stepwise(
    output: torch.Tensor, reference: torch.Tensor, *, weight: float, smoothing: float, iterations: int = 3
) -> torch.Tensor:
    """Back-projection as it is defined: every step at the output's size."""
    height, width = output.shape[-2:]
    for _ in range(iterations):
        residual = gaussian_blur(reference - resize(output, *reference.shape[-2:]), smoothing)
        output = output + weight * F.interpolate(residual, size=(height, width), mode="bilinear", align_corners=False)
    return output.clamp(0.0, 1.0)


@pytest.mark.parametrize(("weight", "smoothing"), [(0.5, 0.0), (0.8, 1.0), (1.0, 0.6)])
@pytest.mark.parametrize("size", [(64, 64, 256, 256), (40, 60, 100, 150), (23, 31, 92, 124)])
def test_back_project_at_reference_size_matches_the_stepwise_definition(
    weight: float, smoothing: float, size: tuple[int, int, int, int]
) -> None:
    ref_h, ref_w, out_h, out_w = size
    reference = _photo(ref_h, ref_w)
    noise = 0.05 * torch.randn((1, 3, out_h, out_w), generator=torch.Generator().manual_seed(1))
    output = (F.interpolate(reference, size=(out_h, out_w), mode="bilinear", align_corners=False) + noise).clamp(0, 1)
    before = output.clone()
    expected = _back_project_stepwise(output, reference, weight=weight, smoothing=smoothing)
    got = back_project(output, reference, weight=weight, smoothing=smoothing)
    assert torch.equal(output, before), "the caller's tensor must not change"
    assert (got - expected).abs().max().item() < 1e-5
    # And it does something: the result agrees with the reference better than the input did.
    before_error = (resize(output, ref_h, ref_w) - reference).abs().mean()
    after_error = (resize(got, ref_h, ref_w) - reference).abs().mean()
    assert after_error < before_error


@pytest.mark.parametrize(("shape", "sigma"), [((1, 3, 64, 80), 10.0), ((1, 1, 300, 40), 30.0), ((2, 3, 50, 200), 40.0)])
def test_wide_gaussian_blur_by_fft_matches_shifted_sums(shape: tuple[int, int, int, int], sigma: float) -> None:
    """A kernel wider than ``_FFT_RADIUS`` (sharpening a tiny input blown up to 2048 px) goes by FFT."""
    from models.pipeline import _ops

    x = torch.rand(shape, generator=torch.Generator().manual_seed(2))
    radius = min(int(np.ceil(3 * sigma)), min(shape[-2:]) - 1)
    assert radius > _ops._FFT_RADIUS  # the case exercises the FFT path
    taps = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-(taps**2) / (2 * sigma * sigma))
    kernel = kernel / kernel.sum()
    across, down = _ops._pad_mode(shape[-1], radius), _ops._pad_mode(shape[-2], radius)
    expected = correlate(F.pad(x, (radius, radius, 0, 0), mode=across), kernel.tolist(), dim=-1)
    expected = correlate(F.pad(expected, (0, 0, radius, radius), mode=down), kernel.tolist(), dim=-2)
    got = gaussian_blur(x, sigma)
    assert got.shape == x.shape
    assert (got - expected).abs().max().item() < 1e-5


def test_resize_bicubic_of_a_single_pixel_by_a_large_factor_is_flat() -> None:
    pixel = torch.tensor([0.2, 0.5, 0.9]).view(1, 3, 1, 1)
    out = resize_bicubic(pixel, 64, 32)
    assert out.shape == (1, 3, 64, 32)
    assert torch.allclose(out, pixel.expand(1, 3, 64, 32), atol=1e-6)


@pytest.mark.parametrize(
    ("shape", "padding"),
    [((1, 45, 60, 37), (4, 4)), ((2, 8, 9, 9), (0, 0)), ((1, 5, 3, 20), (4, 2)), ((1, 45, 12, 5), (4, 4))],
)
def test_single_output_convolution_matches_conv2d(shape: tuple[int, int, int, int], padding: tuple[int, int]) -> None:
    """The detector's 9×9 scorer: one product and a shifted add per tap, against PyTorch's convolution
    (planes smaller than the kernel included: padding alone lets some taps reach them)."""
    from models.faces._dlib_net import _conv_one_output

    generator = torch.Generator().manual_seed(3)
    x = torch.rand(shape, generator=generator)
    weight = torch.randn((1, shape[1], 9, 9), generator=generator) * 0.1
    bias = torch.tensor([0.25])
    expected = F.conv2d(x, weight, bias, padding=padding)
    got = _conv_one_output(x, weight, bias, padding)
    assert got.shape == expected.shape
    assert (got - expected).abs().max().item() < 1e-4

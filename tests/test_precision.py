"""The network's precision per device (issue 19): the choice from stubbed capabilities, the start
errors, the deprecated ENHANCE_HALF_PRECISION, reduced precision against float32 on real photos, the
NaN guard in bfloat16, the int8 quality gate's logic and threads from affinity and cgroup quota."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage import data as skdata

import weights
from models.sr import (
    INT8_GATE,
    Capabilities,
    DirectRunner,
    GateLevel,
    PrecisionChoice,
    PrecisionError,
    SRModel,
    choose_precision,
    cpu_flags,
    detect_capabilities,
    gate_refusal,
    get_network,
    int8_refusal,
    load_sr_model,
    load_sr_model_in,
    requested_precision,
    upscale,
)
from models.sr._threads import cgroup_cpu_limit, configure_threads, usable_cpus
from server.runtime import ModelRuntime, precision_request
from server.settings import Settings

CPU, CUDA = torch.device("cpu"), torch.device("cuda")
BF16_CPU = Capabilities("cpu", bf16=True, fp16=False, int8=True, flags=("avx512_bf16", "avx512_vnni"))
PLAIN_CPU = Capabilities("cpu", bf16=False, fp16=False, int8=False, flags=())
AMPERE = Capabilities("cuda", bf16=True, fp16=True, int8=False, name="A100")
TURING = Capabilities("cuda", bf16=False, fp16=True, int8=False, name="T4")


# --- the choice ---------------------------------------------------------------------------------


def test_auto_is_bfloat16_on_a_cpu_with_native_bfloat16_and_says_why() -> None:
    choice = choose_precision("auto", CPU, BF16_CPU)
    assert (choice.name, choice.dtype) == ("bf16", torch.bfloat16)
    assert "avx512_bf16" in choice.reason


def test_auto_is_float32_on_a_cpu_without_bfloat16() -> None:
    choice = choose_precision("auto", CPU, PLAIN_CPU)
    assert (choice.name, choice.dtype) == ("fp32", torch.float32)
    assert "no native bfloat16" in choice.reason


def test_auto_on_cuda_is_float16_or_bfloat16_where_float16_overflows() -> None:
    assert choose_precision("auto", CUDA, AMPERE).name == "fp16"
    assert choose_precision("auto", CUDA, AMPERE, supports_half=False).name == "bf16"
    assert choose_precision("auto", CUDA, TURING, supports_half=False).name == "fp32"


def test_auto_respects_a_network_that_does_not_run_in_bfloat16() -> None:
    assert choose_precision("auto", CPU, BF16_CPU, supports_bfloat16=False).name == "fp32"


def test_explicit_precisions_the_device_runs() -> None:
    assert choose_precision("fp32", CPU, BF16_CPU).dtype == torch.float32
    assert choose_precision("bf16", CPU, BF16_CPU).dtype == torch.bfloat16
    assert choose_precision("fp16", CUDA, TURING).dtype == torch.float16
    assert choose_precision("bf16", CUDA, AMPERE).dtype == torch.bfloat16
    amx_fp16 = Capabilities("cpu", bf16=True, fp16=True, int8=True, flags=("amx_fp16",))
    assert choose_precision("fp16", CPU, amx_fp16).dtype == torch.float16


@pytest.mark.parametrize(
    ("requested", "device", "capabilities", "words"),
    [
        ("bf16", CPU, PLAIN_CPU, "no native bfloat16"),
        ("fp16", CPU, BF16_CPU, "no native float16"),
        ("bf16", CUDA, TURING, "no bfloat16"),
        ("int8", CUDA, AMPERE, "CPU only"),
        ("int8", CPU, PLAIN_CPU, "VNNI"),
        ("fp64", CPU, BF16_CPU, "unknown precision"),
    ],
)
def test_a_precision_the_device_cannot_run_is_an_error(
    requested: str, device: torch.device, capabilities: Capabilities, words: str
) -> None:
    with pytest.raises(PrecisionError, match=words):
        choose_precision(requested, device, capabilities)


def test_a_precision_the_network_cannot_run_is_an_error() -> None:
    with pytest.raises(PrecisionError, match="does not run correctly in float16"):
        choose_precision("fp16", CUDA, AMPERE, supports_half=False)


def test_capabilities_come_from_the_cpuinfo_flags() -> None:
    zen4 = "processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512_bf16 avx512_vnni\n"
    haswell = "processor\t: 0\nflags\t\t: fpu sse avx2 fma\n"
    graviton3 = "processor\t: 0\nFeatures\t: fp asimd bf16 i8mm\n"
    assert cpu_flags(zen4) >= {"avx512_bf16", "avx512_vnni"}
    zen = detect_capabilities(CPU, zen4)
    assert (zen.bf16, zen.fp16, zen.int8) == (True, False, True)
    assert (detect_capabilities(CPU, haswell).bf16, detect_capabilities(CPU, haswell).int8) == (False, False)
    assert detect_capabilities(CPU, graviton3).bf16
    assert detect_capabilities(CPU, "").bf16 is False  # nothing known: nothing assumed


def test_this_machines_capabilities_agree_with_its_cpuinfo() -> None:
    flags = cpu_flags()
    found = detect_capabilities(CPU)
    assert found.bf16 == (torch.backends.mkldnn.is_available() and bool(flags & {"avx512_bf16", "amx_bf16", "bf16"}))


# --- the deprecated setting ---------------------------------------------------------------------


def test_half_precision_maps_onto_precision_with_a_warning() -> None:
    assert requested_precision("auto", None) == ("auto", None)
    assert requested_precision("bf16", None) == ("bf16", None)
    precision, warning = requested_precision("auto", False)
    assert precision == "fp32" and warning is not None and "deprecated" in warning
    assert requested_precision("auto", True)[0] == "auto"
    assert requested_precision("fp32", False)[0] == "fp32"
    assert requested_precision("bf16", True)[0] == "bf16"


@pytest.mark.parametrize(("precision", "half"), [("fp32", True), ("bf16", False), ("fp16", False)])
def test_half_precision_contradicting_precision_is_an_error(precision: str, half: bool) -> None:
    with pytest.raises(PrecisionError, match="contradicts"):
        requested_precision(precision, half)


def test_settings_half_precision_counts_only_when_set(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    assert precision_request(Settings()) == "auto"
    monkeypatch.setenv("ENHANCE_HALF_PRECISION", "false")
    with caplog.at_level(logging.WARNING, logger="server.runtime"):
        assert precision_request(Settings()) == "fp32"
    assert "ENHANCE_HALF_PRECISION=false is deprecated" in caplog.text
    monkeypatch.setenv("ENHANCE_PRECISION", "bf16")
    with pytest.raises(PrecisionError, match="contradicts"):
        precision_request(Settings())


def test_the_service_refuses_to_start_in_a_precision_the_device_cannot_run(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr("server.runtime.detect_capabilities", lambda device: PLAIN_CPU)
    settings = Settings(mode="test", device="cpu", precision="bf16", data_dir=tmp_path)
    with pytest.raises(PrecisionError, match="ENHANCE_PRECISION=bf16 cannot run here"):
        ModelRuntime.load(settings)


def test_test_mode_refuses_int8_as_real_mode_does_on_a_vnni_cpu(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, weights_dir: Path
) -> None:
    # The stand-in runs in float32, yet int8 is refused for the networks real mode would load, in
    # the same words (the gate's measured loss), even where the CPU has VNNI.
    for module in ("server.runtime", "models.sr._load"):
        monkeypatch.setattr(f"{module}.detect_capabilities", lambda device: BF16_CPU)
    with pytest.raises(PrecisionError) as test_mode:
        ModelRuntime.load(Settings(mode="test", device="cpu", precision="int8", data_dir=tmp_path))
    with pytest.raises(PrecisionError) as real_mode:
        ModelRuntime.load(
            Settings(
                device="cpu", precision="int8", data_dir=tmp_path, weights_dir=weights_dir, auto_pull_weights=False
            )
        )
    assert str(test_mode.value) == str(real_mode.value)
    assert "int8 is not offered" in str(test_mode.value) and "quality gate" in str(test_mode.value)


# --- on the real network ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def x4plus_state(weights_dir: Path) -> dict[str, torch.Tensor]:
    return weights.load_state_dict(get_network("x4plus").weights_name, weights_dir)


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(1.0 / F.mse_loss(a, b)))


def _crop(image: np.ndarray, y: int, x: int, side: int = 24) -> torch.Tensor:
    patch = np.ascontiguousarray(image[y : y + side, x : x + side], dtype=np.float32) / 255.0
    return torch.from_numpy(patch).permute(2, 0, 1)[None].contiguous()


def test_bfloat16_channels_last_matches_float32_on_real_photos(x4plus_state: dict[str, torch.Tensor]) -> None:
    """bfloat16 runs (emulated, slowly) on any CPU, so this holds everywhere; float16 is checked on CUDA
    (tests/test_gpu.py): on a CPU without avx512_fp16 it is emulated far too slowly for a test."""
    network = get_network("x4plus")
    exact = load_sr_model(network, x4plus_state, CPU, half=False, channels_last=False)
    reduced = load_sr_model(network, x4plus_state, CPU, precision=PrecisionChoice("bf16", torch.bfloat16, "bf16", ""))
    assert reduced.fast is not reduced.exact and reduced.channels_last and reduced.dtype_name == "bfloat16"
    assert next(reduced.fast.parameters()).dtype == torch.bfloat16
    assert next(reduced.exact.parameters()).dtype == torch.float32
    for crop in (_crop(skdata.astronaut(), 180, 200), _crop(skdata.coffee(), 150, 250)):
        ours, report = upscale(reduced, crop, tile=64)
        ref, _ = upscale(exact, crop, tile=64)
        assert report.dtype == "bfloat16" and report.nan_fallbacks == 0
        assert not torch.equal(ours, ref)  # it really ran in another precision
        assert _psnr(ours, ref) >= 45.0


def test_int8_is_a_start_error_citing_the_measured_loss(x4plus_state: dict[str, torch.Tensor]) -> None:
    refusal = int8_refusal("x4plus")
    assert refusal is not None  # the recorded gate failed: int8 is not offered
    with pytest.raises(PrecisionError, match="dB PSNR loss") as raised:
        load_sr_model_in(get_network("x4plus"), x4plus_state, CPU, "int8", BF16_CPU)
    worst = max(level.psnr_loss for level in INT8_GATE["x4plus"])
    assert f"{worst:+.2f} dB" in str(raised.value)


# --- the NaN guard in bfloat16 ------------------------------------------------------------------


class _OverflowsInBfloat16(torch.nn.Module):
    """x4 nearest upscale plus (h - h) with h = x * 3.4e38: finite in float32 (3.4e38 is below its
    largest value), but 3.4e38 rounds to infinity in bfloat16, so there h - h is NaN."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 3, 1, bias=False)
        with torch.no_grad():
            self.conv.weight.copy_(torch.eye(3).view(3, 3, 1, 1) * 3.4e38)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x)
        return F.interpolate(x + (h - h), scale_factor=4, mode="nearest")


def test_nan_guard_reruns_bfloat16_overflow_in_float32() -> None:
    exact = _OverflowsInBfloat16().eval()
    fast = _OverflowsInBfloat16().eval().to(torch.bfloat16)
    model = SRModel(
        network=get_network("x4plus"),
        device=CPU,
        fast_dtype=torch.bfloat16,
        fast=fast,
        exact=exact,
        channels_last=True,
        precision="bf16",
    )
    photo = _crop(skdata.chelsea(), 100, 100, side=40)
    out, report = upscale(model, photo, tile=24, overlap=4, runner=DirectRunner(2))
    assert report.nan_fallbacks == report.tiles > 1 and report.dtype == "bfloat16"
    assert torch.isfinite(out).all()
    assert torch.allclose(out, F.interpolate(photo, scale_factor=4, mode="nearest"), atol=1e-6)


# --- the int8 gate's logic ----------------------------------------------------------------------


def test_gate_passes_only_when_every_level_is_within_both_bounds() -> None:
    good = [GateLevel("clean", 30.0, 29.95, 5.0, 5.1), GateLevel("heavy", 25.0, 24.92, 6.0, 6.19)]
    assert gate_refusal(good) is None
    psnr = [*good, GateLevel("mild", 27.0, 26.85, 5.5, 5.5)]
    assert "mild: +0.15 dB PSNR loss" in (gate_refusal(psnr) or "")
    niqe = [GateLevel("clean", 30.0, 30.0, 5.0, 5.3)]
    assert "+0.30 NIQE" in (gate_refusal(niqe) or "")
    assert "never measured" in (gate_refusal([]) or "")
    assert "never measured" in (int8_refusal("x4plus-anime") or "")


# --- threads ------------------------------------------------------------------------------------


def test_cgroup_quota_in_whole_cores(tmp_path: Path) -> None:
    v2, quota, period = tmp_path / "cpu.max", tmp_path / "quota", tmp_path / "period"
    v2.write_text("150000 100000\n")
    assert cgroup_cpu_limit(v2, (quota, period)) == 2
    v2.write_text("max 100000\n")
    assert cgroup_cpu_limit(v2, (quota, period)) is None
    v2.unlink()
    quota.write_text("-1\n")
    period.write_text("100000\n")
    assert cgroup_cpu_limit(v2, (quota, period)) is None
    quota.write_text("300000\n")
    assert cgroup_cpu_limit(v2, (quota, period)) == 3
    quota.unlink()
    assert cgroup_cpu_limit(v2, (quota, period)) is None


def test_threads_follow_the_cores_this_process_may_use(monkeypatch: pytest.MonkeyPatch) -> None:
    assert 1 <= usable_cpus() <= len(os.sched_getaffinity(0))
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr("models.sr._threads.cgroup_cpu_limit", lambda: 1)
    before = torch.get_num_threads()
    try:
        assert configure_threads()[0] == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


# --- reported: start-up log, /readyz, /metrics, the header -------------------------------------


def test_the_precision_and_its_reason_are_reported_everywhere(
    tmp_path: Path, weights_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import base64
    import io
    import json

    from fastapi.testclient import TestClient
    from PIL import Image

    from server import create_app

    expected = choose_precision("auto", CPU, detect_capabilities(CPU))
    dtype = str(expected.dtype).removeprefix("torch.")
    settings = Settings(
        data_dir=tmp_path, weights_dir=weights_dir, device="cpu", api_keys="k", network_max_side=32, cpu_tile_size=64
    )
    with caplog.at_level(logging.INFO, logger="server.runtime"), TestClient(create_app(settings)) as client:
        ready = client.get("/readyz").json()
        assert (ready["precision"], ready["precision_reason"]) == (dtype, expected.reason)
        metrics = client.get("/metrics").text
        assert f'enhance_precision_info{{device="cpu",precision="{dtype}",reason="{expected.reason}"}} 1.0' in metrics
        buffer = io.BytesIO()
        Image.fromarray(skdata.chelsea()[40:120, 150:270]).save(buffer, "JPEG", quality=90)
        body = {"image": base64.b64encode(buffer.getvalue()).decode(), "output_format": "jpg"}
        response = client.post("/v1/phota/enhance", headers={"X-API-Key": "k"}, json=body)
        assert response.status_code == 200
        assert json.loads(response.headers["X-Enhance-Parameters"])["dtype"] == dtype
    assert f"loaded x4plus on cpu in {dtype}: {expected.reason}" in caplog.text

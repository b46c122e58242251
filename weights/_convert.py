"""Turn an ncnn model into a PyTorch state dict and a byte-deterministic safetensors file.

Each supported architecture is one :class:`ArchitectureLayout` in :data:`ARCHITECTURES`: it lists,
in the order ncnn stores them, every state-dict key with its shape and the ncnn layer type and role
(kernel, bias, slope) it must come from. Conversion zips that list with the ncnn weights and refuses
any mismatch, so a misread file can never produce a plausible-looking state dict.

Key names are the upstream BasicSR / Real-ESRGAN ones (``conv_first``, ``body.0.rdb1.conv1``, ...;
``body.{k}`` for the compact net), the names of the official ``.pth`` files, which spandrel detects.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np

from weights._errors import WeightsConversionError
from weights._manifest import WeightSpec
from weights._ncnn import NcnnWeights, parse_param, read_weights

Role = Literal["weight", "bias"]
Config = Mapping[str, int | str]


@dataclass(frozen=True)
class ExpectedTensor:
    """One state-dict entry: its key and shape, and which ncnn layer type and blob fill it."""

    key: str
    shape: tuple[int, ...]
    layer_type: str
    role: Role


@dataclass(frozen=True)
class ArchitectureLayout:
    """How one architecture's state dict is laid out, as a function of its config and scale."""

    name: str
    expected_tensors: Callable[[Config, int], list[ExpectedTensor]]


def _config_int(config: Config, key: str, default: int | None = None) -> int:
    """Return integer ``config[key]`` (or ``default``), refusing a missing or non-integer value."""
    value = config.get(key, default)
    if not isinstance(value, int):
        raise WeightsConversionError(f"architecture config needs an integer {key!r}, got {value!r}")
    return value


def _conv(key: str, out_channels: int, in_channels: int, kernel: int = 3) -> list[ExpectedTensor]:
    """The two entries of a biased ``nn.Conv2d``."""
    return [
        ExpectedTensor(f"{key}.weight", (out_channels, in_channels, kernel, kernel), "Convolution", "weight"),
        ExpectedTensor(f"{key}.bias", (out_channels,), "Convolution", "bias"),
    ]


def _rrdbnet_tensors(config: Config, scale: int) -> list[ExpectedTensor]:
    """BasicSR's ``RRDBNet(num_in_ch, num_out_ch, scale, num_feat, num_block, num_grow_ch)``."""
    in_ch, out_ch = _config_int(config, "num_in_ch", 3), _config_int(config, "num_out_ch", 3)
    feat, grow = _config_int(config, "num_feat", 64), _config_int(config, "num_grow_ch", 32)
    blocks = _config_int(config, "num_block")
    # RRDBNet always upsamples x4; for scale 2 and 1 it pixel-unshuffles the input first.
    unshuffle = {4: 1, 2: 4, 1: 16}.get(scale)
    if unshuffle is None:
        raise WeightsConversionError(f"RRDBNet supports scale 1, 2 or 4, not {scale}")
    tensors = _conv("conv_first", feat, in_ch * unshuffle)
    for block in range(blocks):
        for rdb in (1, 2, 3):
            for index in range(1, 6):
                out = grow if index < 5 else feat
                tensors += _conv(f"body.{block}.rdb{rdb}.conv{index}", out, feat + (index - 1) * grow)
    for key in ("conv_body", "conv_up1", "conv_up2", "conv_hr"):
        tensors += _conv(key, feat, feat)
    return tensors + _conv("conv_last", out_ch, feat)


def _compact_tensors(config: Config, scale: int) -> list[ExpectedTensor]:
    """Real-ESRGAN's ``SRVGGNetCompact(num_in_ch, num_out_ch, num_feat, num_conv, upscale, act_type)``.

    ``body`` alternates convolutions and activations; only PReLU activations have weights, but every
    activation takes an index.
    """
    in_ch, out_ch = _config_int(config, "num_in_ch", 3), _config_int(config, "num_out_ch", 3)
    feat, convs = _config_int(config, "num_feat", 64), _config_int(config, "num_conv")
    prelu = config.get("act_type", "prelu") == "prelu"
    tensors: list[ExpectedTensor] = []
    index = 0
    for conv_in in [in_ch] + [feat] * convs:
        tensors += _conv(f"body.{index}", feat, conv_in)
        if prelu:
            tensors.append(ExpectedTensor(f"body.{index + 1}.weight", (feat,), "PReLU", "weight"))
        index += 2
    return tensors + _conv(f"body.{index}", out_ch * scale * scale, feat)


ARCHITECTURES: Mapping[str, ArchitectureLayout] = {
    layout.name: layout
    for layout in (
        ArchitectureLayout("RRDBNet", _rrdbnet_tensors),
        ArchitectureLayout("SRVGGNetCompact", _compact_tensors),
    )
}


def _check_geometry(found: NcnnWeights) -> None:
    """Refuse convolutions whose stride, dilation or padding differ from ``Conv2d(k, 1, k // 2)``."""
    layer = found.layer
    if layer.type != "Convolution":
        return
    kernel_h, kernel_w = found.weight.shape[2:]
    pad_left = layer.int_param(4, 0)
    pad_top = layer.int_param(14, pad_left)
    geometry = {
        "stride": (layer.int_param(3, 1), layer.int_param(13, layer.int_param(3, 1))),
        "dilation": (layer.int_param(2, 1), layer.int_param(12, layer.int_param(2, 1))),
        "padding": (pad_left, layer.int_param(15, pad_left), pad_top, layer.int_param(16, pad_top)),
    }
    wanted = {"stride": (1, 1), "dilation": (1, 1), "padding": (kernel_w // 2,) * 2 + (kernel_h // 2,) * 2}
    if geometry != wanted:
        raise WeightsConversionError(f"layer {layer.name}: geometry {geometry} is not {wanted}")


def _ncnn_tensors(weights: tuple[NcnnWeights, ...]) -> Iterator[tuple[NcnnWeights, Role, np.ndarray]]:
    """Yield every array of the ncnn model in storage order, with the layer and role it came from."""
    for found in weights:
        yield found, "weight", found.weight
        if found.bias is not None:
            yield found, "bias", found.bias


def convert_ncnn_model(spec: WeightSpec, param_text: str, bin_data: bytes) -> dict[str, np.ndarray]:
    """Convert an ncnn model (``.param`` text and ``.bin`` bytes) into ``spec``'s state dict.

    Returns float32, C-contiguous numpy arrays keyed by the upstream state-dict names, in layout order.

    Raises:
        WeightsConversionError: for an unknown architecture, or if the ncnn weights do not match the
            architecture tensor for tensor (count, layer type, role, shape, convolution geometry), or
            the ``.bin`` is not consumed exactly.
    """
    layout = ARCHITECTURES.get(spec.architecture)
    if layout is None:
        raise WeightsConversionError(
            f"{spec.name}: unknown architecture {spec.architecture!r}; known: {', '.join(ARCHITECTURES)}"
        )
    weights = read_weights(parse_param(param_text), bin_data)
    for found in weights:
        _check_geometry(found)
    expected = layout.expected_tensors(spec.config, spec.scale)
    actual = list(_ncnn_tensors(weights))
    if len(actual) != len(expected):
        raise WeightsConversionError(
            f"{spec.name}: the ncnn model has {len(actual)} weight tensors, "
            f"{spec.architecture} with {dict(spec.config)} needs {len(expected)}"
        )
    state_dict: dict[str, np.ndarray] = {}
    for want, (found, role, array) in zip(expected, actual, strict=True):
        if (found.layer.type, role, array.shape) != (want.layer_type, want.role, want.shape):
            raise WeightsConversionError(
                f"{spec.name}: {want.key} needs the {want.role} of a {want.layer_type} "
                f"of shape {want.shape}, ncnn layer {found.layer.name} gives the {role} "
                f"of a {found.layer.type} of shape {array.shape}"
            )
        state_dict[want.key] = np.ascontiguousarray(array, dtype=np.float32)
    return state_dict


def safetensors_metadata(spec: WeightSpec) -> dict[str, str]:
    """The fixed ``__metadata__`` of a converted file (provenance only, so hashes stay stable)."""
    return {
        "format": "pt",
        "name": spec.name,
        "architecture": spec.architecture,
        "scale": str(spec.scale),
        "licence": spec.licence,
        "source": f"{spec.source.requirement} {spec.source.param_member} {spec.source.bin_member}",
    }


def serialize_safetensors(tensors: Mapping[str, np.ndarray], metadata: Mapping[str, str]) -> bytes:
    """Encode float32 tensors as safetensors bytes that depend only on the tensors and metadata.

    Written here rather than by the ``safetensors`` library so the bytes (and the sha256 committed in
    the manifest) cannot change with that library's version: keys sorted, compact JSON header with
    sorted fields padded with spaces to 8 bytes, little-endian C-contiguous float32 data.
    """
    header: dict[str, object] = {"__metadata__": dict(metadata)}
    chunks: list[bytes] = []
    offset = 0
    for key in sorted(tensors):
        data = np.ascontiguousarray(tensors[key], dtype="<f4").tobytes()
        header[key] = {
            "dtype": "F32",
            "shape": list(tensors[key].shape),
            "data_offsets": [offset, offset + len(data)],
        }
        chunks.append(data)
        offset += len(data)
    header_bytes = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
    header_bytes += b" " * ((-len(header_bytes)) % 8)
    return len(header_bytes).to_bytes(8, "little") + header_bytes + b"".join(chunks)


def convert_to_safetensors(spec: WeightSpec, param_text: str, bin_data: bytes) -> bytes:
    """Convert an ncnn model to the exact safetensors bytes whose sha256 the manifest records.

    Raises:
        WeightsConversionError: see :func:`convert_ncnn_model`.
    """
    return serialize_safetensors(convert_ncnn_model(spec, param_text, bin_data), safetensors_metadata(spec))

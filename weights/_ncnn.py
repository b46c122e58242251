"""Read ncnn models: the ``.param`` text (graph) and the ``.bin`` blob (weights, in layer order).

Format facts this module relies on (ncnn's ``ParamDict`` and ``ModelBinFromDataReader``):

* ``.param`` starts with the magic ``7767517``, then ``layer_count blob_count``, then one line per
  layer: ``Type Name n_in n_out in... out... k=v ...``. Keys ``<= -23300`` are arrays
  (``-23310=1,2.0e-01`` is array key 10 with one element). Missing keys take ncnn's defaults.
* ``.bin`` concatenates the weights of the layers in ``.param`` order, with no index.
  A Convolution stores its kernel as a "tagged" blob: a 4-byte tag (``0x01306B47``: fp16 values,
  ``0``: fp32 values), then ``weight_data_size`` (key 6) values, padded to 4 bytes. When key 5
  (``bias_term``) is 1, ``num_output`` (key 0) fp32 biases follow with no tag. A PReLU stores
  ``num_slope`` (key 0) fp32 slopes with no tag. The other layers used by these networks carry none.

Only what the manifest's networks need is supported; anything else is refused with a clear error
rather than silently misread.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from weights._errors import WeightsConversionError

PARAM_MAGIC = 7767517
TAG_FP16 = 0x01306B47
TAG_FP32 = 0

ParamValue = int | float | tuple[int | float, ...]

# The weightless layer types these networks use (none of them reads from the .bin in ncnn).
WEIGHTLESS_LAYERS = frozenset({"Input", "Split", "Concat", "Eltwise", "BinaryOp", "Interp", "PixelShuffle"})


@dataclass(frozen=True)
class NcnnLayer:
    """One layer line of a ``.param`` file."""

    type: str
    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    params: Mapping[int, ParamValue] = field(hash=False)

    def int_param(self, key: int, default: int) -> int:
        """Return integer parameter ``key`` (ncnn's default when absent).

        Raises:
            WeightsConversionError: if the value present is not an integer.
        """
        value = self.params.get(key, default)
        if not isinstance(value, int):
            raise WeightsConversionError(f"layer {self.name}: parameter {key} must be an integer: {value!r}")
        return value


@dataclass(frozen=True)
class NcnnWeights:
    """The weights one layer reads from the ``.bin``, as float32 arrays in PyTorch layout.

    Convolution: ``weight`` of shape (out, in, kh, kw) and optionally ``bias`` (out,);
    PReLU: ``weight`` of shape (num_slope,).
    """

    layer: NcnnLayer
    weight: np.ndarray
    bias: np.ndarray | None


def _parse_value(text: str) -> int | float:
    """Parse one scalar of a ``.param`` line (ncnn writes floats with a '.' or an exponent)."""
    try:
        return int(text)
    except ValueError:
        return float(text)


def parse_param(text: str) -> tuple[NcnnLayer, ...]:
    """Parse the text of an ncnn ``.param`` file into its layers, in file order.

    Raises:
        WeightsConversionError: if the magic number, the counts or a layer line are malformed.
    """
    lines = [line.split() for line in text.splitlines() if line.strip()]
    if not lines or lines[0] != [str(PARAM_MAGIC)]:
        raise WeightsConversionError(f"not an ncnn .param file (the first line must be {PARAM_MAGIC})")
    try:
        layer_count, _blob_count = (int(value) for value in lines[1])
    except (IndexError, ValueError) as error:
        raise WeightsConversionError("ncnn .param: line 2 must be 'layer_count blob_count'") from error
    layers: list[NcnnLayer] = []
    for number, tokens in enumerate(lines[2:], start=3):
        try:
            layer_type, name = tokens[0], tokens[1]
            n_in, n_out = int(tokens[2]), int(tokens[3])
            inputs = tuple(tokens[4 : 4 + n_in])
            outputs = tuple(tokens[4 + n_in : 4 + n_in + n_out])
            params: dict[int, ParamValue] = {}
            for pair in tokens[4 + n_in + n_out :]:
                key_text, value_text = pair.split("=", 1)
                key = int(key_text)
                if key <= -23300:
                    count_text, *items = value_text.split(",")
                    if int(count_text) != len(items):
                        raise ValueError(f"array {key} announces {count_text} items, has {len(items)}")
                    params[-key - 23300] = tuple(_parse_value(item) for item in items)
                else:
                    params[key] = _parse_value(value_text)
        except (IndexError, ValueError) as error:
            raise WeightsConversionError(f"ncnn .param line {number} is malformed: {error}") from error
        if len(inputs) != n_in or len(outputs) != n_out:
            raise WeightsConversionError(f"ncnn .param line {number}: fewer blob names than announced")
        layers.append(NcnnLayer(layer_type, name, inputs, outputs, params))
    if len(layers) != layer_count:
        raise WeightsConversionError(f"ncnn .param announces {layer_count} layers but has {len(layers)}")
    return tuple(layers)


class _BinReader:
    """A cursor over the ``.bin`` bytes that reads ncnn's two blob kinds and knows what is left."""

    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)
        self.offset = 0

    @property
    def remaining(self) -> int:
        """Bytes not yet consumed."""
        return len(self._data) - self.offset

    def _take(self, size: int, what: str) -> memoryview:
        if size > self.remaining:
            raise WeightsConversionError(
                f"ncnn .bin ends early: {what} needs {size} bytes at {self.offset}, {self.remaining} left"
            )
        chunk = self._data[self.offset : self.offset + size]
        self.offset += size
        return chunk

    def read_raw_fp32(self, count: int, what: str) -> np.ndarray:
        """Read ``count`` untagged little-endian float32 values."""
        return np.frombuffer(self._take(4 * count, what), dtype="<f4").astype(np.float32)

    def read_tagged(self, count: int, what: str) -> np.ndarray:
        """Read a tagged blob of ``count`` values (fp16 or fp32) and return it as float32.

        Raises:
            WeightsConversionError: for quantized blobs (int8 or table-coded), which are not supported.
        """
        (tag,) = struct.unpack("<I", self._take(4, f"{what} tag"))
        if tag == TAG_FP16:
            size = 2 * count
            values = np.frombuffer(self._take(size, what), dtype="<f2")
            self._take((-size) % 4, f"{what} padding")
            return values.astype(np.float32)
        if tag == TAG_FP32:
            return self.read_raw_fp32(count, what)
        raise WeightsConversionError(f"{what}: unsupported ncnn weight encoding (tag 0x{tag:08X})")


def _read_convolution(layer: NcnnLayer, reader: _BinReader) -> NcnnWeights:
    """Read a Convolution's kernel (tagged) and bias (raw fp32, when ``bias_term`` is 1)."""
    for key, meaning in ((8, "int8 quantization"), (19, "dynamic weights")):
        if layer.int_param(key, 0) != 0:
            raise WeightsConversionError(f"layer {layer.name}: {meaning} (key {key}) is not supported")
    num_output = layer.int_param(0, 0)
    kernel_w = layer.int_param(1, 0)
    kernel_h = layer.int_param(11, kernel_w)
    weight_size = layer.int_param(6, 0)
    per_input = num_output * kernel_h * kernel_w
    if per_input <= 0 or weight_size <= 0 or weight_size % per_input:
        raise WeightsConversionError(
            f"layer {layer.name}: weight_data_size {weight_size} does not fit "
            f"{num_output} outputs x {kernel_h}x{kernel_w} kernels"
        )
    kernel = reader.read_tagged(weight_size, f"{layer.name} weight")
    weight = kernel.reshape(num_output, weight_size // per_input, kernel_h, kernel_w)
    bias = reader.read_raw_fp32(num_output, f"{layer.name} bias") if layer.int_param(5, 0) == 1 else None
    return NcnnWeights(layer, weight, bias)


def _read_prelu(layer: NcnnLayer, reader: _BinReader) -> NcnnWeights:
    """Read a PReLU's slopes (raw fp32, ``num_slope`` of them)."""
    num_slope = layer.int_param(0, 0)
    if num_slope <= 0:
        raise WeightsConversionError(f"layer {layer.name}: PReLU with num_slope {num_slope}")
    return NcnnWeights(layer, reader.read_raw_fp32(num_slope, f"{layer.name} slope"), None)


WEIGHT_READERS: Mapping[str, Callable[[NcnnLayer, _BinReader], NcnnWeights]] = {
    "Convolution": _read_convolution,
    "PReLU": _read_prelu,
}


def read_weights(layers: tuple[NcnnLayer, ...], data: bytes) -> tuple[NcnnWeights, ...]:
    """Walk ``data`` (the ``.bin`` bytes) in layer order and return each weighted layer's arrays.

    Raises:
        WeightsConversionError: for a layer type this module does not know, a truncated file, or bytes
            left over at the end (which would mean the layers were misread).
    """
    reader = _BinReader(data)
    found: list[NcnnWeights] = []
    for layer in layers:
        read = WEIGHT_READERS.get(layer.type)
        if read is not None:
            found.append(read(layer, reader))
        elif layer.type not in WEIGHTLESS_LAYERS:
            raise WeightsConversionError(f"layer {layer.name}: ncnn layer type {layer.type} is not supported")
    if reader.remaining:
        raise WeightsConversionError(
            f"ncnn .bin has {reader.remaining} bytes left over after the last layer (offset {reader.offset})"
        )
    return tuple(found)

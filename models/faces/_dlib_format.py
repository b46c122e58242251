"""A reader of dlib's serialisation format, for the CC0 model files dlib's own code writes.

dlib serialises an object as the concatenation of its fields (``dlib/serialize.h``):

* integers (signed or not): one control byte (bits 0-3: number of bytes that follow; bit 7: the
  value is negative), then the magnitude, little-endian;
* ``float``/``double``: two integers, a mantissa and an exponent (``value = mantissa * 2**exponent``;
  exponents 32000-32002 mean +inf, -inf and NaN);
* ``bool``: one ASCII byte, ``'1'`` or ``'0'``; ``std::string``: its length, then its bytes;
  ``std::vector``: its length, then its items; a column ``matrix``: rows and columns (negative in the
  newer format), then its items; a ``tensor`` (``dlib/cuda/tensor.h``): version 2, its four
  dimensions (samples, channels, rows, columns), then raw little-endian float32 values; an
  ``alias_tensor``: version 1 and its four dimensions (no values).

A network (``dlib/dnn/core.h``) is stored from the loss down: each ``add_layer`` writes its version,
then the whole network below it, then its own layer's details (a name string such as ``"con_6"``
followed by that layer's fields) and bookkeeping (three booleans and three tensors); tag and skip
layers write only their version and the network below. So the file holds every enclosing version
first, then the input layer, then the layers' details from the bottom up. :func:`read_network` walks
that order given the network's shape (the list of its nodes from the top), which is fixed by the
C++ type the file was written from, and returns the layers bottom-up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

# Exponent codes of dlib's float_details for non-finite values.
_IS_INF, _IS_NINF, _IS_NAN = 32000, 32001, 32002


class DlibFormatError(ValueError):
    """Raised by the readers in this module when a file does not hold what dlib would have written
    for the expected object (an unknown layer name, a wrong version, a truncated file)."""


class DlibReader:
    """A cursor over the bytes of a dlib-serialised file."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    @property
    def position(self) -> int:
        return self._pos

    @property
    def at_end(self) -> bool:
        return self._pos >= len(self._data)

    def _take(self, count: int) -> bytes:
        end = self._pos + count
        if end > len(self._data):
            raise DlibFormatError(f"file ends at byte {len(self._data)}, {count} more bytes wanted at {self._pos}")
        chunk = self._data[self._pos : end]
        self._pos = end
        return chunk

    def integer(self) -> int:
        control = self._take(1)[0]
        size = control & 0x0F
        if size == 0 or size > 8:
            raise DlibFormatError(f"bad integer control byte {control:#x} at byte {self._pos - 1}")
        value = int.from_bytes(self._take(size), "little")
        return -value if control & 0x80 else value

    def real(self) -> float:
        start = self._pos
        if self._data[start] & 0x70:
            raise DlibFormatError(f"old ASCII float format at byte {start} is not supported")
        mantissa, exponent = self.integer(), self.integer()
        if exponent == _IS_INF:
            return float("inf")
        if exponent == _IS_NINF:
            return float("-inf")
        if exponent == _IS_NAN:
            return float("nan")
        return float(np.ldexp(float(mantissa), exponent))

    def boolean(self) -> bool:
        byte = self._take(1)
        if byte not in (b"0", b"1"):
            raise DlibFormatError(f"bad bool {byte!r} at byte {self._pos - 1}")
        return byte == b"1"

    def string(self) -> str:
        return self._take(self.integer()).decode("latin-1")

    def version(self, expected: tuple[int, ...], what: str) -> int:
        value = self.integer()
        if value not in expected:
            raise DlibFormatError(f"{what}: version {value} at byte {self._pos}, expected one of {expected}")
        return value

    def name(self, expected: tuple[str, ...], what: str) -> str:
        value = self.string()
        if value not in expected:
            raise DlibFormatError(f"{what}: found {value!r}, expected one of {expected}")
        return value

    def tensor(self) -> np.ndarray:
        """A ``resizable_tensor``: float32 array of shape (samples, channels, rows, columns)."""
        self.version((2,), "tensor")
        shape = tuple(self.integer() for _ in range(4))
        count = int(np.prod(shape))
        values = np.frombuffer(self._take(4 * count), dtype="<f4").astype(np.float32)
        return values.reshape(shape)

    def alias_tensor(self) -> tuple[int, int, int, int]:
        self.version((1,), "alias_tensor")
        return (self.integer(), self.integer(), self.integer(), self.integer())

    def integers_to_end(self) -> np.ndarray:
        """Every remaining value, read as dlib integers (int64), for files made only of integers and
        reals (a real is two integers: see :func:`reals`). One tight pass: a shape predictor holds
        about three million of them."""
        data, pos, end = self._data, self._pos, len(self._data)
        values: list[int] = []
        append, from_bytes = values.append, int.from_bytes
        while pos < end:
            control = data[pos]
            size = control & 0x0F
            value = from_bytes(data[pos + 1 : pos + 1 + size], "little")
            append(-value if control & 0x80 else value)
            pos += 1 + size
        if pos != end:
            raise DlibFormatError("the file ends inside an integer")
        self._pos = pos
        return np.array(values, dtype=np.int64)

    def column(self) -> np.ndarray:
        """A ``matrix<float,0,1>`` (or any matrix of reals) as a float32 array of its values."""
        rows, cols = abs(self.integer()), abs(self.integer())
        return np.array([self.real() for _ in range(rows * cols)], dtype=np.float32)


# ---------------------------------------------------------------------------------------------------
# Networks


@dataclass
class Layer:
    """One layer's details as read: ``kind`` (``con``, ``fc``, ``affine``, ``relu``, ``max_pool``,
    ``avg_pool``, ``add_prev``, ``tag``, ``skip``) and its fields (weights as numpy arrays)."""

    kind: str
    fields: dict[str, Any] = field(default_factory=dict)


NodeKind = Literal["layer", "tag", "skip"]


@dataclass(frozen=True)
class Node:
    """One node of a network's C++ type, top-down: an ``add_layer`` (``layer``), or a tag/skip layer.
    ``index`` is the tag's number (``tag1``, ``skip1``, and for ``add_prev1`` layers the tag they add),
    which the type holds and the file does not."""

    kind: NodeKind
    index: int = 0


@dataclass
class Network:
    """A network read from a file: the loss's fields, the input layer's fields and the layers from the
    bottom (next to the input) up."""

    loss: dict[str, Any]
    input: dict[str, Any]
    layers: list[Layer]


def _read_con(reader: DlibReader, version: str) -> dict[str, Any]:
    params = reader.tensor()
    num_filters = reader.integer()
    rows, cols = reader.integer(), reader.integer()
    stride_y, stride_x = reader.integer(), reader.integer()
    pad_y, pad_x = reader.integer(), reader.integer()
    filters = reader.alias_tensor()
    reader.alias_tensor()  # the biases' shape: (1, num_filters, 1, 1)
    for _ in range(4):  # learning-rate and weight-decay multipliers: training only
        reader.real()
    use_bias = reader.boolean() if version in ("con_5", "con_6") else True
    if version == "con_6":
        reader.boolean()  # use_relu: a fused relu only some builds use; the next layer is a relu anyway
    flat = params.reshape(-1)
    count = int(np.prod(filters))
    weight = flat[:count].reshape(filters)
    bias = flat[count : count + num_filters] if use_bias else np.zeros(num_filters, np.float32)
    if weight.shape[0] != num_filters or weight.shape[2:] != (rows, cols):
        raise DlibFormatError(f"con_: filters {weight.shape} disagree with {num_filters}×{rows}×{cols}")
    return {"weight": weight, "bias": bias, "stride": (stride_y, stride_x), "padding": (pad_y, pad_x)}


def _read_fc(reader: DlibReader, version: str) -> dict[str, Any]:
    num_outputs, num_inputs = reader.integer(), reader.integer()
    params = reader.tensor().reshape(-1)
    reader.alias_tensor()
    reader.alias_tensor()
    bias_mode = reader.integer()
    for _ in range(4):
        reader.real()
    use_bias = reader.boolean() if version == "fc_3" else True
    # dlib multiplies the flattened input (a row) by a num_inputs × num_outputs matrix.
    weight = params[: num_inputs * num_outputs].reshape(num_inputs, num_outputs).T.copy()
    has_bias = bias_mode == 0 and use_bias
    bias = params[num_inputs * num_outputs :][:num_outputs] if has_bias else np.zeros(num_outputs, np.float32)
    return {"weight": weight, "bias": bias}


def _read_affine(reader: DlibReader, version: str) -> dict[str, Any]:
    if version in ("bn_con2", "bn_fc2"):
        # A batch-norm layer stored by training: dlib converts it to an affine layer on load, with
        # gamma / sqrt(running_var + eps) and beta - mean * that.
        params = reader.tensor().reshape(-1)
        reader.alias_tensor()
        reader.alias_tensor()
        reader.tensor()  # means of the last batch
        reader.tensor()  # inverse deviations of the last batch
        running_mean = reader.tensor().reshape(-1)
        running_var = reader.tensor().reshape(-1)
        reader.integer()  # num_updates
        reader.integer()  # running_stats_window_size
        for _ in range(4):
            reader.real()
        eps = reader.real()
        channels = running_mean.size
        gamma = params[:channels] / np.sqrt(running_var + np.float32(eps))
        beta = params[channels : 2 * channels] - gamma * running_mean
        return {"gamma": gamma.astype(np.float32), "beta": beta.astype(np.float32), "conv_mode": version == "bn_con2"}
    params = reader.tensor().reshape(-1)
    gamma_shape = reader.alias_tensor()
    reader.alias_tensor()
    mode = reader.integer()
    if version == "affine_2":
        reader.boolean()  # disabled
    count = int(np.prod(gamma_shape))
    return {"gamma": params[:count], "beta": params[count : 2 * count], "conv_mode": mode == 0}


def _read_pool(reader: DlibReader, version: str) -> dict[str, Any]:
    rows, cols = reader.integer(), reader.integer()
    stride_y, stride_x = reader.integer(), reader.integer()
    pad_y, pad_x = reader.integer(), reader.integer()
    return {"size": (rows, cols), "stride": (stride_y, stride_x), "padding": (pad_y, pad_x)}


def _read_relu(reader: DlibReader, version: str) -> dict[str, Any]:
    return {"disabled": reader.boolean()} if version == "relu_2" else {"disabled": False}


def _read_nothing(reader: DlibReader, version: str) -> dict[str, Any]:
    return {}


_LAYER_READERS = {
    "con_4": ("con", _read_con),
    "con_5": ("con", _read_con),
    "con_6": ("con", _read_con),
    "fc_2": ("fc", _read_fc),
    "fc_3": ("fc", _read_fc),
    "affine_": ("affine", _read_affine),
    "affine_2": ("affine", _read_affine),
    "bn_con2": ("affine", _read_affine),
    "bn_fc2": ("affine", _read_affine),
    "max_pool_2": ("max_pool", _read_pool),
    "avg_pool_2": ("avg_pool", _read_pool),
    "relu_": ("relu", _read_relu),
    "relu_2": ("relu", _read_relu),
    "add_prev_": ("add_prev", _read_nothing),
}


def _read_layer_details(reader: DlibReader) -> Layer:
    name = reader.string()
    if name not in _LAYER_READERS:
        raise DlibFormatError(f"unsupported dlib layer {name!r} at byte {reader.position}")
    kind, read = _LAYER_READERS[name]
    return Layer(kind, read(reader, name))


def _read_bookkeeping(reader: DlibReader, version: int, bottom: bool) -> None:
    """What an ``add_layer`` keeps for training after its details: three flags and cached tensors."""
    for _ in range(3):
        reader.boolean()
    reader.tensor()  # x_grad
    reader.tensor()  # cached_output
    if bottom:
        reader.tensor()  # grad_final
        if version >= 3:
            reader.integer()  # sample expansion factor
    elif version == 2:
        reader.tensor()  # params_grad


def _read_input(reader: DlibReader) -> dict[str, Any]:
    name = reader.name(("input_rgb_image_sized", "input_rgb_image_pyramid", "input_rgb_image_pyramid2"), "input layer")
    means = (reader.real(), reader.real(), reader.real())
    fields: dict[str, Any] = {"name": name, "mean": means}
    if name == "input_rgb_image_sized":
        fields["size"] = (reader.integer(), reader.integer())
    elif name == "input_rgb_image_pyramid2":
        fields["padding"], fields["outer_padding"] = reader.integer(), reader.integer()
    else:
        fields["padding"], fields["outer_padding"] = 10, 11
    return fields


def _read_loss(reader: DlibReader) -> dict[str, Any]:
    name = reader.name(("loss_metric_", "loss_metric_2", "loss_mmod_"), "loss layer")
    if name == "loss_metric_":
        return {"name": name}
    if name == "loss_metric_2":
        return {"name": name, "margin": reader.real(), "distance_threshold": reader.real()}
    version = reader.version((1, 2, 3, 4), "mmod_options")
    windows: list[tuple[int, int]] = []
    if version == 1:
        windows.append((reader.integer(), reader.integer()))
    else:
        for _ in range(reader.integer()):
            window_version = reader.version((1, 2), "detector window")
            width, height = reader.integer(), reader.integer()
            if window_version == 2:
                reader.string()  # label
            windows.append((width, height))
    options: dict[str, Any] = {"name": name, "windows": windows}
    options["loss_per_false_alarm"] = reader.real()
    options["loss_per_missed_target"] = reader.real()
    options["truth_match_iou_threshold"] = reader.real()
    options["nms_iou"], options["nms_covered"] = reader.real(), reader.real()
    reader.real()  # overlaps_ignore: training only
    reader.real()
    if version >= 3:
        reader.integer()  # assume_image_pyramid
    options["bounding_box_regression"] = False
    if version >= 4:
        options["bounding_box_regression"] = reader.boolean()
        reader.real()
    return options


def read_network(data: bytes, nodes: list[Node]) -> Network:
    """Read a network whose C++ type is ``loss<nodes[0]<nodes[1]<...<input>>>>`` (``nodes`` top-down;
    the last one must be an ``add_layer`` sitting on the input layer).

    Raises:
        DlibFormatError: the bytes do not follow that shape, or hold a layer this reader does not know.
    """
    if not nodes or nodes[-1].kind != "layer":
        raise DlibFormatError("the bottom node must be a layer on the input")
    reader = DlibReader(data)
    reader.version((1,), "add_loss_layer")
    loss = _read_loss(reader)
    versions: list[int] = []
    for node in nodes[:-1]:
        if node.kind == "layer":
            versions.append(reader.version((1, 2), "add_layer"))
        else:
            reader.version((1,), f"{node.kind} layer")
            versions.append(1)
    bottom_version = reader.version((2, 3), "add_layer on the input")
    input_fields = _read_input(reader)
    layers = [_read_layer_details(reader)]
    _read_bookkeeping(reader, bottom_version, bottom=True)
    for node, version in zip(reversed(nodes[:-1]), reversed(versions), strict=True):
        if node.kind == "layer":
            layer = _read_layer_details(reader)
            if layer.kind == "add_prev":
                layer.fields["index"] = node.index
            layers.append(layer)
            _read_bookkeeping(reader, version, bottom=False)
        else:
            layers.append(Layer(node.kind, {"index": node.index}))
    if not reader.at_end:
        raise DlibFormatError(f"{len(data) - reader.position} bytes left after the network")
    return Network(loss=loss, input=input_fields, layers=layers)


def reals(pairs: np.ndarray) -> np.ndarray:
    """float32 values of dlib reals given as integer (mantissa, exponent) pairs, shape (..., 2)."""
    mantissa, exponent = pairs[..., 0].astype(np.float64), pairs[..., 1]
    finite = exponent < _IS_INF
    out = np.ldexp(mantissa, np.where(finite, exponent, 0).astype(np.int32))
    out = np.where(exponent == _IS_INF, np.inf, out)
    out = np.where(exponent == _IS_NINF, -np.inf, out)
    out = np.where(exponent == _IS_NAN, np.nan, out)
    return out.astype(np.float32)

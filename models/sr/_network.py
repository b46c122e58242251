"""Super-resolution networks: the registry, loading from a state dict, and tiled inference."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import torch
from spandrel import ImageModelDescriptor, ModelLoader

from models.sr._precision import PrecisionChoice, PrecisionError
from models.sr._weightless import BicubicUnsharp

logger = logging.getLogger(__name__)

ContentKind = Literal["photo", "illustration"]

# The weightless stand-in's registry name, which is also what reports show as "network".
TEST_NETWORK = "none"


@dataclass(frozen=True)
class SRNetwork:
    """A registry entry: a super-resolution network the service can run.

    ``weights_name`` is the name of its entry in the weights manifest; a weightless network (the test
    mode's stand-in) has none and a ``build`` function that makes its module instead.
    """

    name: str
    weights_name: str
    scale: int
    content: ContentKind
    description: str
    build: Callable[[], torch.nn.Module] | None = None

    @property
    def weightless(self) -> bool:
        return self.build is not None


SR_NETWORKS: tuple[SRNetwork, ...] = (
    SRNetwork(
        name="x4plus",
        weights_name="realesrgan-x4plus",
        scale=4,
        content="photo",
        description="Real-ESRGAN x4plus (RRDBNet, 23 blocks): photographs",
    ),
    SRNetwork(
        name="x4plus-anime",
        weights_name="realesrgan-x4plus-anime",
        scale=4,
        content="illustration",
        description="Real-ESRGAN x4plus anime (RRDBNet, 6 blocks): illustrations, anime, graphics",
    ),
    SRNetwork(
        name=TEST_NETWORK,
        weights_name="",
        scale=4,
        content="photo",
        description="Test mode, no network: bicubic x4 and a mild unsharp mask (cheap, deterministic)",
        build=BicubicUnsharp,
    ),
)


class UnknownNetworkError(KeyError):
    """Raised by ``get_network`` for a name that is not in ``SR_NETWORKS``."""


def get_network(name: str) -> SRNetwork:
    """The registry entry called ``name``; raises ``UnknownNetworkError`` for any other name."""
    for network in SR_NETWORKS:
        if network.name == name:
            return network
    raise UnknownNetworkError(f"unknown network {name!r}; known: {[n.name for n in SR_NETWORKS]}")


def _check_registry() -> None:
    names = [n.name for n in SR_NETWORKS]
    if len(names) != len(set(names)):
        raise ValueError(f"duplicate network names in SR_NETWORKS: {names}")
    for network in SR_NETWORKS:
        if network.weightless == bool(network.weights_name):
            raise ValueError(f"{network.name}: a network has either weights or a build function, not both or neither")


_check_registry()


@dataclass(frozen=True)
class CompiledNetwork:
    """A compiled copy of a network's fast module and the exact input shapes it was warmed up on:
    ``batches`` maps a tile shape (h, w) to the batch sizes compiled for it, ascending. Only those
    shapes may reach ``module`` (anything else would compile on a request's path)."""

    module: torch.nn.Module
    batches: dict[tuple[int, int], tuple[int, ...]]

    def batch_for(self, count: int, height: int, width: int) -> int | None:
        """The smallest warmed batch size holding ``count`` tiles of ``height`` x ``width``, or None."""
        for size in self.batches.get((height, width), ()):
            if size >= count:
                return size
        return None


@dataclass
class SRModel:
    """A loaded network on one device. Holds weights only; every call's state lives in the call.

    ``fast`` runs in ``fast_dtype`` (the chosen precision: bfloat16 or float16 copies of the weights,
    or float32); ``exact`` is the float32 copy used when the fast path produces non-finite values (the
    NaN guard). In float32 both are the same module. ``precision`` names what ``fast`` runs in (fp32,
    bf16, fp16 or int8: int8 convolutions between float32 activations) and ``precision_reason`` why.
    ``compiled``, when set, is the fast module compiled for a few fixed tile shapes.
    """

    network: SRNetwork
    device: torch.device
    fast_dtype: torch.dtype
    fast: torch.nn.Module
    exact: torch.nn.Module
    channels_last: bool
    size_multiple: int = field(default=1)
    compiled: CompiledNetwork | None = None
    precision: str = field(default="")
    precision_reason: str = field(default="")

    @property
    def scale(self) -> int:
        return self.network.scale

    @property
    def dtype_name(self) -> str:
        """What the fast path computes in, as reports show it: float32, bfloat16, float16 or int8."""
        if self.precision == "int8":
            return "int8"
        return str(self.fast_dtype).removeprefix("torch.")


def _legacy_choice(device: torch.device, half: bool, supports_half: bool) -> PrecisionChoice:
    if half and device.type == "cuda" and supports_half:
        return PrecisionChoice("fp16", torch.float16, "fp16", "half=True on CUDA")
    return PrecisionChoice("fp32", torch.float32, "fp32", "float32")


def load_sr_model(
    network: SRNetwork,
    state_dict: dict[str, torch.Tensor],
    device: torch.device,
    *,
    half: bool = True,
    precision: PrecisionChoice | None = None,
    channels_last: bool | None = None,
) -> SRModel:
    """Build ``network`` from ``state_dict`` with spandrel and move it to ``device``.

    ``precision`` (from :func:`choose_precision`) sets what the fast copy runs in; without it, as
    before: float16 on CUDA with ``half``, float32 elsewhere. ``channels_last`` (default: on, CPU and
    CUDA alike: oneDNN's and cuDNN's fast layout) is the fast copy's memory layout. An int8 precision
    is built by :func:`models.sr.quantize_int8` from this model's float32 copy, not here. Raises
    ``ValueError`` when the state dict is not the expected architecture or scale, and
    ``PrecisionError`` for int8 here."""
    descriptor = ModelLoader().load_from_state_dict(state_dict)
    if not isinstance(descriptor, ImageModelDescriptor):
        raise ValueError(f"{network.weights_name} is not an image-to-image model")
    if descriptor.scale != network.scale or descriptor.input_channels != 3:
        raise ValueError(
            f"{network.weights_name}: expected a 3-channel x{network.scale} model, got "
            f"{descriptor.input_channels}-channel x{descriptor.scale} ({descriptor.architecture.name})"
        )
    choice = precision or _legacy_choice(device, half, descriptor.supports_half)
    if choice.name == "int8":
        raise PrecisionError("int8 models are built by quantize_int8 from a float32 model")
    requirements = descriptor.size_requirements
    multiple = max(1, requirements.multiple_of) if requirements is not None else 1
    exact = descriptor.model.eval().to(device=device, dtype=torch.float32)
    layout = True if channels_last is None else channels_last
    if choice.dtype != torch.float32:
        fast = ModelLoader().load_from_state_dict(state_dict).model.eval()
        fast = fast.to(device=device, dtype=choice.dtype)
    else:
        fast = exact
    if layout:
        fast = fast.to(memory_format=torch.channels_last)
    for module in {id(fast): fast, id(exact): exact}.values():
        for parameter in module.parameters():
            parameter.requires_grad_(False)
    return SRModel(
        network=network,
        device=device,
        fast_dtype=choice.dtype,
        fast=fast,
        exact=exact,
        channels_last=layout,
        size_multiple=multiple,
        precision=choice.name,
        precision_reason=choice.reason,
    )


def network_supports(state_dict: dict[str, torch.Tensor]) -> tuple[bool, bool]:
    """Whether the network in ``state_dict`` runs correctly in (float16, bfloat16), as spandrel knows."""
    descriptor = ModelLoader().load_from_state_dict(state_dict)
    return bool(descriptor.supports_half), bool(descriptor.supports_bfloat16)


def build_weightless_model(network: SRNetwork, device: torch.device) -> SRModel:
    """Build a weightless network (``network.build``) on ``device``, float32, as an ``SRModel`` that
    every runner accepts. Raises ``ValueError`` for a network that needs weights."""
    if network.build is None:
        raise ValueError(f"{network.name} needs weights: load it with load_sr_model")
    module = network.build().eval().to(device=device, dtype=torch.float32)
    return SRModel(
        network=network,
        device=device,
        fast_dtype=torch.float32,
        fast=module,
        exact=module,
        channels_last=False,
        precision="fp32",
        precision_reason="the weightless stand-in runs in float32",
    )

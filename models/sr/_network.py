"""Super-resolution networks: the registry, loading from a state dict, and tiled inference."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from spandrel import ImageModelDescriptor, ModelLoader

from models.errors import ModelOutOfMemoryError
from models.sr._tiling import feather_mask, plan_tiles

logger = logging.getLogger(__name__)

ContentKind = Literal["photo", "illustration"]


@dataclass(frozen=True)
class SRNetwork:
    """A registry entry: a super-resolution network the service can run.

    ``weights_name`` is the name of its entry in the weights manifest.
    """

    name: str
    weights_name: str
    scale: int
    content: ContentKind
    description: str


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


_check_registry()


@dataclass
class SRModel:
    """A loaded network on one device. Holds weights only; every call's state lives in the call.

    ``fast`` runs in ``fast_dtype`` (float16 on CUDA, float32 on CPU); ``exact`` is the float32 copy
    used when the fast path produces non-finite values (the NaN guard). On CPU both are the same
    module.
    """

    network: SRNetwork
    device: torch.device
    fast_dtype: torch.dtype
    fast: torch.nn.Module
    exact: torch.nn.Module
    channels_last: bool
    size_multiple: int = field(default=1)

    @property
    def scale(self) -> int:
        return self.network.scale


def load_sr_model(
    network: SRNetwork,
    state_dict: dict[str, torch.Tensor],
    device: torch.device,
    *,
    half: bool = True,
) -> SRModel:
    """Build ``network`` from ``state_dict`` with spandrel and move it to ``device``.

    On CUDA with ``half`` the fast copy runs in float16 (channels_last); on CPU everything is
    float32. Raises ``ValueError`` when the state dict is not the expected architecture or scale.
    """
    descriptor = ModelLoader().load_from_state_dict(state_dict)
    if not isinstance(descriptor, ImageModelDescriptor):
        raise ValueError(f"{network.weights_name} is not an image-to-image model")
    if descriptor.scale != network.scale or descriptor.input_channels != 3:
        raise ValueError(
            f"{network.weights_name}: expected a 3-channel x{network.scale} model, got "
            f"{descriptor.input_channels}-channel x{descriptor.scale} ({descriptor.architecture.name})"
        )
    requirements = descriptor.size_requirements
    multiple = max(1, requirements.multiple_of) if requirements is not None else 1
    exact = descriptor.model.eval().to(device=device, dtype=torch.float32)
    use_half = half and device.type == "cuda" and descriptor.supports_half
    channels_last = device.type == "cuda"
    if use_half:
        fast = ModelLoader().load_from_state_dict(state_dict).model.eval()
        fast = fast.to(device=device, dtype=torch.float16)
    else:
        fast = exact
    if channels_last:
        fast = fast.to(memory_format=torch.channels_last)
    for module in {id(fast): fast, id(exact): exact}.values():
        for parameter in module.parameters():
            parameter.requires_grad_(False)
    return SRModel(
        network=network,
        device=device,
        fast_dtype=torch.float16 if use_half else torch.float32,
        fast=fast,
        exact=exact,
        channels_last=channels_last,
        size_multiple=multiple,
    )


@dataclass(frozen=True)
class UpscaleReport:
    """What one ``upscale`` call did: the tile size that succeeded, counts, retries, timings."""

    tile: int
    overlap: int
    tiles: int
    batches: int
    oom_retries: int
    nan_fallbacks: int
    dtype: str
    seconds: float


# Peak bytes per input pixel of one x4 RRDBNet pass, measured on an H100 (DESIGN.md: a 1024² fp16
# input peaks near 20 GiB). float32 doubles it.
_BYTES_PER_INPUT_PIXEL_FP16 = 20 * 1024**3 / (1024 * 1024)


def choose_tile_size(model: SRModel, *, max_tile: int, cpu_tile: int, memory_fraction: float = 0.6) -> int:
    """Largest tile side (input pixels, multiple of 32) whose pass fits in the free GPU memory.

    On CPU memory is not the constraint: ``cpu_tile`` is returned.
    """
    if model.device.type != "cuda":
        return cpu_tile
    free, _total = torch.cuda.mem_get_info(model.device)
    per_pixel = _BYTES_PER_INPUT_PIXEL_FP16 * (2 if model.fast_dtype == torch.float32 else 1)
    side = int((free * memory_fraction / per_pixel) ** 0.5)
    return max(64, min(max_tile, side // 32 * 32))


def _run_network(module: torch.nn.Module, batch: torch.Tensor, dtype: torch.dtype, channels_last: bool) -> torch.Tensor:
    x = batch.to(dtype=dtype)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return module(x).float().clamp_(0.0, 1.0)


def _pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    if multiple <= 1:
        return x
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return x
    return F.pad(x, (0, pw, 0, ph), mode="reflect")


def _upscale_with_tile(
    model: SRModel, image: torch.Tensor, tile: int, overlap: int, batch_size: int
) -> tuple[torch.Tensor, int, int, int]:
    _, _, height, width = image.shape
    scale = model.scale
    tiles = plan_tiles(height, width, tile, overlap)
    out = torch.zeros((1, 3, height * scale, width * scale), dtype=torch.float32, device=model.device)
    weight = torch.zeros((1, 1, height * scale, width * scale), dtype=torch.float32, device=model.device)
    nan_fallbacks = 0
    batches = 0
    # Tiles of equal shape batch together; edge tiles of other shapes run in their own batches.
    by_shape: dict[tuple[int, int], list[int]] = {}
    for index, t in enumerate(tiles):
        by_shape.setdefault((t.height, t.width), []).append(index)
    for indices in by_shape.values():
        for start in range(0, len(indices), batch_size):
            chunk = [tiles[i] for i in indices[start : start + batch_size]]
            batch = torch.cat([image[:, :, t.y0 : t.y1, t.x0 : t.x1] for t in chunk], dim=0)
            th, tw = batch.shape[-2:]
            padded = _pad_to_multiple(batch, model.size_multiple)
            result = _run_network(model.fast, padded, model.fast_dtype, model.channels_last)
            if not torch.isfinite(result).all():
                # fp16 overflowed somewhere in this batch: redo it exactly in float32.
                nan_fallbacks += 1
                result = _run_network(model.exact, padded, torch.float32, False)
            result = result[:, :, : th * scale, : tw * scale]
            batches += 1
            for t, tile_out in zip(chunk, result, strict=True):
                mask = feather_mask(t, scale, overlap, model.device)
                ys, xs = slice(t.y0 * scale, t.y1 * scale), slice(t.x0 * scale, t.x1 * scale)
                out[:, :, ys, xs] += tile_out[None] * mask
                weight[:, :, ys, xs] += mask
    return out / weight, len(tiles), batches, nan_fallbacks


def upscale(
    model: SRModel,
    image: torch.Tensor,
    *,
    tile: int,
    overlap: int = 16,
    batch_size: int = 4,
    min_tile: int = 64,
) -> tuple[torch.Tensor, UpscaleReport]:
    """Run the network over ``image`` in feathered, overlapping tiles.

    ``image``: float32 RGB, shape ``(1, 3, H, W)``, values in [0, 1], on ``model.device``.
    Returns float32 RGB ``(1, 3, H*scale, W*scale)`` in [0, 1] on the same device, and a report.
    On CUDA out-of-memory the tile side is halved and the whole image retried; below ``min_tile``
    raises ``ModelOutOfMemoryError``.
    """
    if image.ndim != 4 or image.shape[0] != 1 or image.shape[1] != 3:
        raise ValueError(f"expected a (1, 3, H, W) tensor, got {tuple(image.shape)}")
    if image.dtype != torch.float32:
        raise ValueError(f"expected float32, got {image.dtype}")
    if image.device != model.device:
        raise ValueError(f"image on {image.device}, model on {model.device}")
    started = time.perf_counter()
    retries = 0
    while True:
        try:
            with torch.inference_mode():
                result, tiles, batches, nan_fallbacks = _upscale_with_tile(
                    model, image, tile, min(overlap, tile // 3), batch_size
                )
            break
        except torch.OutOfMemoryError as exc:
            if model.device.type == "cuda":
                torch.cuda.empty_cache()
            retries += 1
            if tile // 2 < min_tile:
                raise ModelOutOfMemoryError(
                    f"out of GPU memory even with {tile}px tiles; try again later"
                ) from exc
            logger.warning("out of memory with %dpx tiles; retrying with %dpx", tile, tile // 2)
            tile //= 2
            batch_size = max(1, batch_size // 2)
    report = UpscaleReport(
        tile=tile,
        overlap=min(overlap, tile // 3),
        tiles=tiles,
        batches=batches,
        oom_retries=retries,
        nan_fallbacks=nan_fallbacks,
        dtype=str(model.fast_dtype).removeprefix("torch."),
        seconds=time.perf_counter() - started,
    )
    return result, report

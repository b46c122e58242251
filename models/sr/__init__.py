"""Super-resolution: the network registry, loading, tiled inference with feathered blending, and the
tile runners (direct, or one batching thread shared by every request)."""

from models.sr._batching import (
    BatchStats,
    CancelToken,
    DirectRunner,
    TileBatcher,
    TileOutputs,
    TileRunner,
    network_bytes,
    run_batch,
)
from models.sr._budget import MemoryBudget
from models.sr._compile import COMPILE_MODES, compile_network
from models.sr._network import (
    SR_NETWORKS,
    TEST_NETWORK,
    CompiledNetwork,
    SRModel,
    SRNetwork,
    UnknownNetworkError,
    build_weightless_model,
    get_network,
    load_sr_model,
)
from models.sr._resample import correlate, resize_bicubic
from models.sr._tiling import Tile, feather_mask, padded_side, plan_tiles
from models.sr._upscale import UpscaleReport, choose_tile_size, upscale

__all__ = [
    "COMPILE_MODES",
    "SR_NETWORKS",
    "TEST_NETWORK",
    "BatchStats",
    "CancelToken",
    "CompiledNetwork",
    "DirectRunner",
    "MemoryBudget",
    "SRModel",
    "SRNetwork",
    "Tile",
    "TileBatcher",
    "TileOutputs",
    "TileRunner",
    "UnknownNetworkError",
    "UpscaleReport",
    "build_weightless_model",
    "choose_tile_size",
    "compile_network",
    "correlate",
    "feather_mask",
    "get_network",
    "load_sr_model",
    "network_bytes",
    "padded_side",
    "plan_tiles",
    "resize_bicubic",
    "run_batch",
    "upscale",
]

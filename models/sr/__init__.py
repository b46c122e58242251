"""Super-resolution: the network registry, loading, and tiled inference with feathered blending."""

from models.sr._network import (
    SR_NETWORKS,
    SRModel,
    SRNetwork,
    UnknownNetworkError,
    UpscaleReport,
    choose_tile_size,
    get_network,
    load_sr_model,
    upscale,
)
from models.sr._tiling import Tile, feather_mask, plan_tiles

__all__ = [
    "SR_NETWORKS",
    "SRModel",
    "SRNetwork",
    "Tile",
    "UnknownNetworkError",
    "UpscaleReport",
    "choose_tile_size",
    "feather_mask",
    "get_network",
    "load_sr_model",
    "plan_tiles",
    "upscale",
]

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
from models.sr._int8 import INT8_GATE, GateLevel, gate_refusal, int8_refusal
from models.sr._load import load_sr_model_in
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
    network_supports,
)
from models.sr._precision import (
    PRECISIONS,
    Capabilities,
    PrecisionChoice,
    PrecisionError,
    choose_precision,
    cpu_flags,
    detect_capabilities,
    requested_precision,
)
from models.sr._resample import correlate, resize_bicubic
from models.sr._threads import cgroup_cpu_limit, configure_threads, usable_cpus
from models.sr._tiling import Tile, feather_mask, padded_side, plan_tiles
from models.sr._upscale import UpscaleReport, choose_tile_size, upscale

__all__ = [
    "COMPILE_MODES",
    "INT8_GATE",
    "PRECISIONS",
    "SR_NETWORKS",
    "TEST_NETWORK",
    "BatchStats",
    "CancelToken",
    "Capabilities",
    "CompiledNetwork",
    "DirectRunner",
    "GateLevel",
    "MemoryBudget",
    "PrecisionChoice",
    "PrecisionError",
    "SRModel",
    "SRNetwork",
    "Tile",
    "TileBatcher",
    "TileOutputs",
    "TileRunner",
    "UnknownNetworkError",
    "UpscaleReport",
    "build_weightless_model",
    "cgroup_cpu_limit",
    "choose_precision",
    "choose_tile_size",
    "compile_network",
    "configure_threads",
    "correlate",
    "cpu_flags",
    "detect_capabilities",
    "feather_mask",
    "gate_refusal",
    "get_network",
    "int8_refusal",
    "load_sr_model",
    "load_sr_model_in",
    "network_bytes",
    "network_supports",
    "padded_side",
    "plan_tiles",
    "requested_precision",
    "resize_bicubic",
    "run_batch",
    "upscale",
    "usable_cpus",
]

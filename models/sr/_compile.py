"""Ahead-of-serving compilation of a network's fast module for a few fixed tile shapes.

``torch.compile`` with fixed shapes (``dynamic=False``) is compiled and run once for every square
tile side and batch size it will serve, before the service reports ready; inductor's caches live in
``cache_dir`` so a restart loads the kernels instead of compiling them again (DESIGN.md: compiling
x4plus with max-autotune takes minutes). Afterwards the compiler stance is ``eager_on_recompile``:
a shape or guard that was not warmed up runs eagerly and never compiles on a request's path.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import cast

import torch
import torch._inductor.config

from models.sr._batching import run_batch
from models.sr._network import CompiledNetwork, SRModel

logger = logging.getLogger(__name__)

# No "reduce-overhead": CUDA-graph outputs are overwritten by the next replay, and DESIGN.md measured
# no gain from graphs on this network.
COMPILE_MODES = ("default", "max-autotune", "max-autotune-no-cudagraphs")
_ARTIFACTS_FILE = "torch-compile-artifacts.bin"


def _batch_sizes(limit: int) -> tuple[int, ...]:
    """1, 2, 4, ... below ``limit``, and ``limit`` itself: a batch of n runs padded to the next one."""
    sizes = {limit}
    size = 1
    while size < limit:
        sizes.add(size)
        size *= 2
    return tuple(sorted(sizes))


def _use_cache_dir(cache_dir: Path) -> None:
    cache_dir.mkdir(parents=True, exist_ok=True)
    # Inductor reads its cache location from the environment each time it compiles.
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(cache_dir / "inductor")
    artifacts = cache_dir / _ARTIFACTS_FILE
    if artifacts.exists():
        try:
            torch.compiler.load_cache_artifacts(artifacts.read_bytes())
        except Exception as exc:  # a cache from another torch version is only a cache: recompile
            logger.warning("ignoring compile cache %s: %r", artifacts, exc)


def _save_artifacts(cache_dir: Path) -> None:
    saved = torch.compiler.save_cache_artifacts()
    if saved is not None:
        data, _info = saved
        tmp = cache_dir / (_ARTIFACTS_FILE + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(cache_dir / _ARTIFACTS_FILE)


def compile_network(
    model: SRModel,
    *,
    mode: str,
    tile_sides: Sequence[int],
    batch_limit: Callable[[int, int], int],
    cache_dir: Path | None = None,
    backend: str = "inductor",
) -> SRModel:
    """A copy of ``model`` whose fast path is compiled (``torch.compile(mode=mode)``) for square tiles
    of each of ``tile_sides`` in batches of 1, 2, 4, … up to ``batch_limit(side, side)``; every one of
    those shapes is compiled and run once here. Blocking (minutes for max-autotune on a cold cache).
    Raises ``ValueError`` for an unknown mode or an empty side list."""
    if mode not in COMPILE_MODES:
        raise ValueError(f"unknown compile mode {mode!r}; known: {COMPILE_MODES}")
    sides = sorted({int(side) for side in tile_sides})
    if not sides or sides[0] < 16:
        raise ValueError(f"tile sides must be at least 16 pixels, got {list(tile_sides)}")
    if cache_dir is not None:
        _use_cache_dir(cache_dir)
    batches = {(side, side): _batch_sizes(batch_limit(side, side)) for side in sides}
    graphs = sum(len(sizes) for sizes in batches.values())
    dynamo_config = torch._dynamo.config
    limit_name = "recompile_limit" if hasattr(dynamo_config, "recompile_limit") else "cache_size_limit"
    setattr(dynamo_config, limit_name, max(getattr(dynamo_config, limit_name), graphs + 8))
    if model.device.type == "cpu":
        # On the CPU inductor's convolutions need the weights frozen as constants (prepacked for oneDNN);
        # without it the compiled network is no faster than eager (docs/cpu.md).
        torch._inductor.config.freezing = True
    torch.compiler.set_stance("default")
    module = cast(torch.nn.Module, torch.compile(model.fast, mode=mode, dynamic=False, fullgraph=True, backend=backend))
    compiled = dataclasses.replace(model, compiled=CompiledNetwork(module=module, batches=batches))
    started = time.perf_counter()
    generator = torch.Generator(device="cpu").manual_seed(0)
    for (height, width), sizes in batches.items():
        for size in sizes:
            mark = time.perf_counter()
            sample = torch.rand((size, 3, height, width), generator=generator).to(model.device)
            run_batch(compiled, sample)
            if model.device.type == "cuda":
                torch.cuda.synchronize(model.device)
            logger.info(
                "compiled %s for %dx%d x%d in %.1f s",
                model.network.name,
                height,
                width,
                size,
                time.perf_counter() - mark,
            )
    if cache_dir is not None:
        _save_artifacts(cache_dir)
    # From now on nothing compiles: an unexpected recompile runs eagerly instead.
    torch.compiler.set_stance("eager_on_recompile")
    logger.info(
        "compiled %s (%s, %d graphs) in %.1f s", model.network.name, mode, graphs, time.perf_counter() - started
    )
    return compiled

"""The serving path runs on the PyTorch a GPU host already has, from 2.11 on (issue 11).

Every ``torch.*`` (and ``F.*``: ``torch.nn.functional``) name used in ``server/`` and ``models/`` must be in
the table below with the release that introduced it (from PyTorch's documentation). A new name fails
this test until someone checks its release: newer than 2.11 needs a fallback (as ``recompile_limit``
has: ``cache_size_limit`` before 2.6) and its entry says so.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OLDEST_HOST_TORCH = (2, 11)
# name → (major, minor) of the first release that has it.
TORCH_API_SINCE: dict[str, tuple[int, int]] = {
    "torch.Tensor": (1, 0),
    "torch.float32": (1, 0),
    "torch.float16": (1, 0),
    "torch.bfloat16": (1, 0),
    "torch.uint8": (1, 0),
    "torch.device": (1, 0),
    "torch.dtype": (1, 0),
    "torch.Generator": (1, 0),
    "torch.nn.Module": (1, 0),
    "torch.nn.functional": (1, 0),
    "torch.nn.functional.conv2d": (1, 0),
    "torch.nn.functional.pad": (1, 0),
    "torch.nn.functional.interpolate": (1, 11),  # antialias=True for bicubic since 1.11
    "torch.arange": (1, 0),
    "torch.zeros": (1, 0),
    "torch.ones": (1, 0),
    "torch.rand": (1, 0),
    "torch.tensor": (1, 0),
    "torch.from_numpy": (1, 0),
    "torch.stack": (1, 0),
    "torch.cat": (1, 0),
    "torch.where": (1, 0),
    "torch.lerp": (1, 0),
    "torch.bmm": (1, 0),
    "torch.sqrt": (1, 0),
    "torch.sin": (1, 0),
    "torch.exp": (1, 0),
    "torch.isfinite": (1, 0),
    "torch.maximum": (1, 7),
    "torch.minimum": (1, 7),
    "torch.channels_last": (1, 5),
    "torch.inference_mode": (1, 9),
    "torch.version.cuda": (1, 0),
    "torch.__version__": (1, 0),
    "torch.__version__.split": (1, 0),
    "torch.cuda.is_available": (1, 0),
    "torch.cuda.is_initialized": (1, 0),
    "torch.cuda.empty_cache": (1, 0),
    "torch.cuda.synchronize": (1, 0),
    "torch.cuda.Event": (1, 0),
    "torch.cuda.get_device_name": (1, 0),
    "torch.cuda.get_device_properties": (1, 0),
    "torch.cuda.memory_allocated": (1, 0),
    "torch.cuda.max_memory_reserved": (1, 4),
    "torch.cuda.set_per_process_memory_fraction": (1, 8),
    "torch.cuda.mem_get_info": (1, 11),
    "torch.compile": (2, 0),
    "torch._dynamo.config": (2, 0),  # recompile_limit from 2.6, cache_size_limit before (models/sr/_compile.py)
    "torch.OutOfMemoryError": (2, 5),
    "torch.compiler.set_stance": (2, 6),  # "eager_on_recompile" is one of its first stances
    "torch.compiler.save_cache_artifacts": (2, 7),
    "torch.compiler.load_cache_artifacts": (2, 7),
    # The ported face networks and the tensor estimators (issue 13).
    "torch.addcmul": (1, 0),
    "torch.bincount": (1, 0),
    "torch.clamp": (1, 0),
    "torch.cumsum": (1, 0),
    "torch.fft.rfft": (1, 8),
    "torch.fft.irfft": (1, 8),
    "torch.flip": (1, 0),
    "torch.float64": (1, 0),
    "torch.floor": (1, 0),
    "torch.full_like": (1, 0),
    "torch.get_num_threads": (1, 0),
    "torch.hann_window": (1, 0),
    "torch.hypot": (1, 7),
    "torch.int32": (1, 0),
    "torch.linalg.eigvalsh": (1, 8),
    "torch.log": (1, 0),
    "torch.long": (1, 0),
    "torch.nanquantile": (1, 8),
    "torch.nn.functional.avg_pool2d": (1, 0),
    "torch.nn.functional.linear": (1, 0),
    "torch.nn.functional.max_pool2d": (1, 0),
    "torch.nn.functional.relu": (1, 0),
    "torch.nn.functional.relu_": (1, 0),
    "torch.empty": (1, 0),
    "torch.eye": (1, 0),
    "torch.matmul": (1, 0),
    "torch.nn.functional.fold": (1, 1),
    "torch.mul": (1, 0),
    "torch.ones_like": (1, 0),
    "torch.quantile": (1, 7),
    "torch.remainder": (1, 0),
    "torch.round": (1, 0),
    "torch.set_num_threads": (1, 0),
    "torch.sort": (1, 0),
    "torch.topk": (1, 0),
    "torch.zeros_like": (1, 0),
    # The precision per device and inductor on the CPU (issue 19).
    "torch.cuda.current_device": (1, 0),
    "torch.cuda.get_device_capability": (1, 0),
    "torch.backends.mkldnn.is_available": (1, 0),
    "torch._inductor.config": (2, 0),
    "torch._inductor.config.freezing": (2, 0),  # inductor's weight freezing, from the first torch.compile release
}
NAME = re.compile(r"\b(torch(?:\.[A-Za-z_][A-Za-z0-9_]*)+|F\.[a-z_][a-z0-9_]*)")


def used_torch_names() -> dict[str, list[str]]:
    """Every ``torch.…`` / ``F.…`` dotted name in server/ and models/ → the files using it."""
    found: dict[str, list[str]] = {}
    for path in sorted([*ROOT.glob("server/**/*.py"), *ROOT.glob("models/**/*.py")]):
        for match in NAME.finditer(path.read_text()):
            name = match.group(1)
            name = "torch.nn.functional" + name[1:] if name.startswith("F.") else name
            found.setdefault(name, []).append(str(path.relative_to(ROOT)))
    return found


def test_every_torch_name_on_the_serving_path_is_in_the_table() -> None:
    unknown = {name: files[0] for name, files in used_torch_names().items() if name not in TORCH_API_SINCE}
    assert unknown == {}, "add these to TORCH_API_SINCE with their first release (≤ 2.11 or a fallback)"


def test_every_torch_name_in_use_exists_in_2_11() -> None:
    used = used_torch_names()
    too_new = {name: TORCH_API_SINCE[name] for name in used if TORCH_API_SINCE.get(name, (0, 0)) > OLDEST_HOST_TORCH}
    assert too_new == {}


def test_the_table_names_real_attributes_of_torch() -> None:
    import torch
    import torch._dynamo  # the submodules load lazily
    import torch.nn.functional

    missing = []
    for name in TORCH_API_SINCE:
        target: object = torch
        for part in name.split(".")[1:]:
            if not hasattr(target, part):
                missing.append(name)
                break
            target = getattr(target, part)
    assert missing == []

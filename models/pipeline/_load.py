"""Loading the pipeline's models onto a device: the super-resolution networks by content and the face
models, from weights the caller has read (the server reads and verifies the weights store; the
stage packages never do).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from models.faces import FaceDetector, FaceModelFiles, FaceModels
from models.sr import TEST_NETWORK, SRModel, build_weightless_model, get_network, load_sr_model, load_sr_model_in

# The name of the face detector's file in the weights manifest (the default detector's, below).
FACE_DETECTOR_FILE = "dlib-mmod-face-detector"


@dataclass(frozen=True)
class NetworkWeights:
    """A super-resolution network by its registry ``name`` and the ``state_dict`` read for it."""

    name: str
    state_dict: dict[str, torch.Tensor]


@dataclass(frozen=True)
class PipelineModels:
    """The loaded models: the super-resolution ``networks`` by content ("photo", "illustration"; empty
    when none were asked for) and the ``faces`` models (``None``: none asked for)."""

    networks: dict[str, SRModel]
    faces: FaceModels | None


def load_pipeline(
    device: torch.device | str,
    *,
    networks: Mapping[str, NetworkWeights] | None = None,
    stand_in: Sequence[str] = (),
    face_files: Mapping[str, Path] | None = None,
    precision: str | None = None,
    **network_options: Any,
) -> PipelineModels:
    """Load the models a request runs through onto ``device``.

    ``networks``: content → the network's weights, each built in ``precision`` (``ENHANCE_PRECISION``:
    "auto", "fp32", "bf16", "fp16", "int8", resolved for the device by ``models.sr.load_sr_model_in``),
    or without one by ``models.sr.load_sr_model`` with ``network_options``; ``stand_in``: contents that
    get the weightless test stand-in (``TEST_NETWORK``: the service's test mode), one model shared by
    them; ``face_files``: the face models' files by role (``embedder``, ``landmarks``, ``detector``).

    Raises ``UnknownNetworkError`` for a name not in the registry, ``PrecisionError`` for a precision
    the device or network cannot run, the loaders' errors for weights that do not fit, and
    ``ImportError`` when a library the face models need is not installed."""
    target = torch.device(device)
    loaded: dict[str, SRModel] = {}
    for content, weights in (networks or {}).items():
        network = get_network(weights.name)
        if precision is not None:
            loaded[content] = load_sr_model_in(network, weights.state_dict, target, precision)
        else:
            loaded[content] = load_sr_model(network, weights.state_dict, target, **network_options)
    if stand_in:
        model = build_weightless_model(get_network(TEST_NETWORK), target)
        loaded |= dict.fromkeys(stand_in, model)
    faces = FaceModels(FaceModelFiles(**face_files), device=target) if face_files is not None else None
    return PipelineModels(networks=loaded, faces=faces)


_default_lock = threading.Lock()
_default_detector: dict[Path, FaceDetector] = {}


def default_face_detector(weights_dir: Path | None = None) -> FaceDetector:
    """The CPU face detector analysis uses when the caller has no face models (benchmarks, pixel tests,
    :func:`models.pipeline.enhance_image`), loaded once per process per folder from the verified
    weights folder (default: ``weights.default_weights_dir()``; the file must have been pulled:
    ``python -m weights pull``).

    Raises:
        weights.WeightsError: the detector's file is missing or fails its sha256 check.
    """
    import weights  # only here: the weights store is read on first use, never at import time

    directory = weights_dir or weights.default_weights_dir()
    with _default_lock:
        if directory not in _default_detector:
            path = weights.model_file_path(FACE_DETECTOR_FILE, directory)
            _default_detector[directory] = FaceDetector.from_file(path)
        return _default_detector[directory]

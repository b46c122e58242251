"""The offline install bundle (``python -m weights bundle``), ``weights pull --from``, and the service
with features left out of a bundle (identity, 16-bit precision, the illustration network)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from packaging.requirements import Requirement

import weights
from server import Settings, create_app
from server.features import load_identity
from tests.conftest import encode_b64
from weights._bundle import (
    INSTALL_FOR_BUNDLE,
    BundleError,
    expand_platforms,
    get_feature,
    make_bundle,
    matching_torchvision,
    parse_installed,
    parse_size,
    project_requirements,
    pull_from_sources,
    resolve_dependencies,
)

ROOT = Path(__file__).resolve().parent.parent
KEY = "bundle-test-key"
SMALL = "realesr-animevideov3-x4"  # the manifest's smallest network (2.5 MB converted)
# The GPU image: torch and the scientific stack, none of the web stack.
GPU_IMAGE = {
    "torch": "2.11.0",
    "numpy": "2.3.4",
    "pillow": "12.0.0",
    "httpx": "0.28.1",
    "httpcore": "1.0.9",
    "anyio": "4.11.0",
    "h11": "0.16.0",
    "idna": "3.10",
    "certifi": "2025.10.5",
    "scipy": "1.16.3",
    "scikit-image": "0.25.2",
    "prometheus-client": "0.23.1",
    "typing-extensions": "4.15.0",
    "packaging": "25.0",
}


def _names(closure_deps: list[object]) -> set[str]:
    return {str(getattr(dep, "name", "")).lower().replace("_", "-") for dep in closure_deps}


def test_parse_installed_reads_pip_freeze_lines() -> None:
    text = "# comment\nTorch==2.11.0+cu130\nscikit_image==0.25.2\nfoo @ file:///tmp/foo.whl\n-e git+x#egg=bar\n\n"
    assert parse_installed(text) == {"torch": "2.11.0+cu130", "scikit-image": "0.25.2", "foo": ""}


def test_parse_size_accepts_binary_and_decimal_units() -> None:
    assert parse_size("60MiB") == 60 * 2**20
    assert parse_size("60M") == 60_000_000
    assert parse_size("1.5GiB") == int(1.5 * 2**30)
    assert parse_size("1234") == 1234
    with pytest.raises(ValueError, match="bad size"):
        parse_size("sixty")


def test_expand_platforms_adds_older_manylinux_tags() -> None:
    tags = expand_platforms(["manylinux_2_28_x86_64"])
    assert tags[0] == "manylinux_2_28_x86_64"
    assert {"manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux1_x86_64"} <= set(tags)
    assert "manylinux_2_29_x86_64" not in tags
    assert expand_platforms(["macosx_14_0_arm64"]) == ["macosx_14_0_arm64"]


def test_torchvision_matches_the_host_torch_release() -> None:
    assert matching_torchvision("2.11.0+cu130") == "0.26.*"
    assert matching_torchvision("2.14.1") == "0.29.*"
    with pytest.raises(BundleError, match=r"older than 2\.11"):
        matching_torchvision("2.8.0")


def test_dependencies_leave_out_what_a_gpu_image_has() -> None:
    features = [get_feature("imagecodecs"), get_feature("faces")]
    closure = resolve_dependencies(project_requirements(ROOT), GPU_IMAGE, without=features, python_version="3.12")
    bundled = _names(list(closure.bundled))
    assert {"fastapi", "uvicorn", "pydantic", "sqlalchemy", "spandrel", "pillow-heif", "pytest"} <= bundled
    assert not bundled & {"torch", "numpy", "pillow", "httpx", "scipy", "scikit-image", "imagecodecs"}
    assert closure.left_out == {"imagecodecs": "--without imagecodecs"}
    torchvision = next(dep for dep in closure.bundled if dep.name == "torchvision")
    assert torchvision.version == "0.26.*"  # spandrel needs it; built for the host's torch 2.11
    # Every other pin is the version installed (and tested) here.
    spandrel = next(dep for dep in closure.bundled if dep.name.lower() == "spandrel")
    assert spandrel.version == metadata.version("spandrel")


def test_dependencies_bundle_a_host_package_that_is_too_old() -> None:
    closure = resolve_dependencies([Requirement("pillow>=11")], {"torch": "2.11.0", "pillow": "9.5.0"})
    assert [dep.name.lower() for dep in closure.bundled] == ["pillow"]
    assert "9.5.0" in closure.replaced["pillow"]


def test_dependencies_refuse_a_host_without_torch() -> None:
    with pytest.raises(BundleError, match="host has no torch"):
        resolve_dependencies(project_requirements(ROOT), {"numpy": "2.3.4"})


def test_missing_distribution_is_refused_with_the_install_that_brings_the_bundled_extras() -> None:
    # The case: a .venv made with `pip install -e .` has no pytest, which the acceptance extra brings.
    with pytest.raises(BundleError) as refused:
        resolve_dependencies([Requirement("phota-never-installed>=1")], {"torch": "2.11.0"})
    message = str(refused.value)
    assert message.startswith("phota-never-installed (needed by phota-enhance-local) is not installed here")
    assert "`pip install -e '.[acceptance]'`" in message
    assert "`pip install -e .`" not in message


def test_the_advised_install_brings_every_requirement_a_bundle_resolves() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    match = re.fullmatch(r"pip install -e '\.\[(.+)\]'", INSTALL_FOR_BUNDLE)
    assert match is not None
    advised = list(project["dependencies"])
    for extra in match.group(1).split(","):
        advised += project["optional-dependencies"][extra]
    bundled = {Requirement(text).name for text in advised}
    assert {requirement.name for requirement in project_requirements(ROOT)} == bundled
    assert "pytest" in bundled  # what `python -m server.acceptance` needs and `pip install -e .` lacks


@pytest.fixture(scope="module")
def small_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real bundle of the smallest network for a host that already has every dependency installed
    here (so only this project's wheel is built and nothing else is downloaded)."""
    installed = {dist.metadata["Name"]: dist.version for dist in metadata.distributions()}
    installed.pop("phota-enhance-local", None)
    dest = tmp_path_factory.mktemp("bundles") / "small"
    make_bundle(dest, installed=installed, only=[SMALL])
    return dest


def test_bundle_holds_sources_wheel_install_script_and_hashes(small_bundle: Path) -> None:
    manifest = json.loads((small_bundle / "bundle.json").read_text())
    assert manifest["weights"] == [SMALL]
    wheels = sorted(path.name for path in (small_bundle / "wheels").iterdir())
    assert len(wheels) == 1 and wheels[0].startswith("phota_enhance_local-")
    assert "tests/test_gpu.py" in {
        Path(name).relative_to("acceptance").as_posix() for name in manifest["files"] if name.startswith("acceptance/")
    }
    sums = subprocess.run(["sha256sum", "--check", "--quiet", "SHA256SUMS"], cwd=small_bundle, check=False)
    assert sums.returncode == 0
    assert manifest["total_bytes"] == sum(entry["bytes"] for entry in manifest["files"].values())
    script = (small_bundle / "install.sh").read_text()
    assert "--no-index --no-deps" in script and f'pull --from "$HERE" --only {SMALL}' in script


def test_install_script_runs_python_without_the_callers_python_environment(small_bundle: Path, tmp_path: Path) -> None:
    """A checkout on the caller's PYTHONPATH must not shadow what the script installs: every Python it
    runs has PYTHONPATH, PYTHONHOME and PYTHONSTARTUP unset and PYTHONSAFEPATH on (here PYTHON is a
    stand-in that records its environment, so nothing is installed)."""
    calls = tmp_path / "calls.log"
    stand_in = tmp_path / "python"
    stand_in.write_text(
        "#!/bin/sh\n"
        'printf "%s|%s|%s|%s|%s\\n" "${PYTHONPATH-unset}" "${PYTHONHOME-unset}" "${PYTHONSTARTUP-unset}"'
        f' "${{PYTHONSAFEPATH-unset}}" "$*" >> "{calls}"\n'
        "cat > /dev/null\n"
    )
    stand_in.chmod(0o755)
    (tmp_path / "startup.py").write_text("raise SystemExit('PYTHONSTARTUP ran')\n")
    caller = {
        **os.environ,
        "PYTHON": str(stand_in),
        "PYTHONPATH": str(ROOT),
        "PYTHONHOME": str(tmp_path / "elsewhere"),
        "PYTHONSTARTUP": str(tmp_path / "startup.py"),
    }
    result = subprocess.run(
        ["sh", str(small_bundle / "install.sh")],
        env=caller,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = calls.read_text().splitlines()
    assert lines and all(line.split("|")[:4] == ["unset", "unset", "unset", "1"] for line in lines), lines
    invoked = [line.split("|")[4].split(" ")[:2] for line in lines]
    assert invoked == [["-"], ["-m", "pip"], ["-m", "weights"], ["-m", "weights"], ["-"]]
    # The Python it feeds the interpreter compiles (the last one refuses a server imported from elsewhere).
    scripts = re.findall(r"<<'EOF'\n(.*?)\nEOF\n", (small_bundle / "install.sh").read_text(), re.DOTALL)
    assert len(scripts) == 2 and "locate_file" in scripts[1]
    for script in scripts:
        compile(script, "install.sh", "exec")


def test_bundled_gpu_tests_collect_on_their_own(small_bundle: Path) -> None:
    """The bundle's acceptance/tests need nothing else from the checkout (its tests/ is not installed)."""
    folder = small_bundle / "acceptance"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "tests/test_gpu.py"],
        cwd=folder,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:]
    expected = len(re.findall(r"^def test_", (ROOT / "tests" / "test_gpu.py").read_text(), re.MULTILINE))
    assert f"{expected} tests collected" in result.stdout
    assert (folder / "tests" / "benchmarks" / "bench_throughput.py").is_file()


def test_pull_from_the_bundle_converts_to_the_manifest_sha256(small_bundle: Path, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "weights", "pull", "--from", str(small_bundle), "--dest", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert weights.verify_weights(tmp_path, [SMALL]) == [tmp_path / weights.get_spec(SMALL).file]


def test_pull_from_refuses_a_tampered_source(small_bundle: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    spec = weights.get_spec(SMALL)
    for member in (spec.source.param_member, spec.source.bin_member):
        target = copy / "weights-sources" / member
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((small_bundle / "weights-sources" / member).read_bytes())
    binary = copy / "weights-sources" / spec.source.bin_member
    data = bytearray(binary.read_bytes())
    data[1000] ^= 0xFF
    binary.write_bytes(bytes(data))
    with pytest.raises(weights.WeightsChecksumError, match="sha256"):
        pull_from_sources(tmp_path / "dest", copy)
    assert not (tmp_path / "dest" / spec.file).exists()


def test_bundle_over_max_size_fails_and_leaves_nothing(tmp_path: Path) -> None:
    installed = {dist.metadata["Name"]: dist.version for dist in metadata.distributions()}
    with pytest.raises(BundleError, match=r"(?s)over --max-size 1\.0 MiB.*--without imagecodecs"):
        make_bundle(tmp_path / "big", installed=installed, only=[SMALL], max_size=2**20)
    assert list(tmp_path.iterdir()) == []


# --- the service with features left out ------------------------------------------------------------


@pytest.fixture(scope="module")
def photo_only_client(tmp_path_factory: pytest.TempPathFactory, weights_dir: Path) -> Iterator[TestClient]:
    """The app on a weights folder holding only x4plus (no face models, no illustration network), no
    pulling allowed, and imagecodecs hidden: what an install from a minimal bundle looks like."""
    only_x4plus = tmp_path_factory.mktemp("weights-x4plus")
    name = weights.get_spec("realesrgan-x4plus").file
    (only_x4plus / name).symlink_to(weights_dir / name)
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("data"),
        weights_dir=only_x4plus,
        api_keys=KEY,
        device="cpu",
        auto_pull_weights=False,
        network_max_side=48,
        cpu_tile_size=64,
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(sys.modules, "imagecodecs", None)  # find_spec → None: as if not installed
        with TestClient(create_app(settings), raise_server_exceptions=False) as client:
            yield client


def test_readyz_lists_the_features_that_are_off(photo_only_client: TestClient) -> None:
    body = photo_only_client.get("/readyz").json()
    assert body["status"] == "ready"
    features = body["features"]
    assert {name: f["enabled"] for name, f in features.items()} == {
        "identity": False,
        "high_bit_depth": False,
        "illustration_network": False,
    }
    assert (
        "face model files unavailable" in features["identity"]["detail"]
        or "not installed" in (features["identity"]["detail"])
    )


def test_candidates_without_face_models_are_a_400(photo_only_client: TestClient, chelsea: np.ndarray) -> None:
    body = {"image": encode_b64(chelsea[:48, :48]), "profile_ids": ["someone"]}
    response = photo_only_client.post("/v1/phota/enhance", headers={"X-API-Key": KEY}, json=body)
    assert response.status_code == 400
    assert response.json()["code"] == "BAD_REQUEST"
    assert "Identity features are off" in response.json()["detail"]


def test_adding_a_profile_without_face_models_is_a_400(photo_only_client: TestClient, chelsea: np.ndarray) -> None:
    refs = [encode_b64(chelsea[:64, :64])] * 5
    response = photo_only_client.post(
        "/v1/phota/profiles/add", headers={"X-API-Key": KEY}, json={"image_urls": refs, "training_tier": "fast"}
    )
    assert response.status_code == 400
    assert "Identity features are off" in response.json()["detail"]


def test_enhance_still_works_with_features_off(photo_only_client: TestClient, chelsea: np.ndarray) -> None:
    body = {"image": encode_b64(chelsea[:48, :64]), "output_format": "jpg"}
    response = photo_only_client.post("/v1/phota/enhance", headers={"X-API-Key": KEY}, json=body)
    assert response.status_code == 200
    assert len(response.json()["images"]) == 1
    assert not json.loads(response.headers["X-Enhance-Parameters"]).get("identity")  # no identity stage ran


def test_identity_needs_no_dlib(tmp_path: Path, weights_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for spec in weights.load_file_manifest():  # the face model files are there, dlib is not
        (tmp_path / spec.file).symlink_to(weights_dir / spec.file)
    monkeypatch.setitem(sys.modules, "dlib", None)  # `import dlib` raises ImportError
    settings = Settings(data_dir=tmp_path / "data", weights_dir=tmp_path, auto_pull_weights=False, device="cpu")
    models, feature = load_identity(settings)
    assert models is not None and models.device.type == "cpu"
    assert feature.name == "identity" and feature.enabled

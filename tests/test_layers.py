"""The layers hold: server → models.pipeline → stage packages, checked by import-linter's contracts in
pyproject.toml (``lint-imports``), and the contracts the architecture names are all there."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGES = ["models.sr", "models.faces", "models.imageio", "models.analysis", "models.prompt", "models.errors"]


def _contracts() -> dict[str, dict]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    return {contract["id"]: contract for contract in config["contracts"]}


def test_every_contract_is_kept() -> None:
    lint_imports = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert lint_imports is not None, "import-linter is part of the test extra"
    done = subprocess.run([lint_imports, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "BROKEN" not in done.stdout


def test_the_layers_contract_puts_server_over_the_pipeline_over_every_stage() -> None:
    layers = _contracts()["layers"]["layers"]
    assert layers[:2] == ["server", "models.pipeline"]
    assert sorted(name.strip() for name in layers[2].split(":")) == sorted(STAGES)


def test_every_stage_package_is_protected_and_only_the_pipeline_imports_it_from_above() -> None:
    protected = {
        module: contract["allowed_importers"]
        for contract in _contracts().values()
        if contract["type"] == "protected"
        for module in contract["protected_modules"]
    }
    assert sorted(protected) == sorted(STAGES)
    for module, importers in protected.items():
        assert "models.pipeline" in importers, module
        assert all(importer in [*STAGES, "models.pipeline"] for importer in importers), (module, importers)


def test_stages_never_read_the_weights_store_and_models_never_import_server() -> None:
    contracts = _contracts()
    weights = contracts["stages-never-read-weights"]
    assert sorted(weights["source_modules"]) == sorted(STAGES) and weights["forbidden_modules"] == ["weights"]
    assert "server" in contracts["models-never-import-server"]["forbidden_modules"]
    off_http = contracts["jobs-profiles-off-http"]
    assert sorted(off_http["source_modules"]) == ["server.jobs", "server.profiles"]
    assert {"server.service", "server.errors", "server.schemas", "server.routes", "fastapi"} <= set(
        off_http["forbidden_modules"]
    )

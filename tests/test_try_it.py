"""The README's "Try it" block, run as written by bash against a live test-mode service: it gets the
service's development key, enhances a real photo in bytes and urls mode, and leaves the checkout as it
found it (its files go to a scratch folder)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from PIL import Image
from skimage import data as skdata

from tests.live_server import REPO_ROOT, live_server

DOCUMENTED_URL = "http://127.0.0.1:8000"


def try_it_block() -> str:
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme.split("\n## Try it\n", 1)[1]
    match = re.search(r"```bash\n(.*?)```", section, re.S)
    assert match is not None, "no bash block under '## Try it'"
    return match.group(1)


def test_try_it_works_and_leaves_the_checkout_clean(tmp_path: Path) -> None:
    # A checkout as the README's first command leaves it: .venv beside the service's ./data, a photo.
    checkout = tmp_path / "checkout"
    (checkout / "data").mkdir(parents=True)
    (checkout / ".venv").symlink_to(Path(sys.executable).parent.parent, target_is_directory=True)
    Image.fromarray(skdata.chelsea()[40:200, 100:340]).save(checkout / "photo.jpg", quality=90)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    block = try_it_block()
    assert DOCUMENTED_URL in block
    # The service as the README starts it, with no ENHANCE_API_KEYS: it stores a development key in ./data.
    with live_server(checkout / "data", "", "--mode", "test", env={"ENHANCE_API_KEYS": ""}) as server:
        before = sorted(p.name for p in checkout.iterdir())
        environment = {name: value for name, value in os.environ.items() if not name.startswith("ENHANCE_")}
        environment.update(PYTHONPATH=str(REPO_ROOT), TMPDIR=str(scratch))
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", block.replace(DOCUMENTED_URL, server.url)],
            cwd=checkout,
            env=environment,
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in checkout.iterdir()) == before == [".venv", "data", "photo.jpg"]
    (folder,) = scratch.iterdir()  # the block's mktemp -d
    assert sorted(p.name for p in folder.iterdir()) == ["enhanced.jpg", "headers.txt", "request.json"]
    with Image.open(folder / "enhanced.jpg") as enhanced:
        assert enhanced.format == "JPEG" and max(enhanced.size) == 2048
    assert "x-enhance-parameters" in result.stdout.lower()  # the grep of headers.txt
    answer = json.loads(result.stdout.strip().splitlines()[-1])  # the urls request
    assert answer["images"] == [] and len(answer["download_urls"]) == 2

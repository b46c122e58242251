"""The command-line tool: walking, naming, resume, atomic writes, a bad file in the middle, Ctrl-C, and
--url against a live service; real photos from scikit-image, the pipeline in test mode."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from server import cli
from server.cli import LocalEnhancer, Request, Task, find_tasks, output_paths, run_tasks, write_atomically
from tests.live_server import REPO_ROOT, LiveServer, live_server

KEY = "cli-test-key"
# Small outputs keep each file to about a second on a shared CPU.
FAST_ENV = {"ENHANCE_TARGET_LONG_SIDE": "256", "ENHANCE_DEVICE": "cpu"}


def _save(image: np.ndarray, path: Path, **options: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).resize((image.shape[1] // 4, image.shape[0] // 4), Image.Resampling.LANCZOS).save(
        path, **options
    )
    return path


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """A folder of real photos in three formats and a subfolder, with a broken JPEG in the middle."""
    root = tmp_path / "photos"
    _save(skdata.astronaut(), root / "astronaut.jpg", quality=90)
    _save(skdata.chelsea(), root / "cats" / "chelsea.webp", quality=90)
    _save(skdata.coffee(), root / "cats" / "coffee.png")
    (root / "cats" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"not really a jpeg" * 10)
    (root / "notes.txt").write_text("not an image")
    (root / ".hidden.jpg").write_bytes(b"")
    return root


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalEnhancer]:
    with pytest.MonkeyPatch.context() as patch:
        for name, value in FAST_ENV.items():
            patch.setenv(name, value)
        enhancer = LocalEnhancer("test", None)
    yield enhancer
    enhancer.close()


def test_find_tasks_walks_folders_for_images_keeping_the_layout(photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    tasks = find_tasks([photos], out)
    assert [t.source.relative_to(photos).as_posix() for t in tasks] == [
        "astronaut.jpg",
        "cats/broken.jpg",
        "cats/chelsea.webp",
        "cats/coffee.png",
    ]
    assert [t.folder for t in tasks] == [out, out / "cats", out / "cats", out / "cats"]
    beside = find_tasks([photos / "cats" / "chelsea.webp"], None)
    assert beside == [Task(source=photos / "cats" / "chelsea.webp", folder=photos / "cats", stem="chelsea")]


def test_find_tasks_leaves_out_outputs_and_the_output_folder_inside_the_input(photos: Path) -> None:
    (photos / "astronaut.enhanced.jpg").write_bytes(b"x")
    (photos / "astronaut.enhanced.2-natural.png").write_bytes(b"x")
    _save(skdata.camera(), photos / "out" / "camera.jpg")
    names = [t.source.name for t in find_tasks([photos], photos / "out")]
    assert "astronaut.enhanced.jpg" not in names and "astronaut.enhanced.2-natural.png" not in names
    assert "camera.jpg" not in names
    assert "camera.jpg" in [t.source.name for t in find_tasks([photos], None)]


def test_find_tasks_separates_inputs_sharing_a_stem(tmp_path: Path) -> None:
    _save(skdata.coffee(), tmp_path / "a.jpg")
    _save(skdata.coffee(), tmp_path / "a.png")
    assert sorted(t.stem for t in find_tasks([tmp_path], None)) == ["a_jpg", "a_png"]


def test_find_tasks_refuses_a_missing_input(tmp_path: Path) -> None:
    with pytest.raises(cli.UsageError, match="no such file"):
        find_tasks([tmp_path / "nope"], None)


def test_output_paths_name_variations_in_their_order(tmp_path: Path) -> None:
    task = Task(source=tmp_path / "x.jpg", folder=tmp_path, stem="x")
    assert [p.name for p in output_paths(task, 1, "jpg")] == ["x.enhanced.jpg"]
    assert [p.name for p in output_paths(task, 3, "png")] == [
        "x.enhanced.1-inferred.png",
        "x.enhanced.2-natural.png",
        "x.enhanced.3-detail.png",
    ]


def test_variation_names_are_the_pipelines_in_order() -> None:
    from models.pipeline import VARIATIONS

    assert tuple(variation.name for variation in VARIATIONS) == cli.VARIATION_NAMES


def test_write_atomically_leaves_no_half_file_when_interrupted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted_rename(src: object, dst: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli.os, "replace", interrupted_rename)
    with pytest.raises(KeyboardInterrupt):
        write_atomically(tmp_path / "out" / "a.enhanced.jpg", b"\xff\xd8" + b"0" * 1000)
    assert list((tmp_path / "out").iterdir()) == []


def test_folder_in_test_mode_enhances_every_photo_and_reports_the_bad_one(
    photos: Path, tmp_path: Path, local: LocalEnhancer
) -> None:
    out = tmp_path / "out"
    summary = run_tasks(find_tasks([photos], out), local, Request(variations=2), progress=False, log=lambda m: None)
    assert summary.exit_code == cli.EXIT_FAILED
    assert [p.name for p, _ in summary.failed] == ["broken.jpg"]
    assert "corrupt" in summary.failed[0][1] or "truncated" in summary.failed[0][1]
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert written == [
        "astronaut.enhanced.1-inferred.jpg",
        "astronaut.enhanced.2-natural.jpg",
        "cats/chelsea.enhanced.1-inferred.jpg",
        "cats/chelsea.enhanced.2-natural.jpg",
        "cats/coffee.enhanced.1-inferred.jpg",
        "cats/coffee.enhanced.2-natural.jpg",
    ]
    with Image.open(out / "astronaut.enhanced.1-inferred.jpg") as image:
        assert image.size == (256, 256)
    first = np.asarray(Image.open(out / "cats/coffee.enhanced.1-inferred.jpg"), dtype=np.float32)
    second = np.asarray(Image.open(out / "cats/coffee.enhanced.2-natural.jpg"), dtype=np.float32)
    assert np.abs(first - second).mean() > 0.5  # distinct variations


def test_rerun_skips_finished_files_and_overwrite_redoes_them(
    photos: Path, tmp_path: Path, local: LocalEnhancer
) -> None:
    (photos / "cats" / "broken.jpg").unlink()
    out = tmp_path / "out"
    tasks = find_tasks([photos], out)
    assert run_tasks(tasks, local, Request(), progress=False, log=lambda m: None).exit_code == cli.EXIT_OK
    finished = out / "cats" / "chelsea.enhanced.jpg"
    os.utime(finished, (1_000_000, 1_000_000))
    again = run_tasks(tasks, local, Request(), progress=False, log=lambda m: None)
    assert (len(again.done), len(again.skipped), again.exit_code) == (0, 3, cli.EXIT_OK)
    assert finished.stat().st_mtime == 1_000_000
    redone = run_tasks(tasks, local, Request(), overwrite=True, progress=False, log=lambda m: None)
    assert len(redone.done) == 3 and finished.stat().st_mtime > 1_000_000


class _InterruptOnSecondFile:
    """The real local pipeline, with Ctrl-C arriving while the second file is being enhanced."""

    def __init__(self, inner: LocalEnhancer) -> None:
        self.inner = inner
        self.calls = 0

    def enhance(self, data: bytes, request: Request, stage: cli.Stage) -> list[bytes]:
        self.calls += 1
        if self.calls == 2:
            raise KeyboardInterrupt
        return self.inner.enhance(data, request, stage)

    def close(self) -> None:
        pass


def test_ctrl_c_keeps_finished_files_and_a_rerun_resumes(photos: Path, tmp_path: Path, local: LocalEnhancer) -> None:
    (photos / "cats" / "broken.jpg").unlink()
    out = tmp_path / "out"
    tasks = find_tasks([photos], out)
    summary = run_tasks(tasks, _InterruptOnSecondFile(local), Request(), progress=False, log=lambda m: None)
    assert summary.interrupted and summary.exit_code == cli.EXIT_INTERRUPTED
    assert sorted(p.name for p in out.rglob("*") if p.is_file()) == ["astronaut.enhanced.jpg"]
    resumed = run_tasks(tasks, local, Request(), progress=False, log=lambda m: None)
    assert [p.name for p in resumed.skipped] == ["astronaut.jpg"]
    assert sorted(p.name for p in resumed.done) == ["chelsea.webp", "coffee.png"]


def test_console_command_runs_a_folder_beside_the_inputs(photos: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), **FAST_ENV}
    command = [sys.executable, "-m", "server.cli", str(photos), "--mode", "test", "--format", "png", "--no-progress"]
    first = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert first.returncode == 1, first.stderr
    assert "3 enhanced, 0 already done, 1 failed" in first.stderr
    assert "broken.jpg" in first.stderr and "TEST MODE" in first.stderr
    assert (photos / "cats" / "coffee.enhanced.png").exists() and (photos / "astronaut.enhanced.png").exists()
    assert not list(photos.rglob("*.part"))
    (photos / "cats" / "broken.jpg").unlink()
    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr
    assert "0 enhanced, 3 already done, 0 failed" in second.stderr


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with live_server(tmp_path_factory.mktemp("cli-data"), KEY, "--mode", "test", env=FAST_ENV) as running:
        yield running


def test_url_mode_enhances_through_a_live_service(
    server: LiveServer, photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    monkeypatch.setenv(cli.API_KEY_ENV, KEY)
    code = cli.main([str(photos), "-o", str(out), "--url", server.url, "--variations", "2", "--no-progress"])
    assert code == cli.EXIT_FAILED  # the broken file
    assert len(list(out.rglob("*.enhanced.*"))) == 6
    with Image.open(out / "cats" / "chelsea.enhanced.2-natural.jpg") as image:
        assert image.format == "JPEG" and max(image.size) == 256
    (photos / "cats" / "broken.jpg").unlink()
    again = cli.main([str(photos), "-o", str(out), "--url", server.url, "--key", KEY, "--variations", "2"])
    assert again == cli.EXIT_OK


def test_service_start_shows_no_alembic_lines(server: LiveServer) -> None:
    # The service migrated its new database on start; Alembic's INFO lines stay off the terminal.
    log = server.log.read_text()
    assert "Application startup complete" in log
    assert "alembic" not in log


def test_url_mode_without_a_key_or_with_a_wrong_one_is_a_usage_error(
    server: LiveServer, photos: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(cli.API_KEY_ENV, raising=False)
    assert cli.main([str(photos), "--url", server.url]) == cli.EXIT_USAGE
    assert "needs an API key" in capsys.readouterr().err
    assert cli.main([str(photos), "--url", server.url, "--key", "wrong"]) == cli.EXIT_USAGE
    assert "refused the API key" in capsys.readouterr().err


# Runs the command-line tool's main() in a fresh interpreter, then reports which of the heavy
# packages that run imported (stderr, last line).
_REPORT_IMPORTS = """
import json, sys
from server import cli
code = cli.main(sys.argv[1:])
heavy = sorted({name.split(".")[0] for name in sys.modules} & {"torch", "torchvision", "spandrel", "models"})
print("IMPORTED " + json.dumps(heavy), file=sys.stderr)
sys.exit(code)
"""


def test_url_mode_imports_neither_pytorch_nor_the_models(server: LiveServer, photos: Path, tmp_path: Path) -> None:
    (photos / "cats" / "broken.jpg").unlink()
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), cli.API_KEY_ENV: KEY}
    command = [sys.executable, "-c", _REPORT_IMPORTS, str(photos), "-o", str(out), "--url", server.url, "--no-progress"]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "3 enhanced, 0 already done, 0 failed" in result.stderr
    assert result.stderr.strip().splitlines()[-1] == "IMPORTED []"
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.enhanced.*")) == [
        "astronaut.enhanced.jpg",
        "cats/chelsea.enhanced.jpg",
        "cats/coffee.enhanced.jpg",
    ]


def test_local_mode_still_loads_the_pipeline_in_process(photos: Path, tmp_path: Path) -> None:
    # The counterpart of the test above: the same probe sees PyTorch and the models in local mode, so an
    # empty list there is a real finding, not a probe that cannot see imports.
    (photos / "cats" / "broken.jpg").unlink()
    (photos / "cats" / "coffee.png").unlink()
    (photos / "astronaut.jpg").unlink()
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), **FAST_ENV}
    command = [
        sys.executable,
        "-c",
        _REPORT_IMPORTS,
        str(photos),
        "-o",
        str(tmp_path),
        "--mode",
        "test",
        "--no-progress",
    ]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "cats" / "chelsea.enhanced.jpg").exists()
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("IMPORTED ") and {"torch", "models"} <= set(json.loads(last.removeprefix("IMPORTED ")))

"""``phota-enhance IN... [-o OUT]`` (also ``python -m server.cli``): enhance photos and folders of
photos from the command line, in this process on the local device (default) or through a running
service (``--url``).

Inputs are files and folders; folders are walked recursively for the decoder's formats (hidden files,
our own outputs and the output folder itself are left out). Outputs (see :func:`output_paths`):
``<stem>.enhanced.<ext>`` beside each input, or under ``OUT`` keeping the layout below each input
folder; with ``--variations N`` > 1, ``<stem>.enhanced.<i>-<variation>.<ext>`` (``inferred``,
``natural``, ``detail``, ``tone``). A file whose outputs all exist is skipped (``--overwrite`` redoes
it); outputs are written to a temporary name and renamed, so an interrupted run never leaves half a
file and a rerun resumes. A failing file is reported and the rest continue. Exit status: 0 when every
file succeeded (or was already done), 1 when any failed, 2 for usage errors, 130 when interrupted."""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

import httpx
from tqdm import tqdm

OutputFormat = Literal["png", "jpg"]

# The decoder's formats, by file name (files named on the command line are tried whatever their name).
IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".webp", ".heic", ".heif", ".avif", ".tif", ".tiff", ".bmp", ".gif"}
)
# The names of ``models.pipeline.VARIATIONS``, in order (a test checks they agree): spelled out here
# so that --url mode never imports the pipeline, and with it PyTorch (seconds of start-up for a
# command that only sends HTTP requests). Local mode imports the pipeline when it loads it.
VARIATION_NAMES = ("inferred", "natural", "detail", "tone")
OUTPUT_MARK = ".enhanced"
_OUTPUT_STEM = re.compile(r"\.enhanced(\.\d+-[a-z]+)?$")
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
# Sends to a busy service (503) are retried this many times, after its Retry-After.
REMOTE_ATTEMPTS = 5
API_KEY_ENV = "PHOTA_API_KEY"


class UsageError(Exception):
    """Raised for command lines that cannot run (nothing to do, no key for --url, colliding outputs)."""


class FileFailedError(Exception):
    """Raised by an enhancer for one file that failed (bad image, refused request); the run continues."""


@dataclass(frozen=True)
class Task:
    """One input file and where its outputs go: ``folder / (stem + suffixes)``."""

    source: Path
    folder: Path
    stem: str


def is_own_output(path: Path) -> bool:
    return _OUTPUT_STEM.search(path.stem) is not None


def _walk(folder: Path, skip: Path | None) -> Iterator[Path]:
    for root, dirs, files in os.walk(folder):
        here = Path(root)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and (skip is None or (here / d).resolve() != skip))
        for name in sorted(files):
            path = here / name
            if not name.startswith(".") and path.suffix.lower() in IMAGE_SUFFIXES and not is_own_output(path):
                yield path


def find_tasks(inputs: Sequence[Path], out: Path | None) -> list[Task]:
    """The files to enhance: each input file, and every image file under each input folder. Outputs go
    beside their input, or under ``out`` at the input's path relative to its input folder (a file named
    directly goes to ``out`` itself). Two inputs of one folder with the same stem (``a.jpg``, ``a.png``)
    get ``a_jpg``, ``a_png``. Raises ``UsageError`` for a missing input or colliding outputs."""
    skip = out.resolve() if out is not None else None
    found: list[tuple[Path, Path]] = []  # (file, its output folder)
    for given in inputs:
        if given.is_dir():
            for path in _walk(given, skip):
                folder = path.parent if out is None else out / path.parent.relative_to(given)
                found.append((path, folder))
        elif given.is_file():
            found.append((given, given.parent if out is None else out))
        else:
            raise UsageError(f"no such file or folder: {given}")
    stems: dict[tuple[Path, str], int] = {}
    for path, folder in found:
        key = (folder.resolve(), path.stem)
        stems[key] = stems.get(key, 0) + 1
    tasks, seen = [], set()
    for path, folder in found:
        stem = path.stem
        if stems[(folder.resolve(), stem)] > 1:
            stem = f"{stem}_{path.suffix.lstrip('.').lower()}"
        key = (folder.resolve(), stem)
        if key in seen:
            raise UsageError(f"two inputs would write the same output {folder / stem}{OUTPUT_MARK}.*")
        seen.add(key)
        tasks.append(Task(source=path, folder=folder, stem=stem))
    return tasks


def output_paths(task: Task, variations: int, ext: str) -> list[Path]:
    """Where ``task``'s outputs go: ``<stem>.enhanced.<ext>``, or for several variations
    ``<stem>.enhanced.<i>-<name>.<ext>`` in the order of ``VARIATION_NAMES``."""
    if variations == 1:
        return [task.folder / f"{task.stem}{OUTPUT_MARK}.{ext}"]
    return [
        task.folder / f"{task.stem}{OUTPUT_MARK}.{i}-{name}.{ext}"
        for i, name in enumerate(VARIATION_NAMES[:variations], start=1)
    ]


def is_done(task: Task, variations: int, fmt: OutputFormat | None) -> bool:
    """Every output of ``task`` exists (in ``fmt``, or in either format when the service chooses)."""
    formats: tuple[str, ...] = (fmt,) if fmt else ("jpg", "png")
    per_format = [output_paths(task, variations, ext) for ext in formats]
    return all(any(paths[i].exists() for paths in per_format) for i in range(variations))


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` so that ``path`` is either absent or whole, also when the process is interrupted:
    the one atomic write of the project, :func:`weights.write_atomically` (imported on the first write,
    so that ``--url`` mode starts without it)."""
    from weights import write_atomically as write

    write(path, data)


def sniff_format(data: bytes) -> OutputFormat:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8"):
        return "jpg"
    raise FileFailedError("the output is neither PNG nor JPEG")


@dataclass(frozen=True)
class Request:
    """What every file is asked for."""

    variations: int = 1
    prompt: str | None = None
    fmt: OutputFormat | None = None


Stage = Callable[[str], None]


class Enhancer(Protocol):
    def enhance(self, data: bytes, request: Request, stage: Stage) -> list[bytes]:
        """Enhance one file's bytes into ``request.variations`` encoded images (PNG or JPEG bytes);
        ``stage`` is told each stage's name as it starts. Raises ``FileFailedError``."""
        ...

    def close(self) -> None: ...


class RemoteEnhancer:
    """Through a running service's ``POST /v1/phota/enhance`` (bytes mode), with its API key."""

    def __init__(self, url: str, key: str, *, timeout_s: float = 900.0) -> None:
        self.url = url.rstrip("/")
        self.client = httpx.Client(timeout=httpx.Timeout(timeout_s, connect=10.0), headers={"X-API-Key": key})

    def check(self) -> None:
        """Raises ``UsageError`` when the service cannot be reached or refuses the key."""
        try:
            response = self.client.get(f"{self.url}/v1/phota/profiles/ids")
        except httpx.HTTPError as exc:
            raise UsageError(f"cannot reach the service at {self.url}: {exc}") from None
        if response.status_code == 401:
            raise UsageError(f"the service at {self.url} refused the API key (401)")

    def enhance(self, data: bytes, request: Request, stage: Stage) -> list[bytes]:
        stage("upload")
        payload: dict[str, object] = {
            "image": base64.b64encode(data).decode("ascii"),
            "num_output_images": request.variations,
            "response_mode": "bytes",
        }
        if request.prompt:
            payload["prompt"] = request.prompt
        if request.fmt:
            payload["output_format"] = request.fmt
        body = json.dumps(payload).encode()
        for attempt in range(1, REMOTE_ATTEMPTS + 1):
            stage("enhance (service)")
            try:
                response = self.client.post(
                    f"{self.url}/v1/phota/enhance", content=body, headers={"Content-Type": "application/json"}
                )
            except httpx.HTTPError as exc:
                raise FileFailedError(f"request failed: {exc}") from None
            if response.status_code == 503 and attempt < REMOTE_ATTEMPTS:
                stage("service busy, waiting")
                time.sleep(float(response.headers.get("Retry-After", "5")))
                continue
            break
        if response.status_code != 200:
            raise FileFailedError(_error_text(response))
        stage("download")
        return [base64.b64decode(image) for image in response.json()["images"]]

    def close(self) -> None:
        self.client.close()


def _error_text(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}"
    detail = body.get("detail")
    if isinstance(detail, list):
        detail = "; ".join(str(item.get("msg", item)) for item in detail)
    return f"HTTP {response.status_code} {body.get('code', '')}: {detail}".replace("  ", " ")


class LocalEnhancer:
    """In this process, on the device the settings name (``ENHANCE_*`` from the environment)."""

    def __init__(self, mode: Literal["real", "test"] | None, device: str | None) -> None:
        from server.local import LocalPipeline
        from server.settings import get_settings

        settings = get_settings()
        updates: dict[str, object] = {}
        if mode is not None:
            updates["mode"] = mode
        if device is not None:
            updates["device"] = device
        self.pipeline = LocalPipeline.load(settings.model_copy(update=updates))

    def enhance(self, data: bytes, request: Request, stage: Stage) -> list[bytes]:
        from models.pipeline import InvalidImageError, ModelOutOfMemoryError, UnsupportedFormatError

        stage("enhance")
        try:
            return self.pipeline.enhance_file(
                data, request.variations, prompt=request.prompt, fmt=request.fmt, today=dt.date.today()
            )
        except (InvalidImageError, UnsupportedFormatError, ModelOutOfMemoryError) as exc:
            raise FileFailedError(str(exc)) from None

    def close(self) -> None:
        self.pipeline.close()


@dataclass
class Summary:
    done: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    interrupted: bool = False

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return EXIT_INTERRUPTED
        return EXIT_FAILED if self.failed else EXIT_OK


class _FileProgress:
    """The current file's bar: its stages, and a ticker showing the time spent against the time the
    earlier files took on average."""

    def __init__(self, bar: tqdm, label: str, expected_s: float | None) -> None:
        self.bar = bar
        self.label = label
        self.expected_s = expected_s
        self.started = time.monotonic()
        self.name = "read"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._tick, name="cli-progress", daemon=True)
        self._thread.start()

    def stage(self, name: str) -> None:
        self.name = name
        if self.bar.n < self.bar.total - 1:  # the last step is the file's end
            self.bar.update(1)
        self._show()

    def finish(self) -> None:
        self.bar.update(self.bar.total - self.bar.n)

    def _show(self) -> None:
        spent = time.monotonic() - self.started
        expected = f" of ~{self.expected_s:.0f}s" if self.expected_s else ""
        self.bar.set_description_str(f"{self.label}  {self.name} {spent:.0f}s{expected}")

    def _tick(self) -> None:
        while not self._stop.wait(0.5):
            self._show()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


def run_tasks(
    tasks: Sequence[Task],
    enhancer: Enhancer,
    request: Request,
    *,
    overwrite: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = lambda message: tqdm.write(message, file=sys.stderr),
) -> Summary:
    """Enhance every task not done yet (all when ``overwrite``), writing outputs atomically. A failing
    file is logged and the rest continue; Ctrl-C stops at once, keeping finished files."""
    summary = Summary()
    todo = []
    for task in tasks:
        if not overwrite and is_done(task, request.variations, request.fmt):
            summary.skipped.append(task.source)
        else:
            todo.append(task)
    if summary.skipped:
        log(f"skipping {len(summary.skipped)} file(s) already done (--overwrite to redo them)")
    total = tqdm(total=len(todo), desc="total", unit="file", disable=not progress, position=0, dynamic_ncols=True)
    seconds: list[float] = []
    try:
        for task in todo:
            bar = tqdm(
                total=4,
                bar_format="file  {bar:12} {desc}",
                disable=not progress,
                position=1,
                leave=False,
                dynamic_ncols=True,
            )
            file_progress = _FileProgress(bar, _short(task.source), sum(seconds) / len(seconds) if seconds else None)
            started = time.monotonic()
            try:
                data = task.source.read_bytes()
                outputs = enhancer.enhance(data, request, file_progress.stage)
                file_progress.stage("write")
                if len(outputs) != request.variations:
                    raise FileFailedError(f"expected {request.variations} outputs, got {len(outputs)}")
                for index, blob in enumerate(outputs):
                    write_atomically(output_paths(task, request.variations, sniff_format(blob))[index], blob)
                file_progress.finish()
                summary.done.append(task.source)
                seconds.append(time.monotonic() - started)
            except Exception as exc:  # one file's failure, whatever it is, must not stop the others
                reason = str(exc) if isinstance(exc, FileFailedError | OSError) else f"{type(exc).__name__}: {exc}"
                summary.failed.append((task.source, reason))
                log(f"FAILED {task.source}: {reason}")
            finally:
                file_progress.close()
                bar.close()
            total.update(1)
            total.set_postfix_str(f"{len(summary.failed)} failed" if summary.failed else "")
    except KeyboardInterrupt:
        summary.interrupted = True
    finally:
        total.close()
    return summary


def _short(path: Path, width: int = 32) -> str:
    text = str(path)
    return text if len(text) <= width else "…" + text[-(width - 1) :]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="phota-enhance",
        description="Enhance photos (files and folders, recursively) with the self-hosted enhance service's "
        "pipeline, in this process or through a running service (--url).",
        epilog="Outputs: <stem>.enhanced.<ext> beside each input (or under -o OUT, keeping the folder layout); "
        "with --variations N > 1: <stem>.enhanced.<i>-<variation>.<ext>. Existing outputs are skipped, so a rerun "
        "resumes. Exit status: 0 all done, 1 some failed, 2 usage error, 130 interrupted.",
    )
    parser.add_argument("inputs", nargs="+", type=Path, metavar="IN", help="image files and folders")
    parser.add_argument("-o", "--output", type=Path, default=None, metavar="OUT", help="write outputs under OUT")
    parser.add_argument("--overwrite", action="store_true", help="redo files whose outputs already exist")
    parser.add_argument("--prompt", default=None, help="instructions that steer the enhancement (e.g. 'sharper')")
    parser.add_argument(
        "--variations",
        type=int,
        default=1,
        choices=range(1, len(VARIATION_NAMES) + 1),
        metavar="N",
        help=f"outputs per input, 1..{len(VARIATION_NAMES)} (default 1)",
    )
    parser.add_argument(
        "--format",
        choices=["jpg", "png"],
        default=None,
        dest="fmt",
        help="output format (default: the service's: jpg, png for images with alpha)",
    )
    parser.add_argument("--url", default=None, help="use a running service at this base URL instead of this process")
    parser.add_argument("--key", default=None, help=f"API key for --url (default: ${API_KEY_ENV})")
    parser.add_argument(
        "--mode",
        choices=["real", "test"],
        default=None,
        help="in-process only: 'test' uses the fast stand-in upscaler, no network (default: ENHANCE_MODE, else real)",
    )
    parser.add_argument("--device", default=None, help="in-process only: cpu, cuda, cuda:N (default: ENHANCE_DEVICE)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (failures are still reported)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    request = Request(variations=args.variations, prompt=args.prompt, fmt=args.fmt)
    try:
        tasks = find_tasks(args.inputs, args.output)
        if not tasks:
            raise UsageError("no images found in the given inputs")
        enhancer: Enhancer
        if args.url:
            if args.mode or args.device:
                raise UsageError("--mode and --device apply in-process only; the service at --url has its own")
            key = args.key or os.environ.get(API_KEY_ENV)
            if not key:
                raise UsageError(f"--url needs an API key: --key KEY or the {API_KEY_ENV} environment variable")
            remote = RemoteEnhancer(args.url, key)
            remote.check()
            enhancer = remote
        else:
            enhancer = LocalEnhancer(args.mode, args.device)
    except UsageError as exc:
        parser.print_usage(sys.stderr)
        print(f"phota-enhance: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    try:
        summary = run_tasks(tasks, enhancer, request, overwrite=args.overwrite, progress=not args.no_progress)
    finally:
        enhancer.close()
    parts = [f"{len(summary.done)} enhanced", f"{len(summary.skipped)} already done", f"{len(summary.failed)} failed"]
    print(
        "phota-enhance: " + ", ".join(parts) + (" (interrupted; rerun to resume)" if summary.interrupted else ""),
        file=sys.stderr,
    )
    for path, reason in summary.failed:
        print(f"  failed: {path}: {reason}", file=sys.stderr)
    return summary.exit_code


if __name__ == "__main__":
    sys.exit(main())

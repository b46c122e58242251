"""The README stays the front door and stays true: its first two commands are the service's and CI's, it
stays short, and every setting is documented in the configuration page's table (docs/configuration.md)."""

from __future__ import annotations

import re
from pathlib import Path

from server.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
CONFIGURATION = ROOT / "docs" / "configuration.md"
# The configuration table's first column: one `NAME` per row.
TABLE_ROW = re.compile(r"^\| `([A-Z][A-Z0-9_]*)` \|", re.MULTILINE)


def _ci_command() -> str:
    ci = (ROOT / ".ci" / "run").read_text()
    return next(line for line in ci.splitlines() if line.startswith("python3 -m venv"))


def _fenced_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```[^\n]*\n(.*?)^```", markdown, re.MULTILINE | re.DOTALL)


def test_every_setting_is_in_the_configuration_table() -> None:
    rows = set(TABLE_ROW.findall(CONFIGURATION.read_text()))
    missing = [f"ENHANCE_{name.upper()}" for name in Settings.model_fields if f"ENHANCE_{name.upper()}" not in rows]
    assert missing == []


def test_the_configuration_table_names_only_real_settings() -> None:
    settings = {f"ENHANCE_{name.upper()}" for name in Settings.model_fields}
    rows = TABLE_ROW.findall(CONFIGURATION.read_text())
    # THP_MEM_ALLOC_ENABLE is PyTorch's own switch, which the server package sets (documented in the table).
    stale = [row for row in rows if row not in settings and row != "THP_MEM_ALLOC_ENABLE"]
    assert rows and stale == []


def test_ci_runs_the_readme_test_command() -> None:
    assert _ci_command() in README.read_text()


def test_the_first_two_commands_are_the_service_and_the_tests() -> None:
    first, second = _fenced_blocks(README.read_text())[:2]
    assert first.strip().endswith(".venv/bin/python -m server --host 127.0.0.1 --port 8000")
    assert second.strip() == _ci_command()


def test_the_readme_is_a_front_door() -> None:
    readme = README.read_text()
    assert len(readme.splitlines()) <= 300
    for section in ("## Try it", "## Test mode", "## Command line", "## The before/after page", "## Where to read on"):
        assert section in readme

"""The documentation stays inside the repository and whole: every link of README.md and docs/ resolves
to a file of the repository (and, for a Markdown file, to one of its headings), no link leaves it, every
page is in mkdocs.yml's nav, and the site builds with `mkdocs build --strict`."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
import yaml
from markdown import Markdown

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"

FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1", re.DOTALL)
# [text](target "title") and ![alt](target): the target up to whitespace or the closing bracket.
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_DEFINITION = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.MULTILINE)
AUTOLINK = re.compile(r"<((?:[a-zA-Z][a-zA-Z0-9+.-]*:|//)[^>\s]+)>")
HTML_LINK = re.compile(r"<(?:a|img)\b[^>]*?\b(?:href|src)\s*=\s*[\"']([^\"']*)[\"']", re.IGNORECASE)
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def markdown_files() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]


def prose(markdown: str) -> str:
    """The Markdown without fenced blocks and code spans (what is written there is code, not a link)."""
    return CODE_SPAN.sub("", FENCE.sub("", markdown))


def links(markdown: str) -> list[str]:
    text = prose(markdown)
    found: list[str] = []
    for pattern in (INLINE_LINK, REFERENCE_DEFINITION, AUTOLINK, HTML_LINK):
        found.extend(pattern.findall(text))
    return found


def anchors(markdown: str) -> set[str]:
    """The ids the headings get in the site: Python-Markdown's toc extension, as MkDocs runs it."""
    converter = Markdown(extensions=["tables", "attr_list", "toc"])
    converter.convert(markdown)

    def ids(tokens: list[dict[str, Any]]) -> set[str]:
        return {token["id"] for token in tokens} | {i for token in tokens for i in ids(token["children"])}

    return ids(converter.toc_tokens)  # type: ignore[attr-defined]


def problems(source: Path, markdown: str, root: Path = ROOT) -> list[str]:
    """What is wrong with the links of ``markdown`` (the text of ``source``), relative to ``root``."""
    found: list[str] = []
    for target in links(markdown):
        where = f"{source.relative_to(root)}: {target!r}"
        if not target:
            found.append(f"{where} is empty")
            continue
        if SCHEME.match(target) or target.startswith("//"):
            found.append(f"{where} leaves the repository")
            continue
        path_part, _, anchor = target.partition("#")
        if path_part.startswith("/"):
            found.append(f"{where} is absolute")
            continue
        if not path_part:
            if anchor not in anchors(markdown):
                found.append(f"{where} names no heading of its own page")
            continue
        resolved = (source.parent / unquote(path_part)).resolve()
        if not resolved.is_relative_to(root.resolve()):
            found.append(f"{where} points outside the repository")
        elif not resolved.is_file():
            found.append(f"{where} is not a file of the repository")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved.read_text()):
            found.append(f"{where} names no heading of {resolved.relative_to(root.resolve())}")
    return found


def test_every_link_resolves_inside_the_repository() -> None:
    found = [problem for path in markdown_files() for problem in problems(path, path.read_text())]
    assert found == []


def test_no_document_names_a_path_outside_the_repository() -> None:
    # The contract and design notes live beside the checkout, not in it: the docs quote them instead.
    offenders = [str(path.relative_to(ROOT)) for path in markdown_files() if "../shared" in path.read_text()]
    assert offenders == []


def test_the_link_check_finds_what_it_should(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "page.md").write_text("# A page\n\n## Second `part`\n")
    source = tmp_path / "README.md"
    text = (
        "[ok](docs/page.md) [ok anchor](docs/page.md#second-part) [self](#top) [self bad](#bottom)\n"
        "[gone](docs/missing.md) [bad anchor](docs/page.md#nothing) [web](https://example.com/x)\n"
        "<https://example.com/y> ![img](../elsewhere.png) [abs](/etc/passwd) [up](../README.md)\n"
        '<a href="http://example.com/z">z</a> `[code](https://example.com/ignored)`\n\n'
        "```\n[fenced](https://example.com/ignored)\n```\n\n[ref]: https://example.com/r\n"
        "# Top\n"
    )
    found = problems(source, text, root=tmp_path)
    assert len(found) == 10, found
    assert not any("docs/page.md'" in problem or "#top" in problem or "ignored" in problem for problem in found)
    assert sum("leaves the repository" in problem for problem in found) == 4
    assert sum("outside the repository" in problem for problem in found) == 2


def test_every_page_is_in_the_nav() -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())

    def pages(entry: object) -> list[str]:
        if isinstance(entry, str):
            return [entry]
        if isinstance(entry, list):
            return [page for item in entry for page in pages(item)]
        if isinstance(entry, dict):
            return [page for value in entry.values() for page in pages(value)]
        return []

    nav = pages(config["nav"])
    on_disk = sorted(str(path.relative_to(DOCS)) for path in DOCS.rglob("*.md"))
    assert sorted(nav) == on_disk
    assert len(nav) == len(set(nav))


def test_the_site_builds_strictly(tmp_path: Path) -> None:
    pytest.importorskip("material")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "--site-dir", str(tmp_path / "site")]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "site" / "architecture" / "index.html").is_file()
    assert (tmp_path / "site" / "img" / "soak-cpu-20min.png").stat().st_size > 10_000

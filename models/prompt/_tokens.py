"""``[[id]]`` tokens: the hosted API lets a prompt name candidate identities inline."""

from __future__ import annotations

import re

# Profile ids are opaque and URL-safe and never contain ``]``: anything else inside the brackets is
# left in the text as plain words.
_TOKEN = re.compile(r"\[\[\s*([A-Za-z0-9_\-.~]+)\s*\]\]")


def extract_profile_tokens(prompt: str | None) -> tuple[list[str], str]:
    """Split ``prompt`` into the ``[[id]]`` ids it names (in order, deduplicated) and the remaining text."""
    if not prompt:
        return [], prompt or ""
    ids = list(dict.fromkeys(_TOKEN.findall(prompt)))
    rest = " ".join(_TOKEN.sub(" ", prompt).split())
    return ids, rest


def merge_candidate_ids(profile_ids: list[str] | None, prompt: str | None) -> list[str]:
    """Candidates of a request: ``profile_ids`` then the prompt's ``[[id]]`` tokens, deduplicated, in order."""
    token_ids, _ = extract_profile_tokens(prompt)
    return list(dict.fromkeys([*(profile_ids or []), *token_ids]))

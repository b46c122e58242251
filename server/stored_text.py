"""Text the database can hold: the checks on ids, free text and labels that requests, jobs and
profiles share (pydantic field types, and a look-up guard). Nothing here knows HTTP."""

from __future__ import annotations

import unicodedata
from typing import Annotated

from pydantic import AfterValidator


def refuse_nul(value: str) -> str:
    """A string the database can store: PostgreSQL's text cannot hold NUL (U+0000)."""
    if "\x00" in value:
        raise ValueError("must not contain NUL (U+0000) characters")
    return value


def refuse_control(value: str) -> str:
    """A label: no control characters at all (NUL, tab, newline, escape, DEL, C1 ...)."""
    if any(unicodedata.category(char) == "Cc" for char in value):
        raise ValueError("must not contain control characters (U+0000-U+001F, U+007F-U+009F)")
    return value


def storable(value: str) -> bool:
    """Whether ``value`` can be looked up in the database at all (an id with NUL never exists)."""
    return "\x00" not in value


# Free text the service stores (a prompt may span lines): anything but NUL. A 422 otherwise.
StoredText = Annotated[str, AfterValidator(refuse_nul)]
# Labels (profile tags): printable text only. A 422 otherwise.
Label = Annotated[str, AfterValidator(refuse_control)]

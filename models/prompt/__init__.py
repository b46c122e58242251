"""Prompt handling: ``[[profile_id]]`` tokens lifted out, and the free text read as named intents.

* :func:`parse_prompt` → :class:`Steering`: intents found (with negation), unrecognised text, ids.
* :data:`INTENTS`: the intent table (name, patterns, parameter :class:`Change` records) — data.
* :func:`extract_profile_tokens`, :func:`merge_candidate_ids`: the ``[[id]]`` tokens.
"""

from models.prompt._intents import INTENTS, Change, Intent
from models.prompt._steer import FoundIntent, Steering, intent_names, parse_prompt
from models.prompt._tokens import extract_profile_tokens, merge_candidate_ids

__all__ = [
    "INTENTS",
    "Change",
    "FoundIntent",
    "Intent",
    "Steering",
    "extract_profile_tokens",
    "intent_names",
    "merge_candidate_ids",
    "parse_prompt",
]

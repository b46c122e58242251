"""Prompt handling: identity tokens (``[[profile_id]]``) lifted out of the free text."""

from models.prompt._tokens import extract_profile_tokens, merge_candidate_ids

__all__ = ["extract_profile_tokens", "merge_candidate_ids"]

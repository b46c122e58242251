"""Prompt steering: the free text of ``prompt`` → named intents → parameter changes.

Rules, not a model: the prompt is split into clauses (punctuation, "and", "but", "then", "also", "&");
each clause is normalised (Unicode NFKC, lower case, typographic apostrophes), its misspelt words
(five letters or more) are corrected to the intents' vocabulary when they are close (difflib ratio ≥
0.8), and the intents' patterns are matched in table order. A clause in which no word is English is
not read at all (another language: it changes nothing, except language-neutral size tokens such as
"4K" or "2x"). Whatever a clause says beyond its matches is reported as unrecognised, and changes
nothing. Deterministic; never raises on any string.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from dataclasses import dataclass, field

from models.prompt._intents import ENGLISH_WORDS, INTENTS, NEGATION_CUE, Change, Intent
from models.prompt._tokens import extract_profile_tokens

_BY_NAME = {intent.name: intent for intent in INTENTS}
_COMPILED = {intent.name: [re.compile(p) for p in intent.patterns] for intent in INTENTS}
_CLAUSE_SPLIT = re.compile(r"[.,;:!?\n()]+|\s(?:and|but|then|also|&)\s")
_WORD = re.compile(r"[^\W\d_][\w']*|\d+\s*[a-z%]?", re.UNICODE)
_NEGATION = re.compile(NEGATION_CUE)
_FILLER = ENGLISH_WORDS


def _vocabulary() -> list[str]:
    words: set[str] = set()
    for intent in INTENTS:
        for pattern in intent.patterns:
            words.update(w for w in re.findall(r"[a-z]{5,}", pattern))
    return sorted(words | {w for w in ENGLISH_WORDS if len(w) >= 5})


_VOCABULARY = _vocabulary()
_INFLECTIONS = frozenset(
    {"s", "es", "ed", "d", "ing", "er", "ers", "en", "ened", "ening", "ness", "ly", "y", "ier", "e"}
)


@dataclass(frozen=True)
class FoundIntent:
    """An intent found in the prompt: ``phrase`` is the text that matched; ``negated`` says it came from
    a negated phrase of another intent (``from_intent``)."""

    name: str
    phrase: str
    negated: bool = False
    from_intent: str | None = None


@dataclass(frozen=True)
class Steering:
    """What the prompt asks for. ``changes`` are in the order they apply (later ones win)."""

    profile_ids: list[str] = field(default_factory=list)
    intents: list[FoundIntent] = field(default_factory=list)
    unrecognised: list[str] = field(default_factory=list)
    corrections: dict[str, str] = field(default_factory=dict)

    @property
    def changes(self) -> list[Change]:
        return [change for found in self.intents for change in _BY_NAME[found.name].changes]


def _normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    return text.replace("\u2019", "'").replace("\u2018", "'").replace("`", "'")


def _known(word: str, *, fuzzy: bool = False) -> bool:
    """``word`` is English: listed, an inflection of a listed word, or (``fuzzy``) a near miss of one."""
    if word in ENGLISH_WORDS or word in _VOCABULARY:
        return True
    if any(word.startswith(stem) and word[len(stem) :] in _INFLECTIONS for stem in _VOCABULARY):
        return True
    return fuzzy and len(word) >= 5 and word.isascii() and bool(difflib.get_close_matches(word, _VOCABULARY, 1, 0.8))


def _is_english(clause: str, words: list[str]) -> bool:
    """A clause is read when one of its words is English or one of the English intents matches it."""
    if any(w[0].isalpha() and _known(w, fuzzy=True) for w in words):
        return True
    return any(p.search(clause) for i in INTENTS if not i.neutral for p in _COMPILED[i.name])


def _correct(clause: str, corrections: dict[str, str]) -> str:
    def fix(match: re.Match[str]) -> str:
        word = match.group(0)
        if len(word) < 5 or not word.isascii() or word in _FILLER or word in _VOCABULARY:
            return word
        if _known(word):
            return word  # an inflection of a known word ("denoising", "upscaled")
        close = difflib.get_close_matches(word, _VOCABULARY, n=1, cutoff=0.8)
        if close:
            corrections[word] = close[0]
            return close[0]
        return word

    return re.sub(r"[a-z']+", fix, clause)


def _leftover(text: str) -> str:
    words = [w for w in _WORD.findall(text) if w not in _FILLER and not _NEGATION.fullmatch(w)]
    return " ".join(words)


def _read_clause(clause: str, found: list[FoundIntent], corrections: dict[str, str]) -> str:
    """Match intents in one normalised clause; return the words that meant nothing."""
    words = _WORD.findall(clause)
    english = _is_english(clause, words)
    alphabetic = [w for w in words if w[0].isalpha()]
    if english and sum(_known(w, fuzzy=True) for w in alphabetic) * 2 >= len(alphabetic):
        # Spelling is only corrected in clauses that are mostly English words: in a mixed clause a
        # foreign word ("contraste" in "photo avec moins de contraste") must not become an intent.
        clause = _correct(clause, corrections)
    remaining = clause
    for intent in INTENTS:
        if not english and not intent.neutral:
            continue
        for pattern in _COMPILED[intent.name]:
            for match in list(pattern.finditer(remaining)):
                if not match.group(0).strip():
                    continue
                negated = bool(_NEGATION.search(remaining[: match.start()])) and intent.negation is not None
                target: Intent = _BY_NAME[intent.negation] if negated and intent.negation else intent
                span = match.end() - match.start()
                remaining = remaining[: match.start()] + " " * span + remaining[match.end() :]
                if any(f.name == target.name for f in found):
                    continue  # said twice ("anime illustration"): applied once
                found.append(
                    FoundIntent(
                        name=target.name,
                        phrase=match.group(0),
                        negated=negated,
                        from_intent=intent.name if negated else None,
                    )
                )
    if not english:
        return _leftover(remaining) if not any(w.isalpha() for w in remaining.split()) else remaining.strip()
    return _leftover(remaining)


def parse_prompt(prompt: str | None) -> Steering:
    """Read ``prompt``: ``[[id]]`` tokens, intents (in order of appearance), unrecognised text."""
    ids, text = extract_profile_tokens(prompt)
    found: list[FoundIntent] = []
    unrecognised: list[str] = []
    corrections: dict[str, str] = {}
    for raw in _CLAUSE_SPLIT.split(_normalise(text or "")):
        clause = " ".join(raw.split())
        if not clause:
            continue
        rest = _read_clause(clause, found, corrections)
        if rest.strip():
            unrecognised.append(" ".join(rest.split()))
    return Steering(profile_ids=ids, intents=found, unrecognised=unrecognised, corrections=corrections)


def intent_names() -> list[str]:
    """Every intent's name, in table order."""
    return [intent.name for intent in INTENTS]

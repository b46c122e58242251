"""Prompt steering: intents from tolerant phrasing, negation, other languages, unrecognised text, ids."""

from __future__ import annotations

import pytest

from models.prompt import INTENTS, intent_names, parse_prompt


def names(prompt: str) -> list[str]:
    return [found.name for found in parse_prompt(prompt).intents]


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("make it sharper", ["sharper"]),
        ("Sharpen the details please", ["sharper"]),
        ("crisper", ["sharper"]),
        ("softer look", ["softer"]),
        ("less sharp", ["softer"]),
        ("more denoising", ["more_denoise"]),
        ("remove the noise", ["more_denoise"]),
        ("less denoise", ["less_denoise"]),
        ("keep the film grain", ["keep_grain"]),
        ("a bit brighter", ["brighter"]),
        ("darker", ["darker"]),
        ("warmer", ["warmer"]),
        ("cooler tones", ["cooler"]),
        ("more contrast", ["more_contrast"]),
        ("less contrast", ["less_contrast"]),
        ("2x", ["size_2x"]),
        ("upscale 4x", ["size_4x"]),
        ("in 4K", ["size_4k"]),
        ("keep the original size", ["keep_size"]),
        ("it's an anime illustration", ["illustration"]),
        ("this is a photograph", ["photo"]),
        ("leave the faces alone", ["leave_faces_alone"]),
        ("don't touch the faces", ["leave_faces_alone"]),
        ("no colour changes", ["no_colour_changes"]),
        ("keep the colors", ["no_colour_changes"]),
    ],
)
def test_intent_is_found_for_common_phrasings(prompt: str, expected: list[str]) -> None:
    assert names(prompt) == expected


def test_several_intents_are_found_in_order_across_clauses() -> None:
    assert names("Sharper and warmer, a bit brighter; 2x") == ["sharper", "warmer", "brighter", "size_2x"]


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("don't sharpen", "no_sharpening"),
        ("do not sharpen it", "no_sharpening"),
        ("no sharpening", "no_sharpening"),
        ("do not denoise", "keep_grain"),
        ("not brighter", "keep_brightness"),
        ("never add contrast", "keep_contrast"),
        ("don't make it warmer", "neutral_temperature"),
    ],
)
def test_negation_turns_an_intent_into_its_opposite(prompt: str, expected: str) -> None:
    assert names(prompt) == [expected]


def test_negation_does_not_reach_into_the_next_clause() -> None:
    assert names("don't denoise, but sharper") == ["keep_grain", "sharper"]


@pytest.mark.parametrize("prompt", ["Sharpr pls", "make it brigther", "more contrsat"])
def test_misspelt_words_are_corrected_to_known_intents(prompt: str) -> None:
    steering = parse_prompt(prompt)
    assert len(steering.intents) == 1
    assert steering.corrections


@pytest.mark.parametrize(
    "prompt",
    [
        "plus de contraste, s'il vous plaît",
        "moins de contraste",
        "Mach es bitte schärfer",
        "hazlo más nítido",
        "più luminoso",
        "もっと明るく",
        "更清晰一点",
    ],
)
def test_other_languages_change_nothing_and_are_reported(prompt: str) -> None:
    steering = parse_prompt(prompt)
    assert steering.intents == []
    assert steering.changes == []
    assert steering.unrecognised


def test_language_neutral_size_tokens_count_in_any_language() -> None:
    steering = parse_prompt("hazlo más nítido en 4K")
    assert [f.name for f in steering.intents] == ["size_4k"]
    assert steering.unrecognised == ["hazlo más nítido en"]


def test_unrecognised_text_changes_nothing_and_is_reported() -> None:
    steering = parse_prompt("make the sky pop like a sunset")
    assert steering.intents == [] and steering.changes == []
    assert steering.unrecognised == ["sky pop sunset"]


def test_profile_tokens_are_lifted_out_and_not_reported_as_text() -> None:
    steering = parse_prompt("sharper [[prof_a]] and [[prof_b]]")
    assert steering.profile_ids == ["prof_a", "prof_b"]
    assert names("sharper [[prof_a]] and [[prof_b]]") == ["sharper"]
    assert steering.unrecognised == []


@pytest.mark.parametrize(
    "prompt", [None, "", "   ", "!!!", "🙂🙂", "a" * 5000, "\x00\x07 sharp\u200ber", "[[", "]] [[x"]
)
def test_parse_prompt_never_raises(prompt: str | None) -> None:
    steering = parse_prompt(prompt)
    assert isinstance(steering.unrecognised, list)


def test_parse_prompt_is_deterministic() -> None:
    prompt = "sharper, keep grain, no colour changes, 4k, don't denoise, plus de contraste"
    assert parse_prompt(prompt) == parse_prompt(prompt)


def test_intent_names_are_unique_and_negations_exist() -> None:
    all_names = intent_names()
    assert len(all_names) == len(set(all_names))
    for intent in INTENTS:
        assert intent.negation is None or intent.negation in all_names

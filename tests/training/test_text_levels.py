"""MLA text levels (docs/design.md, "Training objective") on tricky captions; every expected value is worked out
by hand from the rules."""

from __future__ import annotations

import random

import pytest

from ivt_hf.training.finetuning.text_levels import (
    phrase_candidates,
    sample_text_levels,
    sentence_level,
    word_candidates,
)

# caption -> (phrase candidates, word candidates), in order
CASES = {
    "two sentences": (
        "A woman wearing a red shirt, blue jeans and white shoes. She carries a black bag.",
        ["a woman wearing a red shirt", "blue jeans and white shoes", "she carries a black bag"],
        ["a woman wearing a red shirt", "blue jeans and white shoes", "she carries a black bag"],
    ),
    "remainder re-joined with commas": (
        "The man has short hair, a grey jacket, black trousers, and brown shoes.",
        ["the man has short hair", "a grey jacket, black trousers, and brown shoes"],
        ["the man has short hair", "a grey jacket", "black trousers", "and brown shoes"],
    ),
    "no comma": ("A man in black.", ["a man in black"], ["a man in black"]),
    # chunks of 3, 4, 4 characters: the first longest ("tall") is too short, the re-joined rest is not
    "only short chunks": ("Red, tall, thin.", ["red, thin"], []),
    "short sentences": ("Red. Tall.", [], []),
    "brackets": (
        "[A girl with a pink umbrella, white dress]",
        ["a girl with a pink umbrella", "white dress"],
        ["a girl with a pink umbrella", "white dress"],
    ),
    "bracket then dot at the end": ("[a man walking.]", ["a man walking"], ["a man walking"]),
    "repeated dots": (
        "A man walking... He wears a hat..",
        ["a man walking", "he wears a hat"],
        ["a man walking", "he wears a hat"],
    ),
    # "a man" has exactly 5 characters: not kept as a word; ties for the longest chunk go to the first one
    "whitespace": (
        "  A man ,  blue coat  ,black bag  \n",
        ["blue coat", "a man, black bag"],
        ["blue coat", "black bag"],
    ),
    "blank chunks": (
        "a man in red,, walking fast,",
        ["a man in red", "walking fast"],
        ["a man in red", "walking fast"],
    ),
    "surrounding spaces do not count": (" abcde ,xyz uvw qrs", ["xyz uvw qrs"], ["xyz uvw qrs"]),
    "unicode": (
        "Ein Mädchen mit GRÜNER Jacke, weiße Schuhe.",
        ["ein mädchen mit grüner jacke", "weiße schuhe"],
        ["ein mädchen mit grüner jacke", "weiße schuhe"],
    ),
    "unicode lengths are characters": ("Café, naïve", [], []),
    "empty": ("", [], []),
    "only punctuation": ("...", [], []),
}


@pytest.mark.parametrize("name", list(CASES))
def test_candidates(name):
    caption, phrases, words = CASES[name]
    assert phrase_candidates(caption) == phrases
    assert word_candidates(caption) == words


def test_sentence_level_is_lower_cased_caption():
    assert sentence_level("  A Man in BLACK, Running.\n") == "a man in black, running."
    assert sentence_level("Ein Mädchen MIT GRÜNER Jacke") == "ein mädchen mit grüner jacke"


@pytest.mark.parametrize("name", list(CASES))
def test_sample_picks_from_candidates_or_falls_back_to_caption(name):
    caption, phrases, words = CASES[name]
    for seed in range(20):
        word, phrase, sentence = sample_text_levels(caption, random.Random(seed))
        assert sentence == sentence_level(caption)
        assert word in words if words else word == sentence
        assert phrase in phrases if phrases else phrase == sentence


def test_no_candidate_falls_back_to_whole_caption():
    # the reference crashes here (random.sample of an empty list)
    assert sample_text_levels("Red. Tall.", random.Random(0)) == ("red. tall.", "red. tall.", "red. tall.")


def test_sampling_is_deterministic_and_covers_every_sentence():
    caption = CASES["two sentences"][0]
    draws = [sample_text_levels(caption, random.Random(seed)) for seed in range(200)]
    assert draws == [sample_text_levels(caption, random.Random(seed)) for seed in range(200)]
    assert {phrase for _, phrase, _ in draws} == set(phrase_candidates(caption))
    assert {word for word, _, _ in draws} == set(word_candidates(caption))


def test_rejects_non_string():
    with pytest.raises(TypeError):
        sample_text_levels(None, random.Random(0))

"""Multi-level alignment (MLA) text views: word, phrase and sentence level from one caption.

IVT (Shu et al., arXiv 2208.08608, section 3.2) pairs each training image with three texts of different
granularity and trains one CMPM loss over all of them. The reference derives the shorter texts from the caption with
plain string rules (no parser); this module implements them as `docs/design.md`, "Training objective", states them:

- sentence: the caption, lower-cased.
- phrase: strip ``.``, ``[``, ``]`` at the ends, split into sentences on ``.``; per sentence split on ``,``; the
  candidates are the longest comma chunk and the remaining chunks re-joined with ``,``; keep candidates longer than
  5 characters; pick one at random over all sentences.
- word: a random comma chunk longer than 5 characters (the reference's fallback for datasets without attribute
  annotations, used for every dataset here because CUHK-PEDES's attribute dict was never published).

Decisions where the rules leave room (each keeps the tokenised result of the reference's typical caption):

- Everything is lower-cased first (the tokeniser is uncased anyway, so this only makes the strings readable).
- Candidates are returned with surrounding whitespace removed, and "longer than 5 characters" is measured on that
  stripped text (so ``" a b "`` does not count as 5 characters of content). Chunk length for "longest" is measured
  the same way; ties go to the first chunk.
- Blank comma chunks (``"a,,b"``, a trailing comma) are ignored, so a re-joined phrase never starts or ends with
  a comma.
- When a caption yields no candidate at all (the reference crashes there), the level falls back to the sentence
  level, i.e. the whole lower-cased caption.
"""

from __future__ import annotations

import random

__all__ = [
    "MIN_CANDIDATE_CHARS",
    "phrase_candidates",
    "sample_text_levels",
    "sentence_level",
    "word_candidates",
]

MIN_CANDIDATE_CHARS = 5
"""A phrase or word candidate must have MORE than this many characters (after stripping surrounding whitespace)."""

_END_CHARACTERS = ".[]"


def sentence_level(caption: str) -> str:
    """The sentence-level text: the caption, lower-cased, without surrounding whitespace."""
    if not isinstance(caption, str):
        raise TypeError(f"caption must be a str, got {type(caption).__name__}")
    return caption.strip().lower()


def _comma_chunks_per_sentence(caption: str) -> list[list[str]]:
    """Non-blank comma chunks of each `.`-separated sentence, whitespace-stripped; sentences without chunks dropped."""
    body = sentence_level(caption).strip(_END_CHARACTERS)
    sentences = []
    for sentence in body.split("."):
        chunks = [chunk.strip() for chunk in sentence.split(",")]
        chunks = [chunk for chunk in chunks if chunk]
        if chunks:
            sentences.append(chunks)
    return sentences


def _is_long_enough(text: str) -> bool:
    return len(text) > MIN_CANDIDATE_CHARS


def phrase_candidates(caption: str) -> list[str]:
    """All phrase-level candidates of `caption`, in sentence order (may be empty).

    Per sentence: its longest comma chunk, then the other chunks re-joined with ", " (the caption's usual
    spacing). Only candidates longer than `MIN_CANDIDATE_CHARS` characters are kept. Duplicates are kept on purpose,
    so that sampling weights every sentence's candidates like the reference does.
    """
    candidates = []
    for chunks in _comma_chunks_per_sentence(caption):
        longest_index = max(range(len(chunks)), key=lambda index: len(chunks[index]))  # first one on ties
        remainder = ", ".join(chunks[:longest_index] + chunks[longest_index + 1 :])
        candidates.extend(text for text in (chunks[longest_index], remainder) if _is_long_enough(text))
    return candidates


def word_candidates(caption: str) -> list[str]:
    """All word-level candidates of `caption`: every comma chunk (of every sentence) longer than 5 characters."""
    return [chunk for chunks in _comma_chunks_per_sentence(caption) for chunk in chunks if _is_long_enough(chunk)]


def sample_text_levels(caption: str, rng: random.Random) -> tuple[str, str, str]:
    """Draw the (word, phrase, sentence) texts of one caption for one training step.

    `rng` is a `random.Random` owned by the caller (seed it per sample or per step for reproducible, resumable
    training). It is consumed in a fixed order: one draw for the word, then one for the phrase, each skipped when
    that level has no candidate and falls back to the sentence.
    """
    sentence = sentence_level(caption)
    words = word_candidates(caption)
    phrases = phrase_candidates(caption)
    word = rng.choice(words) if words else sentence
    phrase = rng.choice(phrases) if phrases else sentence
    return word, phrase, sentence

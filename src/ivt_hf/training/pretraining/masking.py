"""Whole-word masking for the pre-training MLM loss (the authors' rules, written from `docs/design.md`'s description).

A caption's words are found from WordPiece: a token starting with `##` continues the word before it. Words are drawn
in random order; with probability `span_probability` a drawn word starts a span of 2 to `max_span_words` consecutive
words. Whole words (or spans) are taken while they fit into the budget `min(max_predictions, max(1, round(p * n)))`,
n the number of caption tokens (`[CLS]` and padding excluded). Of the chosen positions 80 % become `[MASK]`, 10 % a
random word token, 10 % stay; the label is the original id there and -100 elsewhere.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from ...errors import IVTInputError

IGNORE_INDEX = -100


@dataclass(frozen=True)
class MaskingRules:
    mask_probability: float = 0.25
    max_predictions: int = 8
    span_probability: float = 0.2
    max_span_words: int = 3
    mask_fraction: float = 0.8  # of the chosen positions: [MASK]
    random_fraction: float = 0.1  # a random token; the rest keep their token

    def __post_init__(self):
        if not 0.0 < self.mask_probability <= 1.0:
            raise IVTInputError(f"mask_probability must be in (0, 1], got {self.mask_probability}")
        if self.max_predictions < 1:
            raise IVTInputError(f"max_predictions must be >= 1, got {self.max_predictions}")
        if not 0.0 <= self.span_probability <= 1.0:
            raise IVTInputError(f"span_probability must be in [0, 1], got {self.span_probability}")
        if self.max_span_words < 1:
            raise IVTInputError(f"max_span_words must be >= 1, got {self.max_span_words}")
        if self.mask_fraction < 0 or self.random_fraction < 0 or self.mask_fraction + self.random_fraction > 1:
            raise IVTInputError("mask_fraction and random_fraction must be >= 0 and sum to at most 1")


def word_spans(tokens: Sequence[str], start: int = 1) -> list[tuple[int, int]]:
    """`[begin, end)` token ranges of the words in `tokens[start:]` (a `##` token continues the previous word)."""
    spans: list[tuple[int, int]] = []
    for position in range(start, len(tokens)):
        if tokens[position].startswith("##") and spans:
            spans[-1] = (spans[-1][0], position + 1)
        else:
            spans.append((position, position + 1))
    return spans


def whole_word_mask(
    input_ids: Sequence[int],
    tokens: Sequence[str],
    *,
    mask_token_id: int,
    random_token_ids: tuple[int, int],
    rng: random.Random,
    rules: MaskingRules = MaskingRules(),
) -> tuple[list[int], list[int]]:
    """Mask one caption.

    Args:
        input_ids: the caption's real ids, `[CLS]` first, no padding.
        tokens: the WordPiece strings of those ids (same length).
        mask_token_id: id of `[MASK]`.
        random_token_ids: `[low, high)` ids a random replacement is drawn from (the ordinary tokens).
        rng: the random source (seed it per caption for reproducible masks).
    Returns:
        `(masked_ids, labels)`, both of the input's length.
    """
    if len(input_ids) != len(tokens):
        raise IVTInputError(f"{len(input_ids)} ids but {len(tokens)} tokens")
    words = word_spans(tokens)
    num_tokens = len(input_ids) - 1
    budget = min(rules.max_predictions, max(1, round(rules.mask_probability * num_tokens)))
    order = list(range(len(words)))
    rng.shuffle(order)
    chosen: set[int] = set()  # word indices
    num_chosen = 0
    for word in order:
        if num_chosen >= budget:
            break
        if word in chosen:
            continue
        span_length = 1
        if rules.max_span_words > 1 and rng.random() < rules.span_probability:
            span_length = rng.randint(2, rules.max_span_words)
        span = [index for index in range(word, min(word + span_length, len(words))) if index not in chosen]
        size = sum(words[index][1] - words[index][0] for index in span)
        if num_chosen + size > budget:
            continue
        chosen.update(span)
        num_chosen += size
    masked = list(input_ids)
    labels = [IGNORE_INDEX] * len(input_ids)
    for word in sorted(chosen):
        for position in range(*words[word]):
            labels[position] = input_ids[position]
            draw = rng.random()
            if draw < rules.mask_fraction:
                masked[position] = mask_token_id
            elif draw < rules.mask_fraction + rules.random_fraction:
                masked[position] = rng.randrange(*random_token_ids)
    return masked, labels


__all__ = ["IGNORE_INDEX", "MaskingRules", "whole_word_mask", "word_spans"]

"""Pre-training batches: pairs from the stream, shuffled, numbered, then decoded and masked in DataLoader workers.

    pair stream (this process's shards) -> ShuffleBuffer -> PairBatches (main process: numbered batches of raw pairs,
    and the resume state after each) -> DataLoader workers: PairCollator (decode, augment, tokenise, mask) -> loop

Only encoded bytes cross to the workers, and every random draw of a worker (augmentation, masks) is a pure function of
(seed, process, batch number, position), so the batches do not depend on how many workers there are or how far they
read ahead. What the loop checkpoints is `PairBatches.state_after(n)`, the shuffle buffer's state (stream position,
buffered pairs, generator) right after batch n was drawn: a resumed run starts with batch n + 1, as the interrupted
run would have, whatever the workers had read ahead.

A pair whose image does not decode is left out of its batch and reported in the batch's `invalid` list; the loop
raises or skips it (`--on_invalid`).
"""

from __future__ import annotations

import io
import random
from collections.abc import Iterator
from typing import Any

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from ...data.pairs import PairDataError, clean_caption
from ...data.shuffle_buffer import ShuffleBuffer
from ..transforms import TrainTransform
from .masking import IGNORE_INDEX, MaskingRules, whole_word_mask

# (batch number, position in the batch, pair from the stream)
PlannedPair = tuple[int, int, dict[str, Any]]


class PairBatches:
    """Numbered batches of `batch_size` raw pairs drawn from `source` (a `ShuffleBuffer`), starting with batch
    `first_batch`: the batch sampler of the pre-training DataLoader, iterated in the main process."""

    def __init__(self, source: ShuffleBuffer, batch_size: int, first_batch: int = 0):
        self.source = source
        self.batch_size = batch_size
        self.first_batch = first_batch
        self._states: dict[int, dict[str, Any]] = {}

    def __iter__(self) -> Iterator[list[PlannedPair]]:
        pairs = iter(self.source)
        number = self.first_batch
        while True:
            batch = [next(pairs) for _ in range(self.batch_size)]
            self._states[number] = self.source.state_dict()
            yield [(number, position, pair) for position, pair in enumerate(batch)]
            number += 1

    def state_after(self, number: int) -> dict[str, Any]:
        """The shuffle buffer's state right after batch `number` was drawn (states of earlier batches are dropped)."""
        state = self._states[number]
        for earlier in [key for key in self._states if key <= number]:
            del self._states[earlier]
        return state


class _PlannedPairs(Dataset):
    """The DataLoader's dataset: a planned pair is its own item (the batch sampler yields the pairs themselves)."""

    def __getitem__(self, item: PlannedPair) -> PlannedPair:
        return item


class PairCollator:
    """Planned pairs -> a pre-training batch: augmented images, cleaned captions as `[CLS]` + tokens padded to
    `max_text_tokens` (no `[SEP]`, as the authors), and the whole-word-masked copy with its labels; plus
    `batch_number`, `pairs` ([epoch, key] of every pair in the batch) and `invalid` ([key, reason] of every pair left
    out because its image does not decode).

    Randomness is a pure function of (seed, rank, batch number, position): a resumed run, or a run with another number
    of workers, draws the same views and masks."""

    def __init__(
        self,
        tokenizer,
        transform: TrainTransform,
        *,
        seed: int,
        rank: int = 0,
        max_text_tokens: int = 50,
        max_caption_words: int = 50,
        rules: MaskingRules = MaskingRules(),
    ):
        self.tokenizer = tokenizer
        self.transform = transform
        self.seed = seed
        self.rank = rank
        self.max_text_tokens = max_text_tokens
        self.max_caption_words = max_caption_words
        self.rules = rules
        vocab = tokenizer.get_vocab()
        ordinary = [index for token, index in vocab.items() if not (token.startswith("[") and token.endswith("]"))]
        self.random_token_ids = (min(ordinary), len(vocab))  # BERT: "!" (999) onwards; the [unusedN] come before
        self.mask_token_id = tokenizer.mask_token_id
        self.pad_token_id = tokenizer.pad_token_id

    def view(self, pair: dict[str, Any], batch_number: int, position: int) -> torch.Tensor:
        """The augmented image of a pair, `(3, H, W)`; `PairDataError` if its bytes do not decode."""
        try:
            with Image.open(io.BytesIO(pair["image"])) as image:
                image.load()
                image = image.convert("RGB")
        except Exception as error:  # PIL raises many types for broken files (OSError, SyntaxError, ValueError, ...)
            raise PairDataError(
                f"the image does not decode ({type(error).__name__}: {error})", key=pair["key"]
            ) from None
        generator = torch.Generator().manual_seed(hash((self.seed, self.rank, batch_number, position)) % (2**62))
        return self.transform(image, generator)

    def caption_tokens(self, caption: str, key: str) -> list[str]:
        """`[CLS]` + the cleaned caption's WordPiece tokens, at most `max_text_tokens` in all (no `[SEP]`)."""
        try:
            words = clean_caption(caption, self.max_caption_words)
        except ValueError as error:
            raise PairDataError(str(error), key=key) from None
        return [self.tokenizer.cls_token, *self.tokenizer.tokenize(words)[: self.max_text_tokens - 1]]

    def __call__(self, planned: list[PlannedPair]) -> dict[str, Any]:
        batch_number = planned[0][0]
        views, kept, invalid = [], [], []
        for _, position, pair in planned:
            try:
                views.append(self.view(pair, batch_number, position))
                kept.append(pair)
            except PairDataError as error:
                invalid.append([pair["key"], error.reason])
        rng = random.Random(f"{self.seed}-{self.rank}-{batch_number}")
        length, rows = self.max_text_tokens, len(kept)
        input_ids = torch.full((rows, length), self.pad_token_id, dtype=torch.long)
        mlm_input_ids = input_ids.clone()
        mlm_labels = torch.full((rows, length), IGNORE_INDEX, dtype=torch.long)
        attention_mask = torch.zeros((rows, length), dtype=torch.long)
        for row, pair in enumerate(kept):
            tokens = self.caption_tokens(pair["caption"], pair["key"])
            ids = self.tokenizer.convert_tokens_to_ids(tokens)
            masked, labels = whole_word_mask(
                ids,
                tokens,
                mask_token_id=self.mask_token_id,
                random_token_ids=self.random_token_ids,
                rng=rng,
                rules=self.rules,
            )
            input_ids[row, : len(ids)] = torch.tensor(ids)
            mlm_input_ids[row, : len(ids)] = torch.tensor(masked)
            mlm_labels[row, : len(ids)] = torch.tensor(labels)
            attention_mask[row, : len(ids)] = 1
        height, width = self.transform.image_size
        return {
            "pixel_values": torch.stack(views) if views else torch.zeros(0, 3, height, width),
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "mlm_input_ids": mlm_input_ids,
            "mlm_labels": mlm_labels,
            "batch_number": batch_number,
            "pairs": [[pair["epoch"], pair["key"]] for pair in kept],
            "invalid": invalid,
        }


def pair_loader(batches: PairBatches, collator: PairCollator, *, num_workers: int, pin_memory: bool) -> DataLoader:
    """The DataLoader over `batches`: the collator runs in `num_workers` worker processes (0: in this process), in
    order, `2 * num_workers` batches ahead. It has a generator of its own: a DataLoader draws its workers' base seed
    when it starts iterating, and from the global generator that draw would shift the training process's random
    stream (ITM negatives, dropout) between a run and its resumed copy. (The workers draw nothing from it: their
    randomness is keyed.)"""
    return DataLoader(
        _PlannedPairs(),
        batch_sampler=batches,
        collate_fn=collator,
        num_workers=num_workers,
        pin_memory=pin_memory,
        prefetch_factor=2 if num_workers else None,
        generator=torch.Generator().manual_seed(0),
    )


__all__ = ["PairBatches", "PairCollator", "pair_loader"]

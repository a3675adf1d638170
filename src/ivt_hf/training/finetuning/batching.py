"""Training batches of IVT: each image gives three (augmented view, text) pairs, one per text granularity.

Multi-level alignment (MLA, `docs/design.md`, "Training objective"): a batch of B images becomes 3B pairs
(view 1, word-level text), (view 2, phrase-level text), (view 3, sentence). With `multi_level=False` (the ablation
baseline) the one caption drawn for the image is used three times at sentence level, so the number of pairs, the
views and the sentences seen are the same and only the text granularity differs.

Randomness is keyed, not drawn from global state: every sample arrives with a key (epoch, batch, position) from
`KeyedBatchSampler`, and the caption choice, the text levels and the three augmentations are a pure function of
(seed, key). Resuming mid-epoch after a kill therefore sees exactly the batches an uninterrupted run sees, whatever
the data-loader prefetching did before the kill.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from ...errors import IVTInputError
from ..transforms import TrainTransform
from .text_levels import sample_text_levels, sentence_level


class KeyedBatchSampler(Sampler[list[tuple[int, tuple[int, int, int]]]]):
    """Wraps a batch sampler; yields `[(index, (epoch, batch_number, position)), ...]` and forwards `set_epoch`.

    Under several processes accelerate wraps this sampler in its `BatchSamplerShard`, and its data loader's
    `set_epoch` then reaches only `batch_sampler.batch_sampler.sampler.set_epoch` (accelerate/data_loader.py,
    `DataLoaderShard.set_epoch`). `sampler` is that door: without it every epoch after the first would replay the
    first one's identity schedule, augmentations and text picks in every process.
    """

    def __init__(self, batch_sampler: Sampler[list[int]]):
        self.batch_sampler = batch_sampler
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if hasattr(self.batch_sampler, "set_epoch"):
            self.batch_sampler.set_epoch(epoch)

    @property
    def sampler(self) -> KeyedIndexView:
        """The yielded indices, flat, as `torch.utils.data.BatchSampler.sampler` has them; its `set_epoch` sets this
        sampler's epoch (see the class docstring)."""
        return KeyedIndexView(self)

    def __iter__(self) -> Iterator[list[tuple[int, tuple[int, int, int]]]]:
        for batch_number, batch in enumerate(self.batch_sampler):
            yield [(int(index), (self.epoch, batch_number, position)) for position, index in enumerate(batch)]

    def __len__(self) -> int:
        return len(self.batch_sampler)


class KeyedIndexView(Sampler[int]):
    """The indices of a `KeyedBatchSampler`, flat; `set_epoch` is forwarded to it."""

    def __init__(self, keyed: KeyedBatchSampler):
        self.keyed = keyed

    def set_epoch(self, epoch: int) -> None:
        self.keyed.set_epoch(epoch)

    def __iter__(self) -> Iterator[int]:
        for batch in self.keyed:
            yield from (index for index, _ in batch)

    def __len__(self) -> int:
        return sum(len(batch) for batch in self.keyed.batch_sampler)


class TrainImageDataset(Dataset):
    """Rows of an image-level split (`image`, `captions`, `person_id`), addressed by plain or keyed indices.

    With `cache_images=True` every image is decoded once into memory as uint8 RGB (worth it for small galleries such
    as the demo's, where decoding would otherwise repeat every epoch).
    """

    def __init__(self, image_split, *, cache_images: bool = False):
        self.split = image_split
        self.person_ids: list[int] = [int(pid) for pid in image_split["person_id"]]
        self.captions: list[list[str]] = [list(captions) for captions in image_split["captions"]]
        for row, captions in enumerate(self.captions):
            if not captions:
                raise IVTInputError(f"training row {row} ({image_split[row]['image_path']}) has no caption")
        self._images: list[np.ndarray] | None = None
        if cache_images:
            self._images = [np.asarray(image.convert("RGB")) for image in image_split["image"]]

    def __len__(self) -> int:
        return len(self.person_ids)

    def image(self, index: int):
        """The row's image: its cached uint8 (H, W, 3) RGB array with `cache_images=True` (what `TrainTransform`
        takes without a PIL round trip), else the split's PIL image."""
        if self._images is not None:
            return self._images[index]
        return self.split[index]["image"]

    def __getitem__(self, item: int | tuple[int, Any]) -> dict[str, Any]:
        index, key = item if isinstance(item, tuple) else (item, (0, 0, item))
        index = int(index)
        return {
            "image": self.image(index),
            "captions": self.captions[index],
            "person_id": self.person_ids[index],
            "key": (index, *key),
        }


class MLACollator:
    """Samples of `TrainImageDataset` -> `pixel_values (3B, 3, H, W)`, `input_ids`/`attention_mask (3B, L)`,
    `labels (3B,)`.

    Args:
        processor: an `IVTProcessor` (its tokenizer is used).
        transform: the training augmentation applied independently to each of the three views.
        seed: mixed into every key so that two runs with different seeds see different augmentations.
        multi_level: word / phrase / sentence texts (MLA); False gives three sentence-level texts.
        max_length: token limit (default: the processor's, 512).
    """

    views_per_image = 3

    def __init__(
        self,
        processor,
        transform: TrainTransform,
        *,
        seed: int = 0,
        multi_level: bool = True,
        max_length: int | None = None,
    ):
        self.processor = processor
        self.transform = transform
        self.seed = seed
        self.multi_level = multi_level
        self.max_length = max_length

    def texts_for(self, captions: Sequence[str], rng: random.Random) -> tuple[str, str, str]:
        """The three texts of one image: its caption drawn once, then at three granularities (MLA) or three times
        at sentence level, so that the two differ in text granularity only, never in which sentences are seen."""
        caption = rng.choice(captions)
        if self.multi_level:
            return sample_text_levels(caption, rng)  # (word, phrase, sentence)
        return (sentence_level(caption),) * self.views_per_image

    def __call__(self, samples: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        views, texts, labels = [], [], []
        for sample in samples:
            rng = random.Random(repr((self.seed, sample["key"])))
            for text in self.texts_for(sample["captions"], rng):
                views.append(self.transform(sample["image"], generator=rng.getrandbits(62)))
                texts.append(text)
                labels.append(sample["person_id"])
        encoded = self.processor.tokenize(texts, max_length=self.max_length)
        return {
            "pixel_values": torch.stack(views),  # (3B, 3, H, W)
            "input_ids": encoded["input_ids"],  # (3B, L)
            "attention_mask": encoded["attention_mask"],
            "labels": torch.tensor(labels, dtype=torch.long),  # (3B,)
        }


__all__ = ["KeyedBatchSampler", "KeyedIndexView", "MLACollator", "TrainImageDataset"]

"""MLA batches: 3 pairs per image, keyed (deterministic) randomness, the sentence-only ablation."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from ivt_hf import IVTProcessor
from ivt_hf.training.batching import KeyedBatchSampler, MLACollator, TrainImageDataset
from ivt_hf.training.text_levels import phrase_candidates, word_candidates
from ivt_hf.training.transforms import TrainTransform

CAPTIONS = [
    "A man wears a red jacket, blue jeans and white shoes. He carries a black backpack, and holds a phone.",
    "The man has short black hair, a red jacket with a zip, dark blue jeans. He walks to the left.",
]


def _samples(keys, person_ids=(3, 3, 5)):
    image = Image.new("RGB", (32, 64), (200, 30, 30))
    return [{"image": image, "captions": CAPTIONS, "person_id": pid, "key": key} for pid, key in zip(person_ids, keys)]


@pytest.fixture
def collator():
    return MLACollator(IVTProcessor(), TrainTransform(image_size=(64, 32), padding=2), seed=7, max_length=64)


def test_three_pairs_per_image_with_word_phrase_sentence(collator):
    batch = collator(_samples([(0, 0, 0, 0), (1, 0, 0, 1), (2, 0, 0, 2)]))
    assert batch["pixel_values"].shape == (9, 3, 64, 32)
    assert batch["input_ids"].shape[0] == 9 and batch["attention_mask"].shape == batch["input_ids"].shape
    assert batch["labels"].tolist() == [3, 3, 3, 3, 3, 3, 5, 5, 5]
    texts = collator.processor.tokenizer.batch_decode(batch["input_ids"], skip_special_tokens=True)
    word, phrase, sentence = texts[:3]
    candidates_words = [c for caption in CAPTIONS for c in word_candidates(caption)]
    candidates_phrases = [c for caption in CAPTIONS for c in phrase_candidates(caption)]
    normalise = collator.processor.tokenizer.convert_tokens_to_string
    tokenize = collator.processor.tokenizer.tokenize
    assert word in {normalise(tokenize(c)) for c in candidates_words}
    assert phrase in {normalise(tokenize(c)) for c in candidates_phrases}
    assert sentence in {normalise(tokenize(c.lower())) for c in CAPTIONS}
    # the three views of one image are augmented independently
    assert not torch.equal(batch["pixel_values"][0], batch["pixel_values"][1]) or not torch.equal(
        batch["pixel_values"][1], batch["pixel_values"][2]
    )


def test_same_key_same_batch_other_key_other_batch(collator):
    keys = [(0, 0, 0, 0), (1, 0, 0, 1), (2, 0, 0, 2)]
    first, again = collator(_samples(keys)), collator(_samples(keys))
    for name in first:
        assert torch.equal(first[name], again[name]), name
    next_epoch = collator(_samples([(0, 1, 0, 0), (1, 1, 0, 1), (2, 1, 0, 2)]))
    assert not torch.equal(first["pixel_values"], next_epoch["pixel_values"])
    other_seed = MLACollator(collator.processor, collator.transform, seed=8, max_length=64)(_samples(keys))
    assert not torch.equal(first["pixel_values"], other_seed["pixel_values"])


def test_sentence_only_ablation_keeps_pair_count(collator):
    sentence_only = MLACollator(collator.processor, collator.transform, seed=7, multi_level=False, max_length=64)
    batch = sentence_only(_samples([(0, 0, 0, 0)], person_ids=(1,)))
    texts = collator.processor.tokenizer.batch_decode(batch["input_ids"], skip_special_tokens=True)
    assert len(texts) == 3 and batch["pixel_values"].shape[0] == 3
    full = {
        collator.processor.tokenizer.convert_tokens_to_string(collator.processor.tokenizer.tokenize(c.lower()))
        for c in CAPTIONS
    }
    assert set(texts) <= full


def test_keyed_batch_sampler_tags_epoch_batch_position_and_forwards_set_epoch():
    class Batches:
        epoch = None

        def set_epoch(self, epoch):
            self.epoch = epoch

        def __iter__(self):
            return iter([[4, 2], [7, 1]])

        def __len__(self):
            return 2

    inner = Batches()
    sampler = KeyedBatchSampler(inner)
    sampler.set_epoch(3)
    assert inner.epoch == 3 and len(sampler) == 2
    assert list(sampler) == [[(4, (3, 0, 0)), (2, (3, 0, 1))], [(7, (3, 1, 0)), (1, (3, 1, 1))]]


def test_train_dataset_rejects_rows_without_captions():
    import datasets

    split = datasets.Dataset.from_dict(
        {"image": [Image.new("RGB", (4, 8))], "captions": [[]], "person_id": [0], "image_path": ["imgs/a.jpg"]},
        features=datasets.Features(
            {
                "image": datasets.Image(),
                "captions": datasets.List(datasets.Value("string")),
                "person_id": datasets.Value("int64"),
                "image_path": datasets.Value("string"),
            }
        ),
    )
    with pytest.raises(ValueError, match=r"row 0 \(imgs/a.jpg\) has no caption"):
        TrainImageDataset(split)


def test_cached_images_give_the_same_batch_as_pil_images():
    """`cache_images=True` hands the transform uint8 arrays instead of PIL images; the batch must not change."""
    import numpy as np
    from datasets import Dataset

    rng = np.random.default_rng(0)
    split = Dataset.from_dict({
        "image": [Image.fromarray(rng.integers(0, 256, (64, 32, 3), dtype=np.uint8)) for _ in range(3)],
        "captions": [CAPTIONS] * 3,
        "person_id": [3, 3, 5],
    })  # fmt: skip
    collator = MLACollator(IVTProcessor(), TrainTransform(image_size=(64, 32), padding=2), seed=7, max_length=64)
    cached, plain = TrainImageDataset(split, cache_images=True), TrainImageDataset(split)
    assert isinstance(cached[0]["image"], np.ndarray) and isinstance(plain[0]["image"], Image.Image)
    keyed = [(index, (0, 0, index)) for index in range(3)]
    batch_cached = collator([cached[item] for item in keyed])
    batch_plain = collator([plain[item] for item in keyed])
    for key in batch_plain:
        assert torch.equal(batch_cached[key], batch_plain[key]), key

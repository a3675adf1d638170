"""MLA batches: 3 pairs per image, keyed (deterministic) randomness, the sentence-only ablation."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from ivt_hf import IVTProcessor
from ivt_hf.training.finetuning.batching import KeyedBatchSampler, MLACollator, TrainImageDataset
from ivt_hf.training.finetuning.text_levels import phrase_candidates, word_candidates
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


def test_sentence_only_ablation_differs_from_mla_in_granularity_only(collator):
    """The same number of pairs and views, and the same ONE caption per image as MLA draws for that key, three times at
    sentence level: the ablation sees no more distinct sentences than MLA does."""
    sentence_only = MLACollator(collator.processor, collator.transform, seed=7, multi_level=False, max_length=64)
    decode = collator.processor.tokenizer.batch_decode
    for key in [(0, 0, 0, 0), (0, 1, 0, 0), (4, 2, 3, 1), (9, 0, 5, 2)]:
        batch = sentence_only(_samples([key], person_ids=(1,)))
        mla_batch = collator(_samples([key], person_ids=(1,)))
        texts = decode(batch["input_ids"], skip_special_tokens=True)
        mla_sentence = decode(mla_batch["input_ids"], skip_special_tokens=True)[2]
        assert texts == [mla_sentence] * 3, key
        assert batch["pixel_values"].shape[0] == 3 and batch["labels"].tolist() == [1, 1, 1]
    drawn = {
        tuple(
            decode(sentence_only(_samples([(i, 0, 0, 0)], person_ids=(1,)))["input_ids"][:1], skip_special_tokens=True)
        )
        for i in range(12)
    }
    assert len(drawn) == 2  # both captions of the image are drawn across keys


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
    split = Dataset.from_dict(
        {
            "image": [Image.fromarray(rng.integers(0, 256, (64, 32, 3), dtype=np.uint8)) for _ in range(3)],
            "captions": [CAPTIONS] * 3,
            "person_id": [3, 3, 5],
        }
    )
    collator = MLACollator(IVTProcessor(), TrainTransform(image_size=(64, 32), padding=2), seed=7, max_length=64)
    cached, plain = TrainImageDataset(split, cache_images=True), TrainImageDataset(split)
    assert isinstance(cached[0]["image"], np.ndarray) and isinstance(plain[0]["image"], Image.Image)
    keyed = [(index, (0, 0, index)) for index in range(3)]
    batch_cached = collator([cached[item] for item in keyed])
    batch_plain = collator([plain[item] for item in keyed])
    for key in batch_plain:
        assert torch.equal(batch_cached[key], batch_plain[key]), key


def test_set_epoch_reaches_the_keyed_sampler_through_accelerates_shard_wrapper():
    """With several processes accelerate wraps the batch sampler in `BatchSamplerShard`, and its data loader's
    `set_epoch` only reaches `batch_sampler.batch_sampler.sampler`. (transformers' Trainer also forwards the epoch
    itself; a loop of one's own with `accelerator.prepare` gets only this.)"""
    from accelerate.data_loader import BatchSamplerShard, prepare_data_loader
    from torch.utils.data import DataLoader

    from ivt_hf.training.finetuning.sampler import IdentityBatchSampler

    person_ids = [pid for pid in range(12) for _ in range(2)]
    identities = IdentityBatchSampler(
        person_ids, images_per_id=2, ids_per_batch=2, num_replicas=2, rank=0, seed=0, yield_all_replicas=True
    )
    keyed = KeyedBatchSampler(identities)

    class Echo:  # the dataset hands back what it is asked for: (index, (epoch, batch, position))
        def __getitem__(self, item):
            return item

        def __len__(self):
            return len(person_ids)

    loader = DataLoader(Echo(), batch_sampler=keyed, collate_fn=lambda samples: samples)
    shard = prepare_data_loader(loader, num_processes=2, process_index=1, put_on_device=False)
    assert isinstance(shard.batch_sampler, BatchSamplerShard) and shard.batch_sampler.batch_sampler is keyed
    first = [list(batch) for batch in shard]
    shard.set_epoch(1)
    assert keyed.epoch == 1 and identities.epoch == 1
    second = [list(batch) for batch in shard]
    assert first != second
    assert {key[0] for batch in first for _, key in batch} == {0}
    assert {key[0] for batch in second for _, key in batch} == {1}
    assert list(keyed.sampler) == [index for batch in keyed for index, _ in batch]  # the flat view
    assert len(keyed.sampler) == len(list(keyed.sampler))

"""The pre-training data path in one process: the shuffle buffer (deterministic, every pair once per epoch, batches
that mix shards, exact resume from a saved state), the DataLoader workers (the same batches as in-process decoding,
and exact resume however far they read ahead), and images that do not decode (left out and reported)."""

from __future__ import annotations

import io
import random
from itertools import islice

import pytest
import torch
from PIL import Image

from ivt_hf.data import open_pair_stream, write_webdataset_shards
from ivt_hf.data.shuffle_buffer import ShuffleBuffer
from ivt_hf.model.processing_ivt import default_tokenizer
from ivt_hf.training.pretraining import PairBatches, PairCollator, pair_loader
from ivt_hf.training.transforms import TrainTransform

NUM_PAIRS, PAIRS_PER_SHARD = 48, 8  # 6 shards


def _jpeg(rng: random.Random, size=(16, 32)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, tuple(rng.randrange(256) for _ in range(3))).save(buffer, "JPEG")
    return buffer.getvalue()


def _pairs(count: int = NUM_PAIRS, broken: set[int] = frozenset()):
    rng = random.Random(0)
    for index in range(count):
        image = _jpeg(rng)
        if index in broken:
            image = image[: len(image) // 2]  # a truncated JPEG: the header reads, the pixels do not
        yield f"{index:06d}", image, f"A person {index} in a red coat."


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    folder = tmp_path_factory.mktemp("shards")
    write_webdataset_shards(_pairs(), folder, pairs_per_shard=PAIRS_PER_SHARD)
    return folder


def _shuffled(shards, size: int = 12, seed: int = 0) -> ShuffleBuffer:
    return ShuffleBuffer(open_pair_stream(shards, seed=seed), size, seed=seed)


def _shard(key: str) -> str:
    return key.split("/")[0]


def test_the_buffer_yields_every_pair_once_per_epoch_in_a_seeded_order_that_mixes_shards(shards):
    taken = list(islice(iter(_shuffled(shards)), 2 * NUM_PAIRS - 12))
    first_epoch = [pair["key"] for pair in taken if pair["epoch"] == 0]
    assert len(first_epoch) == len(set(first_epoch)) == NUM_PAIRS  # all of epoch 0, each once
    assert [pair["key"] for pair in islice(iter(_shuffled(shards)), 30)] == [pair["key"] for pair in taken[:30]]
    other_seed = [pair["key"] for pair in islice(iter(_shuffled(shards, seed=1)), 30)]
    assert other_seed != [pair["key"] for pair in taken[:30]]
    unshuffled = [pair["key"] for pair in islice(iter(_shuffled(shards, size=0)), NUM_PAIRS)]
    # without a buffer a batch of 8 is one shard; with it, batches mix several shards
    assert all(len({_shard(key) for key in unshuffled[i : i + 8]}) == 1 for i in range(0, NUM_PAIRS, 8))
    assert all(len({_shard(pair["key"]) for pair in taken[i : i + 8]}) >= 2 for i in range(0, NUM_PAIRS, 8))


@pytest.mark.parametrize("taken", [5, 17, 60])
def test_a_saved_buffer_continues_with_exactly_the_next_pairs(shards, tmp_path, taken):
    shuffled = _shuffled(shards)
    pairs = iter(shuffled)
    list(islice(pairs, taken))
    ShuffleBuffer.save(shuffled.state_dict(), tmp_path, "state")
    expected = list(islice(pairs, 40))

    fresh = _shuffled(shards)
    fresh.load_state_dict(ShuffleBuffer.read(tmp_path, "state"))
    continued = list(islice(iter(fresh), 40))
    assert [(p["key"], p["epoch"], p["image"], p["caption"]) for p in continued] == [
        (p["key"], p["epoch"], p["image"], p["caption"]) for p in expected
    ]
    other_size = _shuffled(shards, size=5)
    with pytest.raises(ValueError, match="shuffle buffer of 12 pairs"):
        other_size.load_state_dict(ShuffleBuffer.read(tmp_path, "state"))


def _collator() -> PairCollator:
    return PairCollator(default_tokenizer(), TrainTransform(image_size=(32, 16)), seed=3, max_text_tokens=12)


def _batches(shards, workers: int, count: int, state=None, first_batch: int = 0):
    shuffled = _shuffled(shards)
    if state is not None:
        shuffled.load_state_dict(state)
    plan = PairBatches(shuffled, 6, first_batch=first_batch)
    iterator = iter(pair_loader(plan, _collator(), num_workers=workers, pin_memory=False))
    batches = [next(iterator) for _ in range(count)]
    return batches, plan


def _same(first: dict, second: dict) -> None:
    assert first["batch_number"] == second["batch_number"] and first["pairs"] == second["pairs"]
    for name in ("pixel_values", "input_ids", "attention_mask", "mlm_input_ids", "mlm_labels"):
        assert torch.equal(first[name], second[name]), name


def test_workers_give_the_in_process_batches_and_resume_exactly_however_far_they_read_ahead(shards):
    in_process, _ = _batches(shards, workers=0, count=7)
    with_workers, plan = _batches(shards, workers=2, count=3)  # the workers have read batches 3.. ahead
    for first, second in zip(in_process[:3], with_workers):
        _same(first, second)
    state = plan.state_after(2)  # what a checkpoint after batch 2 holds
    resumed, _ = _batches(shards, workers=2, count=4, state=state, first_batch=3)
    for first, second in zip(in_process[3:], resumed):
        _same(first, second)
    assert in_process[0]["mlm_labels"].ne(-100).any()  # masked tokens: the comparison covers the masks


def test_an_image_that_does_not_decode_is_left_out_and_reported(tmp_path):
    write_webdataset_shards(_pairs(12, broken={4}), tmp_path, pairs_per_shard=12)
    plan = PairBatches(ShuffleBuffer(open_pair_stream(tmp_path), 0, seed=0), 6)
    batch = next(iter(pair_loader(plan, _collator(), num_workers=0, pin_memory=False)))
    ((key, reason),) = batch["invalid"]
    assert key == "pairs-00000.tar/000004" and "does not decode" in reason
    assert [key for _, key in batch["pairs"]] == [f"pairs-00000.tar/{i:06d}" for i in (0, 1, 2, 3, 5)]
    assert batch["pixel_values"].shape[0] == batch["input_ids"].shape[0] == 5

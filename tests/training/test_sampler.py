"""P x K identity batch sampler: K per identity, disjoint identities across ranks, determinism, exact length."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from ivt_hf.training.finetuning.sampler import IdentityBatchSampler, IdentityIndexSampler


def _person_ids(seed: int = 0, identities: int = 40) -> list[int]:
    """Identities with 1..9 images (some below K = 4), rows shuffled, ids not contiguous."""
    rng = np.random.default_rng(seed)
    ids = np.repeat(np.arange(identities) * 3 + 100, rng.integers(1, 10, identities))
    return rng.permutation(ids).tolist()


def _rank_samplers(person_ids, world_size, **kwargs) -> list[IdentityBatchSampler]:
    return [
        IdentityBatchSampler(person_ids, num_replicas=world_size, rank=rank, **kwargs) for rank in range(world_size)
    ]


@pytest.mark.parametrize("drop_last", [True, False])
def test_each_batch_has_p_identities_with_k_images(drop_last):
    person_ids = _person_ids()
    sampler = IdentityBatchSampler(person_ids, images_per_id=4, ids_per_batch=3, seed=1, drop_last=drop_last)
    batches = list(sampler)
    assert batches and len(batches) == len(sampler)
    for batch in batches:
        assert len(batch) == 12 == sampler.batch_size
        counts = Counter(person_ids[index] for index in batch)
        assert len(counts) == 3 and set(counts.values()) == {4}
        for person_id in counts:
            chunk = [index for index in batch if person_ids[index] == person_id]
            if person_ids.count(person_id) >= 4:  # without replacement when the identity has enough images
                assert len(set(chunk)) == 4


def test_identities_with_fewer_than_k_images_are_sampled_with_replacement():
    person_ids = [0] + [1] * 2 + [2] * 8 + [3] * 4  # identity 0 is row 0 only, identity 1 is rows 1 and 2
    sampler = IdentityBatchSampler(person_ids, images_per_id=4, ids_per_batch=2, seed=0, drop_last=False)
    for epoch in range(5):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        rows_of_identity = [
            [[index for index in batch if person_ids[index] == pid] for batch in batches] for pid in (0, 1)
        ]
        assert [0, 0, 0, 0] in rows_of_identity[0]  # every chunk is seen with drop_last=False
        assert all(rows in ([], [0, 0, 0, 0]) for rows in rows_of_identity[0])
        assert all(len(rows) in (0, 4) and set(rows) <= {1, 2} for rows in rows_of_identity[1])


@pytest.mark.parametrize("drop_last", [True, False])
def test_ranks_are_disjoint_per_step_and_equal_in_length(drop_last):
    person_ids = _person_ids()
    samplers = _rank_samplers(person_ids, 3, images_per_id=4, ids_per_batch=2, seed=5, drop_last=drop_last)
    for epoch in range(3):
        for sampler in samplers:
            sampler.set_epoch(epoch)
        per_rank = [list(sampler) for sampler in samplers]
        assert len({len(batches) for batches in per_rank}) == 1
        assert all(len(batches) == len(sampler) for batches, sampler in zip(per_rank, samplers))
        for step_batches in zip(*per_rank):
            # at most one chunk of an identity per step, over all ranks together
            identities = Counter(person_ids[index] for batch in step_batches for index in batch)
            assert set(identities.values()) == {4} and len(identities) == 3 * 2


def test_epoch_covers_identities_like_the_reference():
    # every identity contributes floor(n / K) chunks (at least one); with drop_last=False all of them are seen
    person_ids = _person_ids(seed=2)
    sampler = IdentityBatchSampler(person_ids, images_per_id=4, ids_per_batch=4, seed=0, drop_last=False)
    appearances = Counter(person_ids[index] for batch in sampler for index in batch)
    for person_id, images in Counter(person_ids).items():
        assert appearances[person_id] >= 4 * max(1, images // 4)


def test_length_is_exact_and_constant_over_epochs():
    person_ids = _person_ids(seed=3)
    for drop_last in (True, False):
        sampler = IdentityBatchSampler(person_ids, images_per_id=4, ids_per_batch=3, seed=0, drop_last=drop_last)
        lengths = set()
        for epoch in range(4):
            sampler.set_epoch(epoch)
            lengths.add(len(list(sampler)))
        assert lengths == {len(sampler)}
        index_sampler = IdentityIndexSampler(sampler)
        assert len(list(index_sampler)) == len(index_sampler) == len(sampler) * 12


def test_deterministic_given_seed_and_epoch():
    person_ids = _person_ids()
    first = IdentityBatchSampler(person_ids, ids_per_batch=3, seed=11)
    second = IdentityBatchSampler(person_ids, ids_per_batch=3, seed=11)
    assert list(first) == list(second)
    first.set_epoch(4)
    second.set_epoch(4)
    assert list(first) == list(second)
    assert list(IdentityBatchSampler(person_ids, ids_per_batch=3, seed=12)) != list(second)


def test_different_epochs_differ():
    sampler = IdentityBatchSampler(_person_ids(), ids_per_batch=3, seed=0)
    epochs = []
    for epoch in range(3):
        sampler.set_epoch(epoch)
        epochs.append(list(sampler))
    assert epochs[0] != epochs[1] != epochs[2] != epochs[0]
    sampler.set_epoch(0)
    assert list(sampler) == epochs[0]


def test_dominant_identity_is_capped_to_once_per_step():
    person_ids = [7] * 100 + [identity for identity in range(7) for _ in range(4)]
    sampler = IdentityBatchSampler(person_ids, images_per_id=4, ids_per_batch=2, seed=0)
    batches = list(sampler)
    assert len(batches) == len(sampler) > 0
    assert all(Counter(person_ids[index] for index in batch)[7] in (0, 4) for batch in batches)


def test_interleaved_mode_matches_accelerate_sharding():
    # accelerate.prepare (and so the HF Trainer) shards a batch sampler by handing batch i to process i % world_size
    from accelerate.data_loader import prepare_data_loader

    person_ids = _person_ids()
    per_rank_samplers = _rank_samplers(person_ids, 2, ids_per_batch=3, seed=4)
    for sampler in per_rank_samplers:
        sampler.set_epoch(3)
    everything = IdentityBatchSampler(person_ids, ids_per_batch=3, seed=4, num_replicas=2, yield_all_replicas=True)
    assert len(everything) == 2 * len(per_rank_samplers[0])
    dataset = torch.arange(len(person_ids))
    for rank in range(2):
        loader = DataLoader(dataset, batch_sampler=everything)
        prepared = prepare_data_loader(loader, num_processes=2, process_index=rank, put_on_device=False)
        prepared.set_epoch(3)  # what the Trainer calls; must reach our sampler
        assert everything.epoch == 3
        assert len(prepared) == len(per_rank_samplers[rank])
        assert [batch.tolist() for batch in prepared] == list(per_rank_samplers[rank])


def test_dataloader_batch_sampler_and_flat_sampler_agree():
    person_ids = _person_ids()
    dataset = torch.arange(len(person_ids))
    batch_sampler = IdentityBatchSampler(person_ids, ids_per_batch=2, seed=9)
    via_batch_sampler = [batch.tolist() for batch in DataLoader(dataset, batch_sampler=batch_sampler)]
    assert via_batch_sampler == list(batch_sampler)
    flat = DataLoader(dataset, sampler=batch_sampler.sampler, batch_size=batch_sampler.batch_size)
    assert [batch.tolist() for batch in flat] == via_batch_sampler
    batch_sampler.sampler.set_epoch(2)  # forwarded
    assert batch_sampler.epoch == 2


def test_rejects_impossible_configurations():
    with pytest.raises(ValueError, match="identities"):
        IdentityBatchSampler([0, 0, 1, 1], ids_per_batch=3)
    with pytest.raises(ValueError, match="rank"):
        IdentityBatchSampler(_person_ids(), ids_per_batch=2, num_replicas=2, rank=2)
    with pytest.raises(ValueError):
        IdentityBatchSampler(_person_ids(), images_per_id=0)

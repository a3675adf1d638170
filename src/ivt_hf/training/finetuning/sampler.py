"""P x K identity batch sampling for IVT training, single- or multi-process.

CMPM treats every same-identity pair in a batch as a positive, so batches are built from P identities with K
images each (K = 4 in the reference recipe). The reference uses the person re-identification "random identity
sampler"; this is a re-implementation with three properties that sampler lacks under several processes:

- deterministic from (seed, epoch) alone, with no communication, so every rank builds the same global schedule;
- at each step the ranks' batches hold disjoint identities (no identity is split across ranks within a step);
- a fixed number of batches per epoch, identical on every rank and in every epoch, so `len()` is exact and the
  HF Trainer's epoch/step bookkeeping (and resuming mid-epoch) stays right.

One epoch, built from `np.random.default_rng([seed, epoch])`:

1. Every identity is cut into chunks of K dataset indices: its indices are shuffled and split into
   ``n // K`` chunks (the ``n % K`` left over change from epoch to epoch). An identity with fewer than K images
   gives one chunk drawn WITH replacement (the reference does the same), so it still contributes K indices.
2. Identities are put in random order and their chunks laid end to end. Chunk number ``t`` of that sequence goes
   to step ``t mod S``, where S is the number of steps per epoch: the chunks of one identity are consecutive, so
   they land in different steps as long as an identity has at most S chunks (identities with more are capped at S).
3. S = floor(chunks / (P * world_size)) with `drop_last=True` (the last chunks of the sequence are left out this
   epoch); with `drop_last=False`, S = ceil(...) and steps that are short of P * world_size chunks are completed
   with a fresh chunk of identities not already in that step.
4. Step order and the order of identities inside a step are shuffled; rank r takes identities
   ``[r * P, (r + 1) * P)`` of every step.

Use as `DataLoader(dataset, batch_sampler=sampler)` and call `sampler.set_epoch(epoch)` before each epoch.
Two ways to run under several processes:

- `yield_all_replicas=False` (default): the sampler yields only this rank's batches (plain DDP / torchrun loops).
- `yield_all_replicas=True`: the sampler yields every rank's batch of each step in rank order (step 0 rank 0,
  step 0 rank 1, ...). That is the layout `accelerate.prepare` (and so the HF Trainer) expects from a batch
  sampler: its `BatchSamplerShard` hands batch i to process ``i % world_size``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler

from ...errors import IVTInputError
from ..distributed import get_rank, get_world_size

__all__ = ["IdentityBatchSampler", "IdentityIndexSampler"]


class IdentityBatchSampler(Sampler[list[int]]):
    """Batches of `ids_per_batch` identities x `images_per_id` dataset indices (see the module docstring).

    Args:
        person_ids: identity of every dataset row (row i of the dataset has identity person_ids[i]).
        images_per_id: K, indices per identity in a batch.
        ids_per_batch: P, identities per batch on each rank; a batch has P * K indices (7 x 4 = 28 is the
            reference per-GPU batch for CUHK-PEDES and ICFG-PEDES; RSTPReid uses 12 x 4 = 48).
        num_replicas: number of processes; default: the torch.distributed world size, or 1.
        rank: this process's rank; default: the torch.distributed rank, or 0.
        seed: must be the same on every rank; the schedule is a function of (seed, epoch).
        drop_last: drop the chunks that do not fill a last step (True) or complete that step with extra chunks.
        yield_all_replicas: yield the batches of all ranks interleaved per step, for `accelerate.prepare`.
    """

    def __init__(
        self,
        person_ids: Sequence[int],
        images_per_id: int = 4,
        ids_per_batch: int = 7,
        *,
        num_replicas: int | None = None,
        rank: int | None = None,
        seed: int = 0,
        drop_last: bool = True,
        yield_all_replicas: bool = False,
    ):
        if images_per_id < 1 or ids_per_batch < 1:
            raise IVTInputError(f"images_per_id and ids_per_batch must be >= 1, got {images_per_id}, {ids_per_batch}")
        self.num_replicas = get_world_size() if num_replicas is None else int(num_replicas)
        self.rank = get_rank() if rank is None else int(rank)
        if self.num_replicas < 1 or not 0 <= self.rank < self.num_replicas:
            raise IVTInputError(
                f"need 0 <= rank < num_replicas, got rank {self.rank}, num_replicas {self.num_replicas}"
            )

        self.images_per_id = int(images_per_id)
        self.ids_per_batch = int(ids_per_batch)
        self.seed = int(seed)
        self.drop_last = bool(drop_last)
        self.yield_all_replicas = bool(yield_all_replicas)
        self.epoch = 0

        indices_by_id: dict[int, list[int]] = {}
        for index, person_id in enumerate(person_ids):
            indices_by_id.setdefault(int(person_id), []).append(index)
        # Sorted identities: the schedule must not depend on the dataset's row order beyond the indices themselves.
        self._identities = sorted(indices_by_id)
        self._indices = [np.asarray(indices_by_id[person_id], dtype=np.int64) for person_id in self._identities]

        ids_per_step = self.ids_per_batch * self.num_replicas
        if len(self._identities) < ids_per_step:
            raise IVTInputError(
                f"{len(self._identities)} identities cannot fill a step of {self.ids_per_batch} identities per batch "
                f"x {self.num_replicas} processes; lower ids_per_batch."
            )
        self._chunks_per_id, self._steps_per_epoch = self._plan_epoch_size()
        self._cache: tuple[int, list[list[int]]] | None = None

    @property
    def batch_size(self) -> int:
        """Indices per yielded batch (P * K); accelerate's `BatchSamplerShard` reads it."""
        return self.ids_per_batch * self.images_per_id

    @property
    def sampler(self) -> IdentityIndexSampler:
        """The same schedule as a flat index sampler.

        Like `torch.utils.data.BatchSampler.sampler`; accelerate's `DataLoaderShard.set_epoch` reaches a wrapped
        batch sampler's epoch through this attribute.
        """
        return IdentityIndexSampler(self)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose schedule the next iteration yields (call it on every rank with the same value)."""
        self.epoch = int(epoch)

    def _plan_epoch_size(self) -> tuple[np.ndarray, int]:
        """Chunks per identity and steps per epoch; both depend on the data only, never on the epoch."""
        ids_per_step = self.ids_per_batch * self.num_replicas
        chunks_per_id = np.maximum(1, np.array([len(indices) for indices in self._indices]) // self.images_per_id)
        while True:
            total = int(chunks_per_id.sum())
            steps = total // ids_per_step if self.drop_last else -(-total // ids_per_step)
            if steps == 0:
                raise IVTInputError(
                    f"{total} chunks of {self.images_per_id} images cannot fill one step of {ids_per_step} "
                    "identities with drop_last=True."
                )
            if chunks_per_id.max() <= steps:
                return chunks_per_id, steps
            # An identity may appear at most once per step: cap it and re-plan (the step count can only shrink).
            chunks_per_id = np.minimum(chunks_per_id, steps)

    def _identity_chunks(self, id_position: int, count: int, rng: np.random.Generator) -> list[np.ndarray]:
        """`count` chunks of K indices of one identity, without replacement when it has at least K images."""
        indices = self._indices[id_position]
        if len(indices) < self.images_per_id:
            return [rng.choice(indices, size=self.images_per_id, replace=True) for _ in range(count)]
        shuffled = rng.permutation(indices)
        return [shuffled[chunk * self.images_per_id : (chunk + 1) * self.images_per_id] for chunk in range(count)]

    def _global_schedule(self, epoch: int) -> list[list[int]]:
        """All batches of the epoch, step-major and rank-minor: entry s * W + r is rank r's batch at step s."""
        rng = np.random.default_rng([self.seed, epoch])
        ids_per_step = self.ids_per_batch * self.num_replicas
        steps = self._steps_per_epoch

        sequence: list[tuple[int, np.ndarray]] = []  # (identity position, chunk) in random identity order
        for id_position in rng.permutation(len(self._identities)).tolist():
            count = int(self._chunks_per_id[id_position])
            sequence.extend((id_position, chunk) for chunk in self._identity_chunks(id_position, count, rng))

        step_chunks: list[list[tuple[int, np.ndarray]]] = [[] for _ in range(steps)]
        for position, item in enumerate(sequence[: steps * ids_per_step]):
            step_chunks[position % steps].append(item)

        batches: list[list[int]] = []
        for step in rng.permutation(steps):
            chunks = step_chunks[step]
            if len(chunks) < ids_per_step:  # only with drop_last=False
                chunks = chunks + self._fill_chunks(chunks, ids_per_step - len(chunks), rng)
            order = rng.permutation(ids_per_step)
            for replica in range(self.num_replicas):
                members = order[replica * self.ids_per_batch : (replica + 1) * self.ids_per_batch]
                batches.append(np.concatenate([chunks[member][1] for member in members]).tolist())
        return batches

    def _fill_chunks(
        self, present: list[tuple[int, np.ndarray]], missing: int, rng: np.random.Generator
    ) -> list[tuple[int, np.ndarray]]:
        """Fresh chunks of `missing` random identities that are not yet in the step."""
        taken = {id_position for id_position, _ in present}
        candidates = np.array([position for position in range(len(self._identities)) if position not in taken])
        chosen = rng.choice(candidates, size=missing, replace=False).tolist()
        return [(id_position, self._identity_chunks(id_position, 1, rng)[0]) for id_position in chosen]

    def _epoch_batches(self) -> list[list[int]]:
        if self._cache is None or self._cache[0] != self.epoch:
            self._cache = (self.epoch, self._global_schedule(self.epoch))
        return self._cache[1]

    def __iter__(self) -> Iterator[list[int]]:
        batches = self._epoch_batches()
        if self.yield_all_replicas:
            yield from batches
        else:
            yield from batches[self.rank :: self.num_replicas]

    def __len__(self) -> int:
        """Batches one iteration yields: steps per epoch (x world size with `yield_all_replicas`)."""
        return self._steps_per_epoch * (self.num_replicas if self.yield_all_replicas else 1)


class IdentityIndexSampler(Sampler[int]):
    """The batches of an `IdentityBatchSampler`, flattened to single indices.

    For APIs that take a plain sampler: `DataLoader(dataset, sampler=..., batch_size=P * K)` regroups exactly the
    same batches because every batch has P * K indices. `set_epoch` is forwarded to the batch sampler.
    """

    def __init__(self, batch_sampler: IdentityBatchSampler):
        self.batch_sampler = batch_sampler

    def set_epoch(self, epoch: int) -> None:
        self.batch_sampler.set_epoch(epoch)

    def __iter__(self) -> Iterator[int]:
        for batch in self.batch_sampler:
            yield from batch

    def __len__(self) -> int:
        return len(self.batch_sampler) * self.batch_sampler.batch_size

"""Worker for tests/training/test_multiprocess_training.py: `ivt train` (`run_training`: resume, final save,
results) under a real launcher, recording every batch.

    torchrun --nproc_per_node 2 epoch_worker.py OUT TRAIN_FLAGS...
    accelerate launch --multi_gpu --num_processes 2 epoch_worker.py OUT TRAIN_FLAGS...

Each process writes OUT/batches_rank{R}.json: every batch its collator received, as rows of
[dataset index, epoch, batch number, position, person id] (the sample key the augmentation and text picks are drawn
from, and the identity), the global step reached, a hash of the torch random state when the first step began, and a
checksum of the weights when training began.

With IVT_TEST_HANG_AT_STEP=N in the environment, each process writes OUT/hung_rank{R}.json (its pid) after optimizer
step N and then waits to be killed: the test kills it there, past a checkpoint, as a crash would.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path

import torch
from transformers import TrainerCallback

from ivt_hf.training import parse_args, prepare_training
from ivt_hf.training.finetuning.train import run_training


class Probe(TrainerCallback):
    def __init__(self, out: Path, rank: int, hang_at: int | None):
        self.out, self.rank, self.hang_at = out, rank, hang_at
        self.first_step_rng: str | None = None
        self.start_checksum: float | None = None

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.start_checksum = float(sum(p.detach().double().sum() for p in model.parameters()))

    def on_step_begin(self, args, state, control, **kwargs):
        if self.first_step_rng is None:
            self.first_step_rng = hashlib.sha1(torch.get_rng_state().numpy().tobytes()).hexdigest()

    def on_step_end(self, args, state, control, **kwargs):
        if self.hang_at is not None and state.global_step == self.hang_at:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / f"hung_rank{self.rank}.json").write_text(json.dumps({"pid": os.getpid()}))
            while True:
                time.sleep(60)


def main() -> None:
    out, flags = Path(sys.argv[1]), sys.argv[2:]
    trainer, _ = prepare_training(*parse_args(flags))
    rank = trainer.args.process_index
    hang_at = os.environ.get("IVT_TEST_HANG_AT_STEP")
    probe = Probe(out, rank, int(hang_at) if hang_at else None)
    trainer.add_callback(probe)
    collate, batches = trainer.data_collator, []

    def recording_collator(samples):
        batches.append([[*sample["key"], sample["person_id"]] for sample in samples])
        return collate(samples)

    trainer.data_collator = recording_collator
    run_training(trainer)
    out.mkdir(parents=True, exist_ok=True)
    record = {
        "world_size": trainer.args.world_size,
        "rank": rank,
        "batches": batches,
        "global_step": trainer.state.global_step,
        "first_step_rng": probe.first_step_rng,
        "start_checksum": probe.start_checksum,
    }
    (out / f"batches_rank{rank}.json").write_text(json.dumps(record))


if __name__ == "__main__":
    main()

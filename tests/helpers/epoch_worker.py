"""Worker for tests/test_multiprocess_training.py: the real trainer under a real launcher, recording every batch.

    torchrun --nproc_per_node 2 epoch_worker.py OUT TRAIN_FLAGS...
    accelerate launch --multi_gpu --num_processes 2 epoch_worker.py OUT TRAIN_FLAGS...

Each process writes OUT/batches_rank{R}.json: every batch its collator received, as rows of
[dataset index, epoch, batch number, position, person id] (the sample key the augmentation and text picks are drawn
from, and the identity).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ivt_hf.training import parse_args, prepare_training


def main() -> None:
    out, flags = Path(sys.argv[1]), sys.argv[2:]
    trainer, _ = prepare_training(*parse_args(flags))
    collate, batches = trainer.data_collator, []

    def recording_collator(samples):
        batches.append([[*sample["key"], sample["person_id"]] for sample in samples])
        return collate(samples)

    trainer.data_collator = recording_collator
    trainer.train()
    out.mkdir(parents=True, exist_ok=True)
    record = {"world_size": trainer.args.world_size, "rank": trainer.args.process_index, "batches": batches,
              "global_step": trainer.state.global_step}  # fmt: skip
    (out / f"batches_rank{trainer.args.process_index}.json").write_text(json.dumps(record))


if __name__ == "__main__":
    main()

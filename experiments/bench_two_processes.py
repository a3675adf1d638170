"""Would two one-thread training processes beat one two-thread process on a 2-core CPU?

The demo's step is mostly the model's arithmetic, and PyTorch's intra-op threads speed small matrices up only 1.3 to
1.6 times from one thread to two. Two data-parallel processes with one thread each, every one on half the batch,
might do better. Both sides run in this script, one after the other, on the demo recipe (3 blocks, 48 people per
step, MLA + BMM, CMPM, fused AdamW, eager attention) with the package's own collator and sampler:

    one process, 2 threads:        48 images per step
    two processes, 1 thread each:  24 images per step each, gradients averaged by DistributedDataParallel (gloo)

Each side prepares its batches first and then times the training steps only (forward, backward, all-reduce in the
second, update). Each process computes the loss over its own half, the reference's per-process form: 24 people give
each text fewer negatives than 48, so the two sides are not the same recipe; `--gather_loss` in training restores
the global negatives at the cost of an all-gather.

    python experiments/bench_two_processes.py --data_root outputs/demo/data [--steps 30]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import demo_recipe_sweep as sweep  # noqa: E402

RECIPE = "r4_ref"
WARMUP = 3  # untimed steps before the timed ones


def worker(rank: int, data_root: Path, steps: int, port: int, results) -> None:
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    sweep.VARIANTS["half"] = sweep.VARIANTS[RECIPE] | dict(batch=sweep.VARIANTS[RECIPE]["batch"] // 2, seed=rank)
    data = sweep.read_raw(data_root)
    settings, model, _, loader, sampler, optimizer, scheduler = sweep.build("half", data, torch.device("cpu"))
    stream = sweep.batches(loader, sampler)
    held = [next(stream) for _ in range(steps + WARMUP)]
    ddp = DistributedDataParallel(model)
    dist.barrier()
    per_step = sweep.timed_steps(ddp, optimizer, scheduler, settings, iter(held), steps, warmup=WARMUP)
    dist.barrier()
    results[rank] = per_step
    dist.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_root", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--port", type=int, default=29531)
    args = parser.parse_args()

    import torch
    import torch.multiprocessing as mp

    batch = sweep.VARIANTS[RECIPE]["batch"]
    print(f"demo recipe ({RECIPE}): {batch} images per step, {args.steps} timed steps per side, {os.cpu_count()} CPUs")

    manager = mp.Manager()
    results = manager.dict()
    mp.spawn(worker, args=(args.data_root, args.steps, args.port, results), nprocs=2, join=True)
    two = max(results.values())

    torch.set_num_threads(2)
    data = sweep.read_raw(args.data_root)
    settings, model, _, loader, sampler, optimizer, scheduler = sweep.build(RECIPE, data, torch.device("cpu"))
    stream = sweep.batches(loader, sampler)
    held = [next(stream) for _ in range(args.steps + WARMUP)]
    one = sweep.timed_steps(model, optimizer, scheduler, settings, iter(held), args.steps, warmup=WARMUP)

    print(f"{'side':<40} {'s per step':>10} {'images/s':>9}")
    print(f"{'one process, 2 threads, ' + str(batch) + ' images':<40} {one:10.3f} {batch / one:9.1f}")
    print(f"{'two processes, 1 thread, ' + str(batch // 2) + ' images each':<40} {two:10.3f} {batch / two:9.1f}")
    print(f"speed-up of two processes: {one / two:.2f}x")


if __name__ == "__main__":
    main()

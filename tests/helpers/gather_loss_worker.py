"""Worker for tests/training/test_distributed_loss.py, launched as
``torchrun --nproc_per_node 2 gather_loss_worker.py OUT``.

Each rank takes its share of one seeded global batch, runs a tiny two-tower linear model wrapped in
DistributedDataParallel (gloo, CPU), computes the CMPM loss and lets DDP average the gradients. It writes the loss and
the synchronised gradients of three scenarios to ``OUT/rank{r}.pt``; the test compares them with one process
computing the loss over the concatenated batch. `build_problem` is imported by the test so both sides use the same
data and initial weights.
"""

from __future__ import annotations

import os
import sys

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

GLOBAL_PAIRS = 12
NUM_IDENTITIES = 4  # labels = arange % 4: every identity has pairs on both ranks, so gathering changes positives
FEATURE_DIM = 6
EMBED_DIM = 5

# rows of the global batch owned by each rank, per scenario: (gather?, row split)
SCENARIOS = {
    "gathered_even": (True, (6, 6)),
    "gathered_uneven": (True, (5, 7)),
    "per_process_even": (False, (6, 6)),
}


class TwoTower(nn.Module):
    def __init__(self):
        super().__init__()
        self.image_projection = nn.Linear(FEATURE_DIM, EMBED_DIM)
        self.text_projection = nn.Linear(FEATURE_DIM, EMBED_DIM)

    def forward(self, image_features: torch.Tensor, text_features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.image_projection(image_features), self.text_projection(text_features)


def build_problem() -> tuple[TwoTower, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Same model weights, features (pairs, FEATURE_DIM) and labels (pairs,) in every process and in the test."""
    generator = torch.Generator().manual_seed(1234)
    image_features = torch.randn(GLOBAL_PAIRS, FEATURE_DIM, generator=generator) * 2
    text_features = torch.randn(GLOBAL_PAIRS, FEATURE_DIM, generator=generator) * 2
    labels = torch.arange(GLOBAL_PAIRS) % NUM_IDENTITIES
    torch.manual_seed(0)
    return TwoTower().double(), image_features.double(), text_features.double(), labels


def run_scenario(gather: bool, split: tuple[int, int]) -> dict:
    from ivt_hf.training.finetuning.losses import cmpm_loss, cmpm_loss_global

    model, image_features, text_features, labels = build_problem()
    ddp_model = DistributedDataParallel(model)  # CPU module: no device_ids; averages gradients over ranks
    rank = dist.get_rank()
    start = sum(split[:rank])
    rows = slice(start, start + split[rank])
    image_embeddings, text_embeddings = ddp_model(image_features[rows], text_features[rows])
    loss_fn = cmpm_loss_global if gather else cmpm_loss
    loss = loss_fn(image_embeddings, text_embeddings, labels[rows])
    loss.backward()
    grads = {name: parameter.grad.detach().clone() for name, parameter in model.named_parameters()}
    return {"loss": loss.detach(), "grads": grads}


def main(out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    world_size = dist.get_world_size()
    assert world_size == 2, f"expected 2 processes, got world size {world_size}"
    results = {"world_size": torch.tensor(world_size)}
    for name, (gather, split) in SCENARIOS.items():
        results[name] = run_scenario(gather, split)
    torch.save(results, os.path.join(out_dir, f"rank{dist.get_rank()}.pt"))
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])

"""One of two gloo processes for tests/training/test_gradcache.py (`torchrun --nproc_per_node 2 THIS OUT`): GradCache
steps under DistributedDataParallel, against what they must equal.

- Fine-tuning: a micro IVTModel (float64, no randomness), each process 6 of 12 pairs, chunks of 4, CMPM over the
  gathered pairs; DDP's averaged gradients against one process's plain step over all 12 pairs.
- Pre-training: a tiny IVTForPreTraining (float64, dropout on), each process 5 of 10 pairs, chunks of 3, ITC over the
  gathered batch; against the plainly written reference (`gradcache_reference.pretraining_reference`, every chunk's
  graph kept) on each process, averaged over the processes as DDP does.
Counts DDP's gradient reductions per step (a comm hook): chunks before the last run under no_sync, so one.
Writes OUT/rank{r}.pt.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook
from torch.nn.parallel import DistributedDataParallel

sys.path.insert(0, str(Path(__file__).parent))
from gradcache_reference import pretraining_reference  # noqa: E402
from itc_setting import tiny_pretraining_config  # noqa: E402

from ivt_hf import IVTConfig, IVTModel  # noqa: E402
from ivt_hf.model.modeling_ivt import IVTForPreTraining  # noqa: E402
from ivt_hf.training.distributed import all_gather_with_grad  # noqa: E402
from ivt_hf.training.finetuning.losses import cmpm_loss, cmpm_loss_terms, gather_embeddings_and_labels  # noqa: E402
from ivt_hf.training.gradcache import ChunkOutput, GradCache  # noqa: E402
from ivt_hf.training.pretraining.loop import cached_pretraining_step  # noqa: E402


def counted(ddp: DistributedDataParallel) -> list[int]:
    calls = [0]

    def hook(state, bucket):
        calls[0] += 1
        return allreduce_hook(None, bucket)

    ddp.register_comm_hook(None, hook)
    return calls


def largest_difference(model: torch.nn.Module, expected: dict[str, torch.Tensor]) -> float:
    return max((parameter.grad - expected[name]).abs().max().item() for name, parameter in model.named_parameters())


def finetuning(rank: int, world: int) -> dict:
    torch.manual_seed(0)
    config = IVTConfig.from_preset("micro", token_drop_ratio=0.0)
    model = IVTModel(config).double().train()
    reference = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(1)
    pixels = torch.randn(12, 3, 64, 32, generator=generator, dtype=torch.float64)
    ids = torch.randint(1000, 20000, (12, 10), generator=generator)
    mask = torch.ones_like(ids)
    mask[::3, 5:] = 0
    labels = torch.arange(12) % 4  # every identity on both processes: gathering changes the positives

    out = reference(pixel_values=pixels, input_ids=ids, attention_mask=mask)
    cmpm_loss(out.image_embeds, out.text_embeds, labels).backward()
    expected = {name: parameter.grad.clone() for name, parameter in reference.named_parameters()}

    ddp = DistributedDataParallel(model)
    reductions = counted(ddp)
    mine = slice(6 * rank, 6 * rank + 6)

    def encode_chunk(rows, with_graph):
        net = ddp if with_graph else model
        outputs = net(pixel_values=pixels[mine][rows], input_ids=ids[mine][rows], attention_mask=mask[mine][rows])
        return ChunkOutput((outputs.image_embeds, outputs.text_embeds))

    def batch_loss(image, text):
        terms = cmpm_loss_terms(*gather_embeddings_and_labels(image, text, labels[mine]))
        return {"image_to_text": terms.image_to_text, "text_to_image": terms.text_to_image}

    step = GradCache(4, no_sync=ddp.no_sync).step(6, encode_chunk, batch_loss)
    return {
        "finetuning_loss": step.loss.item(),
        "finetuning_difference": largest_difference(model, expected),
        "finetuning_grad_size": max(grad.abs().max().item() for grad in expected.values()),
        "finetuning_reductions": reductions[0],
    }


def pretraining(rank: int, world: int) -> dict:
    torch.manual_seed(0)
    config = tiny_pretraining_config(fusion_hidden_dropout=0.1, text_embedding_dropout=0.1, drop_path_rate=0.1)
    model = IVTForPreTraining(config).double().train()
    reference = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(2 + rank)
    ids = torch.randint(5, 120, (5, 9), generator=generator)
    labels = torch.full_like(ids, -100)
    labels[:, 2] = ids[:, 2]
    inputs = {
        "pixel_values": torch.randn(5, 3, 64, 32, generator=generator, dtype=torch.float64),
        "input_ids": ids,
        "attention_mask": torch.ones_like(ids),
        "mlm_input_ids": ids.masked_fill(labels != -100, 4),
        "mlm_labels": labels,
    }
    torch.manual_seed(10 + rank)
    pretraining_reference(reference, inputs, chunk_size=3, itc_gather=all_gather_with_grad)
    expected = {}
    for name, parameter in reference.named_parameters():
        dist.all_reduce(parameter.grad)  # what DDP does: the average over the processes
        expected[name] = parameter.grad / world

    ddp = DistributedDataParallel(model)
    reductions = counted(ddp)
    torch.manual_seed(10 + rank)
    cached_pretraining_step(ddp, model, inputs, GradCache(3, no_sync=ddp.no_sync), itc_gather=all_gather_with_grad)
    return {"pretraining_difference": largest_difference(model, expected), "pretraining_reductions": reductions[0]}


def main(out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    results = {"world_size": world} | finetuning(rank, world) | pretraining(rank, world)
    torch.save(results, Path(out_dir) / f"rank{rank}.pt")
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])

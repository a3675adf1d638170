"""Small torch.distributed helpers for losses computed over the global batch.

The IVT reference computes its CMPM loss per process, so with several GPUs each process only sees its own negatives.
Gathering the embeddings of all processes (with gradient) lets every process compute the loss of the concatenated
global batch. `torch.distributed.nn.functional.all_gather` does this but is deprecated in torch 2.13, so this module
carries its own ten-line `torch.autograd.Function`.

Gradient convention (the one thing to get right)
------------------------------------------------
Every process evaluates the SAME global loss ``L`` over all gathered rows. In the backward pass each process holds
``dL/d(all rows)``; `all_gather_with_grad` sums that gradient over processes (all-reduce SUM) and keeps the slice of
its own rows. Rank ``r``'s local rows therefore receive ``world_size * dL/d(rows of r)``. DistributedDataParallel
then AVERAGES parameter gradients over the ``world_size`` processes::

    (1 / W) * sum_r  W * dL/dtheta |through rows of r  =  dL/dtheta

which is exactly the gradient one process computes over the concatenated batch. So: use it with DDP's default
averaging and do NOT rescale the loss by the world size. If gradients are instead summed across processes (for
example a manual ``all_reduce(SUM)`` without dividing), divide them by the world size.

`tests/training/test_distributed_loss.py` proves this with two real gloo processes.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

__all__ = [
    "all_gather_no_grad",
    "all_gather_with_grad",
    "get_rank",
    "get_world_size",
    "is_distributed",
]


def is_distributed() -> bool:
    """True when a default process group is initialised (torchrun, accelerate, HF Trainer in DDP mode)."""
    return dist.is_available() and dist.is_initialized()


def get_world_size(group: dist.ProcessGroup | None = None) -> int:
    """World size of `group`, or 1 without a process group (so callers need no special case)."""
    return dist.get_world_size(group) if is_distributed() else 1


def get_rank(group: dist.ProcessGroup | None = None) -> int:
    """Rank in `group`, or 0 without a process group."""
    return dist.get_rank(group) if is_distributed() else 0


def _gather_row_counts(tensor: torch.Tensor, group: dist.ProcessGroup | None) -> list[int]:
    """Number of rows (dim 0) on every rank; the last batch of an epoch may differ between ranks."""
    local_count = torch.tensor([tensor.shape[0]], dtype=torch.int64, device=tensor.device)
    counts = [torch.zeros_like(local_count) for _ in range(dist.get_world_size(group))]
    dist.all_gather(counts, local_count, group=group)
    return [int(count.item()) for count in counts]


def _gather_rows(tensor: torch.Tensor, row_counts: list[int], group: dist.ProcessGroup | None) -> torch.Tensor:
    """Concatenate `tensor` from all ranks along dim 0, in rank order.

    `dist.all_gather` needs equal shapes on every rank, so shorter tensors are zero-padded to the longest and the
    padding is cut off again after the exchange.
    """
    max_rows = max(row_counts)
    tensor = tensor.contiguous()
    if tensor.shape[0] < max_rows:
        padding = tensor.new_zeros((max_rows - tensor.shape[0], *tensor.shape[1:]))
        tensor = torch.cat([tensor, padding])
    buffers = [torch.empty_like(tensor) for _ in row_counts]
    dist.all_gather(buffers, tensor, group=group)
    return torch.cat([buffer[:rows] for buffer, rows in zip(buffers, row_counts)])


class _AllGatherWithGrad(torch.autograd.Function):
    """Forward: concatenate the rows of all ranks. Backward: all-reduce (SUM) the gradient, keep the local slice."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor, row_counts: list[int], group: dist.ProcessGroup | None) -> torch.Tensor:
        rank = dist.get_rank(group)
        ctx.group = group
        ctx.local_start = sum(row_counts[:rank])
        ctx.local_end = ctx.local_start + row_counts[rank]
        return _gather_rows(tensor, row_counts, group)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        # Clone: all_reduce works in place and autograd may still own grad_output's storage.
        grad = grad_output.contiguous().clone()  # (global_rows, ...)
        dist.all_reduce(grad, op=dist.ReduceOp.SUM, group=ctx.group)
        return grad[ctx.local_start : ctx.local_end], None, None


def all_gather_with_grad(tensor: torch.Tensor, group: dist.ProcessGroup | None = None) -> torch.Tensor:
    """Concatenate `tensor` (rows on dim 0) from all ranks, differentiably; identity without a process group.

    Ranks may hold different numbers of rows. See the module docstring for the gradient convention: the local rows
    receive ``world_size`` times the gradient of the (identical) global loss, which DDP's gradient averaging turns
    back into the exact single-process gradient.

    Shapes: (local_rows, ...) -> (sum of rows over ranks, ...), rank 0's rows first.
    """
    if get_world_size(group) == 1:
        return tensor
    return _AllGatherWithGrad.apply(tensor, _gather_row_counts(tensor, group), group)


def all_gather_no_grad(tensor: torch.Tensor, group: dist.ProcessGroup | None = None) -> torch.Tensor:
    """Concatenate `tensor` (rows on dim 0) from all ranks without gradient (labels, metrics).

    Shapes: (local_rows, ...) -> (sum of rows over ranks, ...), rank 0's rows first.
    """
    if get_world_size(group) == 1:
        return tensor
    with torch.no_grad():
        return _gather_rows(tensor.detach(), _gather_row_counts(tensor, group), group)

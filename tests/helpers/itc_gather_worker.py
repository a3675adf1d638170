"""One of two gloo processes: ITC over the gathered batch (`itc_gather=all_gather_with_grad`) on this process's
half of a fixed batch; writes the loss and the process-averaged gradients (what DDP applies) for the test to compare
with one process over the whole batch."""

import sys

import torch.distributed as dist
from itc_setting import BATCH, itc_model_and_batch

from ivt_hf.training.distributed import all_gather_with_grad

dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
model, pixels, ids = itc_model_and_batch()
rows = slice(rank * BATCH // world, (rank + 1) * BATCH // world)
out = model(pixels[rows], ids[rows], itc_gather=all_gather_with_grad)
out.loss_itc.backward()
grads = {}
for name, parameter in model.named_parameters():
    if parameter.grad is not None:
        grad = parameter.grad.clone()
        dist.all_reduce(grad)
        grads[name] = grad / world
loss = out.loss_itc.detach().clone()
dist.all_reduce(loss)
if rank == 0:
    import torch

    torch.save({"loss": loss / world, "grads": grads}, sys.argv[1])
dist.destroy_process_group()

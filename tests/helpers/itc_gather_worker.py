"""One of two gloo processes: ITC over the gathered batch (`gather_itc=True`) on this process's half of a fixed
batch; writes the loss and the process-averaged gradients (what DDP applies) for the test to compare with one process
over the whole batch."""

import sys

import torch
import torch.distributed as dist

from ivt_hf.model import IVTConfig, IVTForPreTraining

dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
torch.manual_seed(0)
config = IVTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, vocab_size=120,
                   max_position_embeddings=32, image_size=(64, 32), fusion_num_hidden_layers=1,
                   fusion_hidden_dropout=0.0, fusion_attention_dropout=0.0, drop_path_rate=0.0,
                   text_embedding_dropout=0.0)  # fmt: skip
model = IVTForPreTraining(config).eval()
generator = torch.Generator().manual_seed(1)
pixels = torch.randn(8, 3, 64, 32, generator=generator)
ids = torch.randint(5, 120, (8, 9), generator=generator)
rows = slice(rank * 4, rank * 4 + 4)
out = model(pixels[rows], ids[rows], gather_itc=True)
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
    torch.save({"loss": loss / world, "grads": grads}, sys.argv[1])
dist.destroy_process_group()

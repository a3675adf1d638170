"""The full-batch steps a GradCache step must equal, written plainly: every chunk encoded WITH a graph on the same
random stream as GradCache gives it (`ChunkRandomness`, seeded from the global generator at the step's start, so a
caller seeds torch the same way before both), the loss over the concatenated batch, one backward. Memory then holds
every chunk's graph at once: the step GradCache avoids. Shared by tests/training/test_gradcache.py (one process) and
gradcache_ddp_worker.py (two)."""

from __future__ import annotations

import torch
from torch import nn

from ivt_hf.model.modeling_ivt import image_text_contrastive_loss
from ivt_hf.training.finetuning.losses import cmpm_loss, gather_embeddings_and_labels
from ivt_hf.training.gradcache import ChunkRandomness, chunk_slices


def _chunk_outputs(model, inputs: dict[str, torch.Tensor], chunk_size: int) -> list[tuple[slice, object]]:
    rows = inputs["pixel_values"].shape[0]
    slices = chunk_slices(rows, chunk_size)
    randomness = ChunkRandomness(len(slices))
    outputs = []
    for index, chunk in enumerate(slices):
        with randomness.stream(index):
            outputs.append((chunk, model(**{name: tensor[chunk] for name, tensor in inputs.items()})))
    return outputs


def finetuning_reference(model, batch: dict[str, torch.Tensor], chunk_size: int, gather: bool = False) -> torch.Tensor:
    """CMPM over all pairs of `batch` (pixel_values, input_ids, attention_mask, labels), backward; returns the loss."""
    inputs = {name: tensor for name, tensor in batch.items() if name != "labels"}
    outputs = [output for _, output in _chunk_outputs(model, inputs, chunk_size)]
    image = torch.cat([output.image_embeds for output in outputs])
    text = torch.cat([output.text_embeds for output in outputs])
    labels = batch["labels"]
    if gather:
        image, text, labels = gather_embeddings_and_labels(image, text, labels)
    loss = cmpm_loss(image, text, labels)
    loss.backward()
    return loss.detach()


def pretraining_reference(model, inputs: dict[str, torch.Tensor], chunk_size: int, itc_gather=None) -> dict:
    """ITC over the whole batch (all processes' with `itc_gather`) from the chunks' CLS embeddings, plus each
    chunk's ITM weighted by its share of the pairs and its MLM by its share of the masked tokens; backward."""
    rows = inputs["pixel_values"].shape[0]
    masked = inputs["mlm_labels"] != -100
    total_masked = max(int(masked.sum()), 1)
    chunks = _chunk_outputs(model, inputs, chunk_size)
    image = torch.cat([output.image_embeds for _, output in chunks])
    text = torch.cat([output.text_embeds for _, output in chunks])
    if model.config.itc_normalize:
        image, text = nn.functional.normalize(image, dim=-1), nn.functional.normalize(text, dim=-1)
    if itc_gather is not None:
        image, text = itc_gather(image), itc_gather(text)
    loss_itc = image_text_contrastive_loss(image, text, model.log_temperature.exp())
    loss_itm = sum(output.loss_itm * ((chunk.stop - chunk.start) / rows) for chunk, output in chunks)
    loss_mlm = sum(output.loss_mlm * (int(masked[chunk].sum()) / total_masked) for chunk, output in chunks)
    (loss_itc + loss_itm + loss_mlm).backward()
    return {"loss_itc": loss_itc.detach(), "loss_itm": loss_itm.detach(), "loss_mlm": loss_mlm.detach()}

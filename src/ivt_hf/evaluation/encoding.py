"""Batched, L2-normalised embeddings of images and texts, with a progress bar: what evaluation and search share."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from tqdm.auto import tqdm


@torch.no_grad()
def _encode_in_batches(model, num_items: int, batch_size: int, embed_batch, progress: bool, description: str):
    """Run `embed_batch(start, stop) -> (batch, hidden)` over [0, num_items) in eval mode (restoring the mode
    afterwards) and return the L2-normalised float32 embeddings `(num_items, hidden)` on the CPU."""
    was_training = model.training
    model.eval()
    chunks = []
    try:
        for start in tqdm(range(0, num_items, batch_size), desc=description, disable=not progress, unit="batch"):
            embeddings = embed_batch(start, min(start + batch_size, num_items))
            chunks.append(torch.nn.functional.normalize(embeddings.float(), dim=-1).cpu())
    finally:
        model.train(was_training)
    return torch.cat(chunks) if chunks else torch.empty(0, model.config.hidden_size)


def encode_images(
    model,
    processor,
    images: Sequence[Any],
    *,
    batch_size: int = 64,
    progress: bool = True,
    description: str = "encoding images",
) -> torch.Tensor:
    """`(len(images), hidden)` L2-normalised float32 image embeddings. `images`: anything the processor accepts, or a
    `datasets.Dataset` with an `image` column (decoded batch by batch)."""
    device = next(model.parameters()).device

    def embed_batch(start: int, stop: int) -> torch.Tensor:
        batch = images[start:stop]
        if isinstance(batch, dict):  # a datasets.Dataset slice
            batch = batch["image"]
        pixel_values = processor.image_processor(list(batch), return_tensors="pt")["pixel_values"]
        return model.get_image_features(pixel_values.to(device))

    return _encode_in_batches(model, len(images), batch_size, embed_batch, progress, description)


def encode_texts(
    model,
    processor,
    texts: Sequence[str],
    *,
    batch_size: int = 256,
    max_length: int | None = None,
    progress: bool = True,
    description: str = "encoding captions",
) -> torch.Tensor:
    """`(len(texts), hidden)` L2-normalised float32 text embeddings."""
    device = next(model.parameters()).device
    texts = list(texts)

    def embed_batch(start: int, stop: int) -> torch.Tensor:
        encoded = processor(text=texts[start:stop], max_length=max_length)
        return model.get_text_features(encoded["input_ids"].to(device), encoded["attention_mask"].to(device))

    return _encode_in_batches(model, len(texts), batch_size, embed_batch, progress, description)


__all__ = ["encode_images", "encode_texts"]

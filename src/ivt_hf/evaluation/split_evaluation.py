"""Benchmark evaluation: every caption of a split queries every image of it (the standard protocol).

Used by the trainer's validation, `ivt evaluate` and the demo; the numbers come from `metrics.retrieval_metrics`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import torch

from ..data.schema import caption_view
from ..errors import IVTInputError
from .encoding import encode_images, encode_texts
from .metrics import retrieval_metrics


@dataclass
class SplitEvaluation:
    """The outcome of `evaluate_split`: metrics plus what is needed to draw or re-score the ranking."""

    metrics: dict[str, float]
    similarity: torch.Tensor  # (num_captions, num_images), text -> image cosine
    query_pids: torch.Tensor  # (num_captions,)
    gallery_pids: torch.Tensor  # (num_images,)
    captions: list[str]
    image_index: torch.Tensor  # (num_captions,) row of each caption's own image
    facts: dict[str, Any] = field(default_factory=dict)


def evaluate_split(
    model,
    processor,
    image_split,
    *,
    protocol: str = "standard",
    official_every_second_gallery_row: bool = False,
    batch_size: int = 64,
    max_queries: int | None = None,
    progress: bool = True,
) -> SplitEvaluation:
    """Text-to-image retrieval on one image-level split: every caption queries every image of the split.

    `image_split` is a split of `ivt_hf.data.load_benchmark` (columns `image`, `captions`, `person_id`).
    `official_every_second_gallery_row` rebuilds the reference's gallery (one image per caption row, rows 0, 2, 4...).
    `max_queries` keeps the first N captions (for quick validation during training; the gallery stays whole).
    """
    if len(image_split) == 0:
        raise IVTInputError(f"split {image_split.split!r} holds no images: nothing to evaluate")
    start = time.perf_counter()
    queries = caption_view(image_split)
    if max_queries is not None and max_queries < len(queries):
        queries = queries.select(range(max_queries))
    captions = list(queries["caption"])
    query_pids = torch.tensor(queries["person_id"], dtype=torch.long)
    image_index = torch.tensor(queries["image_index"], dtype=torch.long)
    gallery_pids = torch.tensor(image_split["person_id"], dtype=torch.long)

    image_embeddings = encode_images(model, processor, image_split, batch_size=batch_size, progress=progress)
    text_embeddings = encode_texts(model, processor, captions, batch_size=4 * batch_size, progress=progress)
    similarity = text_embeddings @ image_embeddings.t()  # (captions, images)
    if official_every_second_gallery_row:
        scored, scored_pids = similarity[:, image_index], gallery_pids[image_index]
    else:
        scored, scored_pids = similarity, gallery_pids
    metrics = retrieval_metrics(
        scored,
        query_pids,
        scored_pids,
        protocol=protocol,
        official_every_second_gallery_row=official_every_second_gallery_row,
    )
    facts = {
        "protocol": protocol,
        "official_every_second_gallery_row": official_every_second_gallery_row,
        "num_queries": len(captions),
        "num_gallery": len(range(0, scored.shape[1], 2 if official_every_second_gallery_row else 1)),
        "num_identities": int(gallery_pids.unique().numel()),
        "seconds": round(time.perf_counter() - start, 2),
    }
    return SplitEvaluation(metrics, similarity, query_pids, gallery_pids, captions, image_index, facts)


__all__ = ["SplitEvaluation", "evaluate_split"]

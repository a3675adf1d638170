"""Is pre-training learning to align at all? Two numbers per logged step, and one warning.

ITC on the CLS embeddings has a failure that its loss alone hides: every caption's CLS starts as almost the same
vector when the text side is initialised from scratch with small weights (the tiny preset's `initializer_range`
0.02 gives a mean cosine of 0.9998 between captions), so each text scores all images alike, and ITC's
text-to-image term is then lowest when all images look alike too. Within a few dozen steps every image CLS points
the same way, ITC sits at chance (ln of the ITC batch) and ITM at the entropy of one positive in three, and only MLM
learns: the encoder has collapsed. Fine-tuning from such a folder starts with gradients several times smaller than
from scratch and its result depends on the seed (benchmarks/README.md, "Does pre-training transfer on real pairs?").

`alikeness` measures it (the mean cosine between the CLS vectors of different pairs of a batch), the loop logs it
for images and texts as `image_alike` / `text_alike`, and `collapse_warning` words it when a logged step shows it.
"""

from __future__ import annotations

import math

import torch

ALIKE_NAMES = ("image_alike", "text_alike")
COLLAPSED_ALIKENESS = 0.99  # mean cosine between different pairs' CLS vectors; a fresh image side is ~0.94
CHANCE_TOLERANCE = 0.02  # ITC within this share of ln(batch) counts as chance


def alikeness(embeddings: torch.Tensor) -> float:
    """The mean cosine between the rows of `embeddings` `(batch, hidden)`, each with every other row (1.0: all rows
    point the same way). Needs at least 2 rows."""
    rows = embeddings.shape[0]
    if rows < 2:
        raise ValueError(f"alikeness needs at least 2 rows, got {rows}")
    normalised = torch.nn.functional.normalize(embeddings.detach().float(), dim=-1)
    similarity = normalised @ normalised.t()
    return float((similarity.sum() - similarity.diagonal().sum()) / (rows * rows - rows))


def collapse_warning(record: dict, itc_batch: int) -> str | None:
    """The warning for a logged step `record` (`step`, `loss_itc`, `image_alike`, `text_alike`) of a run whose ITC
    compares `itc_batch` pairs, or None when it does not look collapsed: ITC at chance AND the CLS vectors of both
    modalities alike."""
    if not all(name in record for name in (*ALIKE_NAMES, "loss_itc")) or itc_batch < 2:
        return None
    chance = math.log(itc_batch)
    at_chance = abs(record["loss_itc"] - chance) <= CHANCE_TOLERANCE * chance
    alike = min(record["image_alike"], record["text_alike"]) >= COLLAPSED_ALIKENESS
    if not (at_chance and alike):
        return None
    return (
        f"step {record['step']}: the encoder looks collapsed: ITC {record['loss_itc']:.3f} is chance "
        f"(ln {itc_batch} = {chance:.3f}) and every pair's CLS points the same way (mean cosine between images "
        f"{record['image_alike']:.3f}, between captions {record['text_alike']:.3f}); nothing contrastive is being "
        "learnt. From scratch, a larger --initializer_range (0.05 for the tiny preset) or a start from backbones "
        "(--backbone, --bert_checkpoint) avoids it"
    )

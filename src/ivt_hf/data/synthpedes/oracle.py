"""The SynthPEDES oracle: rankings from the ground truth that the generator knows and a model must read off pixels.

`oracle_similarity` scores each gallery image by the described attributes it shares with the ones a caption
mentions: the ceiling that the captions allow. `random_similarity` is its counterpart, the floor. Their inputs (the
attributes each caption mentions, each gallery person's attributes) come from the plan, for planned images
(`planned_baseline_inputs`) or a loaded split (`baseline_inputs`, which rebuilds the plan from the generator
configuration stored in the dataset). `ivt_hf.evaluation.floor_and_ceiling` turns these similarities into metrics.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ...errors import IVTInputError
from ..specs import get_spec
from .attributes import ATTRIBUTE_KEYS
from .planning import GENERATOR_VERSION, PlannedImage, SynthConfig, plan
from .storage import read_synthpedes

if TYPE_CHECKING:
    import datasets
    import torch


def random_similarity(num_queries: int, num_gallery: int, *, seed: int = 0) -> torch.Tensor:
    """Chance level: i.i.d. uniform scores, shape (num_queries, num_gallery)."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    return torch.rand(num_queries, num_gallery, generator=generator)


def oracle_similarity(
    query_attributes: Sequence[Mapping[str, Any]],
    gallery_attributes: Sequence[Mapping[str, Any]],
    *,
    seed: int = 0,
    chunk_size: int = 512,
) -> torch.Tensor:
    """The exact-attribute oracle, shape (num_queries, num_gallery).

    `query_attributes[q]` holds only the attributes caption q mentions (with the described person's values);
    `gallery_attributes[g]` all described attributes of the person in gallery image g. A gallery image scores the
    number of mentioned attributes it agrees with, plus uniform noise in [0, 0.5) that breaks ties at random (a
    ranking that favoured low gallery indices would flatter the oracle). Its R@1 is the ceiling that captions allow:
    it fails only when a caption leaves out the attribute that tells siblings apart.
    """
    import torch

    vocabulary: dict[tuple[str, Any], int] = {}

    def encode(attributes: Mapping[str, Any], missing: int) -> list[int]:
        return [
            vocabulary.setdefault((key, attributes[key]), len(vocabulary)) if key in attributes else missing
            for key in ATTRIBUTE_KEYS
        ]

    gallery = torch.tensor([encode(attributes, -2) for attributes in gallery_attributes], dtype=torch.long)
    queries = torch.tensor([encode(attributes, -1) for attributes in query_attributes], dtype=torch.long)
    generator = torch.Generator().manual_seed(seed)
    scores = torch.rand(len(queries), len(gallery), generator=generator) * 0.5
    for start in range(0, len(queries), chunk_size):
        chunk = queries[start : start + chunk_size]  # (chunk, keys); -1 never equals a gallery code
        scores[start : start + chunk_size] += (chunk[:, None, :] == gallery[None, :, :]).sum(-1).float()
    return scores


def synthpedes_split(dataset_or_root: Any, split: str) -> datasets.Dataset:
    import datasets

    if isinstance(dataset_or_root, (str, os.PathLike)):
        dataset_or_root = read_synthpedes(dataset_or_root, verify_images=False)[0]
    if isinstance(dataset_or_root, datasets.DatasetDict):
        dataset_or_root = dataset_or_root[split]
    return dataset_or_root


def planned_baseline_inputs(images: Sequence[PlannedImage]) -> dict[str, Any]:
    """Baseline inputs with `images` as the gallery (in order) and their captions as the queries (image by image,
    caption by caption: the order of `caption_view`). Ids are the original ones, which is all the metrics need."""
    return {
        "query_attributes": [
            {key: image.identity.attributes[key] for key in keys} for image in images for keys in image.mentions
        ],
        "gallery_attributes": [image.identity.attributes for image in images],
        "query_pids": [image.identity.person_id for image in images for _ in image.mentions],
        "gallery_pids": [image.identity.person_id for image in images],
    }


def baseline_inputs(dataset: datasets.Dataset) -> dict[str, Any]:
    """Queries (the attributes each caption mentions) and gallery (each image's person's attributes) of a loaded
    SynthPEDES split, rebuilt from the generator configuration stored in the dataset (no metadata file needed)."""
    try:
        config = SynthConfig.from_json(json.loads(dataset.info.description)["synthpedes"])
    except (ValueError, KeyError, TypeError):
        raise IVTInputError(
            "baselines need a SynthPEDES dataset (its info.description holds the generator config)"
        ) from None
    if config.version != GENERATOR_VERSION:
        raise IVTInputError(
            f"dataset made by generator version {config.version}, this is {GENERATOR_VERSION}: regenerate"
        )
    image_dir = get_spec(config.layout).image_dir
    planned = {f"{image_dir}/{image.raw_path}": image for image in plan(config).images}
    return planned_baseline_inputs([planned[path] for path in dataset.select_columns(["image_path"])["image_path"]])

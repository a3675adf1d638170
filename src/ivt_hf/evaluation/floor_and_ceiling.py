"""The floor and the ceiling of a SynthPEDES split, so that any model's numbers can be read between them.

The similarity matrices come from the benchmark itself (`ivt_hf.data.synthpedes.oracle`: i.i.d. random scores, and
the exact-attribute oracle that ranks by the attributes each caption mentions); this module scores them like a model.
An `EvaluationRecord` keeps the result as its `baselines`, which model cards show around the model's numbers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from ..data.synthpedes import baseline_inputs, oracle_similarity, random_similarity, synthpedes_split
from .metrics import retrieval_metrics


def baseline_metrics(inputs: Mapping[str, Any], *, seed: int = 0) -> dict[str, dict[str, float]]:
    """`{"random": metrics, "oracle": metrics}` for baseline inputs (standard protocol, percent)."""
    query_pids = torch.as_tensor(list(inputs["query_pids"]))
    gallery_pids = torch.as_tensor(list(inputs["gallery_pids"]))
    similarities = {
        "random": random_similarity(len(query_pids), len(gallery_pids), seed=seed),
        "oracle": oracle_similarity(inputs["query_attributes"], inputs["gallery_attributes"], seed=seed),
    }
    return {
        name: retrieval_metrics(similarity, query_pids, gallery_pids, protocol="standard")
        for name, similarity in similarities.items()
    }


def synthpedes_baselines(dataset_or_root: Any, split: str = "test", *, seed: int = 0) -> dict[str, dict[str, float]]:
    """Floor and ceiling of a SynthPEDES split: `{"random": metrics, "oracle": metrics}` (R1, R5, R10, mAP, mINP in
    percent, standard protocol).

    `dataset_or_root`: a DatasetDict or Dataset from `load_benchmark("synthpedes", ...)`, or a SynthPEDES folder.
    """
    return baseline_metrics(baseline_inputs(synthpedes_split(dataset_or_root, split)), seed=seed)


__all__ = ["baseline_metrics", "synthpedes_baselines"]

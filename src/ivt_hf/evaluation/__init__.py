"""Evaluation: exact metrics, encoding, split evaluation, the evaluation record, pictures of results.

- `metrics.py`: `retrieval_metrics(similarity, query_pids, gallery_pids)` (R@K, mAP, mINP; pure, exact, chunked) and
  the same as an `evaluate` module (`evaluate_metric/`);
- `encoding.py`: batched L2-normalised image and text embeddings (shared with search);
- `split_evaluation.py`: `evaluate_split`, every caption of a split against every image of it;
- `record.py`: `EvaluationRecord`, the one JSON shape of an evaluation's result;
- `floor_and_ceiling.py`: the metrics of the random floor and the attribute-oracle ceiling of a SynthPEDES split;
- `pictures.py`: top-k result pictures.
"""

import importlib

# Each name loads its module on first use (PEP 562), as the root package does: search imports `encoding.py` on the
# page of a Space exported for onnxruntime, where torch is not installed (`metrics.py` and the rest need it)
_LAZY = {
    "encode_images": ".encoding",
    "encode_texts": ".encoding",
    "retrieval_metrics": ".metrics",
    "EvaluationRecord": ".record",
    "InvalidEvaluationRecordError": ".record",
    "format_metrics_table": ".record",
    "SplitEvaluation": ".split_evaluation",
    "evaluate_split": ".split_evaluation",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = sorted(_LAZY)

"""Evaluation: exact metrics, encoding, split evaluation, the evaluation record, pictures of results.

- `metrics.py`: `retrieval_metrics(similarity, query_pids, gallery_pids)` (R@K, mAP, mINP; pure, exact, chunked) and
  the same as an `evaluate` module (`evaluate_metric/`);
- `encoding.py`: batched L2-normalised image and text embeddings (shared with search);
- `split_evaluation.py`: `evaluate_split`, every caption of a split against every image of it;
- `record.py`: `EvaluationRecord`, the one JSON shape of an evaluation's result;
- `floor_and_ceiling.py`: the metrics of the random floor and the attribute-oracle ceiling of a SynthPEDES split;
- `pictures.py`: top-k result pictures.
"""

from .encoding import encode_images, encode_texts
from .metrics import retrieval_metrics
from .record import EvaluationRecord, InvalidEvaluationRecordError, format_metrics_table
from .split_evaluation import SplitEvaluation, evaluate_split

__all__ = [
    "EvaluationRecord",
    "InvalidEvaluationRecordError",
    "SplitEvaluation",
    "encode_images",
    "encode_texts",
    "evaluate_split",
    "format_metrics_table",
    "retrieval_metrics",
]

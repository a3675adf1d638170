"""`evaluate` wrapper of `ivt_hf.evaluation.metrics.retrieval_metrics`: text-to-image person retrieval R@K, mAP, mINP.

Load it offline from the installed package with `ivt_hf.evaluation.metrics.load_metric()` (the same as
`evaluate.load(str(ivt_hf.evaluation.metrics.EVALUATE_METRIC_PATH))`). `evaluate` copies this file into its modules
cache before importing it, so it imports `ivt_hf` absolutely and holds no logic of its own: the numbers are exactly
those of `retrieval_metrics`.
"""

import datasets
import evaluate
import numpy as np

from ivt_hf.evaluation.metrics import retrieval_metrics

_DESCRIPTION = """\
Retrieval metrics of a query-by-gallery similarity matrix, in percent. A gallery item is a positive of a query when
their person ids are equal. protocol="standard" (default): R@1/5/10, mAP and mINP as IRRA and later work report them.
protocol="official": the IVT authors' evaluator, with the same R@K, a trapezoidal mAP and no mINP. Ties are broken
pessimistically (a negative tied with a positive ranks first). Every metric is a mean over queries.
"""

_KWARGS_DESCRIPTION = """\
Args:
    predictions: one row of similarity scores over the whole gallery per query, `(num_queries, num_gallery)`.
        Stored as float32 by `evaluate` (its Arrow cache), so float64 scores are rounded.
    references: the person id of each query, `(num_queries,)`.
    gallery_pids: the person id of each gallery item, `(num_gallery,)`; passed to `compute`, not `add_batch`.
    protocol: "standard" or "official".
    ks: the K of each R@K (default (1, 5, 10)).
    official_every_second_gallery_row, on_missing_positive, chunk_size: as in
    `ivt_hf.evaluation.metrics.retrieval_metrics`.
Returns:
    {"R1", "R5", "R10", "mAP", "mINP"} (standard) or without "mINP" (official), floats in percent.
Example:
    >>> from ivt_hf.evaluation.metrics import load_metric
    >>> metric = load_metric()
    >>> metric.compute(predictions=[[0.9, 0.1], [0.2, 0.8]], references=[7, 3], gallery_pids=[7, 3])
    {'R1': 100.0, 'R5': 100.0, 'R10': 100.0, 'mAP': 100.0, 'mINP': 100.0}
Note:
    `evaluate` writes every added row to an Arrow table, which is slow for very large matrices (ICFG-PEDES is
    19,848 x 19,848); call `ivt_hf.evaluation.metrics.retrieval_metrics` directly on the tensor there.
"""

_CITATION = """\
@inproceedings{shu2022see,
  title={See Finer, See More: Implicit Modality Alignment for Text-based Person Retrieval},
  author={Shu, Xiujun and Wen, Wei and Wu, Haoqian and Chen, Keyu and Song, Yiran and Qiao, Ruizhi and Ren, Bo and
          Wang, Xiao},
  booktitle={European Conference on Computer Vision Workshops},
  year={2022}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class IvtRetrieval(evaluate.Metric):
    """Text-to-image person retrieval metrics (see `ivt_hf.evaluation.metrics`)."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Sequence(datasets.Value("float32")), "references": datasets.Value("int64")}
            ),
            reference_urls=["https://arxiv.org/abs/2208.08608"],
        )

    def _compute(self, predictions, references, gallery_pids, protocol="standard", ks=(1, 5, 10), **options) -> dict:
        similarity = np.asarray(predictions, dtype=np.float32)  # (num_queries, num_gallery)
        return retrieval_metrics(similarity, references, gallery_pids, protocol=protocol, ks=ks, **options)

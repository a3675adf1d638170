"""Text-to-image retrieval metrics: R@K, mAP and mINP, exact, chunked and fast.

Definitions: `docs/design.md`, "Evaluation protocols"; re-implemented from them (no code taken from IRRA or IVT):

- ``protocol="standard"`` is what IRRA (Jiang & Ye, CVPR 2023, ``utils/metrics.py::rank``) and later work report:
  R@K = share of queries with a positive in the top K; AP = mean over a query's positives of the precision at that
  positive's rank; INP = number of positives / rank of the last positive. Keys ``R1 R5 R10 mAP mINP``.
- ``protocol="official"`` reproduces the IVT authors' evaluator (``R1_mAP_CUHK``): the same R@K, and a trapezoidal
  AP that averages the precision just before and at each positive's rank (the Market-1501 evaluation code's
  interpolation). That evaluator computes no INP, so this protocol returns ``R1 R5 R10 mAP`` only: it exists to
  compare with the authors' logs, and an mINP that they never reported would compare with nothing.

Why it is fast: every metric above depends only on the ranks of a query's positives, and the rank of a positive with
score ``a`` is ``k + #{negatives scoring >= a}`` (``k`` = its place among the query's positives). Only negatives
scoring at least the query's lowest positive matter. So per chunk of query rows (CPU) we extract those candidates in
one vectorised pass, sort only them (numpy's SIMD sort, about 8x faster than ``torch.sort`` on CPU) and binary-search
the few positive scores into them: no argsort of the matrix, no index matrix, no (queries, gallery) mask. Chunks run
on a small thread pool (numpy releases the GIL while sorting). Memory above the input is a few chunks. The cost falls
as the model improves (fewer candidates); a random matrix costs about one full sort per row. On accelerators a
batched ``torch.sort`` of each chunk replaces the extraction.

Ties are broken pessimistically: a negative whose score equals a positive's is ranked before it (positives tied with
each other take consecutive ranks, in an order that changes none of the metrics). This is the worst case over all
tie orders for every metric here, so it is deterministic and cannot be gamed by a model that outputs constant
scores; on tie-free input it is exactly the usual ranking.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch

from ..errors import IVTInputError

if TYPE_CHECKING:
    import evaluate

__all__ = ["EVALUATE_METRIC_PATH", "PROTOCOLS", "load_metric", "retrieval_metrics"]

PROTOCOLS = ("standard", "official")
MISSING_POSITIVE_POLICIES = ("raise", "skip")
EVALUATE_METRIC_PATH = Path(__file__).parent / "evaluate_metric" / "ivt_retrieval"

# Default chunk: about 2M scores (8 MB in float32) per chunk of query rows, so memory above the input stays in tens
# of MB for any gallery size while chunks stay large enough that per-chunk overhead is negligible.
_DEFAULT_SCORES_PER_CHUNK = 1 << 21
# Devices counted by candidate extraction + numpy sort per row; others (accelerators) by a batched torch.sort.
_COMPACTION_DEVICES = ("cpu",)


def retrieval_metrics(
    similarity: torch.Tensor | np.ndarray,
    query_pids: torch.Tensor | np.ndarray | Sequence[int],
    gallery_pids: torch.Tensor | np.ndarray | Sequence[int],
    *,
    protocol: Literal["standard", "official"] = "standard",
    ks: Sequence[int] = (1, 5, 10),
    chunk_size: int | None = None,
    official_every_second_gallery_row: bool = False,
    on_missing_positive: Literal["raise", "skip"] = "raise",
    num_workers: int | None = None,
) -> dict[str, float]:
    """Retrieval metrics (in percent) of a query-by-gallery similarity matrix.

    Args:
        similarity: `(num_queries, num_gallery)` scores, higher = more similar (e.g. cosine of text and image
            embeddings). Any float dtype, torch (any device) or numpy. It is never modified or copied whole.
        query_pids: `(num_queries,)` integer person id of each query.
        gallery_pids: `(num_gallery,)` integer person id of each gallery item. A gallery item is a positive of a
            query when the ids are equal (identity level, no camera filtering).
        protocol: `"standard"` (R@K, mAP, mINP as IRRA reports them) or `"official"` (the IVT reference evaluator:
            same R@K, trapezoidal mAP, no mINP). See the module docstring.
        ks: the K of each R@K, reported as keys `f"R{k}"`.
        chunk_size: query rows per chunk. Memory above the input is a few `(chunk_size, num_gallery)` buffers per
            worker (on CPU a boolean mask plus the extracted candidates). Default: about 2M scores per chunk.
            Results do not depend on it.
        official_every_second_gallery_row: reproduce the reference's gallery construction. The reference encoded one
            image per caption row of its test loader and kept rows 0, 2, 4, ... as the gallery, so a CUHK-PEDES
            gallery had 3,078 rows with duplicated images (and some images missing) instead of 3,074 unique images.
            With this option `similarity` must be square, column `i` holding the image of caption row `i` (the same
            order as the queries) and `gallery_pids` the ids of those rows; columns `0, 2, 4, ...` are kept.
            Independent of `protocol`; use both to compare with the authors' logs.
        on_missing_positive: a query whose id has no gallery item has no defined AP. `"raise"` (default) raises a
            `ValueError` naming the first such queries; `"skip"` leaves them out of every metric, with a warning.
        num_workers: threads for CPU chunks (default `torch.get_num_threads()`); device tensors use one.

    Returns:
        `{"R1": ..., "R5": ..., "R10": ..., "mAP": ..., "mINP": ...}` (standard) or without `"mINP"` (official),
        floats in percent, averaged over queries.

    Raises:
        ValueError: on a non-2-D or non-float `similarity`, mismatched sizes, NaN or infinite scores, a query without
            gallery positive (unless skipped), or bad options.
    """
    _check_choice("protocol", protocol, PROTOCOLS)
    _check_choice("on_missing_positive", on_missing_positive, MISSING_POSITIVE_POLICIES)
    ks = _check_ks(ks)
    similarity = _as_similarity(similarity)
    num_queries, num_gallery = similarity.shape
    query_pids = _as_pids(query_pids, "query_pids", num_queries, "similarity.shape[0] (queries)")
    gallery_pids = _as_pids(gallery_pids, "gallery_pids", num_gallery, "similarity.shape[1] (gallery)")
    if official_every_second_gallery_row:
        similarity, gallery_pids = _every_second_gallery_row(similarity, gallery_pids)

    positives = _group_positives(query_pids, gallery_pids, on_missing_positive)
    chunk_size = _positive_int_or_default(
        "chunk_size", chunk_size, max(1, _DEFAULT_SCORES_PER_CHUNK // similarity.shape[1])
    )
    on_cpu = similarity.device.type == "cpu"
    num_workers = _positive_int_or_default("num_workers", num_workers, torch.get_num_threads() if on_cpu else 1)
    chunk_scores = _score_in_chunks(similarity, positives, protocol, ks, chunk_size, num_workers)
    return {
        name: 100.0 * torch.cat([scores[name] for scores in chunk_scores]).mean().item() for name in chunk_scores[0]
    }


def _every_second_gallery_row(
    similarity: torch.Tensor, gallery_pids: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference's gallery (`official_every_second_gallery_row`): columns and ids 0, 2, 4, ... of a square
    similarity whose column i is the image of caption row i; `(queries, ceil(queries / 2))`, a view."""
    if similarity.shape[0] != similarity.shape[1]:
        raise IVTInputError(
            "official_every_second_gallery_row needs a square similarity whose column i is the image of caption "
            f"row i, got shape {tuple(similarity.shape)}"
        )
    return similarity[:, ::2], gallery_pids[::2]


def _score_in_chunks(
    similarity: torch.Tensor,
    positives: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
    protocol: str,
    ks: tuple[int, ...],
    chunk_size: int,
    num_workers: int,
) -> list[dict[str, torch.Tensor]]:
    """Per-query scores (`_per_query_scores`) of every chunk of `chunk_size` query rows, in order, computed on
    `num_workers` threads. `positives` is `_group_positives`'s answer; a failing chunk cancels the ones not started."""
    query_rows, positive_starts, num_positives, gallery_order = positives

    def score_chunk(start: int) -> dict[str, torch.Tensor]:
        rows = slice(start, start + chunk_size)
        ranks, num_positives_chunk = _positive_ranks(
            similarity, query_rows[rows], positive_starts[rows], num_positives[rows], gallery_order
        )
        return _per_query_scores(ranks, num_positives_chunk, protocol, ks)

    starts = range(0, len(query_rows), chunk_size)
    with ThreadPoolExecutor(max_workers=min(num_workers, len(starts))) as executor:
        futures = [executor.submit(score_chunk, start) for start in starts]
        try:
            return [future.result() for future in futures]
        except BaseException:
            for future in futures:
                future.cancel()
            raise


def load_metric(**kwargs: Any) -> evaluate.EvaluationModule:
    """`evaluate.load` of this package's `ivt_retrieval` metric (offline: it is a local folder). Kwargs go to it."""
    import evaluate  # heavy import, only needed here

    return evaluate.load(str(EVALUATE_METRIC_PATH), **kwargs)


def _positive_ranks(
    similarity: torch.Tensor,
    query_rows: torch.Tensor,
    positive_starts: torch.Tensor,
    num_positives: torch.Tensor,
    gallery_order: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """1-based ranks of each query's positives, best first, under the pessimistic tie rule.

    Returns `(ranks, num_positives)`: `ranks` is `(chunk, max_positives)` int64 where only the first
    `num_positives[i]` entries of row `i` are meaningful (the rest is padding).
    """
    device = similarity.device
    slots = torch.arange(int(num_positives.max()))  # (max_positives,)
    is_positive_slot = slots < num_positives[:, None]  # (chunk, max_positives)
    # Padding slots repeat the query's first positive, so every gathered column is a real positive.
    positive_columns = gallery_order[positive_starts[:, None] + torch.where(is_positive_slot, slots, 0)]
    positive_columns, is_positive_slot = positive_columns.to(device), is_positive_slot.to(device)
    slots, num_positives = slots.to(device), num_positives.to(device)

    scores = _select_rows(similarity, query_rows)  # (chunk, gallery)
    bad_rows = ~(torch.isfinite(scores.amin(1)) & torch.isfinite(scores.amax(1)))  # min/max propagate NaN
    if bad_rows.any():
        first = int(query_rows[bad_rows.nonzero()[0, 0].cpu()])
        raise IVTInputError(f"similarity has NaN or infinite scores (first in query row {first})")

    # Best positive first, padding (-inf) last. The k-th positive's rank = k + #negatives scoring >= its score.
    positive_scores = scores.gather(1, positive_columns).masked_fill(~is_positive_slot, float("-inf"))
    positive_scores = positive_scores.sort(dim=1, descending=True).values  # (chunk, max_positives)
    if device.type in _COMPACTION_DEVICES:
        negatives_at_or_above = _count_negatives_by_compaction(scores, positive_columns, positive_scores, num_positives)
    else:
        negatives_at_or_above = _count_negatives_by_sorting(scores, positive_columns, positive_scores)
    ranks = slots + 1 + negatives_at_or_above  # (chunk, max_positives)
    return ranks, num_positives


def _count_negatives_by_compaction(
    scores: torch.Tensor, positive_columns: torch.Tensor, positive_scores: torch.Tensor, num_positives: torch.Tensor
) -> torch.Tensor:
    """CPU: `(chunk, max_positives)` number of negatives scoring >= each positive score (sorted best first).

    Only negatives scoring at least the query's lowest positive can rank above a positive, and with a useful model
    they are a small share of the gallery; so they are extracted first (one vectorised pass) and only they are
    sorted, by numpy's SIMD sort, which releases the GIL. A random matrix costs about one full sort per row.
    """
    scores_array, positive_array = scores.numpy(), positive_scores.numpy()
    lowest_positive = positive_scores.gather(1, num_positives[:, None] - 1).numpy()  # (chunk, 1)
    is_candidate = scores_array >= lowest_positive  # (chunk, gallery)
    np.put_along_axis(is_candidate, positive_columns.numpy(), False, axis=1)  # negatives only
    num_candidates = np.count_nonzero(is_candidate, axis=1)  # (chunk,)
    candidates = np.extract(is_candidate, scores_array)  # (sum(num_candidates),): row after row
    counts = np.zeros(positive_array.shape, dtype=np.int64)  # (chunk, max_positives)
    ends = np.cumsum(num_candidates)
    for row, (start, end) in enumerate(zip((ends - num_candidates).tolist(), ends.tolist())):
        row_candidates = candidates[start:end]
        row_candidates.sort()
        counts[row] = (end - start) - np.searchsorted(row_candidates, positive_array[row], side="left")
    return torch.from_numpy(counts)


def _count_negatives_by_sorting(
    scores: torch.Tensor, positive_columns: torch.Tensor, positive_scores: torch.Tensor
) -> torch.Tensor:
    """Accelerators: the same counts as `_count_negatives_by_compaction`, by a full sort of each row's negatives.

    On a GPU a batched `torch.sort` is fast while per-row compaction is not.
    """
    negatives = scores.clone().scatter_(1, positive_columns, float("-inf"))  # (chunk, gallery), positives blanked
    negatives = negatives.sort(dim=1).values  # ascending; the blanked positives come first and count for nothing
    return scores.shape[1] - torch.searchsorted(negatives, positive_scores, side="left")


def _per_query_scores(
    ranks: torch.Tensor, num_positives: torch.Tensor, protocol: str, ks: tuple[int, ...]
) -> dict[str, torch.Tensor]:
    """Per-query R@K hits, AP and (standard) INP as fractions, from positive ranks (see `_positive_ranks`)."""
    ranks = ranks.double()  # (chunk, max_positives)
    positives = num_positives.double()  # (chunk,)
    place = torch.arange(1, ranks.shape[1] + 1, dtype=torch.float64, device=ranks.device)  # k: 1, 2, ...
    is_positive_slot = place <= positives[:, None]  # (chunk, max_positives)
    precision = place / ranks  # precision at each positive's rank

    scores = {f"R{k}": (ranks[:, 0] <= k).double() for k in ks}  # the best positive is within the top k
    if protocol == "standard":
        scores["mAP"] = (precision * is_positive_slot).sum(1) / positives
        last_rank = ranks.gather(1, num_positives[:, None] - 1).squeeze(1)
        scores["mINP"] = positives / last_rank
    else:
        # Trapezoid: mean of the precision just before the positive, (k - 1) / (rank - 1), or 1 at rank 1, and at it.
        precision_before = torch.where(ranks > 1, (place - 1) / (ranks - 1).clamp(min=1), 1.0)
        scores["mAP"] = ((precision_before + precision) / 2 * is_positive_slot).sum(1) / positives
    return scores


def _select_rows(similarity: torch.Tensor, query_rows: torch.Tensor) -> torch.Tensor:
    """The chunk's rows: a view when they are consecutive (always, unless queries were skipped), else a copy.

    float16 / bfloat16 are upcast to float32 (exact; numpy has no bfloat16).
    """
    first, count = int(query_rows[0]), len(query_rows)
    if int(query_rows[-1]) - first + 1 == count:
        scores = similarity[first : first + count]
    else:
        scores = similarity.index_select(0, query_rows.to(similarity.device))
    return scores if scores.dtype in (torch.float32, torch.float64) else scores.float()


def _group_positives(
    query_pids: torch.Tensor, gallery_pids: torch.Tensor, on_missing_positive: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Where each query's positives are, without a (queries, gallery) mask.

    The gallery columns are ordered by id (`gallery_order`); query `i`'s positives are then
    `gallery_order[positive_starts[i] : positive_starts[i] + num_positives[i]]`. Returns those three and the query
    rows that are scored (all of them unless queries without a positive are skipped). All on CPU.
    """
    gallery_order = torch.argsort(gallery_pids, stable=True)  # (gallery,)
    unique_pids, counts = torch.unique_consecutive(gallery_pids[gallery_order], return_counts=True)
    id_starts = counts.cumsum(0) - counts
    slot = torch.searchsorted(unique_pids, query_pids).clamp(max=len(unique_pids) - 1)  # (queries,)
    has_positive = unique_pids[slot] == query_pids
    query_rows = torch.arange(len(query_pids))
    if not bool(has_positive.all()):
        missing = query_rows[~has_positive]
        message = (
            f"{len(missing)} of {len(query_pids)} queries have no gallery item with their id (first query rows: "
            f"{missing[:5].tolist()}, ids {query_pids[missing[:5]].tolist()})"
        )
        if on_missing_positive == "raise":
            raise IVTInputError(message + "; pass on_missing_positive='skip' to leave them out")
        if len(missing) == len(query_pids):
            raise IVTInputError(message + ": nothing left to score")
        warnings.warn(message + "; they are left out of every metric", stacklevel=3)
        query_rows, slot = query_rows[has_positive], slot[has_positive]
    return query_rows, id_starts[slot], counts[slot], gallery_order


def _as_similarity(similarity: Any) -> torch.Tensor:
    similarity = _as_tensor(similarity).detach()
    if similarity.ndim != 2:
        raise IVTInputError(f"similarity must be 2-D (queries, gallery), got shape {tuple(similarity.shape)}")
    if not similarity.is_floating_point():
        raise IVTInputError(f"similarity must hold floating-point scores, got {similarity.dtype}")
    if 0 in similarity.shape:
        raise IVTInputError(f"similarity is empty: shape {tuple(similarity.shape)}")
    return similarity


def _as_pids(pids: Any, name: str, expected_length: int, expected_what: str) -> torch.Tensor:
    pids = _as_tensor(pids).cpu()
    if pids.ndim != 1:
        raise IVTInputError(f"{name} must be 1-D, got shape {tuple(pids.shape)}")
    if pids.is_floating_point() or pids.is_complex() or pids.dtype == torch.bool:
        raise IVTInputError(f"{name} must hold integer person ids, got {pids.dtype}")
    if len(pids) != expected_length:
        raise IVTInputError(f"{name} has {len(pids)} entries but {expected_what} is {expected_length}")
    return pids.long()


def _as_tensor(values: Any) -> torch.Tensor:
    """A tensor sharing memory with `values` where possible (numpy arrays are never copied unless oddly strided)."""
    if isinstance(values, torch.Tensor):
        return values
    array = np.asarray(values)
    if any(stride < 0 for stride in array.strides):
        array = np.ascontiguousarray(array)
    with warnings.catch_warnings():  # read-only arrays: we never write into the shared buffer
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(array)


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise IVTInputError(f"{name} must be one of {choices}, got {value!r}")


def _positive_int_or_default(name: str, value: Any, default: int) -> int:
    """`value`, a positive int, or `default` when it is None."""
    if value is None:
        return default
    if not isinstance(value, int) or value < 1:
        raise IVTInputError(f"{name} must be a positive int or None, got {value!r}")
    return value


def _check_ks(ks: Sequence[int]) -> tuple[int, ...]:
    ks = tuple(ks)
    if not ks or not all(isinstance(k, (int, np.integer)) and not isinstance(k, bool) and k >= 1 for k in ks):
        raise IVTInputError(f"ks must be a non-empty sequence of positive ints, got {ks!r}")
    return tuple(int(k) for k in ks)

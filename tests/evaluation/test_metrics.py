"""Tests for `ivt_hf.metrics`: the authors' fixture, a brute-force oracle, ties, chunking, bad input, `evaluate`."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import ivt_hf.evaluation.metrics as metrics_module
from ivt_hf.evaluation.metrics import EVALUATE_METRIC_PATH, PROTOCOLS, load_metric, retrieval_metrics


def oracle_metrics(similarity, query_pids, gallery_pids, protocol="standard", ks=(1, 5, 10)) -> dict[str, float]:
    """Brute force from the definitions: rank the whole gallery per query, then loop over the positives.

    Ties: among equal scores, negatives are placed before positives (the documented pessimistic rule).
    """
    similarity, query_pids, gallery_pids = (np.asarray(x).tolist() for x in (similarity, query_pids, gallery_pids))
    per_query = {f"R{k}": [] for k in ks} | {"mAP": []} | ({"mINP": []} if protocol == "standard" else {})
    for scores, query_pid in zip(similarity, query_pids):
        is_positive = [pid == query_pid for pid in gallery_pids]
        ranking = sorted(range(len(scores)), key=lambda column: (-scores[column], is_positive[column]))
        positive_ranks = [place + 1 for place, column in enumerate(ranking) if is_positive[column]]  # 1-based
        count = len(positive_ranks)
        for k in ks:
            per_query[f"R{k}"].append(float(positive_ranks[0] <= k))
        average_precision = 0.0
        for hits, rank in enumerate(positive_ranks, start=1):
            precision = hits / rank
            if protocol == "standard":
                average_precision += precision / count
            else:
                precision_before = 1.0 if rank == 1 else (hits - 1) / (rank - 1)
                average_precision += (precision_before + precision) / 2 / count
        per_query["mAP"].append(average_precision)
        if protocol == "standard":
            per_query["mINP"].append(count / positive_ranks[-1])
    return {name: 100 * float(np.mean(values)) for name, values in per_query.items()}


def random_case(seed: int, num_queries: int = 40, num_ids: int = 8, num_gallery: int = 60, levels: int | None = None):
    """Seeded `(similarity, query_pids, gallery_pids)`; every id has a gallery item, counts range from 1 to many.

    `levels` quantises the scores to that many values, which makes ties frequent.
    """
    generator = torch.Generator().manual_seed(seed)
    # id 0 has exactly one gallery item; the others share the rest unevenly (some many, some few).
    weights = torch.rand(num_ids - 1, generator=generator) ** 3 + 0.02
    rest = 1 + torch.multinomial(weights, num_gallery - num_ids, replacement=True, generator=generator)
    gallery_pids = torch.cat([torch.arange(num_ids), rest])[torch.randperm(num_gallery, generator=generator)]
    query_pids = torch.randint(num_ids, (num_queries,), generator=generator)
    query_pids[:3] = 0  # single-positive queries
    matches = (query_pids[:, None] == gallery_pids[None, :]).float()
    similarity = torch.randn(num_queries, num_gallery, generator=generator) + 1.5 * matches
    if levels is not None:
        similarity = torch.round(similarity * levels / 8) / (levels / 8)
    return similarity, query_pids, gallery_pids


def assert_metrics_close(actual: dict[str, float], expected: dict[str, float], tolerance: float = 1e-9) -> None:
    assert actual.keys() == expected.keys()
    for name, value in expected.items():
        assert actual[name] == pytest.approx(value, abs=tolerance), name


@pytest.fixture
def reference(fixtures_dir):
    tensors = load_file(fixtures_dir / "metrics_reference.safetensors")
    expected = json.loads((fixtures_dir / "reference.json").read_text())["metrics"]
    return tensors, expected


@pytest.mark.parametrize(
    ("protocol", "key"),
    [("standard", "standard_protocol_irra_rank"), ("official", "official_ivt_protocol_trapezoid_ap")],
)
def test_reproduces_reference_fixture(reference, protocol, key):
    tensors, expected = reference
    metrics = retrieval_metrics(
        tensors["similarity"], tensors["query_pids"], tensors["gallery_pids"], protocol=protocol
    )
    assert_metrics_close(metrics, expected[key], tolerance=1e-4)  # reference values went through float32


@pytest.mark.parametrize("protocol", ["standard", "official"])
@pytest.mark.parametrize(("seed", "levels"), [(0, None), (1, None), (2, 6), (3, 3)])
def test_matches_brute_force_oracle(protocol, seed, levels):
    similarity, query_pids, gallery_pids = random_case(seed, levels=levels)
    ks = (1, 2, 5, 10, 60, 100)
    expected = oracle_metrics(similarity, query_pids, gallery_pids, protocol, ks)
    for chunk_size in (1, 7, None):
        metrics = retrieval_metrics(
            similarity, query_pids, gallery_pids, protocol=protocol, ks=ks, chunk_size=chunk_size
        )
        assert_metrics_close(metrics, expected)


def test_single_positive_at_last_rank_and_all_gallery_positive():
    similarity = torch.tensor([[0.9, 0.8, 0.7, 0.1], [0.1, 0.2, 0.3, 0.4], [0.5, 0.6, 0.7, 0.8]])
    query_pids = torch.tensor([4, 1, 2])
    gallery_pids = torch.tensor([1, 2, 3, 4])  # query 0's only positive is last; query 1's is at rank 4 too
    metrics = retrieval_metrics(similarity, query_pids, gallery_pids, ks=(1, 3, 4))
    # ranks of the positives: 4, 4, 3
    assert metrics == pytest.approx(
        {
            "R1": 0.0,
            "R3": 100 / 3,
            "R4": 100.0,
            "mAP": 100 * (1 / 4 + 1 / 4 + 1 / 3) / 3,
            "mINP": 100 * (1 / 4 + 1 / 4 + 1 / 3) / 3,
        }
    )
    everything_positive = retrieval_metrics(torch.rand(2, 5), torch.tensor([3, 3]), torch.full((5,), 3))
    assert everything_positive == pytest.approx({"R1": 100.0, "R5": 100.0, "R10": 100.0, "mAP": 100.0, "mINP": 100.0})


def test_many_positives_against_oracle():
    generator = torch.Generator().manual_seed(5)
    gallery_pids = torch.cat([torch.zeros(150, dtype=torch.long), torch.arange(1, 51)])  # 150 positives of id 0
    query_pids = torch.tensor([0, 0, 0, 7, 0])
    similarity = torch.randn(5, 200, generator=generator)
    similarity[4, :150] = -10.0  # every positive below every negative: the last positive is at the last rank
    similarity[4, :150] -= torch.arange(150) * 1e-3
    for protocol in ("standard", "official"):
        expected = oracle_metrics(similarity, query_pids, gallery_pids, protocol)
        assert_metrics_close(retrieval_metrics(similarity, query_pids, gallery_pids, protocol=protocol), expected)


def test_ties_are_broken_pessimistically():
    # All scores equal: the single positive ranks behind the three negatives tied with it.
    metrics = retrieval_metrics(torch.zeros(1, 4), torch.tensor([1]), torch.tensor([0, 1, 0, 0]), ks=(1, 3, 4))
    assert metrics == pytest.approx({"R1": 0.0, "R3": 0.0, "R4": 100.0, "mAP": 25.0, "mINP": 25.0})
    # Two positives tied with each other and with one negative, one negative strictly above: ranks 3 and 4.
    similarity = torch.tensor([[0.5, 0.9, 0.5, 0.5, 0.1]])
    metrics = retrieval_metrics(similarity, torch.tensor([1]), torch.tensor([1, 0, 0, 1, 0]), ks=(3, 4))
    assert metrics == pytest.approx({"R3": 100.0, "R4": 100.0, "mAP": 100 * (1 / 3 + 2 / 4) / 2, "mINP": 50.0})
    # Deterministic under any column order and any chunking, since the rule does not look at gallery positions.
    similarity, query_pids, gallery_pids = random_case(7, levels=2)
    permutation = torch.randperm(similarity.shape[1], generator=torch.Generator().manual_seed(0))
    shuffled = retrieval_metrics(similarity[:, permutation], query_pids, gallery_pids[permutation], chunk_size=3)
    assert shuffled == retrieval_metrics(similarity, query_pids, gallery_pids)


def test_results_do_not_depend_on_chunks_workers_or_input_type():
    similarity, query_pids, gallery_pids = random_case(11, num_queries=57, num_gallery=90)
    expected = retrieval_metrics(similarity, query_pids, gallery_pids, chunk_size=57, num_workers=1)
    for chunk_size, num_workers in [(1, 1), (4, 2), (13, 3), (100, 2)]:
        metrics = retrieval_metrics(
            similarity, query_pids, gallery_pids, chunk_size=chunk_size, num_workers=num_workers
        )
        assert metrics == expected
    as_numpy = retrieval_metrics(similarity.numpy(), query_pids.numpy(), gallery_pids.numpy().astype(np.int32))
    assert as_numpy == expected
    assert retrieval_metrics(similarity.double(), query_pids.tolist(), gallery_pids.tolist()) == expected
    transposed_storage = similarity.T.contiguous().T  # non-contiguous rows, e.g. an image-to-text matrix transposed
    assert retrieval_metrics(transposed_storage.requires_grad_(), query_pids, gallery_pids) == expected
    # Half precision is upcast exactly, so it equals float32 on the rounded scores.
    for dtype in (torch.float16, torch.bfloat16):
        rounded = similarity.to(dtype)
        assert retrieval_metrics(rounded, query_pids, gallery_pids) == retrieval_metrics(
            rounded.float(), query_pids, gallery_pids
        )


def test_accelerator_counting_path_agrees(monkeypatch):
    """Accelerator tensors are counted by a batched torch.sort instead of extraction; run that branch on CPU."""
    similarity, query_pids, gallery_pids = random_case(9, levels=4)
    expected = {protocol: oracle_metrics(similarity, query_pids, gallery_pids, protocol) for protocol in PROTOCOLS}
    monkeypatch.setattr(metrics_module, "_COMPACTION_DEVICES", ())
    for protocol in PROTOCOLS:
        assert_metrics_close(
            retrieval_metrics(similarity, query_pids, gallery_pids, protocol=protocol), expected[protocol]
        )
    similarity[4, 7] = float("nan")
    with pytest.raises(ValueError, match=r"first in query row 4"):
        retrieval_metrics(similarity, query_pids, gallery_pids)


def test_inputs_are_not_modified():
    similarity, query_pids, gallery_pids = random_case(12)
    array = similarity.numpy().copy()
    array.setflags(write=False)  # a read-only buffer must work too
    before = similarity.clone()
    retrieval_metrics(similarity, query_pids, gallery_pids)
    retrieval_metrics(array, query_pids, gallery_pids)
    assert torch.equal(similarity, before)
    assert np.array_equal(array, before.numpy())


def test_official_every_second_gallery_row():
    generator = torch.Generator().manual_seed(3)
    caption_pids = torch.arange(10).repeat_interleave(4)  # 10 ids x 4 caption rows
    similarity = torch.randn(40, 40, generator=generator)  # column i: the image of caption row i
    metrics = retrieval_metrics(
        similarity, caption_pids, caption_pids, protocol="official", official_every_second_gallery_row=True
    )
    expected = retrieval_metrics(similarity[:, ::2].contiguous(), caption_pids, caption_pids[::2], protocol="official")
    assert metrics == expected
    with pytest.raises(ValueError, match="square"):
        retrieval_metrics(similarity[:, :30], caption_pids, caption_pids[:30], official_every_second_gallery_row=True)


def test_missing_positive_raises_or_skips():
    similarity, query_pids, gallery_pids = random_case(4)
    query_pids = query_pids.clone()
    query_pids[[5, 9]] = 99  # no gallery item has id 99
    with pytest.raises(ValueError, match=r"2 of 40 queries .*first query rows: \[5, 9\], ids \[99, 99\]"):
        retrieval_metrics(similarity, query_pids, gallery_pids)
    kept = torch.ones(40, dtype=torch.bool)
    kept[[5, 9]] = False
    with pytest.warns(UserWarning, match="left out"):
        skipped = retrieval_metrics(similarity, query_pids, gallery_pids, on_missing_positive="skip", chunk_size=3)
    assert skipped == retrieval_metrics(similarity[kept], query_pids[kept], gallery_pids)
    with pytest.raises(ValueError, match="nothing left"):
        retrieval_metrics(similarity, torch.full((40,), 99), gallery_pids, on_missing_positive="skip")


@pytest.mark.parametrize(
    ("row", "column", "value"),
    [(6, 0, float("nan")), (3, 17, float("inf")), (8, 2, float("-inf")), (0, 59, float("nan"))],
)
def test_non_finite_scores_raise(row, column, value):
    similarity, query_pids, gallery_pids = random_case(6)
    similarity[row, column] = value
    with pytest.raises(ValueError, match=rf"NaN or infinite scores \(first in query row {row}\)"):
        retrieval_metrics(similarity, query_pids, gallery_pids, chunk_size=4)


def test_non_finite_positive_score_raises():
    similarity, query_pids, gallery_pids = random_case(6)
    column = int((gallery_pids == query_pids[10]).nonzero()[0, 0])
    similarity[10, column] = float("nan")
    with pytest.raises(ValueError, match=r"first in query row 10"):
        retrieval_metrics(similarity, query_pids, gallery_pids)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s, q, g: (s[0], q, g), "must be 2-D"),
        (lambda s, q, g: (s[None], q, g), "must be 2-D"),
        (lambda s, q, g: (s, q[:-1], g), r"query_pids has 39 entries but similarity.shape\[0\]"),
        (lambda s, q, g: (s, q, g[:-1]), r"gallery_pids has 59 entries but similarity.shape\[1\]"),
        (lambda s, q, g: (s, q[:, None], g), "query_pids must be 1-D"),
        (lambda s, q, g: (s.long(), q, g), "floating-point scores"),
        (lambda s, q, g: (s, q.float(), g), "integer person ids"),
        (lambda s, q, g: (s[:0], q[:0], g), "empty"),
    ],
)
def test_bad_input_raises(change, message):
    with pytest.raises(ValueError, match=message):
        retrieval_metrics(*change(*random_case(8)))


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ({"protocol": "irra"}, "protocol must be one of"),
        ({"ks": ()}, "ks must be"),
        ({"ks": (0, 5)}, "ks must be"),
        ({"chunk_size": 0}, "chunk_size"),
        ({"num_workers": 0}, "num_workers"),
        ({"on_missing_positive": "ignore"}, "on_missing_positive"),
    ],
)
def test_bad_options_raise(option, message):
    with pytest.raises(ValueError, match=message):
        retrieval_metrics(*random_case(8), **option)


@pytest.mark.compat
def test_evaluate_metric_gives_the_same_numbers(reference):
    import evaluate

    tensors, _ = reference
    similarity, query_pids, gallery_pids = tensors["similarity"], tensors["query_pids"], tensors["gallery_pids"]
    metric = evaluate.load(str(EVALUATE_METRIC_PATH), keep_in_memory=True)
    for protocol in ("standard", "official"):
        # Queries arrive in batches, as from an evaluation loop.
        for start in range(0, len(query_pids), 20):
            metric.add_batch(
                predictions=similarity[start : start + 20].numpy(), references=query_pids[start : start + 20]
            )
        metrics = metric.compute(gallery_pids=gallery_pids.tolist(), protocol=protocol)
        assert metrics == retrieval_metrics(similarity, query_pids, gallery_pids, protocol=protocol)
    helper_metric = load_metric(keep_in_memory=True)
    assert helper_metric.compute(predictions=[[0.9, 0.1], [0.2, 0.8]], references=[7, 3], gallery_pids=[7, 3]) == {
        "R1": 100.0,
        "R5": 100.0,
        "R10": 100.0,
        "mAP": 100.0,
        "mINP": 100.0,
    }

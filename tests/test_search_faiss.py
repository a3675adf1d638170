"""FAISS search: exact (flat) equals the built-in search, approximate indexes (IVF, HNSW) reach high recall on a
clustered gallery, their settings are checked, and `ivt search --faiss ivf` takes them."""

from __future__ import annotations

import pytest
import torch

from ivt_hf.search import FaissSettings, GalleryIndex, build_faiss_index


def clustered(count: int, dim: int = 64, clusters: int = 50, seed: int = 0) -> torch.Tensor:
    """Normalised vectors around random centres: the shape of image embeddings of many people."""
    generator = torch.Generator().manual_seed(seed)
    centres = torch.randn(clusters, dim, generator=generator)
    members = centres[torch.randint(clusters, (count,), generator=generator)]
    return torch.nn.functional.normalize(members + 0.6 * torch.randn(count, dim, generator=generator), dim=1)


def _recall_at_10(index: GalleryIndex, queries: torch.Tensor, settings: FaissSettings) -> float:
    exact = [{hit.path for hit in row} for row in index.search_embeddings(queries, k=10)]
    approx = [{hit.path for hit in row} for row in index.search_embeddings(queries, k=10, faiss=settings)]
    return sum(len(a & e) for a, e in zip(approx, exact)) / (10 * len(exact))


def test_flat_is_exact_and_approximate_indexes_find_the_neighbours():
    gallery = clustered(6000)
    index = GalleryIndex(gallery, [f"{number}.jpg" for number in range(len(gallery))])
    queries = torch.nn.functional.normalize(gallery[:200] + 0.3 * torch.randn(200, 64), dim=1)
    exact = index.search_embeddings(queries, k=10)
    flat = index.search_embeddings(queries, k=10, use_faiss=True)
    assert [[hit.path for hit in row] for row in flat] == [[hit.path for hit in row] for row in exact]
    assert flat[0][0].score == pytest.approx(exact[0][0].score, abs=1e-5)
    assert _recall_at_10(index, queries, FaissSettings("ivf", nprobe=16)) >= 0.95
    assert _recall_at_10(index, queries, FaissSettings("hnsw", hnsw_m=16, ef_search=128)) >= 0.95
    assert _recall_at_10(index, queries, FaissSettings("ivf", nlist=64, nprobe=1)) < 0.9  # the knob does something


def test_ivf_defaults_and_bad_settings():
    gallery = clustered(4000)
    index = build_faiss_index(gallery, FaissSettings("ivf"))
    assert index.nlist == min(4000 // 39, int(4 * 4000**0.5)) and index.nprobe == 32 and index.ntotal == 4000
    small = build_faiss_index(gallery[:30], FaissSettings("ivf"))  # fewer vectors than one centroid wants
    assert small.nlist == 1 and small.ntotal == 30
    for bad, message in [({"kind": "annoy"}, "flat, ivf or hnsw"), ({"kind": "ivf", "nprobe": 0}, "nprobe"),
                         ({"kind": "ivf", "nlist": 0}, "nlist")]:  # fmt: skip
        with pytest.raises(ValueError, match=message):
            FaissSettings(**bad)

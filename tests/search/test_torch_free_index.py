"""A gallery index where torch cannot be imported (the page of a Space exported for onnxruntime): it loads as numpy
arrays and ranks exactly as the torch index does (same top-k, scores within 1e-6), equal scores in gallery order."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import torch

from ivt_hf.search import GalleryIndex

TORCH_FREE_SEARCH = textwrap.dedent(
    """
    import json, sys

    for name in ("torch", "datasets", "accelerate", "evaluate"):
        sys.modules[name] = None
    import numpy as np

    from ivt_hf.search.index import GalleryIndex

    index = GalleryIndex.load(sys.argv[1])
    queries = np.asarray(json.loads(sys.argv[2]), dtype=np.float32)
    hits = {}
    for k in (1, 10, 40):
        hits[k] = [[[hit.path, hit.score] for hit in row] for row in index.search_embeddings(queries, k=k)]
    loaded = sorted(name for name, module in sys.modules.items() if name.split(".")[0] == "torch" and module)
    print(json.dumps({"type": type(index.embeddings).__module__, "torch": loaded, "hits": hits}))
    """
)


def test_an_index_without_torch_ranks_as_with_torch(tmp_path):
    generator = torch.Generator().manual_seed(0)
    embeddings = torch.nn.functional.normalize(torch.randn(40, 16, generator=generator), dim=-1)
    queries = torch.nn.functional.normalize(torch.randn(5, 16, generator=generator), dim=-1)
    queries[4] = torch.eye(16)[0]  # scores exactly the first column: its two best tie, in gallery order 7 then 31
    embeddings[7, 0] = embeddings[31, 0] = 1.5
    paths = [f"{number:02d}.png" for number in range(40)]
    manifest = {"format_version": 1, "root": str(tmp_path), "model_fingerprint": None}
    GalleryIndex(embeddings, paths, manifest).save(tmp_path / "index")

    result = subprocess.run(
        [sys.executable, "-c", TORCH_FREE_SEARCH, str(tmp_path / "index"), json.dumps(queries.tolist())],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout)
    assert (found["type"], found["torch"]) == ("numpy", [])
    index = GalleryIndex.load(tmp_path / "index")
    for k, rows in found["hits"].items():
        expected = index.search_embeddings(queries, k=int(k))
        for number, (row, reference) in enumerate(zip(rows, expected)):
            assert len(row) == int(k)
            if number == 4:  # torch orders the tie as it likes; numpy keeps gallery order
                tie = min(2, int(k))
                assert [path for path, _ in row[:tie]] == ["07.png", "31.png"][:tie]
                assert {hit.path for hit in reference[:tie]} <= {"07.png", "31.png"}
                row, reference = row[tie:], reference[tie:]
            assert [path for path, _ in row] == [hit.path for hit in reference[: len(row)]]
            assert max((abs(score - hit.score) for (_, score), hit in zip(row, reference)), default=0.0) < 1e-6

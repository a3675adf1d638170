"""`benchmarks/bench_search.py --out_of_core` end to end at a small size: the gallery written to a file in blocks, the
exact chunked scan (flat), IVF-SQ8, the package's out-of-core ivfpq and Milvus Lite (held to half the gallery by
`--milvus_max_rows`, so its recall is against the exact top-10 among the rows it holds), one table, nothing left in
the work folder."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # about 20 s on 2 busy cores (FAISS k-means, Milvus Lite): kept out of the fast suite
@pytest.mark.skipif(importlib.util.find_spec("milvus_lite") is None, reason="needs the milvus extra (Milvus Lite)")
def test_the_search_bench_measures_every_method_out_of_core(tmp_path):
    flags = "--sizes 20000 --out_of_core --queries 100 --dim 32 --train_sample 2000 --milvus_max_rows 10000"
    command = [sys.executable, str(ROOT / "benchmarks" / "bench_search.py"), *flags.split(), "--workdir", str(tmp_path)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = result.stdout.splitlines()
    header = "| gallery | method | build s | bytes/vector | peak MiB | batched ms/q | single ms/q | recall@10 |"
    table = [line for line in lines[lines.index(header) + 2 :] if line.startswith("|")]
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in table]
    methods = [re.sub(r" \(.*", "", row[1]) for row in rows]
    assert methods == ["flat", "ivf", "ivfpq", "milvus lite"]
    assert [row[0] for row in rows] == ["20,000", "20,000", "20,000", "10,000"]  # Milvus held what it was allowed
    assert rows[3][1] == "milvus lite (IVF_SQ8, holds 10,000 of 20,000)"
    assert rows[0][1] == "flat (chunked scan of the file)" and rows[0][3] == "128" and rows[0][7] == "1.000"
    assert rows[1][1] == "ivf (SQ8, nlist 512, nprobe 32)" and rows[2][1] == "ivfpq (PQ 8 B, nlist 512, nprobe 32)"
    assert int(rows[2][3]) < int(rows[1][3]) < 128  # codes: 8 B (+ id) under SQ8's 32 B (+ id) under 128 B of floats
    for row in rows:
        assert float(row[4].replace(",", "")) > 0 and float(row[5]) > 0 and float(row[6]) > 0
        assert 0.3 < float(row[7]) <= 1.0
    assert list(tmp_path.iterdir()) == []  # the gallery file and Milvus Lite's folder removed

"""Benchmarks as Hugging Face `datasets`: CUHK-PEDES, ICFG-PEDES, RSTPReid and the procedural SynthPEDES.

- `specs.py`: what tells the three raw layouts apart (one `BenchmarkSpec` each), the benchmark names, the errors;
- `schema.py`: the one image-level schema, its caption-level (query) view `caption_view`, split counts;
- `normalise.py`: the one normaliser that reads a raw copy of any of the three, validating every record;
- `prepared.py`: folders written by `ivt data prepare` (images embedded);
- `loading.py`: `load_benchmark(name, root)`, the entry point;
- `synthpedes/`: the procedural benchmark that needs no download.
"""

from .loading import load_benchmark, load_benchmark_with_report
from .normalise import BenchmarkReport, SkippedRecord, normalise_benchmark, read_records
from .prepared import is_prepared, load_prepared
from .schema import COLUMNS, benchmark_features, caption_view, format_counts_table, split_counts
from .specs import (
    BENCHMARK_NAMES,
    BENCHMARKS,
    SPLITS,
    SYNTHPEDES,
    BenchmarkFormatError,
    BenchmarkSpec,
    BenchmarkWarning,
    SplitCounts,
    get_spec,
)

__all__ = [
    "BENCHMARKS",
    "BENCHMARK_NAMES",
    "COLUMNS",
    "SPLITS",
    "SYNTHPEDES",
    "BenchmarkFormatError",
    "BenchmarkReport",
    "BenchmarkSpec",
    "BenchmarkWarning",
    "SkippedRecord",
    "SplitCounts",
    "benchmark_features",
    "caption_view",
    "format_counts_table",
    "get_spec",
    "is_prepared",
    "load_benchmark",
    "load_benchmark_with_report",
    "load_prepared",
    "normalise_benchmark",
    "read_records",
    "split_counts",
]

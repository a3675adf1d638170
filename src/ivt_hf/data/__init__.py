"""Benchmarks as Hugging Face `datasets`: CUHK-PEDES, ICFG-PEDES, RSTPReid and the procedural SynthPEDES.

`load_benchmark(name, root)` returns one image-level schema for every benchmark and `caption_view` its caption-level
(query) form. The generator lives in `ivt_hf.data.synthpedes` (imported on demand: it needs numpy and PIL).
"""

from .benchmarks import (
    BENCHMARK_NAMES,
    BENCHMARKS,
    COLUMNS,
    BenchmarkFormatError,
    BenchmarkReport,
    BenchmarkSpec,
    BenchmarkWarning,
    SkippedRecord,
    SplitCounts,
    benchmark_features,
    caption_view,
    format_counts_table,
    get_spec,
    is_prepared,
    load_benchmark,
    load_benchmark_with_report,
    load_prepared,
    normalise_benchmark,
    split_counts,
)

__all__ = [
    "BENCHMARKS",
    "BENCHMARK_NAMES",
    "COLUMNS",
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
    "split_counts",
]

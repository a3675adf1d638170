"""Benchmarks as Hugging Face `datasets`: CUHK-PEDES, ICFG-PEDES, RSTPReid, the procedural SynthPEDES and your own.

- `specs.py`: what tells the three raw layouts apart (one `BenchmarkSpec` each), the benchmark names, the errors;
- `schema.py`: the one image-level schema, its caption-level (query) view `caption_view`, split counts;
- `normalise.py`: the one normaliser that reads a raw copy of any of the three, validating every record;
- `prepared.py`: folders written by `ivt data prepare` (images embedded);
- `hf_datasets.py`: data `datasets` already reads (a `save_to_disk` folder, a Hub id) in any column layout;
- `sources.py`: `recognise_source`, what a source string names (benchmark, folder kind, Hub id), for `load_data`
  and `open_pair_stream` alike;
- `loading.py`: `load_benchmark(name, root)`, and `load_data(source)` for anything a user has, the entry points;
- `pairs.py`: `open_pair_stream`, endless resumable streams of image-text pairs for pre-training (`ShardStream`,
  `RowStream`), and `shuffle_buffer.py` over them; `pair_writing.py`: `write_webdataset_shards`, the shards they read;
- `synthpedes/`: the procedural benchmark that needs no download.
"""

from .hf_datasets import ColumnMapping
from .loading import load_benchmark, load_benchmark_with_report, load_data, load_data_with_report
from .normalise import BenchmarkReport, SkippedRecord, normalise_benchmark, read_records
from .pair_writing import write_webdataset_shards
from .pairs import PairDataError, PairStream, clean_caption, open_pair_stream
from .prepared import is_prepared, load_prepared
from .schema import COLUMNS, benchmark_features, caption_view, format_counts_table, split_counts
from .sources import Source, recognise_source
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
    "ColumnMapping",
    "PairDataError",
    "PairStream",
    "SkippedRecord",
    "Source",
    "SplitCounts",
    "benchmark_features",
    "caption_view",
    "clean_caption",
    "format_counts_table",
    "get_spec",
    "is_prepared",
    "load_benchmark",
    "load_benchmark_with_report",
    "load_data",
    "load_data_with_report",
    "load_prepared",
    "normalise_benchmark",
    "open_pair_stream",
    "read_records",
    "recognise_source",
    "split_counts",
    "write_webdataset_shards",
]

"""Benchmarks as Hugging Face `datasets`: CUHK-PEDES, ICFG-PEDES, RSTPReid, UFine6926 / UFine3C, the procedural
SynthPEDES and your own; and pre-training pairs, from shards, folders and the published person corpora.

- `specs.py`: what tells the raw layouts apart (one `BenchmarkSpec` each), the benchmark names, the errors;
- `schema.py`: the one image-level schema, its caption-level (query) view `caption_view`, split counts;
- `normalise.py`: the one normaliser that reads a raw copy of any of the three, validating every record;
- `prepared.py`: folders written by `ivt data prepare` (images embedded);
- `hf_datasets.py`: data `datasets` already reads (a `save_to_disk` folder, a Hub id) in any column layout;
- `sources.py`: `recognise_source`, what a source string names (benchmark, folder kind, Hub id), for `load_data`
  and `open_pair_stream` alike;
- `loading.py`: `load_benchmark(name, root)`, and `load_data(source)` for anything a user has, the entry points;
- `pairs.py`: `open_pair_stream`, endless resumable streams of image-text pairs for pre-training (`ShardStream`,
  `RowStream`), and `shuffle_buffer.py` over them; `pair_writing.py`: `write_webdataset_shards`, the shards they read;
- `corpora.py`: `read_corpus`, the person-centric corpora as published (WebPerson, LUPerson-MLLM, MALS, SYNTH-PEDES),
  their authors' caption cleaning counted; `mixture.py`: `open_pretraining_pairs`, several sources mixed by weight;
- `synthpedes/`: the procedural benchmark that needs no download.
"""

from .corpora import CorpusReport, read_corpus
from .hf_datasets import ColumnMapping
from .loading import load_benchmark, load_benchmark_with_report, load_data, load_data_with_report
from .mixture import PairMixture, open_pretraining_pairs
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
    UFINE_BENCHMARKS,
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
    "UFINE_BENCHMARKS",
    "BenchmarkFormatError",
    "BenchmarkReport",
    "BenchmarkSpec",
    "BenchmarkWarning",
    "ColumnMapping",
    "CorpusReport",
    "PairDataError",
    "PairMixture",
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
    "open_pretraining_pairs",
    "read_corpus",
    "read_records",
    "recognise_source",
    "split_counts",
    "write_webdataset_shards",
]

"""What a source names, recognised in one place: for `load_data` (fine-tuning data, `loading.py`) and for
`open_pair_stream` (pre-training pairs, `pairs.py`).

A source is a benchmark name, a folder, or a Hub dataset id. A folder is recognised by what it holds, in this order:

1. `dataset_dict.json` or `state.json`: written by `save_to_disk` (also by `ivt data prepare`);
2. `metadata.jsonl` or `metadata.csv`: an image folder (`datasets`' `imagefolder` layout);
3. `.tar` files, at any depth: WebDataset shards;
4. `.parquet` files, at any depth: parquet shards.

The files a folder holds at its top come first: they are cheap to look for and say what the folder is, while the
shard search walks the whole tree (and would take an image folder that keeps an archive of its images for shards).
A string is a Hub dataset id when it is `ORG/NAME` and names no existing path; a `Path` never is. A bare name that is
neither a benchmark nor a folder is an error naming the closest benchmark, never a network request.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .specs import BENCHMARK_NAMES, IMAGEFOLDER_SPEC, BenchmarkFormatError

SourceKind = Literal["benchmark", "saved", "imagefolder", "webdataset", "parquet", "hub"]

DATASET_DICT_FILE = "dataset_dict.json"  # `save_to_disk` of a DatasetDict
DATASET_STATE_FILE = "state.json"  # `save_to_disk` of a lone Dataset (and of each split of a DatasetDict)
SAVED_MARKERS = (DATASET_DICT_FILE, DATASET_STATE_FILE)
IMAGEFOLDER_METADATA = IMAGEFOLDER_SPEC.annotation_files  # metadata.jsonl, metadata.csv
# a folder's kind, by the files at its top (first) or the shard files at any depth (then), in this order
TOP_FILES: dict[SourceKind, tuple[str, ...]] = {"saved": SAVED_MARKERS, "imagefolder": IMAGEFOLDER_METADATA}
SHARD_SUFFIXES: dict[SourceKind, str] = {"webdataset": ".tar", "parquet": ".parquet"}
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")  # `ORG/NAME`

# what each kind is, as messages say it; also the order in which they are listed
DESCRIPTIONS: dict[SourceKind, str] = {
    "benchmark": f"a benchmark name ({', '.join(BENCHMARK_NAMES)})",
    "saved": "a folder written by save_to_disk / ivt data prepare",
    "imagefolder": f"an image folder with {' or '.join(IMAGEFOLDER_METADATA)}",
    "webdataset": "a folder of WebDataset .tar shards (at any depth)",
    "parquet": "a folder of .parquet files (at any depth)",
    "hub": "a Hub dataset id (ORG/NAME)",
}
FOLDER_KINDS: tuple[SourceKind, ...] = (*TOP_FILES, *SHARD_SUFFIXES)
FINE_TUNING_KINDS: tuple[SourceKind, ...] = ("benchmark", "saved", "imagefolder", "hub")  # what `load_data` reads
PAIR_KINDS: tuple[SourceKind, ...] = ("saved", "imagefolder", "webdataset", "parquet", "hub")  # `open_pair_stream`'s


@dataclass(frozen=True)
class Source:
    """A recognised source.

    Attributes:
        kind: `benchmark`, `saved` (a `save_to_disk` or `ivt data prepare` folder), `imagefolder`, `webdataset`,
            `parquet` (folders of shards) or `hub`.
        location: the benchmark name or Hub id as given (a `str`), or the folder (a `Path`, `~` expanded).
        shards: the shard files of a `webdataset` or `parquet` folder, sorted; empty for the other kinds.
    """

    kind: SourceKind
    location: str | Path
    shards: tuple[Path, ...] = ()


def _descriptions(kinds: Collection[SourceKind]) -> list[str]:
    """What `kinds` are, as messages say it, in the order of `DESCRIPTIONS`."""
    return [text for kind, text in DESCRIPTIONS.items() if kind in kinds]


def _one_of(kinds: Collection[SourceKind]) -> str:
    """'A, B or C'."""
    described = _descriptions(kinds)
    return " or ".join([", ".join(described[:-1]), described[-1]] if len(described) > 1 else described)


def _folder_kind(folder: Path) -> Source | None:
    """The kind of an existing folder, by the files it holds (module docstring), or None for none of them."""
    for kind, names in TOP_FILES.items():
        if any((folder / name).is_file() for name in names):
            return Source(kind, folder)
    for kind, suffix in SHARD_SUFFIXES.items():
        shards = tuple(sorted(path for path in folder.rglob(f"*{suffix}") if path.is_file()))
        if shards:
            return Source(kind, folder, shards)
    return None


def recognise_source(source: str | os.PathLike, *, accepts: Collection[SourceKind] = FINE_TUNING_KINDS) -> Source:
    """What `source` names, as one of the kinds `accepts` lists (`FINE_TUNING_KINDS` for `load_data`, `PAIR_KINDS`
    for `open_pair_stream`).

    A benchmark name is one only where `accepts` holds `benchmark`; elsewhere it is a path or a Hub id like any other
    string. A folder's kind does not depend on `accepts`: a folder of a kind the caller does not read is an error that
    says what the folder is. Nothing is read over the network: a Hub id is recognised by its form.

    Raises:
        BenchmarkFormatError: naming the source, when it is none of `accepts`: a file, a folder holding none of the
            files above, a folder of another kind, or neither an existing path nor a Hub id (with the closest
            benchmark name, when benchmarks are accepted).
    """
    if not isinstance(source, (str, os.PathLike)):
        raise BenchmarkFormatError(
            f"should be {_one_of(accepts)}, found {type(source).__name__}", annotation_file=repr(source)
        )
    if "benchmark" in accepts and source in BENCHMARK_NAMES:
        return Source("benchmark", source)
    path = Path(source).expanduser()
    if path.is_dir():
        found = _folder_kind(path)
        folder_kinds = [kind for kind in FOLDER_KINDS if kind in accepts]
        if found is None:
            raise BenchmarkFormatError(f"is neither {' nor '.join(_descriptions(folder_kinds))}", annotation_file=path)
        if found.kind not in accepts:
            raise BenchmarkFormatError(
                f"is {DESCRIPTIONS[found.kind]}, not {_one_of(folder_kinds)}", annotation_file=path
            )
        return found
    if path.exists():
        raise BenchmarkFormatError("is a file; give the folder that holds the data", annotation_file=path)
    if "hub" in accepts and isinstance(source, str) and HUB_ID.match(source):
        return Source("hub", source)
    close = difflib.get_close_matches(str(source), BENCHMARK_NAMES, n=1) if "benchmark" in accepts else []
    hint = f"did you mean {close[0]}? " if close else ""
    expected = _one_of([kind for kind in accepts if kind != "hub"])
    raise BenchmarkFormatError(
        f"no such folder, and not a Hub dataset id (ORG/NAME); {hint}expected {expected}", annotation_file=source
    )


__all__ = [
    "DESCRIPTIONS",
    "FINE_TUNING_KINDS",
    "PAIR_KINDS",
    "Source",
    "SourceKind",
    "recognise_source",
]

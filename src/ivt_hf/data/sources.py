"""What a source names, recognised in one place: for `load_data` (fine-tuning data, `loading.py`) and for
`open_pair_stream` (pre-training pairs, `pairs.py`).

A source is a benchmark name, a folder, or a Hub dataset id. A folder is recognised by what it holds, in this order:

1. the annotation files of a published corpus (`corpora.py`, `docs/corpora.md`): `100w.json` (any `Nw.json`):
   WebPerson; `Ts-qwen.json`, `Td-qwen.json`, `Ts-shikra.json` or `Td-shikra.json`: LUPerson-MLLM;
   `gene_attrs/*.json`: MALS; `synthpedes_dataset.json` or `synthpedes-dataset.json`: SYNTH-PEDES;
2. `dataset_dict.json` or `state.json`: written by `save_to_disk` (also by `ivt data prepare`);
3. `metadata.jsonl` or `metadata.csv`: an image folder (`datasets`' `imagefolder` layout);
4. `.tar` files, at any depth: WebDataset shards;
5. `.parquet` files, at any depth: parquet shards.

The files a folder holds at its top come first: they are cheap to look for and say what the folder is, while the
shard search walks the whole tree (and would take an image folder that keeps an archive of its images for shards).
A corpus's own files come before the generic ones: they name it, where `metadata.jsonl` or a shard could be any
data's.
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

from . import corpora
from .specs import BENCHMARK_NAMES, IMAGEFOLDER_SPEC, BenchmarkFormatError

SourceKind = Literal[
    "benchmark",
    "webperson",
    "luperson_mllm",
    "mals",
    "synth_pedes",
    "saved",
    "imagefolder",
    "webdataset",
    "parquet",
    "hub",
]
CORPUS_KINDS: tuple[SourceKind, ...] = ("webperson", "luperson_mllm", "mals", "synth_pedes")

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
    # after the generic kinds in messages (most data is a user's own), before them in recognition (`_folder_kind`)
    "webperson": "a WebPerson folder (100w.json and images/)",
    "luperson_mllm": f"an LUPerson-MLLM folder ({' / '.join(corpora.LUPERSON_MLLM_FILES)} and the images)",
    "mals": f"a MALS folder ({corpora.MALS_ANNOTATIONS}/*.json and the images)",
    "synth_pedes": f"a SYNTH-PEDES folder ({' or '.join(corpora.SYNTH_PEDES_FILES)} and Part*/)",
    "hub": "a Hub dataset id (ORG/NAME)",
}
FOLDER_KINDS: tuple[SourceKind, ...] = (*CORPUS_KINDS, *TOP_FILES, *SHARD_SUFFIXES)
# what `load_data` reads (SYNTH-PEDES has identities: it can fine-tune) and what `open_pair_stream` reads
FINE_TUNING_KINDS: tuple[SourceKind, ...] = ("benchmark", "synth_pedes", "saved", "imagefolder", "hub")
PAIR_KINDS: tuple[SourceKind, ...] = (*CORPUS_KINDS, "saved", "imagefolder", "webdataset", "parquet", "hub")


@dataclass(frozen=True)
class Source:
    """A recognised source.

    Attributes:
        kind: `benchmark`, a corpus (`webperson`, `luperson_mllm`, `mals`, `synth_pedes`), `saved` (a
            `save_to_disk` or `ivt data prepare` folder), `imagefolder`, `webdataset`, `parquet` (folders of shards)
            or `hub`.
        location: the benchmark name or Hub id as given (a `str`), or the folder (a `Path`, `~` expanded).
        shards: the shard files of a `webdataset` or `parquet` folder, sorted; empty for the other kinds.
    """

    kind: SourceKind
    location: str | Path
    shards: tuple[Path, ...] = ()


def _descriptions(kinds: Collection[SourceKind]) -> list[str]:
    """What `kinds` are, as messages say it, in the order of `DESCRIPTIONS`; several corpora as one entry (their
    layouts are in docs/corpora.md: a message listing four would bury the others)."""
    corpus_kinds = [kind for kind in CORPUS_KINDS if kind in kinds]
    described = []
    for kind, text in DESCRIPTIONS.items():
        if kind not in kinds or (kind in CORPUS_KINDS and kind != corpus_kinds[0]):
            continue
        if kind in CORPUS_KINDS and len(corpus_kinds) > 1:
            names = ", ".join(corpora.DISPLAY_NAMES[each] for each in corpus_kinds)
            text = f"a corpus folder as published ({names}: docs/corpora.md)"
        described.append(text)
    return described


def _one_of(kinds: Collection[SourceKind]) -> str:
    """'A, B or C'."""
    described = _descriptions(kinds)
    return " or ".join([", ".join(described[:-1]), described[-1]] if len(described) > 1 else described)


def corpus_kind(folder: str | os.PathLike) -> SourceKind | None:
    """The published corpus whose annotation files `folder` holds (module docstring), or None."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    if corpora.webperson_files(folder):
        return "webperson"
    if any((folder / name).is_file() for name in corpora.LUPERSON_MLLM_FILES):
        return "luperson_mllm"
    if corpora.mals_files(folder):
        return "mals"
    if corpora.synth_pedes_file(folder) is not None:
        return "synth_pedes"
    return None


def _folder_kind(folder: Path) -> Source | None:
    """The kind of an existing folder, by the files it holds (module docstring), or None for none of them."""
    corpus = corpus_kind(folder)
    if corpus is not None:
        return Source(corpus, folder)
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
    "CORPUS_KINDS",
    "DESCRIPTIONS",
    "FINE_TUNING_KINDS",
    "PAIR_KINDS",
    "Source",
    "SourceKind",
    "corpus_kind",
    "recognise_source",
]

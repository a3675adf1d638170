"""Folders the package writes once and then reads: `ivt data prepare`'s output (a `save_to_disk` DatasetDict with
the images embedded, written through `ivt_hf.outputs.writing_output_dir`) and, through `build_folder_once`, the
SynthPEDES cache, whichever process gets there first."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import IVTInputError
from ..outputs import writing_output_dir
from .schema import COLUMNS
from .sources import DATASET_DICT_FILE
from .specs import BenchmarkFormatError

if TYPE_CHECKING:
    import datasets


def is_prepared(path: str | os.PathLike) -> bool:
    """Whether `path` is the output of `ivt data prepare` (a `save_to_disk` DatasetDict)."""
    return (Path(path) / DATASET_DICT_FILE).is_file()


def load_prepared(path: str | os.PathLike, *, expected_source: str | None = None) -> datasets.DatasetDict:
    """Load the self-contained output of `ivt data prepare` (images embedded), checking its schema and source. An
    empty split (in a folder written before `prepare_benchmark` left them out) is left out."""
    from .hf_datasets import read_saved_dataset

    if not is_prepared(path):
        raise BenchmarkFormatError(f"{str(path)!r} is not a prepared benchmark folder (no dataset_dict.json)")
    dataset = read_saved_dataset(path)
    for split, split_dataset in dataset.items():
        missing = [column for column in COLUMNS if column not in split_dataset.column_names]
        if missing:
            raise BenchmarkFormatError(f"{str(path)!r} split {split!r} lacks columns {missing}")
        sources = set(split_dataset.unique("source"))
        # a benchmark whose records name their own source (UFine3C) holds `NAME/SOURCE`
        if expected_source is not None and {source.split("/")[0] for source in sources} - {expected_source}:
            raise BenchmarkFormatError(f"{str(path)!r} holds {', '.join(sorted(sources))}, not {expected_source!r}")
    return dataset


def build_folder_once(
    target: str | os.PathLike, build: Callable[[Path], None], is_complete: Callable[[Path], bool]
) -> tuple[Path, bool]:
    """Make `target` exactly once, however many processes ask at the same time; returns `(target, built_here)`.

    Under a file lock beside it (`.TARGET.lock`, hidden), the first process builds into a private staging folder
    (`TARGET.tmp-PID`) and renames it into place; the others wait for the lock, find `target` complete and read it.
    A writer that crashes leaves only its staging folder, which no reader mistakes for `target` and the next writer
    removes, and a lock file that the operating system has already released.
    """
    from filelock import FileLock

    target = Path(target)
    if is_complete(target):
        return target, False
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target.with_name(f".{target.name}.lock"))):
        if is_complete(target):  # another process built it while this one waited
            return target, False
        for leftover in target.parent.glob(f"{target.name}.tmp-*"):  # a crashed writer's: the lock is ours now
            shutil.rmtree(leftover, ignore_errors=True)
        if target.exists():
            shutil.rmtree(target)  # incomplete: no completion marker
        staging = target.with_name(f"{target.name}.tmp-{os.getpid()}")
        staging.mkdir()
        build(staging)
        os.replace(staging, target)
    return target, True


def splits_with_rows(dataset: datasets.DatasetDict) -> datasets.DatasetDict:
    """The splits of `dataset` that hold rows: what `prepare_benchmark` writes. An empty split is no split (evaluation-
    only data has no train split), and `datasets` saves one that `load_from_disk` cannot read back."""
    import datasets

    kept = datasets.DatasetDict({split: rows for split, rows in dataset.items() if len(rows)})
    if not kept:
        raise IVTInputError(f"nothing to prepare: every split is empty ({', '.join(dataset) or 'no splits'})")
    return kept


def prepare_benchmark(dataset: datasets.DatasetDict, output_dir: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Save a loaded benchmark self-contained (images embedded) as `output_dir` and return it.

    A non-empty `output_dir` is an error unless `overwrite` is set and ivt_hf wrote it (checked under the folder's
    lock, so two prepares into one folder cannot both find it empty). Nothing half-written is ever left at
    `output_dir`, and a replaced folder stays until the new one is complete (`ivt_hf.outputs.writing_output_dir`).
    Only the splits that hold rows are written (`splits_with_rows`).
    """
    dataset = splits_with_rows(dataset)  # before anything at output_dir is replaced
    with writing_output_dir(output_dir, overwrite=overwrite, command="ivt data prepare") as staging:
        dataset.save_to_disk(str(staging))
    return Path(output_dir)

"""Folders the package writes once and then reads: `ivt data prepare`'s output (a `save_to_disk` DatasetDict with
the images embedded) and, through `build_folder_once`, the SynthPEDES cache, whichever process gets there first."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import OutputExistsError
from .schema import COLUMNS
from .specs import BenchmarkFormatError

if TYPE_CHECKING:
    import datasets


def is_prepared(path: str | os.PathLike) -> bool:
    """Whether `path` is the output of `ivt data prepare` (a `save_to_disk` DatasetDict)."""
    return (Path(path) / "dataset_dict.json").is_file()


def load_prepared(path: str | os.PathLike, *, expected_source: str | None = None) -> datasets.DatasetDict:
    """Load the self-contained output of `ivt data prepare` (images embedded), checking its schema and source."""
    import datasets

    if not is_prepared(path):
        raise BenchmarkFormatError(f"{str(path)!r} is not a prepared benchmark folder (no dataset_dict.json)")
    dataset = datasets.load_from_disk(str(path))
    for split, split_dataset in dataset.items():
        missing = [column for column in COLUMNS if column not in split_dataset.column_names]
        if missing:
            raise BenchmarkFormatError(f"{str(path)!r} split {split!r} lacks columns {missing}")
        sources = set(split_dataset.unique("source"))
        if expected_source is not None and sources - {expected_source}:
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


def prepare_benchmark(
    dataset: datasets.DatasetDict, output_dir: str | os.PathLike, *, overwrite: bool = False
) -> tuple[Path, bool]:
    """Save a loaded benchmark self-contained (images embedded) as `output_dir`; `(output_dir, written_here)`.

    A non-empty `output_dir` is an error unless `overwrite`; a prepare that another process finished meanwhile is
    kept (`written_here` False). Nothing half-written is ever left at `output_dir` (see `build_folder_once`).
    """
    output_dir = Path(output_dir)
    if output_dir.exists() and any(output_dir.iterdir()):
        if not overwrite:
            raise OutputExistsError(f"{str(output_dir)!r} is not empty; pass --overwrite to replace it")
        shutil.rmtree(output_dir)
    return build_folder_once(output_dir, lambda staging: dataset.save_to_disk(str(staging)), is_prepared)

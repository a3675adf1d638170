"""Folders written by `ivt data prepare`: a `save_to_disk` DatasetDict with the images embedded."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

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

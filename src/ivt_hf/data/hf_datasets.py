"""Data that `datasets` already reads: a folder written by `save_to_disk` or a Hub dataset id, in any column layout.

A user's collection on the Hub (or saved with `save_to_disk`) rarely uses our column names. `ColumnMapping` names the
three columns we need (image, caption or captions, person id); every split is then checked row by row with the same
checks and the same `on_invalid` policy as a raw benchmark copy (`normalise.py`), and turned into the common schema
(`schema.py`). Errors name the dataset, the split and the row.

Rows are images, or image-caption pairs: rows holding the same image (same bytes, or the same file when the image
is not embedded) and the same person are merged into one image with all their captions, and reported as merged.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .normalise import (
    BenchmarkReport,
    ImageRecord,
    InvalidRecord,
    RecordCollector,
    build_split,
    check_captions,
    check_decodable,
    check_images_per_identity,
)
from .paths import PathOutsideRootError, resolve_under
from .schema import COLUMNS, split_counts
from .sources import DATASET_DICT_FILE, DATASET_STATE_FILE
from .specs import BenchmarkFormatError, OnInvalid

if TYPE_CHECKING:
    import datasets

# split names found on the Hub, read as the canonical ones; other split names are kept as they are
SPLIT_ALIASES = {
    "train": "train",
    "validation": "validation",
    "valid": "validation",
    "val": "validation",
    "dev": "validation",
    "test": "test",
}
DEFAULT_MIN_IMAGES_PER_ID = {"train": 2}  # `normalise.check_images_per_identity`: data a user made is checked


@dataclass(frozen=True)
class ColumnMapping:
    """Which columns hold the image, the caption(s) and the person id (None: the usual names are looked for).

    `caption` may hold one string per row or a list of strings; `person_id` integers (or strings of digits).
    """

    image: str | None = None
    caption: str | None = None
    person_id: str | None = None

    DEFAULTS = {"image": ("image",), "caption": ("captions", "caption"), "person_id": ("person_id",)}
    FLAGS = {"image": "--image_column", "caption": "--caption_column", "person_id": "--person_id_column"}

    def resolve(self, column_names: list[str], where: str) -> dict[str, str]:
        """The column of each role in a split with `column_names`; an error naming the flag when one is absent."""
        resolved = {}
        for role, defaults in self.DEFAULTS.items():
            chosen = getattr(self, role)
            candidates = (chosen,) if chosen else defaults
            found = next((name for name in candidates if name in column_names), None)
            if found is None:
                wanted = f"column {chosen!r}" if chosen else "a column " + " or ".join(map(repr, defaults))
                raise BenchmarkFormatError(
                    f"no {role.replace('_', ' ')} column: looked for {wanted}; the columns are "
                    f"{', '.join(column_names)} (name yours with {self.FLAGS[role]})",
                    annotation_file=where,
                )
            resolved[role] = found
        return resolved


def _person_id(value: Any, column: str) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    # bool is an int subclass, but `true` is a broken value rather than person 1
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidRecord(f"{column!r} should be an integer person id, found {type(value).__name__} {value!r:.60}")
    if value < 0:
        raise InvalidRecord(f"negative person id {value}")
    return value


def _captions(value: Any, column: str) -> list[str]:
    captions = [value] if isinstance(value, str) else value
    if not isinstance(captions, list) or not captions:
        kind = "an empty list" if isinstance(captions, list) else f"{type(value).__name__} {value!r:.60}"
        raise InvalidRecord(f"{column!r} should be a caption or a list of captions, found {kind}")
    check_captions(captions)
    return [caption.strip() for caption in captions]


def _image(value: Any, column: str, base: Path | None) -> tuple[str | None, bytes | None, str]:
    """(file, bytes, shown path) of an image cell: an `Image` feature read undecoded, or a path string. A path stays
    under `base` (the `save_to_disk` folder), or for a Hub dataset (`base` None) under the download caches."""
    if isinstance(value, str):
        value = {"path": value, "bytes": None}
    if not isinstance(value, dict) or (value.get("bytes") is None and not value.get("path")):
        raise InvalidRecord(f"{column!r} holds no image")
    if value.get("bytes") is not None:
        return None, value["bytes"], value.get("path") or ""
    path = _local_image_path(value["path"], column, base)
    if not path.is_file():
        raise InvalidRecord(f"image file not found: {str(path)!r}")
    return str(path), None, value["path"]


def _download_folders() -> tuple[Path, ...]:
    """Where `datasets` and the Hub client keep what they download: a Hub dataset's images that are not embedded in
    its rows (an image folder on the Hub) are files there."""
    import datasets
    from huggingface_hub import constants

    return Path(datasets.config.HF_DATASETS_CACHE), Path(constants.HF_HUB_CACHE)


def _local_image_path(path: str, column: str, base: Path | None) -> Path:
    """The file an image cell names, checked to stay inside the data (`paths.resolve_under`): `InvalidRecord`, naming
    the column, for one leading outside it."""
    folders = (base,) if base is not None else _download_folders()
    for folder in folders:
        try:
            return resolve_under(folder, path, what=f"column {column!r}")
        except PathOutsideRootError as error:
            outside = error
    if base is None:
        raise InvalidRecord(
            f"column {column!r}: {path!r} is a local file outside the download caches "
            f"({', '.join(str(folder) for folder in folders)}); a Hub dataset's images are its own"
        )
    raise InvalidRecord(str(outside))


def read_split_records(
    split_dataset: datasets.Dataset,
    split: str,
    columns: ColumnMapping,
    collector: RecordCollector,
    where: str,
    *,
    base: Path | None = None,
    verify_images: bool = True,
) -> list[ImageRecord]:
    """The valid images of one split (rows of one image merged), invalid rows given to the `collector`."""
    import datasets
    from tqdm.auto import tqdm

    names = columns.resolve(split_dataset.column_names, where)
    table = split_dataset.select_columns(list(dict.fromkeys(names.values())))
    if isinstance(table.features[names["image"]], datasets.Image):
        table = table.cast_column(names["image"], datasets.Image(decode=False))  # bytes and path, never decoded
    by_image: dict[tuple[str, str], ImageRecord] = {}
    for index, row in enumerate(tqdm(table, desc=f"Checking {where}", unit=" rows", disable=None)):
        shown = None
        try:
            absolute, data, shown = _image(row[names["image"]], names["image"], base)
            person = _person_id(row[names["person_id"]], names["person_id"])
            captions = _captions(row[names["caption"]], names["caption"])
            if verify_images:
                check_decodable(absolute, data)
        except InvalidRecord as error:
            collector.invalid(index, shown, str(error), error)
            continue
        key = ("bytes", hashlib.sha1(data).hexdigest()) if data is not None else ("file", absolute)
        earlier = by_image.get(key)
        if earlier is None:
            image_path = shown or f"{split}/{index:07d}"  # embedded images without a name get their row's
            by_image[key] = ImageRecord(index, split, shown, image_path, absolute, person, captions, data)
        elif earlier.original_person_id != person:
            reason = (
                f"the same image as row {earlier.record_index} with another person id ({person}; row "
                f"{earlier.record_index} has {earlier.original_person_id})"
            )
            collector.invalid(index, shown, reason)
        else:
            earlier.captions.extend(captions)
            collector.report.merged.append(f"{where} row {index} repeats the image of row {earlier.record_index}")
    return list(by_image.values())


def normalise_hf_dataset(
    dataset: datasets.DatasetDict | datasets.Dataset,
    *,
    name: str,
    source: str | None = None,
    columns: ColumnMapping = ColumnMapping(),
    on_invalid: OnInvalid = "error",
    verify_images: bool = True,
    min_images_per_id: dict[str, int] | None = None,
    base: str | os.PathLike | None = None,
) -> tuple[datasets.DatasetDict, BenchmarkReport]:
    """A `datasets` dataset in any column layout, checked and turned into the common schema, with its report.

    `name` is what errors call it (a Hub id with its config and revision, or a folder), `source` what the `source`
    column holds (default `name`); `base` is the folder that image paths held as strings are relative to. A lone
    `Dataset` is one split, named by its `split` (default train).
    """
    import datasets

    if isinstance(dataset, datasets.Dataset):
        dataset = datasets.DatasetDict({str(dataset.split or "train"): dataset})
    report = BenchmarkReport(benchmark=name, annotation_file=name)
    collector = RecordCollector(name, on_invalid, report)
    per_split: dict[str, list[ImageRecord]] = {}
    for raw_split, split_dataset in dataset.items():
        split = SPLIT_ALIASES.get(raw_split, raw_split)
        if split in per_split:
            raise BenchmarkFormatError(
                f"splits {raw_split!r} and another are both read as {split!r}", annotation_file=name
            )
        report.records += len(split_dataset)
        collector.annotation_file = where = f"{name} split {raw_split!r}"
        per_split[split] = read_split_records(
            split_dataset,
            split,
            columns,
            collector,
            where,
            base=None if base is None else Path(base),
            verify_images=verify_images,
        )
    collector.annotation_file = name
    minimum = DEFAULT_MIN_IMAGES_PER_ID if min_images_per_id is None else min_images_per_id
    per_split = check_images_per_identity(per_split, collector, minimum)
    result = datasets.DatasetDict(
        {
            split: build_split(records, split, source or name, f"{name}, read by ivt_hf")
            for split, records in per_split.items()
        }
    )
    report.counts = {split: split_counts(split_dataset) for split, split_dataset in result.items()}
    return result, report


def has_common_schema(dataset: datasets.DatasetDict | datasets.Dataset) -> bool:
    """Whether every split already holds the common schema's columns (a folder written by `ivt data prepare`)."""
    splits = dataset.values() if hasattr(dataset, "values") else [dataset]
    return all(set(COLUMNS) <= set(split.column_names) for split in splits)


def _holds_rows(split_folder: Path) -> bool:
    """Whether a `save_to_disk` split folder has data files: `datasets` saves an empty split without any and then
    cannot read it back (an `IndexError` in `load_from_disk`)."""
    state = json.loads((split_folder / DATASET_STATE_FILE).read_text(encoding="utf-8"))
    return bool(state.get("_data_files"))


def read_saved_dataset(path: str | os.PathLike, *, lone_split: str | None = None) -> datasets.DatasetDict:
    """`datasets.load_from_disk(path)` as a `DatasetDict`, without the splits that hold no rows: an empty split is no
    split. A lone `Dataset` (saved on its own) is the split `lone_split`, by default the split it names, else train.
    Errors name the folder."""
    import datasets

    path = Path(path)
    try:
        if (path / DATASET_DICT_FILE).is_file():
            splits = json.loads((path / DATASET_DICT_FILE).read_text(encoding="utf-8"))["splits"]
        else:
            splits = [None]  # a lone Dataset, saved in `path` itself
        folders = {split: path if split is None else path / split for split in splits}
        dataset = datasets.DatasetDict()
        for split, folder in folders.items():
            if _holds_rows(folder):
                split_dataset = datasets.Dataset.load_from_disk(str(folder))
                dataset[split or lone_split or str(split_dataset.split or "train")] = split_dataset
    except (FileNotFoundError, ValueError, OSError, KeyError, TypeError) as error:
        # ValueError covers invalid JSON; KeyError / TypeError a dataset_dict.json or state.json of another shape
        raise BenchmarkFormatError(
            f"cannot be read by datasets.load_from_disk: {type(error).__name__}: {error}", annotation_file=path
        ) from error
    if not dataset:
        named = ", ".join(str(split) for split in splits if split is not None)
        raise BenchmarkFormatError(
            "holds no rows" + (f" in any split ({named})" if named else ""), annotation_file=path
        )
    return dataset


def load_saved_dataset(
    path: str | os.PathLike, *, columns: ColumnMapping = ColumnMapping(), **checks: Any
) -> tuple[datasets.DatasetDict, BenchmarkReport | None]:
    """A `save_to_disk` folder: read as it is when it holds the common schema, else checked and converted. Empty
    splits are left out (`read_saved_dataset`)."""
    dataset = read_saved_dataset(path)
    if has_common_schema(dataset) and columns == ColumnMapping():
        return dataset, None
    return normalise_hf_dataset(dataset, name=str(path), columns=columns, base=Path(path), **checks)


def load_hub_dataset(
    repo_id: str,
    *,
    config: str | None = None,
    revision: str | None = None,
    columns: ColumnMapping = ColumnMapping(),
    **checks: Any,
) -> tuple[datasets.DatasetDict, BenchmarkReport]:
    """A Hub dataset (`datasets.load_dataset(repo_id, config, revision=...)`), checked and converted."""
    import datasets

    name = repo_id + (f" (config {config})" if config else "") + (f" at revision {revision}" if revision else "")
    try:
        dataset = datasets.load_dataset(repo_id, config, revision=revision)
    except (datasets.exceptions.DatasetsError, ValueError, FileNotFoundError, ConnectionError) as error:
        # no such dataset (or no access), an unknown config or revision, no data files, an unreachable Hub:
        # datasets' own message says which
        message = " ".join(str(error).split())
        raise BenchmarkFormatError(f"cannot be loaded: {message}", annotation_file=name) from error
    return normalise_hf_dataset(dataset, name=name, source=repo_id, columns=columns, **checks)

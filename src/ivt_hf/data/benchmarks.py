"""Raw text-based person retrieval benchmarks normalised to one `datasets` schema.

CUHK-PEDES, ICFG-PEDES and RSTPReid ship as a JSON list of per-image records plus an `imgs/` folder (section 5 of
`ivt_spec.md`). They differ only in facts (file names, the name of the path field, id base, split names, published
counts), so each is a small `BenchmarkSpec` and a single normaliser reads all three. The IRRA dataset classes are the
counter-example: three near-identical loaders that differ in five facts.

Copies found in the wild are often broken (misspelled file names, missing sub-folders, unreadable images). The
normaliser therefore validates every record and either stops with an error that names the annotation file, the
record index and the image path, or (``on_invalid="skip"``) skips the record and lists it in a `BenchmarkReport`;
it never drops data silently.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # datasets is imported lazily so that `ivt --help` stays fast
    import datasets

logger = logging.getLogger(__name__)

OnInvalid = Literal["error", "skip"]
SPLITS = ("train", "validation", "test")
COLUMNS = ("image", "image_path", "person_id", "original_person_id", "captions", "split", "source")
# A copy holding at least this share of the published images is a (possibly damaged) full copy whose totals are
# checked against the published counts; anything smaller is a deliberate subset (a sample, a test fixture).
FULL_COPY_FRACTION = 0.5


class BenchmarkFormatError(ValueError):
    """A raw benchmark copy that cannot be read as its spec says; the message says where and why."""

    def __init__(
        self,
        reason: str,
        *,
        annotation_file: str | os.PathLike | None = None,
        record_index: int | None = None,
        image_path: str | None = None,
    ):
        self.reason = reason
        self.annotation_file = None if annotation_file is None else str(annotation_file)
        self.record_index = record_index
        self.image_path = image_path
        location = [part for part in (self.annotation_file, _describe_record(record_index, image_path)) if part]
        super().__init__(": ".join([*location, reason]))


class BenchmarkWarning(UserWarning):
    """Records were skipped, or a full copy's totals differ from the published counts."""


def _describe_record(record_index: int | None, image_path: str | None) -> str:
    if record_index is None:
        return "" if image_path is None else f"image {image_path!r}"
    return f"record {record_index}" + ("" if image_path is None else f" (image {image_path!r})")


@dataclass(frozen=True)
class SplitCounts:
    """Identities, images and captions of one split."""

    ids: int
    images: int
    captions: int


@dataclass(frozen=True)
class BenchmarkSpec:
    """Everything that distinguishes one raw benchmark layout from another (spec section 5).

    The `synth_*` fields tell the SynthPEDES generator how to lay its images out like the real benchmark, so that
    synthetic data travels through exactly the loader code path of a user's real copy.
    """

    name: str
    annotation_files: tuple[str, ...]  # accepted spellings, preferred first (the generator writes the first)
    path_field: str  # record field holding the image path, relative to `image_dir`
    id_base: int  # smallest person id in the train split of the original file
    split_names: dict[str, str]  # raw split name -> canonical split name
    published: dict[str, SplitCounts] = field(default_factory=dict)  # canonical split -> published counts
    image_dir: str = "imgs"
    # the record's fields, in the order of spec section 5 (`processed_tokens` is written by the generator, never read)
    record_fields: tuple[str, ...] = ("split", "captions", "file_path", "processed_tokens", "id")
    captions_per_record: int | None = None  # captions per record when fixed (the generator writes this many)
    synth_path_template: str = "{pid:05d}_{index:02d}.jpg"  # fields: subfolder, split (raw), pid, index
    synth_subfolders: tuple[str, ...] = ()

    @property
    def splits(self) -> tuple[str, ...]:
        """Canonical split names in the usual order (train, validation, test)."""
        return tuple(split for split in SPLITS if split in self.split_names.values())

    def raw_split_name(self, split: str) -> str:
        return next(raw for raw, canonical in self.split_names.items() if canonical == split)


def _counts(table: dict[str, tuple[int, int, int]]) -> dict[str, SplitCounts]:
    return {split: SplitCounts(*values) for split, values in table.items()}


BENCHMARKS: dict[str, BenchmarkSpec] = {
    spec.name: spec
    for spec in (
        BenchmarkSpec(
            name="cuhk-pedes",
            annotation_files=("reid_raw.json", "caption_all.json"),
            path_field="file_path",
            id_base=1,
            split_names={"train": "train", "val": "validation", "test": "test"},
            published=_counts(
                {"train": (11003, 34054, 68126), "validation": (1000, 3078, 6158), "test": (1000, 3074, 6156)}
            ),
            synth_path_template="{subfolder}/{pid:05d}_{index:02d}.jpg",
            synth_subfolders=("CUHK01", "CUHK03", "Market", "cam_a", "cam_b", "test_query", "train_query"),
        ),
        BenchmarkSpec(
            name="icfg-pedes",
            annotation_files=("ICFG-PEDES.json", "ICFG_PEDES.json"),
            path_field="file_path",
            id_base=0,
            split_names={"train": "train", "test": "test"},
            published=_counts({"train": (3102, 34674, 34674), "test": (1000, 19848, 19848)}),
            captions_per_record=1,
            synth_path_template="{split}/{pid:04d}/{pid:04d}_{index:03d}.jpg",
        ),
        BenchmarkSpec(
            name="rstpreid",
            annotation_files=("data_captions.json",),
            path_field="img_path",
            record_fields=("split", "captions", "img_path", "id"),
            id_base=0,
            split_names={"train": "train", "val": "validation", "test": "test"},
            published=_counts(
                {"train": (3701, 18505, 37010), "validation": (200, 1000, 2000), "test": (200, 1000, 2000)}
            ),
            synth_path_template="{pid:04d}_c{index:02d}.jpg",
        ),
    )
}


BENCHMARK_NAMES = (*BENCHMARKS, "synthpedes")  # what `load_benchmark` accepts


def get_spec(name: str) -> BenchmarkSpec:
    try:
        return BENCHMARKS[name]
    except KeyError:
        raise ValueError(f"unknown benchmark {name!r}; expected one of {sorted(BENCHMARKS)}") from None


@dataclass(frozen=True)
class SkippedRecord:
    record_index: int | None
    image_path: str | None
    reason: str


@dataclass
class BenchmarkReport:
    """What the normaliser read, skipped and merged, and how the totals compare with the published counts."""

    benchmark: str
    annotation_file: str
    records: int = 0
    skipped: list[SkippedRecord] = field(default_factory=list)
    merged: list[str] = field(default_factory=list)  # duplicate records of one image whose captions were joined
    counts: dict[str, SplitCounts] = field(default_factory=dict)
    published: dict[str, SplitCounts] = field(default_factory=dict)

    @property
    def full_copy(self) -> bool:
        """Whether the annotation file looks like the complete benchmark, so that published counts apply."""
        published_images = sum(counts.images for counts in self.published.values())
        return published_images > 0 and self.records >= FULL_COPY_FRACTION * published_images

    @property
    def mismatches(self) -> list[str]:
        """Differences from the published counts (empty for a subset copy or a benchmark without published counts)."""
        if not self.full_copy:
            return []
        problems = []
        for split, published in self.published.items():
            counts = self.counts.get(split, SplitCounts(0, 0, 0))
            for name in ("ids", "images", "captions"):
                found, expected = getattr(counts, name), getattr(published, name)
                if found != expected:
                    problems.append(f"{split}: {found} {name}, published {expected}")
        return problems

    def format(self) -> str:
        """A human-readable report: totals per split, the published comparison and every skipped record."""
        lines = [f"{self.benchmark}: {self.records} records in {self.annotation_file}"]
        lines.append(format_counts_table(self.counts, self.published if self.full_copy else None))
        if self.published and not self.full_copy:
            lines.append("subset copy: published counts not compared")
        lines += [f"count mismatch: {problem}" for problem in self.mismatches]
        lines += [f"merged duplicate: {message}" for message in self.merged]
        if self.skipped:
            lines.append(f"skipped {len(self.skipped)} record(s):")
            lines += [
                f"  {_describe_record(item.record_index, item.image_path)}: {item.reason}" for item in self.skipped
            ]
        return "\n".join(lines)


def ordered_splits(names: Iterable[str]) -> list[str]:
    """Split names in the usual order (train, validation, test), then any others alphabetically."""
    names = set(names)
    return [split for split in SPLITS if split in names] + sorted(names - set(SPLITS))


def format_counts_table(counts: dict[str, SplitCounts], published: dict[str, SplitCounts] | None = None) -> str:
    """Render ids / images / captions per split as a fixed-width table, with published counts when given."""
    header = ["split", "ids", "images", "captions"] + (["published ids/images/captions"] if published else [])
    rows = [header]
    for split in ordered_splits(counts):
        row = [split, *(str(getattr(counts[split], name)) for name in ("ids", "images", "captions"))]
        if published:
            expected = published.get(split)
            row.append("-" if expected is None else f"{expected.ids}/{expected.images}/{expected.captions}")
        rows.append(row)
    widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows)


@dataclass
class _ImageRecord:
    record_index: int
    split: str
    raw_path: str  # as written in the annotation file: what error messages quote
    image_path: str  # relative to the benchmark root
    absolute_path: str
    original_person_id: int
    captions: list[str]


class _InvalidRecord(Exception):
    """Internal: one record failed a check; the caller decides between stopping and skipping."""


def find_annotation_file(spec: BenchmarkSpec, root: str | os.PathLike) -> Path:
    """The first of the spec's accepted annotation file names present in `root`."""
    root = Path(root)
    if not root.is_dir():
        raise BenchmarkFormatError(f"benchmark folder {str(root)!r} does not exist")
    for name in spec.annotation_files:
        if (root / name).is_file():
            return root / name
    held = sorted(entry.name + ("/" if entry.is_dir() else "") for entry in root.iterdir())
    shown = ", ".join(held[:20]) + (f", ... ({len(held)} entries)" if len(held) > 20 else "")
    raise BenchmarkFormatError(
        f"no {spec.name} annotation file in {str(root)!r}: tried {', '.join(spec.annotation_files)}; "
        f"the folder holds: {shown or 'nothing'}"
    )


def _read_json_list(path: Path) -> list[Any]:
    try:
        with open(path, encoding="utf-8") as handle:
            records = json.load(handle)
    except json.JSONDecodeError as error:
        raise BenchmarkFormatError(
            f"invalid JSON at line {error.lineno} column {error.colno}: {error.msg}", annotation_file=path
        ) from error
    except UnicodeDecodeError as error:
        raise BenchmarkFormatError(f"not UTF-8 text: {error}", annotation_file=path) from error
    if not isinstance(records, list):
        raise BenchmarkFormatError(
            f"expected a JSON list of records, found {type(records).__name__}", annotation_file=path
        )
    return records


def _field(record: dict, name: str, kind: type | tuple[type, ...], kind_name: str) -> Any:
    if name not in record:
        raise _InvalidRecord(f"missing field {name!r} (fields: {', '.join(sorted(map(str, record)))})")
    value = record[name]
    # bool is an int subclass, but `"id": true` is a broken record rather than person 1
    if not isinstance(value, kind) or isinstance(value, bool):
        raise _InvalidRecord(f"field {name!r} should be {kind_name}, found {type(value).__name__} {value!r:.60}")
    return value


def _resolve_image(root: Path, spec: BenchmarkSpec, raw_path: str) -> tuple[str, Path]:
    """Find the image of a record: relative to `imgs/` (the layout of the real files) or, in some copies, to root."""
    relative_candidates = [f"{spec.image_dir}/{raw_path}", raw_path] if spec.image_dir else [raw_path]
    for relative in relative_candidates:
        if (root / relative).is_file():
            return relative, root / relative
    tried = " or ".join(repr(str(root / relative)) for relative in relative_candidates)
    raise _InvalidRecord(f"image file not found (looked for {tried})")


def _parse_record(record: Any, spec: BenchmarkSpec, root: Path, index: int) -> _ImageRecord:
    if not isinstance(record, dict):
        raise _InvalidRecord(f"expected a JSON object, found {type(record).__name__}")
    raw_split = _field(record, "split", str, "a string")
    if raw_split not in spec.split_names:
        raise _InvalidRecord(f"unknown split {raw_split!r}; expected one of {sorted(spec.split_names)}")
    raw_path = _field(record, spec.path_field, str, "a string")
    if not raw_path.strip():
        raise _InvalidRecord(f"empty {spec.path_field!r}")
    person_id = _field(record, "id", int, "an integer")
    if person_id < 0:
        raise _InvalidRecord(f"negative person id {person_id}")
    captions = _field(record, "captions", list, "a list of strings")
    if not captions:
        raise _InvalidRecord("no captions")
    for position, caption in enumerate(captions):
        if not isinstance(caption, str):
            raise _InvalidRecord(f"caption {position} should be a string, found {type(caption).__name__}")
        if not caption.strip():
            raise _InvalidRecord(f"caption {position} is empty")
    image_path, absolute_path = _resolve_image(root, spec, raw_path)
    return _ImageRecord(
        record_index=index,
        split=spec.split_names[raw_split],
        raw_path=raw_path,
        image_path=image_path,
        absolute_path=str(absolute_path),
        original_person_id=person_id,
        captions=[caption.strip() for caption in captions],
    )


def _check_decodable(path: str) -> None:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()  # a full decode: `verify()` misses truncated JPEG data
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as error:
        raise _InvalidRecord(f"image cannot be decoded: {error}") from error


class _Collector:
    """Applies the `on_invalid` policy: raise with the full location, or remember the record as skipped."""

    def __init__(self, annotation_file: Path, on_invalid: OnInvalid, report: BenchmarkReport):
        if on_invalid not in ("error", "skip"):
            raise ValueError(f"on_invalid must be 'error' or 'skip', got {on_invalid!r}")
        self.annotation_file = annotation_file
        self.on_invalid = on_invalid
        self.report = report

    def invalid(self, index: int, image_path: str | None, reason: str, cause: Exception | None = None) -> None:
        if self.on_invalid == "error":
            raise BenchmarkFormatError(
                reason, annotation_file=self.annotation_file, record_index=index, image_path=image_path
            ) from cause
        self.report.skipped.append(SkippedRecord(index, image_path, reason))


def _raw_image_path(record: Any, spec: BenchmarkSpec) -> str | None:
    """The record's path field for error messages, when it has a usable one."""
    value = record.get(spec.path_field) if isinstance(record, dict) else None
    return value if isinstance(value, str) else None


def read_records(
    spec: BenchmarkSpec,
    root: str | os.PathLike,
    *,
    on_invalid: OnInvalid = "error",
    verify_images: bool = True,
    source: str | None = None,
) -> tuple[dict[str, list[_ImageRecord]], BenchmarkReport]:
    """Validate the raw records of a benchmark copy; return the valid ones per canonical split and a report."""
    from tqdm.auto import tqdm

    root = Path(root)
    annotation_file = find_annotation_file(spec, root)
    raw_records = _read_json_list(annotation_file)
    report = BenchmarkReport(
        benchmark=source or spec.name,
        annotation_file=str(annotation_file),
        records=len(raw_records),
        published=dict(spec.published),
    )
    collector = _Collector(annotation_file, on_invalid, report)

    by_path: dict[str, _ImageRecord] = {}
    for index, raw_record in enumerate(raw_records):
        try:
            record = _parse_record(raw_record, spec, root, index)
        except _InvalidRecord as error:
            collector.invalid(index, _raw_image_path(raw_record, spec), str(error), error)
            continue
        earlier = by_path.get(record.image_path)
        if earlier is None:
            by_path[record.image_path] = record
        elif (earlier.original_person_id, earlier.split) != (record.original_person_id, record.split):
            collector.invalid(
                index,
                record.raw_path,
                f"duplicate image path: record {earlier.record_index} gives it id {earlier.original_person_id} "
                f"({earlier.split}), this record id {record.original_person_id} ({record.split})",
            )
        else:  # the same image listed twice with the same identity: one row, all captions, and say so
            earlier.captions.extend(record.captions)
            report.merged.append(f"record {index} repeats image {record.raw_path!r} of record {earlier.record_index}")

    records = list(by_path.values())
    if verify_images:
        valid = []
        for record in tqdm(records, desc=f"Verifying {report.benchmark} images", unit=" images", disable=None):
            try:
                _check_decodable(record.absolute_path)
            except _InvalidRecord as error:
                collector.invalid(record.record_index, record.raw_path, str(error), error)
                continue
            valid.append(record)
        records = valid

    per_split: dict[str, list[_ImageRecord]] = {split: [] for split in spec.splits}
    for record in records:
        per_split[record.split].append(record)
    return per_split, report


def benchmark_features() -> datasets.Features:
    """The one schema every benchmark is normalised to (one row per image)."""
    import datasets

    return datasets.Features(
        {
            "image": datasets.Image(),
            "image_path": datasets.Value("string"),
            "person_id": datasets.Value("int64"),
            "original_person_id": datasets.Value("int64"),
            "captions": datasets.List(datasets.Value("string")),
            "split": datasets.Value("string"),
            "source": datasets.Value("string"),
        }
    )


def _build_split(records: list[_ImageRecord], split: str, source: str, description: str) -> datasets.Dataset:
    import datasets

    # 0-based contiguous labels in order of the original ids, so that train ids index a classifier directly
    remap = {original: label for label, original in enumerate(sorted({r.original_person_id for r in records}))}
    columns = {
        "image": [{"path": record.absolute_path, "bytes": None} for record in records],
        "image_path": [record.image_path for record in records],
        "person_id": [remap[record.original_person_id] for record in records],
        "original_person_id": [record.original_person_id for record in records],
        "captions": [record.captions for record in records],
        "split": [split] * len(records),
        "source": [source] * len(records),
    }
    info = datasets.DatasetInfo(description=description, features=benchmark_features())
    return datasets.Dataset.from_dict(columns, info=info, split=split)


def split_counts(dataset: datasets.Dataset) -> SplitCounts:
    """Ids, images and captions of an image-level split, read from the arrow columns (images are not decoded)."""
    import pyarrow.compute as pc

    table = dataset.select_columns(["person_id", "captions"]).with_format("arrow")[:]
    captions = pc.sum(pc.list_value_length(table.column("captions"))).as_py() or 0
    return SplitCounts(ids=len(pc.unique(table.column("person_id"))), images=table.num_rows, captions=captions)


def normalise_benchmark(
    spec: BenchmarkSpec | str,
    root: str | os.PathLike,
    *,
    on_invalid: OnInvalid = "error",
    verify_images: bool = True,
    source: str | None = None,
    description: str = "",
) -> tuple[datasets.DatasetDict, BenchmarkReport]:
    """Read a raw benchmark copy into the common schema and return it with its `BenchmarkReport`.

    `source` overrides the `source` column (SynthPEDES reads its CUHK-shaped files through the CUHK spec but is not
    CUHK-PEDES). Images are referenced by absolute path here and embedded only when the result is saved.
    """
    import datasets

    spec = get_spec(spec) if isinstance(spec, str) else spec
    source = source or spec.name
    per_split, report = read_records(spec, root, on_invalid=on_invalid, verify_images=verify_images, source=source)
    dataset = datasets.DatasetDict(
        {split: _build_split(records, split, source, description) for split, records in per_split.items()}
    )
    report.counts = {split: split_counts(split_dataset) for split, split_dataset in dataset.items()}
    return dataset, report


def emit_report(report: BenchmarkReport) -> None:
    """Warn with the full report when records were skipped or totals differ from the published counts."""
    if report.skipped or report.mismatches:
        warnings.warn(report.format(), BenchmarkWarning, stacklevel=3)
    else:
        logger.info(report.format())


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


def caption_view(image_split: datasets.Dataset) -> datasets.Dataset:
    """One row per caption (`caption`, `person_id`, `image_index`) for the text queries of an image-level split.

    Evaluation needs images as the gallery and captions as the queries. This view is built from the non-image
    columns only, so no image is copied or decoded; `image_index` is the row of the caption's image in
    `image_split` (after any `select`/`shuffle` applied to it).
    """
    import datasets
    import pyarrow as pa
    import pyarrow.compute as pc

    table = image_split.select_columns(["person_id", "captions"]).with_format("arrow")[:]
    captions = table.column("captions").combine_chunks()
    image_index = pc.list_parent_indices(captions)
    person_ids = pc.take(table.column("person_id"), image_index)
    features = datasets.Features(
        {
            "caption": datasets.Value("string"),
            "person_id": datasets.Value("int64"),
            "image_index": datasets.Value("int64"),
        }
    )
    flat = pa.table(
        {
            "caption": pc.list_flatten(captions),
            "person_id": person_ids.combine_chunks() if isinstance(person_ids, pa.ChunkedArray) else person_ids,
            "image_index": image_index.cast(pa.int64()),
        }
    )
    return datasets.Dataset(flat, info=datasets.DatasetInfo(features=features), split=image_split.split)


def load_benchmark_with_report(
    name: str,
    root: str | os.PathLike | None = None,
    *,
    on_invalid: OnInvalid = "error",
    verify_images: bool = True,
    **synth_kwargs: Any,
) -> tuple[datasets.DatasetDict, BenchmarkReport | None]:
    """`load_benchmark` that returns the `BenchmarkReport` instead of warning with it (None for a prepared folder,
    which was checked when it was prepared)."""
    if name == "synthpedes":
        from .synthpedes import read_synthpedes

        return read_synthpedes(root, on_invalid=on_invalid, verify_images=verify_images, **synth_kwargs)
    if synth_kwargs:
        raise TypeError(f"unexpected arguments for {name}: {sorted(synth_kwargs)} (only synthpedes takes them)")
    spec = get_spec(name)
    if root is None:
        raise ValueError(f"{name} needs `root`: the folder of your licensed copy (it cannot be downloaded)")
    if is_prepared(root):
        return load_prepared(root, expected_source=spec.name), None
    return normalise_benchmark(spec, root, on_invalid=on_invalid, verify_images=verify_images)


def load_benchmark(
    name: str,
    root: str | os.PathLike | None = None,
    *,
    on_invalid: OnInvalid = "error",
    verify_images: bool = True,
    **synth_kwargs: Any,
) -> datasets.DatasetDict:
    """Load a benchmark as a `datasets.DatasetDict` of image-level splits `train`, `validation`, `test`.

    Args:
        name: `cuhk-pedes`, `icfg-pedes` (no validation split), `rstpreid` or `synthpedes`.
        root: the raw copy (annotation JSON + `imgs/`), or the output folder of `ivt data prepare`. For `synthpedes`
            it is a cache folder (default `~/.cache/ivt_hf/synthpedes`): the benchmark is generated there on first
            use, deterministically from the generator arguments in `synth_kwargs` (`num_ids`, `split_ids`,
            `image_size`, `seed`, `layout`, ... see `ivt_hf.data.synthpedes.generate`), and reused afterwards; a
            folder written by `ivt data synth` is read as it is.
        on_invalid: `"error"` stops at the first broken record with its file, index and image path; `"skip"` skips
            broken records and warns (`BenchmarkWarning`) with a report listing every one of them.
        verify_images: decode every image once (slow on a full copy, but finds unreadable files up front).

    Each row is one image: `image` (decoded lazily to PIL), `image_path` (relative to `root`), `person_id`,
    `original_person_id` (as in the file), `captions` (list of str), `split`, `source`. `person_id` is re-numbered
    0..n-1 within EACH split (in order of the original ids), so the train ids can be used directly as class labels;
    ids of different splits are unrelated. Use `caption_view` for the caption-level (query) form. A full copy whose
    totals differ from the published counts also warns; `load_benchmark_with_report` returns the report instead.
    """
    dataset, report = load_benchmark_with_report(
        name, root, on_invalid=on_invalid, verify_images=verify_images, **synth_kwargs
    )
    if report is not None:
        emit_report(report)
    return dataset

"""The one normaliser: a raw copy of CUHK-PEDES, ICFG-PEDES or RSTPReid read into the common schema (`schema.py`).

The three ship as a JSON list of per-image records plus an `imgs/` folder (`docs/design.md`, "Data"). They differ
only in facts (file names, the name of the path field, id base, split names, published counts), so each is a small
`BenchmarkSpec` (`specs.py`) and this one normaliser reads all three. The IRRA dataset classes are the
counter-example: three near-identical loaders that differ in five facts.

Copies found in the wild are often broken (misspelled file names, missing sub-folders, unreadable images). The
normaliser therefore validates every record and either stops with an error that names the annotation file, the
record index and the image path, or (``on_invalid="skip"``) skips the record and lists it in a `BenchmarkReport`;
it never drops data silently.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .arguments import check_on_invalid
from .paths import PathOutsideRootError, resolve_under
from .schema import benchmark_features, format_counts_table, split_counts
from .specs import (
    BenchmarkFormatError,
    BenchmarkSpec,
    BenchmarkWarning,
    OnInvalid,
    SplitCounts,
    describe_record,
    get_spec,
)

if TYPE_CHECKING:  # datasets is imported lazily so that `ivt --help` stays fast
    import datasets

logger = logging.getLogger(__name__)

# A copy holding at least this share of the published images is a (possibly damaged) full copy whose totals are
# checked against the published counts; anything smaller is a deliberate subset (a sample, a test fixture).
FULL_COPY_FRACTION = 0.5


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
                f"  {describe_record(item.record_index, item.image_path)}: {item.reason}" for item in self.skipped
            ]
        return "\n".join(lines)


@dataclass
class ImageRecord:
    """One valid image of a raw copy (or of a `datasets` split: `hf_datasets.py`), before it becomes a row."""

    record_index: int
    split: str
    raw_path: str  # as written in the annotation file: what error messages quote
    image_path: str  # relative to the benchmark root
    absolute_path: str | None  # the file, or None when the image is held as bytes
    original_person_id: int
    captions: list[str]
    image_bytes: bytes | None = None  # the encoded image, for rows of a `datasets` split that embed it
    origin: str | None = None  # the record's own source (`BenchmarkSpec.source_field`: UFine3C's `source`)


class InvalidRecord(Exception):
    """One record failed a check; the `RecordCollector` decides between stopping and skipping."""


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


def _read_annotation(path: Path) -> list[Any]:
    """The records of an annotation file: a JSON list (the benchmarks), JSON lines or CSV (`metadata.*` of an image
    folder, one record per line or row, with a `caption` turned into `captions` and CSV numbers into integers)."""
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            if path.suffix == ".jsonl":
                records = []
                for line_number, line in enumerate(handle, 1):
                    if line.strip():
                        try:
                            records.append(json.loads(line))
                        except json.JSONDecodeError as error:
                            raise BenchmarkFormatError(
                                f"invalid JSON on line {line_number}: {error.msg}", annotation_file=path
                            ) from error
            elif path.suffix == ".csv":
                records = [dict(row) for row in csv.DictReader(handle)]
                for record in records:
                    value = record.get("person_id")
                    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
                        record["person_id"] = int(value)
            else:
                records = json.load(handle)
    except json.JSONDecodeError as error:
        raise BenchmarkFormatError(
            f"invalid JSON at line {error.lineno} column {error.colno}: {error.msg}", annotation_file=path
        ) from error
    except UnicodeDecodeError as error:
        raise BenchmarkFormatError(f"not UTF-8 text: {error}", annotation_file=path) from error
    except csv.Error as error:
        raise BenchmarkFormatError(f"invalid CSV: {error}", annotation_file=path) from error
    if path.suffix in (".jsonl", ".csv"):
        for record in records:
            if isinstance(record, dict) and "captions" not in record and isinstance(record.get("caption"), str):
                record["captions"] = [record.pop("caption")]
    if not isinstance(records, list):
        raise BenchmarkFormatError(
            f"expected a JSON list of records, found {type(records).__name__}", annotation_file=path
        )
    return records


def check_captions(captions: list) -> None:
    """Every caption of a record is a string with some text; an `InvalidRecord` naming the first that is not."""
    for position, caption in enumerate(captions):
        if not isinstance(caption, str):
            raise InvalidRecord(f"caption {position} should be a string, found {type(caption).__name__}")
        if not caption.strip():
            raise InvalidRecord(f"caption {position} is empty")


def _field(record: dict, name: str, kind: type | tuple[type, ...], kind_name: str) -> Any:
    if name not in record:
        raise InvalidRecord(f"missing field {name!r} (fields: {', '.join(sorted(map(str, record)))})")
    value = record[name]
    # bool is an int subclass, but `"id": true` is a broken record rather than person 1
    if not isinstance(value, kind) or isinstance(value, bool):
        raise InvalidRecord(f"field {name!r} should be {kind_name}, found {type(value).__name__} {value!r:.60}")
    return value


def _resolve_image(root: Path, spec: BenchmarkSpec, raw_path: str) -> tuple[str, Path]:
    """Find the image of a record: relative to `imgs/` (the layout of the real files) or, in some copies, to root.
    A path leading outside `root` (`..`, absolute, a symbolic link out of it) is an invalid record (`paths.py`)."""
    relative_candidates = [f"{spec.image_dir}/{raw_path}", raw_path] if spec.image_dir else [raw_path]
    for relative in relative_candidates:
        try:
            path = resolve_under(root, relative, what=f"field {spec.path_field!r}")
        except PathOutsideRootError as error:
            raise InvalidRecord(str(error)) from None
        if path.is_file():
            return relative, path
    tried = " or ".join(repr(str(root / relative)) for relative in relative_candidates)
    raise InvalidRecord(f"image file not found (looked for {tried})")


def _parse_record(record: Any, spec: BenchmarkSpec, root: Path, index: int) -> ImageRecord:
    if not isinstance(record, dict):
        raise InvalidRecord(f"expected a JSON object, found {type(record).__name__}")
    if spec.default_split is not None and "split" not in record:
        record = {**record, "split": spec.default_split}
    raw_split = _field(record, "split", str, "a string")
    if raw_split not in spec.split_names:
        raise InvalidRecord(f"unknown split {raw_split!r}; expected one of {sorted(spec.split_names)}")
    raw_path = _field(record, spec.path_field, str, "a string")
    if not raw_path.strip():
        raise InvalidRecord(f"empty {spec.path_field!r}")
    person_id = _field(record, spec.id_field, int, "an integer")
    if person_id < 0:
        raise InvalidRecord(f"negative person id {person_id}")
    captions = _field(record, "captions", list, "a list of strings")
    if not captions:
        raise InvalidRecord("no captions")
    check_captions(captions)
    origin = None if spec.source_field is None else _field(record, spec.source_field, str, "a string")
    image_path, absolute_path = _resolve_image(root, spec, raw_path)
    return ImageRecord(
        record_index=index,
        split=spec.split_names[raw_split],
        raw_path=raw_path,
        image_path=image_path,
        absolute_path=str(absolute_path),
        original_person_id=person_id,
        captions=[caption.strip() for caption in captions],
        origin=origin,
    )


def check_decodable(path: str | None, data: bytes | None = None) -> None:
    """Decode the image at `path` (or the encoded bytes `data`) once; `InvalidRecord` when it cannot be decoded."""
    import io

    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data) if data is not None else path) as image:
            image.load()  # a full decode: `verify()` misses truncated JPEG data
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise InvalidRecord(f"image cannot be decoded: {error}") from error


class RecordCollector:
    """Applies the `on_invalid` policy: raise with the full location, or remember the record as skipped."""

    def __init__(self, annotation_file: Path, on_invalid: OnInvalid, report: BenchmarkReport):
        self.annotation_file = annotation_file
        self.on_invalid = check_on_invalid(on_invalid)
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
) -> tuple[dict[str, list[ImageRecord]], BenchmarkReport]:
    """Validate the raw records of a benchmark copy; return the valid ones per canonical split and a report."""
    from tqdm.auto import tqdm

    root = Path(root)
    annotation_file = find_annotation_file(spec, root)
    raw_records = _read_annotation(annotation_file)
    report = BenchmarkReport(
        benchmark=source or spec.name,
        annotation_file=str(annotation_file),
        records=len(raw_records),
        published=dict(spec.published),
    )
    collector = RecordCollector(annotation_file, on_invalid, report)

    by_path: dict[str, ImageRecord] = {}
    for index, raw_record in enumerate(raw_records):
        try:
            record = _parse_record(raw_record, spec, root, index)
        except InvalidRecord as error:
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
                check_decodable(record.absolute_path, record.image_bytes)
            except InvalidRecord as error:
                collector.invalid(record.record_index, record.raw_path, str(error), error)
                continue
            valid.append(record)
        records = valid

    per_split: dict[str, list[ImageRecord]] = {split: [] for split in spec.splits}
    for record in records:
        per_split[record.split].append(record)
    # the splits the rows name, no empty ones (an image folder, UFine6926), unless the spec publishes its splits
    if spec.default_split is not None or not spec.published:
        per_split = {split: rows for split, rows in per_split.items() if rows}
    return check_images_per_identity(per_split, collector, spec.min_images_per_id), report


def check_images_per_identity(
    per_split: dict[str, list[ImageRecord]], collector: RecordCollector, min_images_per_id: dict[str, int]
) -> dict[str, list[ImageRecord]]:
    """Identities with fewer than `min_images_per_id[split]` images in a split that needs pairs: invalid.

    The training split needs pairs: its batches hold K images of each identity and every other image of the same
    person is a positive, so an identity with one image has no positive image but itself. In data a user made, that
    is almost always a mistake (a `person_id` column that numbers images rather than people, or a person whose
    other photos went to another split). The benchmarks are read as published (`min_images_per_id` empty).
    """
    checked = {}
    for split, records in per_split.items():
        needed = min_images_per_id.get(split, 1)
        counts: dict[int, int] = {}
        for record in records:
            counts[record.original_person_id] = counts.get(record.original_person_id, 0) + 1
        kept = []
        for record in records:
            found = counts[record.original_person_id]
            if found < needed:
                collector.invalid(
                    record.record_index,
                    record.raw_path,
                    f"person id {record.original_person_id} has {found} image(s) in the {split} split, which needs "
                    f"at least {needed} per identity (other images of the same person are the positives of "
                    "training); give the person more images, fix the person id, or leave the identity out",
                )
                continue
            kept.append(record)
        checked[split] = kept
    return checked


def build_split(records: list[ImageRecord], split: str, source: str, description: str) -> datasets.Dataset:
    import datasets

    # 0-based contiguous labels in order of the original ids, so that train ids index a classifier directly
    remap = {original: label for label, original in enumerate(sorted({r.original_person_id for r in records}))}
    columns = {
        "image": [{"path": record.absolute_path, "bytes": record.image_bytes} for record in records],
        "image_path": [record.image_path for record in records],
        "person_id": [remap[record.original_person_id] for record in records],
        "original_person_id": [record.original_person_id for record in records],
        "captions": [record.captions for record in records],
        "split": [split] * len(records),
        "source": [source if record.origin is None else f"{source}/{record.origin}" for record in records],
    }
    info = datasets.DatasetInfo(description=description, features=benchmark_features())
    return datasets.Dataset.from_dict(columns, info=info, split=split)


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
        {split: build_split(records, split, source, description) for split, records in per_split.items()}
    )
    report.counts = {split: split_counts(split_dataset) for split, split_dataset in dataset.items()}
    return dataset, report


def emit_report(report: BenchmarkReport) -> None:
    """Warn with the full report when records were skipped or totals differ from the published counts."""
    if report.skipped or report.mismatches:
        warnings.warn(report.format(), BenchmarkWarning, stacklevel=3)
    else:
        logger.info(report.format())

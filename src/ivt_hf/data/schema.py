"""The one schema every benchmark is normalised to (one row per image), its caption-level view, and counts.

Columns: `image` (decoded lazily to PIL), `image_path` (relative to the benchmark root), `person_id` (0-based per
split), `original_person_id` (as in the file), `captions` (list of str), `split`, `source`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from .specs import SPLITS, SplitCounts

if TYPE_CHECKING:  # datasets is imported lazily so that `ivt --help` stays fast
    import datasets

COLUMNS = ("image", "image_path", "person_id", "original_person_id", "captions", "split", "source")


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


def split_counts(dataset: datasets.Dataset) -> SplitCounts:
    """Ids, images and captions of an image-level split, read from the arrow columns (images are not decoded)."""
    import pyarrow.compute as pc

    table = dataset.select_columns(["person_id", "captions"]).with_format("arrow")[:]
    captions = pc.sum(pc.list_value_length(table.column("captions"))).as_py() or 0
    return SplitCounts(ids=len(pc.unique(table.column("person_id"))), images=table.num_rows, captions=captions)


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

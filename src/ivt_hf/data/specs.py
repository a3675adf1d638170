"""The raw benchmarks as data: one small `BenchmarkSpec` each (file names, fields, id base, splits, published
counts), the errors a broken copy raises, and the list of names every part of the package accepts.

CUHK-PEDES, ICFG-PEDES and RSTPReid ship as a JSON list of per-image records plus an `imgs/` folder
(`docs/design.md`, "Data"); UFine6926 and its evaluation set UFine3C (`docs/corpora.md`) as a JSON list beside
`images/`, and SYNTH-PEDES (a pre-training corpus with identities, so also fine-tuning data) beside `Part*/`. They
differ only in these facts, so one normaliser (`normalise.py`) reads them all.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Literal

from ..errors import IVTInputError

OnInvalid = Literal["error", "skip"]
SPLITS = ("train", "validation", "test")
SYNTHPEDES = "synthpedes"


class BenchmarkFormatError(IVTInputError):
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
        location = [part for part in (self.annotation_file, describe_record(record_index, image_path)) if part]
        super().__init__(": ".join([*location, reason]))


class BenchmarkWarning(UserWarning):
    """Records were skipped, or a full copy's totals differ from the published counts."""


def describe_record(record_index: int | None, image_path: str | None) -> str:
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
    """Everything that distinguishes one raw benchmark layout from another (`docs/design.md`, "Data").

    The `synth_*` fields tell the SynthPEDES generator how to lay its images out like the real benchmark, so that
    synthetic data travels through exactly the loader code path of a user's real copy.
    """

    name: str
    display_name: str  # as the benchmark's authors spell it (model cards, tables)
    annotation_files: tuple[str, ...]  # accepted spellings, preferred first (the generator writes the first)
    path_field: str  # record field holding the image path, relative to `image_dir`
    id_base: int  # smallest person id in the train split of the original file
    split_names: dict[str, str]  # raw split name -> canonical split name
    published: dict[str, SplitCounts] = field(default_factory=dict)  # canonical split -> published counts
    image_dir: str = "imgs"
    # the record's fields, in the order the real files use (`processed_tokens` is written by the generator, never read)
    record_fields: tuple[str, ...] = ("split", "captions", "file_path", "processed_tokens", "id")
    captions_per_record: int | None = None  # captions per record when fixed (the generator writes this many)
    synth_path_template: str = "{pid:05d}_{index:02d}.jpg"  # fields: subfolder, split (raw), pid, index
    synth_subfolders: tuple[str, ...] = ()
    id_field: str = "id"  # record field holding the person id
    default_split: str | None = None  # the raw split of records without a `split` field (None: the field is required)
    # least images per identity in a split that needs pairs (`normalise.check_images_per_identity`); the published
    # benchmarks are read as they are, data a user made is checked
    min_images_per_id: dict[str, int] = field(default_factory=dict)
    # record field naming where the record comes from (UFine3C's `source`), kept in the `source` column as
    # `NAME/VALUE`; None: every row's source is the benchmark's name
    source_field: str | None = None

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
            display_name="CUHK-PEDES",
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
            display_name="ICFG-PEDES",
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
            display_name="RSTPReid",
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


# UFineBench (Zuo et al., CVPR 2024): UFine6926, ultra-fine-grained captions (two per image, 80.8 words on average),
# and UFine3C, an evaluation-only set of cross-domain, cross-granularity and cross-style queries whose records name
# their `source`. Records `{"split", "id", "file_path": "images/N.jpg", "captions"}`, paths relative to the folder.
# The annotation file names are those third-party loaders use (UFine3C_Annotations.json); both sets come under a
# licence from their authors. Published totals: UFine6926 6,926 ids / 26,206 images / 52,412 captions (per split
# unpublished: not checked); UFine3C 2,250 / 7,446 / 37,939, all test.
UFINE_BENCHMARKS: dict[str, BenchmarkSpec] = {
    spec.name: spec
    for spec in (
        BenchmarkSpec(
            name="ufine6926",
            display_name="UFine6926",
            annotation_files=("UFine6926.json", "ufine6926.json", "UFine6926_Annotations.json"),
            path_field="file_path",
            id_base=1,
            split_names={"train": "train", "val": "validation", "test": "test"},
            image_dir="",
            record_fields=("split", "id", "file_path", "captions"),
            captions_per_record=2,
        ),
        BenchmarkSpec(
            name="ufine3c",
            display_name="UFine3C",
            annotation_files=("UFine3C_Annotations.json", "UFine3C.json", "ufine3c.json"),
            path_field="file_path",
            id_base=1,
            split_names={"test": "test"},
            published=_counts({"test": (2250, 7446, 37939)}),
            image_dir="",
            record_fields=("id", "source", "split", "file_path", "captions"),
            default_split="test",
            source_field="source",
        ),
    )
}

# SYNTH-PEDES (Zuo et al., PLIP): 312,321 identities, 4.79 M images, 12.14 M captions, generated. Records `{"id",
# "file_path": "PartN/<id>/<n>.jpg", "attributes", "captions": [2-3], "prompt_caption"}`, no split: all train.
# Recognised by its folder (`sources.py`); a pre-training corpus (`corpora.py`) that can also fine-tune.
SYNTH_PEDES_SPEC = BenchmarkSpec(
    name="synth-pedes",
    display_name="SYNTH-PEDES",
    annotation_files=("synthpedes_dataset.json", "synthpedes-dataset.json"),
    path_field="file_path",
    id_base=0,
    split_names={"train": "train"},
    image_dir="",
    record_fields=("id", "file_path", "attributes", "captions", "prompt_caption"),
    default_split="train",
)

IMAGEFOLDER = "imagefolder"
# Your own data, the Hugging Face way: an image folder with `metadata.jsonl` or `metadata.csv` whose rows give
# `file_name` (relative to the folder), `person_id` (an integer), `caption` (one string) or `captions` (a list; in a
# CSV, rows repeating a file name add captions) and optionally `split` (train / validation / test; default train).
IMAGEFOLDER_SPEC = BenchmarkSpec(
    name=IMAGEFOLDER,
    display_name="your own image folder",
    annotation_files=("metadata.jsonl", "metadata.csv"),
    path_field="file_name",
    id_base=0,
    split_names={"train": "train", "validation": "validation", "val": "validation", "test": "test"},
    image_dir="",
    record_fields=("file_name", "person_id", "captions", "split"),
    id_field="person_id",
    default_split="train",
    min_images_per_id={"train": 2},
)

# what `load_benchmark`, the CLI and training accept: the one list
BENCHMARK_NAMES = (*BENCHMARKS, *UFINE_BENCHMARKS, IMAGEFOLDER, SYNTHPEDES)


def display_name(name: str) -> str:
    """How a benchmark name is shown to people (`cuhk-pedes` -> `CUHK-PEDES`); other names as they are."""
    if name == SYNTHPEDES:
        return "SynthPEDES (procedural, ivt_hf)"
    return get_spec(name).display_name if name in (*BENCHMARKS, *UFINE_BENCHMARKS, IMAGEFOLDER) else name


def get_spec(name: str) -> BenchmarkSpec:
    """The spec of a raw layout: the three benchmarks, UFine6926 and UFine3C, and `imagefolder`."""
    if name == IMAGEFOLDER:
        return IMAGEFOLDER_SPEC
    for specs in (BENCHMARKS, UFINE_BENCHMARKS):
        if name in specs:
            return specs[name]
    known = sorted([*BENCHMARKS, *UFINE_BENCHMARKS, IMAGEFOLDER])
    raise IVTInputError(f"unknown benchmark {name!r}; expected one of {known}")

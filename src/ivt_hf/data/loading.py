"""`load_benchmark`: any benchmark by name (a raw copy, a prepared folder, or SynthPEDES generated on first use),
`load_data`: that, or any data a user has (an image folder, a `save_to_disk` folder, a Hub dataset id), and
`load_from_arguments`: the data a command's `DataArguments` name (`ivt train`, `ivt evaluate`, `ivt data prepare`)."""

from __future__ import annotations

import dataclasses
import os
from typing import TYPE_CHECKING, Any

from ..errors import IVTInputError
from .arguments import DataArguments
from .hf_datasets import ColumnMapping, load_hub_dataset, load_saved_dataset
from .normalise import BenchmarkReport, emit_report, normalise_benchmark
from .prepared import is_prepared, load_prepared
from .sources import FINE_TUNING_KINDS, recognise_source
from .specs import IMAGEFOLDER, SYNTH_PEDES_SPEC, SYNTHPEDES, BenchmarkSpec, OnInvalid, get_spec
from .synthpedes import read_synthpedes

if TYPE_CHECKING:
    import datasets


def load_benchmark_with_report(
    name: str,
    root: str | os.PathLike | None = None,
    *,
    on_invalid: OnInvalid = "error",
    verify_images: bool = True,
    min_images_per_id: dict[str, int] | None = None,
    **synth_kwargs: Any,
) -> tuple[datasets.DatasetDict, BenchmarkReport | None]:
    """`load_benchmark` that returns the `BenchmarkReport` instead of warning with it (None for a prepared folder,
    which was checked when it was prepared). `min_images_per_id` replaces the spec's (`{"train": 2}` for an image
    folder, nothing for the published benchmarks): `{}` accepts identities with one image."""
    if name == SYNTHPEDES:
        return read_synthpedes(root, on_invalid=on_invalid, verify_images=verify_images, **synth_kwargs)
    if synth_kwargs:
        raise TypeError(f"unexpected arguments for {name}: {sorted(synth_kwargs)} (only synthpedes takes them)")
    spec = get_spec(name)
    if root is None:
        raise IVTInputError(f"{name} needs `root`: the folder of your licensed copy (it cannot be downloaded)")
    if is_prepared(root):
        return load_prepared(root, expected_source=spec.name), None
    return _normalise(
        spec, root, on_invalid=on_invalid, verify_images=verify_images, min_images_per_id=min_images_per_id
    )


def _normalise(
    spec: BenchmarkSpec, root: str | os.PathLike, *, min_images_per_id: dict[str, int] | None, **checks: Any
) -> tuple[datasets.DatasetDict, BenchmarkReport]:
    """A raw copy of `spec`'s layout, `min_images_per_id` replacing the spec's when given."""
    if min_images_per_id is not None:
        spec = dataclasses.replace(spec, min_images_per_id=min_images_per_id)
    return normalise_benchmark(spec, root, **checks)


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


def load_data_with_report(
    source: str,
    root: str | os.PathLike | None = None,
    *,
    config: str | None = None,
    revision: str | None = None,
    columns: ColumnMapping = ColumnMapping(),
    on_invalid: OnInvalid = "error",
    verify_images: bool = True,
    min_images_per_id: dict[str, int] | None = None,
    **synth_kwargs: Any,
) -> tuple[datasets.DatasetDict, BenchmarkReport | None]:
    """Any data, by what a user would type, in the common schema, with its `BenchmarkReport` (None when it was
    checked before: a prepared folder).

    `source` is one of (told apart by `sources.recognise_source`, as for `open_pair_stream`):
    - a benchmark name (`cuhk-pedes`, `icfg-pedes`, `rstpreid`, `imagefolder` with `root`, `synthpedes`): as
      `load_benchmark`;
    - a folder: written by `ivt data prepare`, by `save_to_disk` (any columns: see `columns`), an image folder
      with `metadata.jsonl` / `metadata.csv`, or SYNTH-PEDES as published (its records all train);
    - a Hub dataset id, `ORG/NAME`: `datasets.load_dataset(source, config, revision=revision)`.
    A folder of WebDataset or parquet shards (pre-training pairs) is an error that says so.
    `columns` names the image, caption and person id columns of `datasets` data (`--image_column`, ...).
    Identities with fewer images than `min_images_per_id[split]` (default: 2 in the train split of data a user made,
    none in the published benchmarks) are invalid, as are missing or undecodable images, empty captions and person
    ids that are not integers: an error naming the file or dataset, split and row, or skipped and reported with
    `on_invalid="skip"`.
    """
    checks = {"on_invalid": on_invalid, "verify_images": verify_images, "min_images_per_id": min_images_per_id}
    found = recognise_source(source, accepts=FINE_TUNING_KINDS)
    if found.kind == "benchmark":
        given = [name for name, value in {"config": config, "revision": revision}.items() if value is not None]
        given += ["columns"] if columns != ColumnMapping() else []
        if given:
            raise IVTInputError(f"{', '.join(given)} apply to a save_to_disk folder or a Hub dataset, not to {source}")
        return load_benchmark_with_report(source, root, **checks, **synth_kwargs)
    if synth_kwargs:
        raise TypeError(f"unexpected arguments for {source}: {sorted(synth_kwargs)} (only synthpedes takes them)")
    if found.kind == "saved":
        return load_saved_dataset(found.location, columns=columns, **checks)
    if found.kind == "imagefolder":
        return load_benchmark_with_report(IMAGEFOLDER, found.location, **checks)
    if found.kind == "synth_pedes":  # a corpus with identities: every record a training image
        return _normalise(SYNTH_PEDES_SPEC, found.location, **checks)
    return load_hub_dataset(source, config=config, revision=revision, columns=columns, **checks)


def load_from_arguments(
    data_args: DataArguments, *, synth_image_size: tuple[int, int] | None = None, verify_images: bool = True
) -> tuple[datasets.DatasetDict, BenchmarkReport | None]:
    """The data `data_args` name (`--dataset_name`, `--data_dir`, ...), with its report (`load_data_with_report`):
    the one loader of `ivt train`, `ivt evaluate` and `ivt data prepare`. `synth_image_size`: SynthPEDES is generated
    (on first use) from the `--synth_*` settings at this size (training gives the model's input size); without it, a
    SynthPEDES folder is read as it is, and the cache gets the generator's default configuration."""
    synth = {}
    if data_args.name == SYNTHPEDES and synth_image_size is not None:
        splits = ("train", "validation", "test")
        synth = {
            "split_ids": {split: getattr(data_args, f"synth_{split}_ids") for split in splits},
            "image_size": tuple(synth_image_size),
            "seed": data_args.synth_seed,
        }
    minimum = data_args.min_images_per_id
    return load_data_with_report(
        data_args.name,
        data_args.data_dir,
        config=data_args.dataset_config_name,
        revision=data_args.revision,
        columns=ColumnMapping(data_args.image_column, data_args.caption_column, data_args.person_id_column),
        on_invalid=data_args.on_invalid,
        verify_images=verify_images,
        min_images_per_id=None if minimum is None else {"train": minimum},
        **synth,
    )


def load_data(source: str, root: str | os.PathLike | None = None, **kwargs: Any) -> datasets.DatasetDict:
    """`load_data_with_report` that warns with the report (`BenchmarkWarning`) when records were skipped."""
    dataset, report = load_data_with_report(source, root, **kwargs)
    if report is not None:
        emit_report(report)
    return dataset

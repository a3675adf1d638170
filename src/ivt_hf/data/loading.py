"""`load_benchmark`: any benchmark by name (a raw copy, a prepared folder, or SynthPEDES generated on first use)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from .normalise import BenchmarkReport, emit_report, normalise_benchmark
from .prepared import is_prepared, load_prepared
from .specs import SYNTHPEDES, OnInvalid, get_spec
from .synthpedes import read_synthpedes

if TYPE_CHECKING:
    import datasets


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
    if name == SYNTHPEDES:
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

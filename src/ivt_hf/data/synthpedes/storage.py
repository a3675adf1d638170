"""SynthPEDES storage: writing a plan to disk, the generation cache, and loading a folder as a DatasetDict."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...errors import OutputExistsError
from ...outputs import writing_output_dir
from ..normalise import BenchmarkReport, normalise_benchmark
from ..prepared import build_folder_once, is_prepared, load_prepared
from ..specs import SYNTHPEDES, BenchmarkFormatError, OnInvalid, get_spec
from .planning import (
    SynthConfig,
    SynthPlan,
    annotation_records,
    make_config,
    metadata_record,
    plan,
)
from .rendering import make_noise_bank, render_image

if TYPE_CHECKING:
    import datasets

META_FILE = "synthpedes_meta.json"
SOURCE = SYNTHPEDES

logger = logging.getLogger(__name__)


def write_plan(synth_plan: SynthPlan, output_dir: str | os.PathLike, *, progress: bool = True) -> None:
    """Render every planned image and write the annotation file and the metadata sidecar (written last, so its
    presence marks a complete folder)."""
    from tqdm.auto import tqdm

    config = synth_plan.config
    spec = get_spec(config.layout)
    output_dir = Path(output_dir)
    image_root = output_dir / spec.image_dir
    for folder in sorted({str(Path(image.raw_path).parent) for image in synth_plan.images}):
        (image_root / folder).mkdir(parents=True, exist_ok=True)
    noise_bank = make_noise_bank(config.seed, *config.image_size)
    for image in tqdm(
        synth_plan.images, desc="Rendering SynthPEDES", unit=" images", disable=None if progress else True
    ):
        rendered = render_image(image.identity, image.nuisance, config.image_size, noise_bank)
        rendered.save(image_root / image.raw_path, format="JPEG", quality=92)
    annotation = output_dir / spec.annotation_files[0]
    annotation.write_text(json.dumps(annotation_records(synth_plan)), encoding="utf-8")
    (output_dir / META_FILE).write_text(json.dumps(metadata_record(synth_plan), indent=1), encoding="utf-8")


def read_meta(folder: str | os.PathLike) -> dict[str, Any]:
    path = Path(folder) / META_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BenchmarkFormatError(f"{str(folder)!r} is not a SynthPEDES folder (no {META_FILE})") from None


def generate(
    output_dir: str | os.PathLike, *, overwrite: bool = False, progress: bool = True, **config_arguments: Any
) -> SynthPlan:
    """Generate SynthPEDES into `output_dir` in the raw layout of `layout` and return what was planned.

    `config_arguments` are those of `make_config`: `layout` (default `cuhk-pedes`), `seed`, the sizes
    (`split_ids={"train": 1000, "validation": 100, "test": 200}`, or `num_ids` shared out by `split_fractions`;
    defaults: 1,300 identities, 1/13 validation, 2/13 test), `image_size` (height, width; 384x128 is the IVT input,
    smaller sizes render faster) and `images_per_id`. A folder that already holds the same configuration is left as it
    is (unless `overwrite`); any other non-empty folder is an error, unless `overwrite` is set and ivt_hf wrote it.
    The folder is written all at once (`ivt_hf.outputs.writing_output_dir`): an interrupted run leaves nothing at
    `output_dir`.
    """
    config = make_config(**config_arguments)
    output_dir = Path(output_dir)
    synth_plan = plan(config)
    if not overwrite and (output_dir / META_FILE).is_file() and read_meta(output_dir)["config"] == config.to_json():
        return synth_plan
    with writing_output_dir(output_dir, overwrite=overwrite, command="ivt data synth") as staging:
        write_plan(synth_plan, staging, progress=progress)
    return synth_plan


def ensure_generated(cache_root: str | os.PathLike, **generate_kwargs: Any) -> Path:
    """The folder under `cache_root` holding SynthPEDES for these arguments, generating it on first use.

    Each configuration has its own sub-folder (named after it). Any number of processes may ask at once (each rank
    of a `torchrun` on an empty folder does): one generates, in a staging folder renamed into place, and the others
    wait and read it; an interrupted run never leaves a half-written folder that looks complete
    (`ivt_hf.data.prepared.build_folder_once`).
    """
    generate_kwargs.pop("progress", None)
    config = make_config(**generate_kwargs)

    def is_complete(folder: Path) -> bool:
        return (folder / META_FILE).is_file() and read_meta(folder)["config"] == config.to_json()

    cache_root = Path(cache_root)
    _check_cache_root(cache_root)
    target = cache_root / config.cache_name
    start = time.perf_counter()
    folder, built_here = build_folder_once(target, lambda staging: write_plan(plan(config), staging), is_complete)
    if built_here:  # never silent: a mistyped --data_root shows up here as a new folder
        logger.warning(
            "generated SynthPEDES (%s) in %s in %.0f s", config.cache_name, folder, time.perf_counter() - start
        )
    return folder


def _check_cache_root(cache_root: Path) -> None:
    """A SynthPEDES cache folder holds SynthPEDES configurations only (and their locks and staging folders): a
    folder with anything else (another benchmark's copy, a mistyped path into a project) is an error, not a place to
    generate into."""
    if not cache_root.is_dir():
        if cache_root.exists():
            raise OutputExistsError(f"SynthPEDES cache {str(cache_root)!r} is a file, not a folder")
        return

    def ours(entry: Path) -> bool:  # a configuration, a lock (hidden) or a staging folder
        return entry.name.startswith(".") or (entry / META_FILE).is_file() or ".tmp-" in entry.name

    others = sorted(entry.name for entry in cache_root.iterdir() if not ours(entry))
    if others:
        shown = ", ".join(others[:5]) + (f", ... ({len(others)} entries)" if len(others) > 5 else "")
        raise OutputExistsError(
            f"{str(cache_root)!r} is not a SynthPEDES folder (it holds {shown}); give an empty or new folder to "
            "generate into, a folder written by `ivt data synth`, or its prepared copy"
        )


def default_cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "ivt_hf" / "synthpedes"


def read_synthpedes(
    root: str | os.PathLike | None = None,
    *,
    on_invalid: OnInvalid = "error",
    verify_images: bool = True,
    **generate_kwargs: Any,
) -> tuple[datasets.DatasetDict, BenchmarkReport | None]:
    """SynthPEDES as a DatasetDict and its report (see `load_benchmark`). `root` may be a cache folder (generated on
    first use), a folder written by `ivt data synth`, or a prepared folder. The generator configuration is stored as
    JSON in each split's `info.description`, which is how `oracle.baseline_inputs` rebuilds the attributes of a loaded
    dataset."""
    root = default_cache_root() if root is None else Path(root)
    if is_prepared(root):
        if generate_kwargs:
            raise TypeError("generator arguments cannot apply to an already prepared folder")
        return load_prepared(root, expected_source=SOURCE), None
    if (root / META_FILE).is_file():
        folder = root
    else:
        folder = ensure_generated(root, **generate_kwargs)
    config = SynthConfig.from_json(read_meta(folder)["config"])
    return normalise_benchmark(
        config.layout,
        folder,
        on_invalid=on_invalid,
        verify_images=verify_images,
        source=SOURCE,
        description=json.dumps({"synthpedes": config.to_json()}),
    )

"""`build_index`: a gallery index of any size, encoded by any number of processes, resumable after an interruption.

The sorted image list is cut into chunks of `chunk_size` images. Chunk c is encoded by process ``c % world_size``
and written to ``OUTPUT/chunks/`` as soon as it is done (safetensors + a small JSON, each renamed into place, the
JSON last, so a chunk is either complete or absent). A run that dies leaves its finished chunks; the next run over
the same images with the same model, with any number of processes, encodes only the missing ones. When every chunk
is there, the first process joins them in order into the one index (`GalleryIndex.save`, into a staging folder that
then replaces the chunks all at once, with ivt_hf's output marker: `ivt_hf.outputs.writing_output_dir`); `--overwrite`
replaces only an index or an unfinished build that ivt_hf wrote. Chunks do not depend on the number of processes,
so the joined index equals the one-process build (every image is encoded alone of its batch-mates: eval mode, fixed
input size).

Under `torchrun` / `accelerate launch` the processes find each other through accelerate's `PartialState` (gloo on
CPU, NCCL on GPU); started plainly, it is one process.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..atomic import atomic_save_tensors, atomic_write_json, read_json_object
from ..data.arguments import check_on_invalid
from ..errors import IVTInputError, OutputExistsError
from ..evaluation.encoding import prepare_for_inference
from ..outputs import check_output_dir, is_package_output, output_lock, writing_output_dir
from .index import (
    INDEX_FORMAT_VERSION,
    INDEX_MANIFEST,
    GalleryIndex,
    GalleryIndexError,
    encode_image_files,
    find_images,
    index_manifest,
    model_fingerprint,
)

CHUNKS = "chunks"
BUILD_FILE = "build.json"


@dataclass
class BuildReport:
    """What `build_index` did: images indexed and skipped, chunks encoded here and found done, processes, time."""

    output_dir: Path
    images: int = 0
    skipped: list[dict[str, str]] = field(default_factory=list)
    chunks: int = 0
    chunks_resumed: int = 0
    processes: int = 1
    process_index: int = 0  # of the process that returns this report (0: the one that prints)
    seconds: float = 0.0

    def summary(self) -> str:
        resumed = f", {self.chunks_resumed} of {self.chunks} chunks from an earlier run" if self.chunks_resumed else ""
        return (
            f"indexed {self.images} images ({len(self.skipped)} skipped) into {self.output_dir} in "
            f"{self.seconds:.1f} s on {self.processes} process(es){resumed}"
        )


def build_index(
    model,
    processor,
    images: str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    batch_size: int = 64,
    chunk_size: int = 1024,
    on_invalid: str = "error",
    model_name_or_path: str | None = None,
    overwrite: bool = False,
    progress: bool = True,
    dtype: str = "float32",
    store=None,
) -> BuildReport:
    """Encode every image under `images` into an index at `output_dir`, in this process's share of the chunks.

    Call it in every process of a launch (each returns the same report); see the module docstring. `dtype` is the
    encoding precision (`prepare_for_inference`: float32, bfloat16, float16 on a GPU, int8 on a CPU); the index
    records it, and is searched with the original model. `store` (a `milvus_store.StoreSpec`) also puts the
    vectors in Milvus (`milvus_store.write_store`).
    """
    from accelerate import PartialState

    on_invalid = check_on_invalid(on_invalid)
    if chunk_size < 1 or batch_size < 1:
        raise IVTInputError(f"chunk_size and batch_size must be >= 1, got {chunk_size} and {batch_size}")
    state = PartialState(cpu=not torch.cuda.is_available())  # on CPU, accelerate joins a launch only when told
    start = time.perf_counter()
    root, output_dir = Path(images), Path(output_dir)
    paths = find_images(root)
    plan = _build_plan(root, paths, model_fingerprint(model), chunk_size=chunk_size, on_invalid=on_invalid, dtype=dtype)
    chunk_dir = output_dir / CHUNKS
    if state.is_main_process:
        _start_or_resume(output_dir, plan, overwrite)
    state.wait_for_everyone()

    model = prepare_for_inference(model.to(state.device), dtype)
    num_chunks = (len(paths) + chunk_size - 1) // chunk_size
    mine = range(state.process_index, num_chunks, state.num_processes)
    done_before = {chunk for chunk in range(num_chunks) if (chunk_dir / f"{chunk:06d}.json").is_file()}
    description = f"encoding image chunks (process {state.process_index})"
    with tqdm(
        total=len(mine), desc=description, unit="chunk", disable=not progress or not state.is_main_process
    ) as bar:
        for chunk in mine:
            if chunk not in done_before:
                chunk_paths = paths[chunk * chunk_size : (chunk + 1) * chunk_size]
                embeddings, readable, skipped = encode_image_files(
                    model, processor, chunk_paths, on_invalid=on_invalid, batch_size=batch_size, progress=False
                )
                _write_chunk(chunk_dir, chunk, root, embeddings, readable, skipped)
            bar.update(1)
    state.wait_for_everyone()

    report = BuildReport(
        output_dir,
        chunks=num_chunks,
        chunks_resumed=len(done_before),
        processes=state.num_processes,
        process_index=state.process_index,
    )
    if state.is_main_process:
        model_name = model_name_or_path or getattr(model.config, "_name_or_path", "") or None
        _save_joined_index(output_dir, num_chunks, plan, model_name, store=store, overwrite=overwrite)
    state.wait_for_everyone()
    index_manifest = json.loads((output_dir / INDEX_MANIFEST).read_text())
    report.images = index_manifest["num_images"]
    report.skipped = index_manifest["skipped"]
    report.seconds = time.perf_counter() - start
    return report


def _build_plan(
    root: Path, paths: list[Path], fingerprint: str, *, chunk_size: int, on_invalid: str, dtype: str
) -> dict:
    """What a build is of (written as `build.json`): a run resumes only the chunks of the very same plan, i.e. the
    same images (their relative paths, hashed), the same model, chunk size, `on_invalid` and `dtype`."""
    return {
        "format_version": INDEX_FORMAT_VERSION,
        "root": str(root.resolve()),
        "model_fingerprint": fingerprint,
        "images": hashlib.sha256("\n".join(str(path.relative_to(root)) for path in paths).encode()).hexdigest(),
        "num_images": len(paths),
        "chunk_size": chunk_size,
        "on_invalid": on_invalid,
        "dtype": dtype,
    }


def _write_chunk(
    chunk_dir: Path, chunk: int, root: Path, embeddings: torch.Tensor, readable: list[Path], skipped: list[dict]
) -> None:
    """Chunk `chunk`'s embeddings, then its JSON (paths relative to `root`, the skipped images), each renamed into
    place: the JSON, written last, says the chunk is complete."""
    stored = [str(path.relative_to(root)) for path in readable]
    atomic_save_tensors(chunk_dir / f"{chunk:06d}.safetensors", {"embeddings": embeddings})
    atomic_write_json(chunk_dir / f"{chunk:06d}.json", {"paths": stored, "skipped": skipped}, indent=None)


def _save_joined_index(
    output_dir: Path, num_chunks: int, plan: dict, model_name: str | None, *, store=None, overwrite: bool = False
) -> None:
    """Join the chunks into the index, which replaces the unfinished build (plan + chunks) all at once, with the
    output marker. An index of no image is an error naming the first unreadable one."""
    index = _join_chunks(output_dir / CHUNKS, num_chunks, plan, model_name)
    if len(index) == 0:
        first = f" (first: {index.skipped[0]['path']}: {index.skipped[0]['error']})" if index.skipped else ""
        raise GalleryIndexError(f"none of the {plan['num_images']} images could be read, nothing to index{first}")
    with writing_output_dir(
        output_dir, overwrite=True, command="ivt index build", ours=_is_unfinished_build
    ) as staging:
        if store is not None:
            from .milvus_store import write_store

            write_store(index, staging, store, index_dir=output_dir, overwrite=overwrite)
        index.save(staging)


def _is_unfinished_build(folder: Path) -> bool:
    """Whether `folder` holds an index build that has not finished (its plan and chunks, nothing else): this
    package's resumable state, which `--overwrite` may replace like a finished index."""
    return (folder / BUILD_FILE).is_file() and {entry.name for entry in folder.iterdir()} <= {BUILD_FILE, CHUNKS}


def _start_or_resume(output_dir: Path, plan: dict, overwrite: bool) -> None:
    """Make `output_dir/chunks` for `plan`, keeping the chunks of an unfinished build of the same plan. Under the
    folder's lock; `--overwrite` removes only an index or an unfinished build that ivt_hf wrote
    (`ivt_hf.outputs.check_output_dir`). The plan is written atomically before the chunks folder is made, so a
    build stopped at any point (a full disk included) leaves an empty folder, or a plan to resume."""
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    with output_lock(output_dir):
        build_file = output_dir / BUILD_FILE
        if _is_unfinished_build(output_dir) and not overwrite:
            earlier = _read_json(build_file, "the plan of an unfinished build", "pass --overwrite to start again")
            if earlier != plan:
                differing = sorted(key for key in plan if earlier.get(key) != plan[key])
                raise GalleryIndexError(
                    f"{output_dir} holds an unfinished build of another index (different {', '.join(differing)}); "
                    "pass --overwrite to start again"
                )
            (output_dir / CHUNKS).mkdir(exist_ok=True)
            return
        if not overwrite and is_package_output(output_dir) and (output_dir / INDEX_MANIFEST).is_file():
            raise OutputExistsError(f"{output_dir} already holds an index; pass --overwrite to replace it")
        check_output_dir(output_dir, overwrite=overwrite, ours=_is_unfinished_build)
        if output_dir.exists():
            shutil.rmtree(output_dir)
        output_dir.mkdir()
        atomic_write_json(build_file, plan)
        (output_dir / CHUNKS).mkdir()


def _read_json(path: Path, what: str, advice: str) -> dict:
    """The JSON object in `path`, one of the build's state files (`read_json_object`), an error naming it and `what`
    it is otherwise."""
    return read_json_object(path, GalleryIndexError, name=f"{path} ({what})", advice=f"; {advice}")


def _join_chunks(chunk_dir: Path, num_chunks: int, plan: dict, model_name: str | None) -> GalleryIndex:
    from safetensors.torch import load_file

    embeddings, paths, skipped = [], [], []
    for chunk in range(num_chunks):
        record = _read_json(chunk_dir / f"{chunk:06d}.json", f"chunk {chunk}", "pass --overwrite to start again")
        embeddings.append(load_file(str(chunk_dir / f"{chunk:06d}.safetensors"))["embeddings"])
        paths += record["paths"]
        skipped += record["skipped"]
    joined = torch.cat(embeddings)
    manifest = index_manifest(
        root=plan["root"],
        model_name=model_name,
        fingerprint=plan["model_fingerprint"],
        embeddings=joined,
        skipped=skipped,
        dtype=plan["dtype"],
    )
    return GalleryIndex(joined, paths, manifest)


__all__ = ["BuildReport", "build_index"]

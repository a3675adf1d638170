"""`build_footage_index`: a gallery index of the people in videos and still frames (`ivt index build --video /
--frames`).

The crops are image files inside the index folder (`gallery/<source>/crops/*.jpg`, the manifest's root is the
relative `gallery`), beside the whole frames they come from (`frames/`) and a copy of each video that browsers play,
so the index is one self-contained folder: the usual encoding, search, FAISS cache, `--show` pictures and page all
work on it unchanged, it can be copied or shared without the videos, and a search never decodes video. Besides its
`paths`, the manifest keeps one footage record per crop (`footage`: source file, frame index, time in seconds, box,
track id, score, frame file, video file), what each source gave (`footage_sources`) and the settings and detector
used (`footage_settings`), so that entries can later be added or removed per source.

The whole folder is written through `writing_output_dir` (staged, renamed into place with ivt_hf's marker). A
source that could not be read whole is listed under `skipped` with its error; what was read of it is indexed, and
with `on_invalid="error"` (the default) a `FootageReadError` naming the file(s) is raised after the index is in
place. One process, no chunks: footage is decoded once, in order.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import IVTInputError
from ..evaluation.encoding import prepare_for_inference
from ..footage import (
    FootageReadError,
    FootageSettings,
    PersonDetector,
    SourceReport,
    extract_people,
    footage_sources,
)
from ..outputs import writing_output_dir
from .index import GalleryIndex, GalleryIndexError, encode_image_files, index_manifest, model_fingerprint

GALLERY = "gallery"


@dataclass
class FootageBuildReport:
    """What `build_footage_index` did: per source, frames read and sampled, detections, tracks and crops kept."""

    output_dir: Path
    detector: str
    sources: list[SourceReport] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def crops(self) -> int:
        return sum(source.crops for source in self.sources)

    @property
    def skipped(self) -> list[dict[str, str]]:
        return [{"path": source.source, "error": source.error} for source in self.sources if source.error]

    def summary(self) -> str:
        lines = [
            f"indexed {self.crops} crops of people from {len(self.sources)} source(s) into {self.output_dir} in "
            f"{self.seconds:.1f} s (detector: {self.detector})"
        ]
        for source in self.sources:
            lines.append(
                f"  {source.source}: {source.frames_read} frames read, {source.frames_sampled} looked at, "
                f"{source.detections} people found, {source.tracks} tracks, {source.crops} crops"
            )
        return "\n".join(lines)


def build_footage_index(
    model,
    processor,
    output_dir: str | os.PathLike,
    *,
    detector: PersonDetector,
    videos: Sequence[str | os.PathLike] = (),
    frame_folders: Sequence[str | os.PathLike] = (),
    settings: FootageSettings | None = None,
    batch_size: int = 64,
    on_invalid: str = "error",
    model_name_or_path: str | None = None,
    overwrite: bool = False,
    progress: bool = True,
    dtype: str = "float32",
    store=None,
) -> FootageBuildReport:
    """Find the people in `videos` and `frame_folders`, crop a few per track and index the crops at `output_dir`
    (see the module docstring). Raises `FootageReadError` when a source could not be read whole (after writing the
    index of what was read, unless nothing was), `GalleryIndexError` when no person was found at all. `store` (a
    `milvus_store.StoreSpec`) also puts the vectors in Milvus."""
    if on_invalid not in ("error", "skip"):
        raise IVTInputError(f"on_invalid must be 'error' or 'skip', got {on_invalid!r}")
    settings = settings or FootageSettings()
    start = time.perf_counter()
    sources = footage_sources(videos, frame_folders)  # every source checked before anything is read or written
    if not sources:
        raise IVTInputError("give at least one video or frame folder")
    report = FootageBuildReport(Path(output_dir), detector.name)
    with writing_output_dir(output_dir, overwrite=overwrite, command="ivt index build") as staging:
        entries, report.sources = extract_people(sources, staging / GALLERY, detector, settings, progress=progress)
        if not entries:
            errors = [source for source in report.sources if source.error]
            if errors:  # nothing read: the first source's own error says why
                raise FootageReadError(errors[0].error, path=errors[0].source)
            raise GalleryIndexError(
                f"no person found in {len(sources)} source(s) (min_score {settings.min_score}, min_height "
                f"{settings.min_height} px): nothing to index"
            )
        encoder = prepare_for_inference(model, dtype)
        crops = [staging / GALLERY / entry.path for entry in entries]
        embeddings, _, _ = encode_image_files(encoder, processor, crops, batch_size=batch_size, progress=progress)
        manifest = index_manifest(
            root=GALLERY,
            model_name=model_name_or_path or getattr(model.config, "_name_or_path", "") or None,
            fingerprint=model_fingerprint(model),
            embeddings=embeddings,
            skipped=report.skipped,
            dtype=dtype,
        )
        manifest["footage_settings"] = {**asdict(settings), "detector": detector.name}
        manifest["footage_sources"] = [asdict(source) for source in report.sources]
        index = GalleryIndex(
            embeddings, [entry.path for entry in entries], manifest, footage=[entry.record() for entry in entries]
        )
        if store is not None:
            from .milvus_store import write_store

            write_store(index, staging, store, index_dir=Path(output_dir), overwrite=overwrite, progress=progress)
        index.save(staging)
    report.seconds = time.perf_counter() - start
    if report.skipped and on_invalid == "error":
        error = FootageReadError(
            "; ".join(item["error"] for item in report.skipped)
            + f" (the index at {output_dir} keeps what was read; --on_invalid skip to accept that)",
            path=report.skipped[0]["path"],
        )
        error.report = report  # what the index in place holds
        raise error
    return report


__all__ = ["GALLERY", "FootageBuildReport", "build_footage_index"]

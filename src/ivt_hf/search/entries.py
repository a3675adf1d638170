"""What the filters of a search see in an entry of an index (`ivt search --where / --after / --before`): the file it
comes from (`entry_source`), the camera names it answers to (`entry_camera`), its time; `select_entries` applies
them in memory, `milvus_store.filter_expression` as a Milvus expression over the same fields. `growing` (add,
remove) and `milvus_store` share them here."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from .index import IMAGE_EXTENSIONS, GalleryIndex, resolve_under_root


def source_targets(sources: Sequence[str | os.PathLike]) -> list[Path]:
    """Each source as an absolute path, as given and with its links followed: footage records keep a source as it
    was given (absolute), image entries are found with their links followed."""
    return sorted({path for source in sources for path in (Path(source).absolute(), Path(source).resolve())})


def source_matches(source: str, targets: Sequence[Path]) -> bool:
    """Whether the file `source` (absolute) is one of `targets` or lies under one of them (`source_targets`)."""
    path = Path(source)
    return any(path == target or target in path.parents for target in targets)


def entry_source(index: GalleryIndex, number: int, cache: dict) -> str:
    """The file an entry comes from: a footage record's source, else the image file under the gallery root."""
    record = index.footage[number]
    if record:
        return record["source"]
    return resolve_under_root(index.manifest["root"], index.paths[number], cache=cache) or ""


def entry_camera(index: GalleryIndex, number: int) -> set[str]:
    """The names a `camera=` filter matches for an entry: the first folder under the gallery root ('.' for an image
    at the root); for footage also the source's own name (the video file's, the frame folder's)."""
    return {name for name in entry_camera_names(index, number) if name is not None}


def entry_camera_names(index: GalleryIndex, number: int) -> tuple[str, str | None]:
    """`entry_camera`'s two names apart (a Milvus store keeps them as two fields): the first folder under the
    gallery root, and a footage source's own name (None for an image)."""
    parts = Path(index.paths[number]).parts
    record = index.footage[number]
    if not record:
        return parts[0] if len(parts) > 1 else ".", None
    source = Path(record["source"])  # a video file, or a still frame of a folder of frames
    return parts[0] if len(
        parts
    ) > 1 else ".", source.parent.name if source.suffix.lower() in IMAGE_EXTENSIONS else source.name


def select_entries(
    index: GalleryIndex,
    *,
    sources: Sequence[str | os.PathLike] = (),
    cameras: Sequence[str] = (),
    after: float | None = None,
    before: float | None = None,
) -> list[int]:
    """The entries (row numbers, in order) that pass every filter given: from one of `sources` (files or folders),
    of one of `cameras` (`entry_camera`), at a time (seconds into the footage) from `after` to `before` inclusive."""
    targets = source_targets(sources)
    wanted, cache, rows = set(cameras), {}, []
    for number in range(len(index)):
        if targets and not source_matches(entry_source(index, number, cache), targets):
            continue
        if wanted and not (entry_camera(index, number) & wanted):
            continue
        if after is not None or before is not None:
            time_s = (index.footage[number] or {}).get("time_s")
            if time_s is None or (after is not None and time_s < after) or (before is not None and time_s > before):
                continue
        rows.append(number)
    return rows


__all__ = [
    "entry_camera",
    "entry_camera_names",
    "entry_source",
    "select_entries",
    "source_matches",
    "source_targets",
]

"""Writing image-text pairs as WebDataset shards, the layout `open_pair_stream` reads (`pairs.py`): for converting a
collection of pairs into shards, and for tests.

Reading and writing live apart: the stream is what training uses, the writer what a data conversion (or a test)
uses, and neither needs the other.
"""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..errors import IVTInputError, OutputExistsError


def write_webdataset_shards(
    pairs: Iterable[tuple[str, bytes, str]],
    output_dir: str | os.PathLike,
    pairs_per_shard: int,
    prefix: str = "pairs",
    *,
    overwrite: bool = False,
) -> list[Path]:
    """Write `(key, jpeg bytes, caption)` pairs as WebDataset shards `{prefix}-00000.tar`, `{prefix}-00001.tar`, ...

    Each pair becomes the members `KEY.jpg` (the bytes as given, not re-encoded) and `KEY.txt` (the caption, UTF-8),
    `pairs_per_shard` pairs a shard (the last one may hold fewer). Keys must be unique and may not contain `.` (a
    WebDataset key ends at the first dot of a member's name), nor start with `/` or hold `..`. Each shard is written
    under a temporary name and renamed when complete, so an interrupted run leaves no truncated `.tar` behind.

    Returns the paths of the shards written, in order (none for no pairs).

    Raises:
        FileExistsError: `output_dir` already holds `.tar` files (at any depth) and `overwrite` is False; with
            `overwrite=True` they are deleted first, so that the folder, read by `open_pair_stream`, holds
            exactly the new shards.
        ValueError: a bad key, empty image bytes, a caption that is not a string, or `pairs_per_shard` < 1.
    """
    if not isinstance(pairs_per_shard, int) or pairs_per_shard < 1:
        raise IVTInputError(f"pairs_per_shard should be a positive integer, got {pairs_per_shard!r}")
    if not prefix or "/" in prefix or "." in prefix:
        raise IVTInputError(f"prefix should be a file name without '/' or '.', got {prefix!r}")
    output = Path(output_dir)
    existing = sorted(output.rglob("*.tar")) if output.is_dir() else []
    if existing and not overwrite:
        shown = ", ".join(str(path.relative_to(output)) for path in existing[:3])
        shown += ", ..." if len(existing) > 3 else ""
        raise OutputExistsError(
            f"{output}: already holds {len(existing)} .tar file(s) ({shown}); write to an empty folder, or pass "
            "overwrite=True to delete them first"
        )
    output.mkdir(parents=True, exist_ok=True)
    for path in existing:
        path.unlink()

    written: list[Path] = []
    seen: set[str] = set()
    tar: tarfile.TarFile | None = None
    partial: Path | None = None
    in_shard = 0
    try:
        for number, pair in enumerate(pairs):
            key, image, caption = _checked_pair_to_write(pair, number, seen)
            if tar is None:
                final = output / f"{prefix}-{len(written):05d}.tar"
                partial = final.with_name(f".{final.name}.partial")
                tar = tarfile.open(partial, "w", format=tarfile.PAX_FORMAT)
                written.append(final)
            _add_member(tar, f"{key}.jpg", image)
            _add_member(tar, f"{key}.txt", caption.encode("utf-8"))
            in_shard += 1
            if in_shard == pairs_per_shard:
                tar.close()
                os.replace(partial, written[-1])
                tar, in_shard = None, 0
        if tar is not None:
            tar.close()
            os.replace(partial, written[-1])
            tar = None
    finally:
        if tar is not None:  # an error mid-shard: no truncated shard is left under a .tar name
            tar.close()
            partial.unlink(missing_ok=True)
            written.pop()
    return written


def _checked_pair_to_write(pair: Any, number: int, seen: set[str]) -> tuple[str, bytes, str]:
    try:
        key, image, caption = pair
    except (TypeError, ValueError):
        raise IVTInputError(f"pair {number} should be (key, image bytes, caption), found {pair!r:.80}") from None
    if not isinstance(key, str) or not key or "." in key or key.startswith("/") or ".." in key.split("/"):
        raise IVTInputError(
            f"pair {number}: key {key!r} should be a non-empty string without '.', a leading '/' or '..'"
        )
    if key in seen:
        raise IVTInputError(f"pair {number}: key {key!r} is used twice (keys name samples and must be unique)")
    seen.add(key)
    if not isinstance(image, (bytes, bytearray, memoryview)) or not len(image):
        raise IVTInputError(f"pair {number} (key {key!r}): the image should be non-empty encoded bytes")
    if not isinstance(caption, str):
        raise IVTInputError(
            f"pair {number} (key {key!r}): the caption should be a string, found {type(caption).__name__}"
        )
    return key, bytes(image), caption


def _add_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o644, 0  # mtime 0: the same pairs give the same bytes
    tar.addfile(info, io.BytesIO(data))


__all__ = ["write_webdataset_shards"]

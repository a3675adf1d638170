"""Paths named by data stay inside the data's folder: one check, `resolve_under`, for every reader.

A data set a user downloads is untrusted, and so is every path its files name: a `metadata.jsonl` row, a benchmark
annotation's `file_path`, a string image column of a `save_to_disk` folder, a tar member's name. A row naming
`../../x.jpg` or `/etc/passwd`, or a symbolic link inside the folder that points out of it, would otherwise pull any
local file into what is read, and `ivt data prepare` embeds what it reads into a folder meant for sharing. So every
reader joins such a path to its folder with `resolve_under`, which refuses one that leads outside (symbolic links
followed), naming the file and row it came from; with `on_invalid="skip"` the reader skips and lists the row like any
other invalid one.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from ..errors import IVTInputError

__all__ = ["PathOutsideRootError", "escapes_as_member_name", "resolve_under"]


class PathOutsideRootError(IVTInputError):
    """A path named by data leads outside the folder it must stay in; the message names both and where it came
    from."""


def resolve_under(root: str | os.PathLike, relative: str | os.PathLike, *, what: str) -> Path:
    """`root / relative`, refused unless it stays under `root` once both are resolved (`..` and symbolic links
    followed, so that a link inside `root` pointing out of it is refused too).

    An absolute `relative` is accepted only where it names something under `root` (`datasets`' image folder gives
    such paths); `~` is a name like any other, never the home folder. The path need not exist: the caller says when
    it is missing. Returns `root / relative` as the data names it (for messages), checked to lie under `root`.

    Args:
        root: the folder the data lives in.
        relative: the path as the data gives it.
        what: where the path comes from, for the message (e.g. `"metadata.jsonl record 3"`).

    Raises:
        PathOutsideRootError: `relative` leads outside `root`.
    """
    root = Path(root)
    joined = root / relative
    base = root.resolve()
    if not _is_under(joined.resolve(), base):
        # `..` alone kept it inside: a symbolic link took it out
        through_link = _is_under(Path(os.path.normpath(joined.absolute())), Path(os.path.normpath(root.absolute())))
        raise PathOutsideRootError(
            f"{what}: {str(relative)!r} leads {'through a symbolic link ' if through_link else ''}outside "
            f"{str(root)!r}; paths in data must stay inside its folder"
        )
    return joined


def _is_under(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def escapes_as_member_name(name: str) -> bool:
    """Whether a name inside an archive (a tar member, a WebDataset key) would lead outside the archive's folder were
    it a path: absolute (`/x`, `\\x`) or holding a `..` component (`/` or `\\` separated)."""
    parts = PurePosixPath(name.replace("\\", "/")).parts
    return name.startswith(("/", "\\")) or ".." in parts

"""A real small file system for fault tests: a tmpfs of a few hundred kB, whose writes the kernel refuses with
ENOSPC once it is full, as a full disk does. The writers under test (safetensors, torch.save, FAISS, JSON, the index
chunks) meet the real refusal in their own code, not an `OSError` a test raised for them.

    with mounted_tmpfs(tmp_path / "disk", "300k") as disk:
        fill(disk, leave=0)     # the disk is now full
        ...                     # run the command with its output on `disk`
        free(disk)              # space again, for a rerun

conftest's `small_tmpfs` fixture wraps `mounted_tmpfs` (mounted per test, unmounted after it; the test is skipped,
with the reason, where `mount` is not permitted).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

FILLER = ".filler"
PAGE = 4096  # tmpfs counts its size in pages


class MountNotPermitted(Exception):
    """`mount -t tmpfs` failed here (not root, or no CAP_SYS_ADMIN in this container)."""


@contextmanager
def mounted_tmpfs(folder: Path, size: str) -> Iterator[Path]:
    """Mount a tmpfs of `size` (`mount -o size=...`: "300k", "2m") at `folder` (made if missing) and unmount it
    afterwards (lazily, if a test left a file open there)."""
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        raise MountNotPermitted(f"mount -t tmpfs failed: {mounted.stderr.strip() or mounted.returncode}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "--lazy", str(folder)], capture_output=True, check=False)


def fill(disk: Path, leave: int = 0) -> int:
    """Fill `disk` with one filler file until at most `leave` bytes are left free (0: full, every write refused);
    returns the free bytes left."""
    with open(disk / FILLER, "ab") as filler:
        while free_bytes(disk) > leave:
            try:
                filler.write(b"\0" * min(PAGE, free_bytes(disk) - leave))
                filler.flush()
            except OSError:
                break
    return free_bytes(disk)


def free(disk: Path) -> None:
    """Remove the filler: the space `fill` took is free again."""
    (disk / FILLER).unlink(missing_ok=True)


def free_bytes(disk: Path) -> int:
    stats = os.statvfs(disk)
    return stats.f_bavail * stats.f_frsize


__all__ = ["FILLER", "MountNotPermitted", "fill", "free", "free_bytes", "mounted_tmpfs"]

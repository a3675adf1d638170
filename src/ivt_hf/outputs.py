"""Output folders that are either complete or absent, and that `--overwrite` replaces only when ivt_hf wrote them.

    with writing_output_dir(output_dir, overwrite=args.overwrite, command="ivt data prepare") as staging:
        dataset.save_to_disk(str(staging))

Under a file lock beside the folder (`.NAME.lock`), `writing_output_dir` checks that `output_dir` may be written
(`check_output_dir`: absent, empty, or with `overwrite` a folder that carries the marker), hands out a hidden staging
folder beside it (`.NAME.staging-PID`), and when the block ends without an exception writes the marker
(`.ivt_hf-output.json`: the command, the package version, the time) into the staging folder and renames it into
place; a replaced folder is removed only then. Any exception, Ctrl-C and a full disk included, removes the staging
folder and leaves `output_dir` as it was. A writer killed outright (SIGKILL, power cut) leaves only hidden folders
beside it, which the next writer clears up under the lock (a replaced folder that had been moved aside but not yet
replaced comes back).

The marker is what makes a folder replaceable: `--overwrite` never deletes a folder that ivt_hf did not write.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from .errors import OutputExistsError

MARKER = ".ivt_hf-output.json"


def is_package_output(path: str | os.PathLike) -> bool:
    """Whether `path` is a folder that ivt_hf wrote completely (it carries the marker)."""
    return (Path(path) / MARKER).is_file()


def output_lock(path: str | os.PathLike):
    """The file lock of an output folder: `.NAME.lock` beside it (a `filelock.FileLock`, waits until free)."""
    from filelock import FileLock

    path = Path(path)
    return FileLock(str(path.with_name(f".{path.name}.lock")))


def check_output_dir(path: str | os.PathLike, *, overwrite: bool, ours: Callable[[Path], bool] | None = None) -> None:
    """Raise `OutputExistsError` unless `path` may be written: it does not exist or is an empty folder, or
    `overwrite` is set and ivt_hf wrote it (`is_package_output`, or `ours(path)` for a command's own unfinished
    state, such as an index build to resume). Call it early to fail before long work; `writing_output_dir` checks
    again under the lock."""
    path = Path(path)
    if not path.exists():
        return
    if not path.is_dir():
        raise OutputExistsError(f"{path} is a file, not a folder; choose another output folder")
    if not any(path.iterdir()):
        return
    written_by_ivt_hf = is_package_output(path) or (ours is not None and ours(path))
    if not written_by_ivt_hf:
        raise OutputExistsError(
            f"{path} is not empty and was not written by ivt_hf (no {MARKER}), so it is never replaced, even with "
            "--overwrite: remove it yourself or choose another output folder"
        )
    if not overwrite:
        raise OutputExistsError(f"{path} is not empty; pass --overwrite to replace it")


@contextmanager
def writing_output_dir(
    path: str | os.PathLike, *, overwrite: bool, command: str, ours: Callable[[Path], bool] | None = None
) -> Iterator[Path]:
    """Write an output folder all at once: yields a staging folder to write into, which becomes `path` (with the
    marker) when the block ends without an exception, and is removed otherwise (see the module docstring).

    `command` is recorded in the marker (e.g. "ivt data prepare"). `ours` is as in `check_output_dir`.

    Raises:
        OutputExistsError: `path` may not be written (`check_output_dir`), checked under the lock.
        OSError: writing failed (a full disk, a denied permission); an error without a file name is raised again
            naming `path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with output_lock(path):
        _clean_up_after_killed_writers(path)
        check_output_dir(path, overwrite=overwrite, ours=ours)
        staging = path.with_name(f".{path.name}.staging-{os.getpid()}")
        staging.mkdir()
        try:
            yield staging
            (staging / MARKER).write_text(json.dumps(_marker_record(command), indent=1) + "\n")
            _move_into_place(staging, path)
        except BaseException as error:  # Ctrl-C and a full disk too: nothing half-written stays
            shutil.rmtree(staging, ignore_errors=True)
            if isinstance(error, OSError) and error.errno is not None and error.filename is None:
                raise OSError(error.errno, error.strerror or os.strerror(error.errno), str(path)) from error
            raise


def mark_output_dir(path: str | os.PathLike, command: str) -> None:
    """Write the marker into a folder a command keeps writing into over time (a training run's folder, with its
    checkpoints and logs), when it creates it: `--overwrite` may then replace it, and only it."""
    (Path(path) / MARKER).write_text(json.dumps(_marker_record(command), indent=1) + "\n")


def _marker_record(command: str) -> dict[str, str]:
    try:
        package_version = version("ivt_hf")
    except PackageNotFoundError:  # run from a source tree that is not installed
        package_version = "unknown"
    written = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return {"written_by": "ivt_hf", "command": command, "ivt_hf_version": package_version, "written_at": written}


def _move_into_place(staging: Path, path: Path) -> None:
    """Rename `staging` to `path`; a folder already there is moved aside first and removed only once the new one is
    in place (it comes back if the rename fails)."""
    if path.is_dir() and not any(path.iterdir()):
        path.rmdir()
    if not path.exists():
        os.replace(staging, path)
        return
    replaced = path.with_name(f".{path.name}.replaced-{os.getpid()}")
    os.replace(path, replaced)
    try:
        os.replace(staging, path)
    except BaseException:
        os.replace(replaced, path)
        raise
    shutil.rmtree(replaced)


def _clean_up_after_killed_writers(path: Path) -> None:
    """Under the lock: a staging folder left by a killed writer is removed; a folder it had moved aside but not yet
    replaced comes back (or is removed when the new one made it into place)."""
    name = glob.escape(path.name)
    for leftover in sorted(path.parent.glob(f".{name}.replaced-*")):
        if path.exists():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            os.replace(leftover, path)
    for leftover in path.parent.glob(f".{name}.staging-*"):
        shutil.rmtree(leftover, ignore_errors=True)


__all__ = ["MARKER", "check_output_dir", "is_package_output", "mark_output_dir", "output_lock", "writing_output_dir"]

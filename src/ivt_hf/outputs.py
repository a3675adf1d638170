"""Output folders and files: written only where ivt_hf may write, and replaced only where ivt_hf wrote everything.

Every command that writes goes through one of three guards here, which share one rule:

    with writing_output_dir(output_dir, overwrite=args.overwrite, command="ivt data prepare") as staging:
        dataset.save_to_disk(str(staging))          # a folder written all at once (data, index, convert, app)
    with writing_run_dir(output_dir, command="ivt pretrain", overwrite=..., resume=...) as run:
        ...; run.claim("checkpoint-8/**"); save(); run.record()   # a folder a run keeps writing (train, demo)
    with writing_output_file(path, overwrite=args.overwrite, command="ivt evaluate") as partial:
        record.save(partial)                        # one file (`ivt evaluate --output`, `--show`)

**The marker.** A folder ivt_hf writes carries `.ivt_hf-output.json`, which records what ivt_hf wrote there:
`files`, every file by its path relative to the folder, and `claims`, glob patterns (`*` within a name, `**` across
folders) for what a live run is about to write. A file is ivt_hf's when the marker of its folder, or of a folder
between that one and the file, records it or claims it; the markers' own bookkeeping files and the empty lock files
of writers (`.NAME.lock`) are ivt_hf's too. Everything else is foreign: the user's.

**The rule.** A command writes into a folder that is absent or empty, or into one that is wholly ivt_hf's: it carries
a valid marker and holds no foreign file. A non-empty folder that is not wholly ivt_hf's is refused, naming it (and its
foreign files, up to a few), whatever the flags: `--overwrite` / `--overwrite_output_dir` and resuming never delete
or write into it. So a copied output folder into which the user put a file of their own is refused, not replaced; so
is a marker of an older ivt_hf that lists no files. A wholly ivt_hf folder is replaced only with `--overwrite`
(runs: `--overwrite_output_dir`), and a run continues in it with `--resume_from_checkpoint`. A single file is
replaced only with `--overwrite` and only when a marker records it (`writing_output_file`).

**Locks.** `.NAME.lock` beside the folder. `writing_output_dir` waits for it, then checks, writes a hidden staging
folder beside the output (`.NAME.staging-PID`) and renames it into place with its marker listing every file; a
replaced folder is removed only then. Any exception, Ctrl-C and a full disk included, removes the staging folder and
leaves the output as it was; a writer killed outright (SIGKILL) leaves hidden folders that the next writer clears up
under the lock (a folder moved aside but not replaced comes back). A run (`writing_run_dir`: `ivt train`,
`ivt pretrain`, `ivt demo`) holds the lock for its whole life and does not wait for it: a second run, even with
`--overwrite_output_dir`, is refused while the first is alive (the lock is the kernel's, released when the process
dies, so a killed run leaves none). A run's marker is rewritten as it goes: before it writes something it claims it
(`RunFolder.claim`: a checkpoint, the final model), after each save it records every file present
(`RunFolder.record`), and when it ends it records everything and drops the claims. So a run killed mid-save leaves a
folder that is still wholly ivt_hf's and can be resumed. What appears in a folder while a run holds it is taken as
the run's: nothing else writes there under the lock. A file writer locks the marker of the file's folder
(`.ivt_hf-output.json.lock`) and writes `.STEM.partial-PID.SUFFIX` before renaming it into place.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from .errors import OutputExistsError

MARKER = ".ivt_hf-output.json"
MARKER_LOCK = MARKER + ".lock"  # serialises updates of a marker (a file writer adding its file, a run's records)
_MARKER_TEMP = MARKER + ".tmp"  # a marker is rewritten through this name and os.replace
_BOOKKEEPING = frozenset({MARKER, MARKER_LOCK, _MARKER_TEMP})
_NAMED = 5  # foreign files named in an error, at most


# ------------------------------------------------------------------------------------------------- what is ivt_hf's


def read_marker(folder: str | os.PathLike) -> dict[str, Any] | None:
    """The marker of `folder` when it is a valid one (written by ivt_hf, with its list of files), else None."""
    try:
        record = json.loads((Path(folder) / MARKER).read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("written_by") != "ivt_hf":
        return None
    files, claims = record.get("files"), record.get("claims", [])
    if not _strings(files) or not _strings(claims):
        return None
    return record


def foreign_files(path: str | os.PathLike) -> list[str]:
    """The files below the folder `path` that ivt_hf did not write (relative paths, sorted): none for a folder that is
    wholly ivt_hf's; in a folder without a valid marker of its own, every file that no marker of a subfolder lists."""
    path = Path(path)
    own = read_marker(path)
    records = [("", _Record(own))] if own else []
    return sorted(relative for relative, ours in _files(path, records) if not ours)


def is_package_output(path: str | os.PathLike) -> bool:
    """Whether `path` is a folder that is wholly ivt_hf's: a valid marker and no foreign file."""
    path = Path(path)
    return path.is_dir() and read_marker(path) is not None and not foreign_files(path)


class _Record:
    """The files and claims of one marker, to match relative paths against."""

    def __init__(self, marker: dict[str, Any]):
        self.files = set(marker["files"])
        self.claims = [_glob_regex(pattern) for pattern in marker.get("claims", [])]

    def covers(self, relative: str) -> bool:
        return relative in self.files or any(claim.fullmatch(relative) for claim in self.claims)


def _glob_regex(pattern: str) -> re.Pattern:
    """`*` and `?` within one name, `**` across folders."""
    parts = re.split(r"(\*\*|\*|\?)", pattern)
    wildcards = {"**": ".*", "*": "[^/]*", "?": "[^/]"}
    return re.compile("".join(wildcards.get(part, re.escape(part)) for part in parts))


def _files(folder: Path, records: list[tuple[str, _Record]]) -> Iterator[tuple[str, bool]]:
    """Every file below `folder` (anything that is not a folder: links too) as (relative path, whether ivt_hf wrote
    it), judged by `records` (markers as (their folder relative to `folder`, record)) and by the markers of the
    subfolders met on the way."""
    for directory, subfolders, names in os.walk(folder, onerror=_raise):
        relative_dir = Path(directory).relative_to(folder).as_posix()
        prefix = "" if relative_dir == "." else relative_dir + "/"
        for subfolder in list(subfolders):
            if os.path.islink(os.path.join(directory, subfolder)):  # a link is a file here: never followed
                subfolders.remove(subfolder)
                names.append(subfolder)
        if prefix:
            nested = read_marker(directory)
            if nested:
                records = [*records, (prefix, _Record(nested))]
        mine = [(root, record) for root, record in records if prefix.startswith(root)]
        for name in names:
            relative = prefix + name
            ours = name in _BOOKKEEPING or _is_writer_lock(Path(directory) / name)
            ours = ours or any(record.covers(relative[len(root) :]) for root, record in mine)
            yield relative, ours


def _raise(error: OSError) -> None:
    raise error  # a folder that cannot be read cannot be judged: nothing in it is taken for ivt_hf's


def _is_writer_lock(path: Path) -> bool:
    """An empty `.NAME.lock`: the lock file a writer of NAME leaves beside it (it holds nothing to lose)."""
    name = path.name
    return name.startswith(".") and name.endswith(".lock") and path.is_file() and path.stat().st_size == 0


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


# ------------------------------------------------------------------------------------------------------------ checks


def output_lock(path: str | os.PathLike, *, timeout: float = -1):
    """The file lock of an output folder: `.NAME.lock` beside it (a `filelock.FileLock`; by default waits until
    free)."""
    from filelock import FileLock

    path = Path(path)
    return FileLock(str(path.with_name(f".{path.name}.lock")), timeout=timeout)


def check_output_dir(
    path: str | os.PathLike,
    *,
    overwrite: bool,
    ours: Callable[[Path], bool] | None = None,
    overwrite_flag: str = "--overwrite",
) -> None:
    """Raise `OutputExistsError` unless `path` may be written: it does not exist or is empty, or `overwrite` is set
    and the folder is wholly ivt_hf's (or `ours(path)`, for a command's own unfinished state, such as an index build
    to resume). Call it early to fail before long work; the writers check again under the lock."""
    path = Path(path)
    if not _holds_anything(path):
        return
    if ours is None or not ours(path):
        refuse_foreign(path, overwrite_flag)
    if not overwrite:
        raise OutputExistsError(f"{path} is not empty; pass {overwrite_flag} to replace it")


def refuse_foreign(path: Path, overwrite_flag: str = "--overwrite") -> None:
    """Raise `OutputExistsError`, naming `path` and what is foreign in it, unless the folder is wholly ivt_hf's."""
    never = f"so it is never replaced, even with {overwrite_flag}"
    if not (path / MARKER).exists():
        raise OutputExistsError(
            f"{path} is not empty and was not written by ivt_hf (no {MARKER}), {never}: remove it yourself or choose "
            "another output folder"
        )
    if read_marker(path) is None:
        raise OutputExistsError(
            f"{path} is not empty and its {MARKER} does not record which files ivt_hf wrote (damaged, or written by "
            f"an older ivt_hf), {never}: remove it yourself or choose another output folder"
        )
    foreign = foreign_files(path)
    if foreign:
        named = ", ".join(foreign[:_NAMED]) + (f" and {len(foreign) - _NAMED} more" if len(foreign) > _NAMED else "")
        raise OutputExistsError(
            f"{path} holds files that ivt_hf did not write ({named}), {never}: move them out or choose another "
            "output folder"
        )


def _holds_anything(path: Path) -> bool:
    """Whether `path` is a folder with something in it besides a marker's bookkeeping; a file is refused."""
    if not path.exists():
        return False
    if not path.is_dir():
        raise OutputExistsError(f"{path} is a file, not a folder; choose another output folder")
    return any(entry.name not in _BOOKKEEPING for entry in path.iterdir())


# -------------------------------------------------------------------------------------- a folder written all at once


@contextmanager
def writing_output_dir(
    path: str | os.PathLike, *, overwrite: bool, command: str, ours: Callable[[Path], bool] | None = None
) -> Iterator[Path]:
    """Write an output folder all at once: yields a staging folder to write into, which becomes `path` (with the
    marker listing its files) when the block ends without an exception, and is removed otherwise (see the module
    docstring).

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
            _write_marker(staging, _marker_record(command, files=_files_written(staging)))
            _move_into_place(staging, path)
        except BaseException as error:  # Ctrl-C and a full disk too: nothing half-written stays
            shutil.rmtree(staging, ignore_errors=True)
            if isinstance(error, OSError) and error.errno is not None and error.filename is None:
                raise OSError(error.errno, error.strerror or os.strerror(error.errno), str(path)) from error
            raise


# ------------------------------------------------------------------------------------ a folder a run keeps writing


class RunFolder:
    """The folder of a live run, held under its lock: `claim` what is about to be written, `record` what was."""

    def __init__(self, path: Path, command: str):
        self.path, self.command = path, command

    def claim(self, *patterns: str) -> None:
        """Before writing: the marker claims `patterns` (relative globs, e.g. "checkpoint-8/**"), so that a run
        killed while writing them leaves a folder that is still wholly ivt_hf's."""
        self._update(lambda record: {**record, "claims": sorted(set(record["claims"]) | set(patterns))})

    def record(self, *, final: bool = False) -> None:
        """After writing: every file now in the folder is recorded as the run's (nothing else writes there while the
        run holds the lock); `final` also drops the claims."""
        files = _files_written(self.path)
        self._update(lambda record: {**record, "files": files, "claims": [] if final else record["claims"]})

    def _update(self, change: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        from filelock import FileLock

        with FileLock(str(self.path / MARKER_LOCK)):
            record = read_marker(self.path) or _marker_record(self.command)
            _write_marker(self.path, change(record))


@contextmanager
def writing_run_dir(
    path: str | os.PathLike,
    *,
    command: str,
    overwrite: bool,
    resume: bool = False,
    claims: Iterable[str] = (),
    overwrite_flag: str = "--overwrite",
    resume_flag: str | None = None,
) -> Iterator[RunFolder]:
    """Hold `path` for a run that writes into it over time (see the module docstring): under its lock, taken without
    waiting, an absent or empty folder is taken; a non-empty one must be wholly ivt_hf's, and is then continued
    (`resume`) or emptied and taken again (`overwrite`), else refused. The marker claims `claims` (what the run writes
    outside its saves, such as its logs) until the run ends; then it records every file. A run that wrote nothing
    leaves nothing (the folder it created goes).

    Raises:
        OutputExistsError: another live command holds the folder, or it may not be written; the message names the
            flags (`overwrite_flag`, `resume_flag`) that would allow it.
    """
    from filelock import Timeout

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = output_lock(path, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise OutputExistsError(
            f"{path} is being written by another ivt_hf command that is still running (it holds {lock.lock_file}); "
            "wait for it to end or choose another output folder"
        ) from None
    try:
        _clean_up_after_killed_writers(path)
        created = not path.exists()
        if _holds_anything(path):
            refuse_foreign(path, overwrite_flag)
            if overwrite and not resume:
                shutil.rmtree(path)
            elif not resume:
                resuming = f"{resume_flag} to continue the run in it, or " if resume_flag else ""
                again = "to start again" if resume_flag else "to replace it"
                raise OutputExistsError(f"{path} is not empty; pass {resuming}{overwrite_flag} {again}")
        path.mkdir(parents=True, exist_ok=True)
        run = RunFolder(path, command)
        run.claim(*claims)
        try:
            yield run
        except BaseException:
            with suppress(OSError):  # a full disk: the run's own error says more than a failed record
                _finish_run(run, created)
            raise
        _finish_run(run, created)
    finally:
        lock.release()


def _finish_run(run: RunFolder, created: bool) -> None:
    """Record every file of the run, or leave nothing when it wrote nothing (a refused resume, data that did not
    load): no marker, nor the folder it made."""
    run.record(final=True)
    if any(entry.name not in _BOOKKEEPING for entry in run.path.iterdir()):
        return
    for name in _BOOKKEEPING:
        (run.path / name).unlink(missing_ok=True)
    if created:
        run.path.rmdir()


# ----------------------------------------------------------------------------------------------------- a single file


def check_output_file(path: str | os.PathLike, *, overwrite: bool, overwrite_flag: str = "--overwrite") -> None:
    """Raise `OutputExistsError` unless the file `path` may be written: it does not exist, or `overwrite` is set and a
    marker (of its folder or a folder above) records it as ivt_hf's. Call it early; `writing_output_file` checks
    again under the lock."""
    path = Path(path)
    if not os.path.lexists(path):
        return
    if path.is_dir():
        raise OutputExistsError(f"{path} is a folder, not a file; choose another file name")
    if not _recorded_file(path):
        raise OutputExistsError(
            f"{path} exists and was not written by ivt_hf, so it is never replaced, even with {overwrite_flag}: move "
            "it or choose another file name"
        )
    if not overwrite:
        raise OutputExistsError(f"{path} exists; pass {overwrite_flag} to replace it")


@contextmanager
def writing_output_file(path: str | os.PathLike, *, overwrite: bool, command: str) -> Iterator[Path]:
    """Write one file: yields a hidden partial file beside `path` (same suffix, so that writers that go by it still
    work), renamed to `path` when the block ends without an exception (removed otherwise), and recorded in the marker
    of its folder. Under the marker's lock; `check_output_file` decides whether `path` may be written."""
    from filelock import FileLock

    path = Path(path)
    folder = path.parent
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / f".{path.stem}.partial-{os.getpid()}{path.suffix}"
    with FileLock(str(folder / MARKER_LOCK)):
        check_output_file(path, overwrite=overwrite)
        had_marker = (folder / MARKER).exists()
        _change_marker(folder, command, claim=partial.name)  # a writer killed mid-write leaves only ivt_hf's file
        try:
            yield partial
            os.replace(partial, path)
            _change_marker(folder, command, record=path.name)
        except BaseException:
            partial.unlink(missing_ok=True)
            if had_marker:
                _change_marker(folder, command)
            else:
                (folder / MARKER).unlink(missing_ok=True)
            raise


def _recorded_file(path: Path) -> bool:
    """Whether a marker of the file's folder, or of a folder above it, records or claims it."""
    path = path.absolute()
    for folder in path.parents:
        marker = read_marker(folder)
        if marker and _Record(marker).covers(path.relative_to(folder).as_posix()):
            return True
    return False


def _change_marker(folder: Path, command: str, *, claim: str | None = None, record: str | None = None) -> None:
    """Under the marker's lock: claim the file name `claim`, or record `record` in place of the file writer's claim
    (or just drop that claim)."""
    marker = read_marker(folder) or _marker_record(command)
    partial = re.compile(rf"\..*\.partial-{os.getpid()}(\..*)?")
    claims = [name for name in marker["claims"] if not partial.fullmatch(name)] + ([claim] if claim else [])
    files = sorted(set(marker["files"]) | ({record} if record else set()))
    _write_marker(folder, {**marker, "files": files, "claims": claims})


# --------------------------------------------------------------------------------------------------------- shared


def _files_written(folder: Path) -> list[str]:
    """The files below `folder` to record in its marker: all but those that are ivt_hf's anyway (the markers'
    bookkeeping, writers' lock files, what the marker of a subfolder records)."""
    return sorted(relative for relative, ours in _files(folder, []) if not ours)


def _write_marker(folder: Path, record: dict[str, Any]) -> None:
    temporary = folder / _MARKER_TEMP
    temporary.write_text(json.dumps(record, indent=1) + "\n")
    os.replace(temporary, folder / MARKER)


def _marker_record(command: str, *, files: list[str] | None = None) -> dict[str, Any]:
    try:
        package_version = version("ivt_hf")
    except PackageNotFoundError:  # run from a source tree that is not installed
        package_version = "unknown"
    written = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return {
        "written_by": "ivt_hf",
        "command": command,
        "ivt_hf_version": package_version,
        "written_at": written,
        "files": files or [],
        "claims": [],
    }


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


__all__ = [
    "MARKER",
    "RunFolder",
    "check_output_dir",
    "check_output_file",
    "foreign_files",
    "is_package_output",
    "output_lock",
    "read_marker",
    "refuse_foreign",
    "writing_output_dir",
    "writing_output_file",
    "writing_run_dir",
]

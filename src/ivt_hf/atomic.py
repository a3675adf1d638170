"""Files that are written whole or not at all, and what the disk said when a write failed.

    atomic_write_json(output_dir / "build.json", plan)
    atomic_write_bytes(chunk_dir / "000003.safetensors", safetensors_bytes)

A state file that a later run reads (an index build's plan and chunks, say) must survive the failure that run
resumes from: a full disk, a refused write, a kill. `atomic_write` writes into a temporary file beside the target,
flushes and fsyncs it, and renames it into place with `os.replace`, so the target is the old file or the new one,
never a 0-byte or half-written one; whatever fails, the temporary file is removed.

Libraries report a refused write in their own types: safetensors raises `SafetensorError` ("... No space left on
device (os error 28)"), `torch.save` a `RuntimeError` ("unexpected pos ...", with the `OSError` as its context when it
wrote to a Python file), FAISS a `RuntimeError` ("write error in PATH: ... (No space left on device)"), pyarrow an
`OSError` with its `[Errno N]` only in the message. `disk_error` reads all of them back into one `OSError` with its
errno and, where known, the path, so that the writers here and the `ivt` error guard tell the user the same thing.
"""

from __future__ import annotations

import errno as errno_codes
import json
import os
import re
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from .errors import IVTInputError

# the errnos FAISS and torch's writer report only in words: os.strerror's wording -> the number
_STRERRORS = {
    os.strerror(number).lower(): number
    for number in (
        errno_codes.ENOSPC,
        errno_codes.EDQUOT,
        errno_codes.EACCES,
        errno_codes.EPERM,
        errno_codes.EROFS,
        errno_codes.EFBIG,
        errno_codes.EIO,
    )
}
_ERRNO_IN_TEXT = re.compile(r"\[errno (\d+)\]|\(os error (\d+)\)", re.IGNORECASE)  # pyarrow, Rust (safetensors)
_FAISS_FILE = re.compile(r"(?:write|read) error in (.+?): \d+ != \d+|could not open (.+?) for (?:writing|reading)")
# torch.save's C++ writer when the OS refuses a write: the errno is lost on the way
_TORCH_WRITE_FAILED = (
    "unexpected pos",
    "file write failed",
    "PytorchStreamWriter failed writing",
    "open file failed with strerror",
)


class WriteFailedError(OSError):
    """A write that a library reports without the operating system's reason (`torch.save` to a path: "unexpected
    pos 576 vs 534"): the disk refused it (full, quota, I/O error), but which of these is not known. `errno` is None;
    the message says what the library said."""


def disk_error(error: BaseException) -> OSError | None:
    """The `OSError` that `error` is or reports (see the module docstring), with its errno and, when the library
    names it, the file; None when `error` is neither an `OSError` nor a library's report of one.

    Only `error` itself is read, not what it was raised from or while handling (the caller walks `__cause__`); the
    one exception is torch's write error, whose `__context__` is the `OSError` of the Python file it wrote to."""
    if isinstance(error, OSError):
        if error.errno is None and (number := _number_in_text(str(error))) is not None:
            return OSError(number, os.strerror(number), error.filename)
        return error
    if not isinstance(error, (RuntimeError, *_safetensors_error())):
        return None
    text = str(error)
    if isinstance(error, RuntimeError) and any(marker in text for marker in _TORCH_WRITE_FAILED):
        context = error.__context__
        if isinstance(context, OSError) and context.errno is not None:
            return context
        number = _number_in_words(text)  # "open file failed with strerror: Permission denied"
        if number is not None:
            return OSError(number, os.strerror(number), None)
        return WriteFailedError(None, f"the write failed ({text.splitlines()[0]}): the disk is full or refused it")
    faiss_file = _FAISS_FILE.search(text)
    number = _number_in_text(text)
    if number is None and faiss_file:  # FAISS says os.strerror's words only
        number = _number_in_words(text)
    if number is None:
        return None
    filename = next((group for group in faiss_file.groups() if group), None) if faiss_file else None
    return OSError(number, os.strerror(number), filename)


def _number_in_text(text: str) -> int | None:
    """The errno a message names as `[Errno 28]` (pyarrow) or `(os error 28)` (Rust: safetensors)."""
    found = _ERRNO_IN_TEXT.search(text)
    return int(found.group(1) or found.group(2)) if found else None


def _number_in_words(text: str) -> int | None:
    """The errno whose os.strerror wording a message of FAISS or torch's writer holds ("No space left on device")."""
    lowered = text.lower()
    return next((number for wording, number in _STRERRORS.items() if wording in lowered), None)


def _safetensors_error() -> tuple[type, ...]:
    """safetensors' error type, if safetensors is imported (if it is not, it raised nothing); no import here."""
    found = getattr(sys.modules.get("safetensors"), "SafetensorError", None)
    return (found,) if isinstance(found, type) else ()


def naming(
    path: str | os.PathLike, error: BaseException, *, instead_of: str | os.PathLike | None = None
) -> OSError | None:
    """The disk error `error` reports (`disk_error`), naming `path` when it names no file or names `instead_of` (a
    temporary file the user never asked for); None when `error` is no `OSError` and reports none. An `OSError`
    without an errno (the package's own typed errors) comes back as it is."""
    found = disk_error(error)
    if found is None or (found.errno is None and not isinstance(found, WriteFailedError)):
        return found
    if found.filename not in ((None,) if instead_of is None else (None, str(instead_of))):
        return found
    if isinstance(found, WriteFailedError):
        return WriteFailedError(None, found.strerror, str(path))
    return OSError(found.errno, found.strerror or os.strerror(found.errno), str(path))


@contextmanager
def refusals_naming(path: str | os.PathLike) -> Iterator[None]:
    """Inside the block, a refused read or write whose error names no file (`disk_error`: a Python file's `write`,
    safetensors, torch.save) is raised again as an `OSError` naming `path` (the folder being written), from the
    original error; every other exception passes unchanged."""
    try:
        yield
    except Exception as error:
        refused = naming(path, error)
        if refused is None or refused is error:
            raise
        raise refused from error


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> Path:
    """Write `path` whole or not at all: `write(handle)` fills a temporary file beside it (binary), which is fsynced
    and renamed into place; the folder is fsynced after the rename, so the new name survives a power cut too.

    Raises:
        OSError: the disk refused (full, quota, permission, read-only); it names `path` when the error named no
            file. The temporary file is removed and `path` is as it was.
    """
    path = Path(path)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        with open(temporary, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException as error:
        temporary.unlink(missing_ok=True)
        refused = naming(path, error, instead_of=temporary) if isinstance(error, Exception) else None
        if refused is not None and refused is not error:
            raise refused from error
        raise
    _fsync_folder(path.parent)
    return path


def _fsync_folder(folder: Path) -> None:
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:  # a platform without directory descriptors: the rename is still atomic
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass  # some file systems refuse fsync on a folder; the rename has happened
    finally:
        os.close(descriptor)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """`atomic_write` of `data`."""
    return atomic_write(path, lambda handle: handle.write(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """`atomic_write` of `text`, UTF-8."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, value: Any, indent: int | None = 1) -> Path:
    """`atomic_write` of `value` as JSON."""
    return atomic_write_text(path, json.dumps(value, indent=indent))


def read_json_object(
    path: str | os.PathLike,
    error: type[Exception] = IVTInputError,
    *,
    name: str | None = None,
    holds: str = "a JSON object",
    advice: str = "",
) -> dict[str, Any]:
    """The JSON object in `path`: a state file a run wrote (cut short by an older version, or edited by hand) or a
    file a user handed over. One `error` naming the file (as `name`, default the path) when it is not valid JSON or
    does not hold one object (`holds` says what it should hold, `advice` ends the message). A missing or refused file
    stays the caller's `OSError` (the `ivt` guard reports a refusal as the machine's, exit 3)."""
    name = str(path) if name is None else name
    try:
        value = json.loads(Path(path).read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as problem:
        raise error(f"{name} is not valid JSON: {problem}{advice}") from None
    if not isinstance(value, dict):
        raise error(f"{name} must hold {holds}, found {type(value).__name__}{advice}")
    return value


def atomic_save_tensors(path: str | os.PathLike, tensors: dict[str, Any]) -> Path:
    """`atomic_write` of torch tensors as safetensors (`safetensors.torch.save`: the bytes are made in memory first,
    then written by `atomic_write`, so a refused write is an `OSError` naming `path`)."""
    from safetensors.torch import save

    return atomic_write_bytes(path, save({name: tensor.contiguous() for name, tensor in tensors.items()}))


__all__ = [
    "WriteFailedError",
    "atomic_save_tensors",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "disk_error",
    "naming",
    "read_json_object",
    "refusals_naming",
]

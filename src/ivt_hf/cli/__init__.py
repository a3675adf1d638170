"""The `ivt` command (also `python -m ivt_hf`): one entry point, one flag style, one error guard.

    ivt demo | train | evaluate | index build | search | data prepare|stats|synth | convert | push | app |
        export onnx

Each command lives in a small module of this package with a `register(subparsers)` function; heavy imports (torch,
transformers, datasets) stay inside the handlers so that `ivt --help` stays fast. Flags are spelled with underscores,
as transformers' `HfArgumentParser` spells them (`--output_dir`); the dashed spelling is accepted as an alias.

An expected failure ends in one `error: ...` line on stderr and one of these exit codes (`EXIT_CODES`), never a
traceback:

    1    remote failure: the Hub refused a request (repository not found, gated, 401/403, 5xx) or was unreachable
    2    bad input: the package's typed errors (`ivt_hf.errors.IVTInputError` and its subclasses, `CommandError`),
         a folder given where a file is expected (or the converse)
    3    the machine refused: no space left on the device (or disk quota), permission denied, read-only file system,
         also when a library reports it in its own error type (`ivt_hf.atomic.disk_error`) or the package's typed
         error was raised from it; the line names the file, else the command's output
    130  interrupted (Ctrl-C); an output folder being written is removed, the one it would replace is kept

Anything else (a plain `ValueError` from torch, say) is a bug: it keeps its traceback (and Python's exit code 1).
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

COMMAND_MODULES = (
    "ivt_hf.cli.demo",
    "ivt_hf.cli.train",
    "ivt_hf.cli.pretrain",
    "ivt_hf.cli.evaluation",
    "ivt_hf.cli.search",
    "ivt_hf.cli.data",
    "ivt_hf.cli.convert",
    "ivt_hf.cli.push",
    "ivt_hf.cli.app",
    "ivt_hf.cli.export",
)
# encoding precisions of `ivt evaluate` / `ivt index build`: `ivt_hf.evaluation.encoding.DTYPES`, spelled here so
# that `ivt --help` does not import torch (tests/cli/test_cli.py checks that the two agree)
DTYPE_CHOICES = ("float32", "bfloat16", "float16", "int8")
# commands whose remaining arguments are parsed by the command itself (they hand them to HfArgumentParser)
PASS_THROUGH = {"train", "pretrain"}


EXIT_REMOTE, EXIT_BAD_INPUT, EXIT_MACHINE_REFUSED, EXIT_INTERRUPTED = 1, 2, 3, 130
EXIT_CODES = f"""exit codes:
  0    success
  {EXIT_REMOTE}    remote failure: the Hub refused a request (repository not found, gated, 401/403, 5xx) or was
       unreachable
  {EXIT_BAD_INPUT}    bad input: a missing or existing path, a wrong value or file (the error line names it)
  {EXIT_MACHINE_REFUSED}    the machine refused: no space left on the device (or disk quota), permission denied,
       read-only file system (the error line names the path)
  {EXIT_INTERRUPTED}  interrupted (Ctrl-C); an output folder being written is removed, the one it would replace kept
a traceback instead of an `error:` line is a bug: please report it"""


class CommandError(Exception):
    """A command's own failure with a message for the user and an exit code (2: bad input, 1: a remote refusal)."""

    def __init__(self, message: str, exit_code: int = EXIT_BAD_INPUT):
        super().__init__(message)
        self.exit_code = exit_code


@contextmanager
def arguments_are_input() -> Iterator[None]:
    """A `ValueError` raised while parsing a command's arguments (`HfArgumentParser`, `TrainingArguments` and the
    argument dataclasses' `__post_init__`) is bad input by definition: it becomes an `IVTInputError`."""
    from ..errors import IVTInputError

    try:
        yield
    except IVTInputError:
        raise
    except ValueError as error:
        raise IVTInputError(str(error)) from error


def flag(name: str) -> tuple[str, ...]:
    """`--output_dir` and its dashed alias `--output-dir` (one spelling when they are the same)."""
    dashed = "--" + name.removeprefix("--").replace("_", "-")
    return (name,) if dashed == name else (name, dashed)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ivt",
        description="IVT text-based person retrieval.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    _refuse_abbreviations(parser)
    return parser


def _refuse_abbreviations(parser: argparse.ArgumentParser) -> None:
    """`--max_step` must be an error, not `--max_steps`: a typo should never start a different run."""
    parser.allow_abbrev = False
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for subparser in action.choices.values():
                _refuse_abbreviations(subparser)


def run_guarded(handler: Callable[[argparse.Namespace], int | None], args: argparse.Namespace) -> int:
    """Run a command; an expected failure becomes one `error:` line and its exit code (`EXIT_CODES`) instead of a
    traceback. Anything else is a bug and is raised again."""
    try:
        return int(handler(args) or 0)
    except KeyboardInterrupt:
        _print_error("interrupted (Ctrl-C)")
        return EXIT_INTERRUPTED
    except Exception as error:
        explained = _explain(error, args)
        if explained is None:
            raise
        message, exit_code = explained
        _print_error(message)
        return exit_code


def _explain(error: Exception, args: argparse.Namespace | None = None) -> tuple[str, int] | None:
    """The one-line message and exit code of an expected failure; None for a bug."""
    from ..errors import IVTInputError  # imported by now if one was raised

    if isinstance(error, CommandError):
        return str(error), error.exit_code
    message = _machine_refusal(error, _written_path(args))  # also under a typed error raised from it
    if message is not None:
        return message, EXIT_MACHINE_REFUSED
    if isinstance(error, IVTInputError):
        return str(error), EXIT_BAD_INPUT
    message = _remote_failure(error)
    if message is not None:
        return message, EXIT_REMOTE
    message = _file_where_a_folder_is_expected(error)
    if message is not None:
        return message, EXIT_BAD_INPUT
    return None


def _print_error(message: str) -> None:
    print("error: " + " ".join(message.split()), file=sys.stderr)  # one line, whatever the message holds


def _causes(error: BaseException) -> Iterator[BaseException]:
    """`error` and what it was raised from (`raise ... from cause`: libraries wrap the error that says what
    happened). What it was raised while handling (`__context__`) is not followed: an unrelated error raised in an
    `except` block is not the error it was handling (a bug while handling a denied permission is a bug, not
    "permission denied")."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__


def _written_path(args: argparse.Namespace | None) -> str | None:
    """What the command writes (its output folder or file, as its flags name it), to name in a refusal whose error
    names no file (safetensors, torch.save and a Python file's `write` name none). `ivt train` / `ivt pretrain` read
    theirs from a recipe too: they name it themselves (`ivt_hf.atomic.refusals_naming`)."""
    for name in ("output_dir", "output", "export_space", "show"):
        value = getattr(args, name, None)
        if value:
            return str(value)
    return None


MACHINE_REFUSALS = {
    errno.ENOSPC: "free some space or choose another folder",
    errno.EDQUOT: "free some space or choose another folder",
    errno.EFBIG: "free some space or choose another folder",
    errno.EACCES: "check its permissions or choose another folder",
    errno.EPERM: "check its permissions or choose another folder",
    errno.EROFS: "choose a writable folder",
}


def _machine_refusal(error: BaseException, written: str | None = None) -> str | None:
    """'no space left on device: PATH (...)' for a full disk, a quota, a denied permission or a read-only file
    system, also when a library reported it in its own type (safetensors, torch.save, FAISS, pyarrow:
    `ivt_hf.atomic.disk_error`). PATH is the file the error names, else `written` (the command's output)."""
    from ..atomic import WriteFailedError, disk_error

    for cause in _causes(error):
        found = disk_error(cause)
        if found is None or not (found.errno in MACHINE_REFUSALS or isinstance(found, WriteFailedError)):
            continue
        filename = found.filename if found.filename is not None else written
        path = f": {filename}" if filename is not None else ""
        if isinstance(found, WriteFailedError):
            return f"{found.strerror}{path} ({MACHINE_REFUSALS[errno.ENOSPC]})"
        return f"{os.strerror(found.errno).lower()}{path} ({MACHINE_REFUSALS[found.errno]})"
    return None


def _file_where_a_folder_is_expected(error: BaseException) -> str | None:
    """'is a directory: PATH (a file was expected)' and its converse, for a path the user gave that is the wrong
    kind (`--output` naming a folder, say): bad input, exit 2."""
    for cause in _causes(error):
        if isinstance(cause, (IsADirectoryError, NotADirectoryError)) and cause.filename is not None:
            expected = "a file" if isinstance(cause, IsADirectoryError) else "a folder"
            return f"{os.strerror(cause.errno).lower()}: {cause.filename} ({expected} was expected)"
    return None


def _loaded_class(module: str, name: str) -> type | None:
    """A class of a module that was imported (if it was not, nothing raised it); no import happens here."""
    return getattr(sys.modules.get(module), name, None)


def _transport_errors() -> tuple[type, ...]:
    """What the HTTP clients raise when a connection fails (huggingface_hub uses httpx2)."""
    found = (
        _loaded_class("httpx2", "TransportError"),
        _loaded_class("httpx", "TransportError"),
        _loaded_class("requests", "ConnectionError"),
    )
    return tuple(found_class for found_class in found if found_class is not None)


def _remote_failure(error: BaseException) -> str | None:
    """'Hub request failed: ...' for an HTTP error answer of the Hub (huggingface_hub's `HfHubHTTPError` family),
    'could not reach URL: ...' for a connection that failed."""
    hub_error = _loaded_class("huggingface_hub.errors", "HfHubHTTPError")
    transport_errors = _transport_errors()
    for cause in _causes(error):
        if hub_error is not None and isinstance(cause, hub_error):
            return f"Hub request failed: {cause}"
        if transport_errors and isinstance(cause, transport_errors):
            try:
                url = f" {cause.request.url}"  # httpx; requests' errors carry no request when none was sent
            except (AttributeError, RuntimeError):
                url = ""
            return f"could not reach{url}: {type(cause).__name__}: {cause}"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    if extra and args.command not in PASS_THROUGH:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.extra = extra
    # every command sets `handler` with `set_defaults(handler=...)`; it returns an exit code
    return run_guarded(args.handler, args)


if __name__ == "__main__":
    sys.exit(main())

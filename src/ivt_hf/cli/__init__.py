"""The `ivt` command (also `python -m ivt_hf`): one entry point, one flag style, one error guard.

    ivt demo | train | evaluate | index build | search | data prepare|stats|synth | convert | push | app

Each command lives in a small module of this package with a `register(subparsers)` function; heavy imports (torch,
transformers, datasets) stay inside the handlers so that `ivt --help` stays fast. Flags are spelled with underscores,
as transformers' `HfArgumentParser` spells them (`--output_dir`); the dashed spelling is accepted as an alias. Bad
input ends in one `error: ...` line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable

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
)
# encoding precisions of `ivt evaluate` / `ivt index build`: `ivt_hf.evaluation.encoding.DTYPES`, spelled here so
# that `ivt --help` does not import torch (tests/test_cli.py checks that the two agree)
DTYPE_CHOICES = ("float32", "bfloat16", "float16", "int8")
# commands whose remaining arguments are parsed by the command itself (they hand them to HfArgumentParser)
PASS_THROUGH = {"train", "pretrain"}


class CommandError(Exception):
    """A command's own failure with a message for the user and an exit code (2: bad input, 1: a remote refusal)."""

    def __init__(self, message: str, exit_code: int = 2):
        super().__init__(message)
        self.exit_code = exit_code


def flag(name: str) -> tuple[str, ...]:
    """`--output_dir` and its dashed alias `--output-dir` (one spelling when they are the same)."""
    dashed = "--" + name.removeprefix("--").replace("_", "-")
    return (name,) if dashed == name else (name, dashed)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ivt", description="IVT text-based person retrieval.")
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


def _user_errors() -> tuple[type[BaseException], ...]:
    """What a bad input raises: missing or existing paths, wrong values (every error class of the package is a
    ValueError subclass), unreadable files."""
    return (FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError, PermissionError, ValueError,
            UnicodeDecodeError)  # fmt: skip


def run_guarded(handler: Callable[[argparse.Namespace], int | None], args: argparse.Namespace) -> int:
    """Run a command; expected failures become one `error:` line and an exit code instead of a traceback."""
    try:
        return int(handler(args) or 0)
    except CommandError as error:
        _print_error(error)
        return error.exit_code
    except _user_errors() as error:
        _print_error(error)
        return 2


def _print_error(error: BaseException) -> None:
    print("error: " + " ".join(str(error).split()), file=sys.stderr)  # one line, whatever the message holds


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

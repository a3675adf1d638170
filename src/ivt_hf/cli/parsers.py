"""What the parsers of the `ivt` commands share besides `flag`: a command whose `--help` is its module docstring."""

from __future__ import annotations

import argparse


def documented_command(subparsers, name: str, *, help: str, doc: str | None) -> argparse.ArgumentParser:
    """The parser of the command `name`: one line of `help` in `ivt --help`, and `doc` (the command module's
    docstring, with its example command lines) as written, line breaks kept, in `ivt NAME --help`."""
    return subparsers.add_parser(name, help=help, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)


__all__ = ["documented_command"]

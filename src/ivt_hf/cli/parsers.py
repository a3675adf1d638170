"""What the parsers of the `ivt` commands share besides `flag`: a command whose `--help` is its module docstring, and
the argparse `type`s that refuse a hostile value (0, -1, nan, inf, a folder for a picture) as the flag is read."""

from __future__ import annotations

import argparse
import math
from pathlib import Path


def documented_command(subparsers, name: str, *, help: str, doc: str | None) -> argparse.ArgumentParser:
    """The parser of the command `name`: one line of `help` in `ivt --help`, and `doc` (the command module's
    docstring, with its example command lines) as written, line breaks kept, in `ivt NAME --help`."""
    return subparsers.add_parser(name, help=help, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)


def positive_int(text: str) -> int:
    """An argparse `type`: an integer >= 1 (a count, a size, a number of threads)."""
    return _at_least(int, text, 1)


def non_negative_int(text: str) -> int:
    """An argparse `type`: an integer >= 0 (a seed)."""
    return _at_least(int, text, 0)


def positive_float(text: str) -> float:
    """An argparse `type`: a finite number > 0 (a time budget, a size in MB); nan and inf are refused."""
    value = _number(float, text)
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number above 0, got {text}")
    return value


PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


def picture_path(text: str) -> str:
    """An argparse `type`: where a picture goes, a file name ending in .png (or .jpg, .jpeg, .webp: its format),
    not a folder."""
    if Path(text).suffix.lower() not in PICTURE_SUFFIXES or Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"must be a picture file name ending in .png, got {text!r}")
    return text


def _at_least(kind: type, text: str, minimum: int) -> int:
    value = _number(kind, text)
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {text}")
    return value


def _number(kind: type, text: str):
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be {'an integer' if kind is int else 'a number'}, got {text!r}"
        ) from None


__all__ = ["documented_command", "non_negative_int", "picture_path", "positive_float", "positive_int"]

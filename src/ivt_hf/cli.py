"""The `ivt` command line: `ivt data ...`, `ivt evaluate ...`, `ivt index ...`, `ivt search ...`, `ivt demo`.

Each area of the package registers its own sub-commands through a `register(subparsers)` function in a small module
listed in `COMMAND_MODULES`. Those modules keep heavy imports (torch, transformers, datasets) inside the command
handlers so that `ivt --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMAND_MODULES = (
    "ivt_hf.data.cli",
    "ivt_hf.evaluation_cli",
    "ivt_hf.demo",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ivt", description="IVT text-based person retrieval.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # every sub-command sets `handler` with `set_defaults(handler=...)`; it returns an exit code
    return int(args.handler(args) or 0)


if __name__ == "__main__":
    sys.exit(main())

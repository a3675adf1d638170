"""`ivt train [RECIPE.json] [--flag value ...]`: the train entry point (`ivt_hf.training.main`); every flag of
`ModelArguments`, `DataArguments` and `IVTTrainingArguments` (`ivt train --help` lists them)."""

from __future__ import annotations

import argparse


def run_train(args: argparse.Namespace) -> int:
    from ..training.train import main

    main(args.extra)
    return 0


def register(subparsers) -> None:
    train = subparsers.add_parser(
        "train",
        add_help=False,  # `ivt train --help` is the training arguments' own help
        help="train IVT (MLA + BMM + CMPM) on a benchmark; also `accelerate launch -m ivt_hf train ...`",
    )
    train.set_defaults(handler=run_train)

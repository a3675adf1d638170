"""`ivt train [RECIPE.json] [--flag value ...]`: `train_from_arguments` (training/finetuning/train.py); every flag of
`ModelArguments`, `DataArguments` and `IVTTrainingArguments` (`ivt train --help` lists them)."""

from __future__ import annotations

import argparse
import logging

from . import arguments_are_input


def run_train(args: argparse.Namespace) -> int:
    from ..atomic import refusals_naming
    from ..training.finetuning.arguments import parse_args
    from ..training.finetuning.train import train_from_arguments

    with arguments_are_input():  # a ValueError of TrainingArguments / HfArgumentParser here is bad input
        model_args, data_args, training_args = parse_args(args.extra)
    logging.basicConfig(level=logging.INFO if training_args.process_index == 0 else logging.WARNING)
    with refusals_naming(training_args.output_dir):  # a full disk's error names no file: name the run's folder
        train_from_arguments(model_args, data_args, training_args)  # holds --output_dir before the data loads
    return 0


def register(subparsers) -> None:
    train = subparsers.add_parser(
        "train",
        add_help=False,  # `ivt train --help` is the training arguments' own help
        help="train IVT (MLA + BMM + CMPM) on a benchmark; also `accelerate launch -m ivt_hf train ...`",
    )
    train.set_defaults(handler=run_train)

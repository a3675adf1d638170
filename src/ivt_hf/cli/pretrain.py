"""`ivt pretrain [RECIPE.json] [--flag value ...]`: vision-language pre-training (ITC + ITM + MLM) on image-text pairs
(`ivt_hf.training.pretraining.pretrain`); every flag of `ModelArguments`, `DataArguments` and `PretrainingArguments`
(`ivt pretrain --help` lists them)."""

from __future__ import annotations

import argparse
import logging

from . import arguments_are_input


def run_pretrain(args: argparse.Namespace) -> int:
    from ..atomic import refusals_naming
    from ..training.pretraining import parse_pretraining_args, pretrain

    with arguments_are_input():  # a ValueError of HfArgumentParser / PretrainingArguments here is bad input
        model_args, data_args, pretraining_args = parse_pretraining_args(args.extra)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with refusals_naming(pretraining_args.output_dir):  # a full disk's error names no file: name the run's folder
        pretrain(model_args, data_args, pretraining_args)
    return 0


def register(subparsers) -> None:
    pretrain = subparsers.add_parser(
        "pretrain",
        add_help=False,  # `ivt pretrain --help` is the pre-training arguments' own help
        help="pre-train IVT on image-text pairs (ITC + ITM + MLM, the authors' first stage); also `accelerate "
        "launch -m ivt_hf pretrain ...`",
    )
    pretrain.set_defaults(handler=run_pretrain)

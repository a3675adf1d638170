"""What a fine-tuning run (`ivt train`) is told: `ModelArguments` (shared with pre-training), `DataArguments` (the data
vocabulary of every command, `ivt_hf.data.arguments`) and `IVTTrainingArguments` (`StageArguments` plus fine-tuning's
own knobs), from flags or a recipe JSON (`ivt_hf/recipes/`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transformers import HfArgumentParser

from ...data.arguments import DataArguments, renamed_settings
from ...errors import IVTInputError
from .. import stage
from ..arguments import ModelArguments, StageArguments, at_least


@dataclass
class IVTTrainingArguments(StageArguments):
    """Fine-tuning's arguments: `StageArguments` plus the IVT fine-tuning knobs. `per_device_train_batch_size` counts
    IMAGES (P x K); each image gives three pairs."""

    images_per_id: int = field(default=4, metadata={"help": "K of the P x K identity sampler."})
    multi_level_alignment: bool = field(
        default=True, metadata={"help": "MLA: word/phrase/sentence texts; false = three sentence-level texts."}
    )
    gather_loss: bool = field(
        default=False,
        metadata={
            "help": "CMPM over the pairs of all processes (global negatives); false = per process, as the reference."
        },
    )
    cache_train_images: bool = field(default=False, metadata={"help": "decode training images once into memory."})
    text_length_buckets: int = field(
        default=1,
        metadata={
            "help": "run the text pass as this many length-sorted groups, each trimmed to its longest text "
            "(less padding for MLA's short word/phrase texts; 1 = one padded batch, as the reference)."
        },
    )
    eval_max_queries: int | None = field(default=None, metadata={"help": "cap validation captions (speed)."})
    max_text_length: int | None = field(
        default=None, metadata={"help": "token limit, >= 2 ([CLS] and [SEP]; default: the text positions)."}
    )
    remove_unused_columns: bool = field(default=False)
    ddp_find_unused_parameters: bool | None = field(default=False)
    max_steps: int = field(
        default=-1,
        metadata={
            "help": "optimiser steps to train, >= 1; -1 (the default) trains by epochs (--num_train_epochs), as "
            "transformers does. 0 and other negative values are refused (`ivt pretrain` takes the same meaning, "
            "and needs a step count: a stream has no epochs)."
        },
    )

    def check_values(self) -> None:
        super().check_values()
        if self.max_steps == 0 or self.max_steps < -1:
            raise IVTInputError(
                f"--max_steps must be >= 1, or -1 (the default) to train by epochs (--num_train_epochs), got "
                f"{self.max_steps}"
            )
        if self.max_steps == -1 and not (math.isfinite(self.num_train_epochs) and self.num_train_epochs > 0):
            raise IVTInputError(f"--num_train_epochs must be a finite number > 0, got {self.num_train_epochs}")
        for flag, value in (
            ("--images_per_id", self.images_per_id),
            ("--text_length_buckets", self.text_length_buckets),
            ("--eval_max_queries", self.eval_max_queries),
        ):
            at_least(flag, value, 1)
        at_least("--max_text_length", self.max_text_length, 2)


ARGUMENT_CLASSES = (ModelArguments, DataArguments, IVTTrainingArguments)


def read_recipe(path: str | Path, known: set[str] | None = None) -> dict[str, Any]:
    """A recipe (`stage.read_recipe`); `known`: the setting names allowed (default: those of `ivt train`)."""
    if known is None:
        known = {name for cls in ARGUMENT_CLASSES for name in cls.__dataclass_fields__}
    return stage.read_recipe(path, known)


def parse_args(argv: list[str] | None = None) -> tuple[ModelArguments, DataArguments, IVTTrainingArguments]:
    """Command-line flags, or one recipe JSON file followed by flags that override it (`stage.parse_stage_args`)."""
    return stage.parse_stage_args(ARGUMENT_CLASSES, argv)


def recipe_arguments(
    recipe: str | Path | dict[str, Any], **overrides: Any
) -> tuple[ModelArguments, DataArguments, IVTTrainingArguments]:
    """The three argument objects of a recipe (a path or a dict of settings) with some settings replaced, in Python."""
    settings = read_recipe(recipe) if isinstance(recipe, (str, Path)) else dict(recipe)
    settings = renamed_settings(settings, "recipe") | renamed_settings(overrides, "recipe_arguments")
    return HfArgumentParser(ARGUMENT_CLASSES).parse_dict(settings)


__all__ = [
    "DataArguments",
    "IVTTrainingArguments",
    "ModelArguments",
    "parse_args",
    "read_recipe",
    "recipe_arguments",
]

"""What a training run is told, in both stages: the model (`ModelArguments`, one class for fine-tuning and
pre-training), the data and the `TrainingArguments` with IVT's knobs (`StageArguments`, the knobs both stages share;
`IVTTrainingArguments`, fine-tuning's own; pre-training's are in `training/pretraining/arguments.py`), from flags or a
recipe JSON (`ivt_hf/recipes/`). The architecture presets live with the model (`IVTConfig.from_preset`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transformers import HfArgumentParser, TrainingArguments

from ..errors import IVTInputError
from . import stage
from .optim import check_optimizer_settings, check_schedule

RECIPES = Path(__file__).resolve().parents[1] / "recipes"


@dataclass
class StageArguments(TrainingArguments):
    """`TrainingArguments` plus the knobs both stages (fine-tuning and pre-training) add: the optimiser's bias rate,
    the image augmentation, and `overwrite_output_dir` (which transformers 5 no longer has)."""

    bias_lr_multiplier: float = field(default=2.0, metadata={"help": "bias learning rate = lr x this (reference: 2)."})
    random_erasing: float = field(default=0.5, metadata={"help": "probability of random erasing per view."})
    train_interpolation: str = field(
        default="bicubic", metadata={"help": "resize filter in training (eval: bilinear)."}
    )
    overwrite_output_dir: bool = field(
        default=False,
        metadata={"help": "start again in a non-empty --output_dir that an earlier run wrote (never anyone else's)."},
    )

    def __post_init__(self):
        super().__post_init__()
        self.check_values()

    def check_values(self) -> None:
        """Refuse, naming the flag and the value, what the optimiser, the schedule or the data loader would refuse
        later with a traceback (a negative learning rate, `lr_scheduler_kwargs` the schedule does not take, a seed
        numpy cannot use): bad input, said before the run starts."""
        check_optimizer_settings(
            lr=self.learning_rate,
            weight_decay=self.weight_decay,
            bias_lr_multiplier=self.bias_lr_multiplier,
            betas=(self.adam_beta1, self.adam_beta2),
            eps=self.adam_epsilon,
        )
        check_schedule(self.lr_scheduler_type, self.lr_scheduler_kwargs)
        for flag, seed in (("--seed", self.seed), ("--data_seed", self.data_seed)):
            if seed is not None and not 0 <= seed < 2**32:
                raise IVTInputError(f"{flag} must be from 0 to 2**32 - 1, got {seed}")
        at_least("--max_grad_norm", self.max_grad_norm, 0)  # 0: no clipping
        for flag, steps in (
            ("--logging_steps", self.logging_steps),
            ("--save_steps", self.save_steps),
            ("--eval_steps", self.eval_steps),
        ):
            if steps is not None and not (math.isfinite(steps) and steps > 0):
                raise IVTInputError(f"{flag} must be above 0 (steps, or below 1 a fraction of the run), got {steps}")
        at_least("--dataloader_num_workers", self.dataloader_num_workers, 0)


def at_least(flag: str, value: int | float | None, minimum: int | float) -> None:
    """Raise `IVTInputError` unless `value` (None: not set) is a finite number >= `minimum`."""
    if value is not None and not (math.isfinite(value) and value >= minimum):
        raise IVTInputError(f"{flag} must be >= {minimum}, got {value}")


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


@dataclass
class ModelArguments:
    """The model of either stage (`build_model`): a preset or config file, optionally started from public
    backbones, or a saved folder; and the architecture settings that may differ from the preset."""

    model_preset: str = field(
        default="tiny",
        metadata={"help": "tiny (CPU), base (ViT-B/16, the reference; the recipes' choice) or micro (tests)."},
    )
    config_path: str | None = field(default=None, metadata={"help": "an IVTConfig JSON (overrides the preset)."})
    model_name_or_path: str | None = field(
        default=None,
        metadata={
            "help": "start from a from_pretrained folder (e.g. a converted authors' checkpoint). Fine-tuning from an "
            "`ivt pretrain` output keeps its encoder, drops its fusion encoder and heads, and resizes its position "
            "grid when --patch_stride changes it (pre-training uses 16, CUHK/ICFG fine-tuning 12). Pre-training "
            "continues from an IVTForPreTraining folder, or starts its fusion encoder and heads afresh beside an "
            "IVTModel's encoder."
        },
    )
    vit_checkpoint: str | None = field(
        default=None,
        metadata={
            "help": "ViT-B/16 to start the shared blocks and vision FFN from: a Hub repo id (e.g. "
            "timm/vit_base_patch16_224.orig_in21k_ft_in1k, the paper's; google/vit-base-patch16-224-in21k), a "
            "local folder, or a weights file (timm or transformers layout)."
        },
    )
    bert_checkpoint: str | None = field(
        default=None,
        metadata={
            "help": "BERT to start the text side (in pre-training also the fusion encoder, from layers 0-5, and "
            "the MLM head) from: a Hub repo id (e.g. google-bert/bert-base-uncased), a local folder, or a "
            "weights file (BertModel, or BertForPreTraining / BertForMaskedLM under bert.)."
        },
    )
    backbone_revision: str | None = field(
        default=None, metadata={"help": "branch, tag or commit of the backbone repos on the Hub (default: main)."}
    )
    patch_stride: int | None = field(default=None, metadata={"help": "12 for CUHK/ICFG, 16 for RSTPReid."})
    image_height: int | None = field(default=None)
    image_width: int | None = field(default=None)
    token_drop_ratio: float | None = field(default=None, metadata={"help": "BMM ratio (0 disables); fine-tuning only."})
    token_drop_mode: str | None = field(
        default=None, metadata={"help": "batch (reference) or per_sample; fine-tuning only."}
    )
    num_hidden_layers: int | None = field(default=None, metadata={"help": "number of blocks (overrides the preset)."})
    initializer_range: float | None = field(
        default=None, metadata={"help": "std of the random initialisation (default 0.02)."}
    )
    attn_implementation: str | None = field(
        default=None,
        metadata={
            "help": "eager or sdpa (the default); eager is faster on CPU for the tiny preset's short sequences. "
            "Not saved with the weights: a reloaded model uses the default."
        },
    )


@dataclass
class DataArguments:
    dataset_name: str = field(
        default="synthpedes",
        metadata={
            "help": "cuhk-pedes, icfg-pedes, rstpreid, imagefolder (with --data_root), synthpedes; a folder "
            "(written by `ivt data prepare` or save_to_disk, or an image folder with metadata.jsonl / "
            "metadata.csv); or a Hub dataset id ORG/NAME."
        },
    )
    data_root: str | None = field(
        default=None, metadata={"help": "raw benchmark folder; for synthpedes, where it is generated on first use."}
    )
    dataset_config: str | None = field(default=None, metadata={"help": "the Hub dataset's configuration."})
    revision: str | None = field(default=None, metadata={"help": "the Hub dataset's branch, tag or commit."})
    image_column: str | None = field(
        default=None, metadata={"help": "image column of a datasets dataset (default: image)."}
    )
    caption_column: str | None = field(
        default=None,
        metadata={"help": "caption column, one string or a list per row (default: captions, else caption)."},
    )
    person_id_column: str | None = field(
        default=None, metadata={"help": "person id column, integers (default: person_id)."}
    )
    min_images_per_id: int | None = field(
        default=None,
        metadata={
            "help": "least images per identity in the train split of your own data (default 2: one image "
            "has no positive image but itself); 1 accepts every identity."
        },
    )
    synth_train_ids: int = field(default=1000)
    synth_validation_ids: int = field(default=100)
    synth_test_ids: int = field(default=200)
    synth_seed: int = field(default=0)
    max_text_length: int | None = field(
        default=None, metadata={"help": "token limit, >= 2 ([CLS] and [SEP]; default: the text positions)."}
    )

    def __post_init__(self):
        at_least("--min_images_per_id", self.min_images_per_id, 1)
        at_least("--max_text_length", self.max_text_length, 2)
        at_least("--synth_seed", self.synth_seed, 0)


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
    return HfArgumentParser(ARGUMENT_CLASSES).parse_dict(settings | overrides)


__all__ = [
    "RECIPES",
    "DataArguments",
    "StageArguments",
    "IVTTrainingArguments",
    "ModelArguments",
    "parse_args",
    "read_recipe",
    "recipe_arguments",
]

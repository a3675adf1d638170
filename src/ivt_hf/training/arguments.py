"""What a training run of either stage is told: the model (`ModelArguments`, one class for fine-tuning and
pre-training) and the `TrainingArguments` with the knobs both stages add (`StageArguments`); each stage's own are in
`finetuning/arguments.py` and `pretraining/arguments.py`, from flags or a recipe JSON (`ivt_hf/recipes/`,
`stage.parse_stage_args`). The architecture presets live with the model (`IVTConfig.from_preset`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from transformers import TrainingArguments

from ..data.arguments import at_least
from ..errors import IVTInputError
from .optim import check_optimizer_settings, check_schedule

RECIPES = Path(__file__).resolve().parents[1] / "recipes"


@dataclass
class StageArguments(TrainingArguments):
    """`TrainingArguments` plus the knobs both stages (fine-tuning and pre-training) add: the optimiser's bias rate,
    the image augmentation, `overwrite_output_dir` (which transformers 5 no longer has) and GradCache's chunk size
    (`ivt_hf.training.gradcache`; activation checkpointing is `TrainingArguments`' own `--gradient_checkpointing`)."""

    bias_lr_multiplier: float = field(default=2.0, metadata={"help": "bias learning rate = lr x this (reference: 2)."})
    random_erasing: float = field(default=0.5, metadata={"help": "probability of random erasing per view."})
    train_interpolation: str = field(
        default="bicubic", metadata={"help": "resize filter in training (eval: bilinear)."}
    )
    overwrite_output_dir: bool = field(
        default=False,
        metadata={"help": "start again in a non-empty --output_dir that an earlier run wrote (never anyone else's)."},
    )
    grad_cache_chunk: int = field(
        default=0,
        metadata={
            "help": "GradCache: encode the batch in chunks of this many pairs (rows of the loss; under MLA an image "
            "gives 3), so CMPM / ITC see the whole batch while memory holds one chunk's activations; 0 = off. "
            "With --gradient_checkpointing, the paper's 112-image batch on one device (benchmarks/README.md)."
        },
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
        at_least("--grad_cache_chunk", self.grad_cache_chunk, 0)


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


__all__ = ["RECIPES", "ModelArguments", "StageArguments", "at_least"]

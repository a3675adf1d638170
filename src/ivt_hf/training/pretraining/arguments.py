"""What `ivt pretrain` is told: `ModelArguments` (the model, as in fine-tuning), `DataArguments` (the pairs, in the
data vocabulary of every command: `--dataset_name`, `--image_column`, `--caption_column`, `--revision`,
`--on_invalid`) and `PretrainingArguments` (the `TrainingArguments` with pre-training's own knobs), from flags or a
recipe JSON followed by flags."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...data.arguments import PAIR_FIELDS, DataArguments
from ...data.mixture import mix_weights
from ...errors import IVTInputError
from ..arguments import ModelArguments, StageArguments, at_least
from ..stage import parse_stage_args, read_recipe


@dataclass
class PretrainingArguments(StageArguments):
    """Pre-training's own arguments, beside `ModelArguments` (the model, shared with fine-tuning). Everything
    `TrainingArguments` names (output_dir, max_steps, per_device_train_batch_size (pairs), learning_rate, optim,
    weight_decay, warmup_steps, lr_scheduler_type / lr_scheduler_kwargs, max_grad_norm, fp16 / bf16, seed,
    save_steps, save_total_limit, logging_steps, resume_from_checkpoint, dataloader_num_workers, use_cpu) keeps its
    name and meaning here; its other fields (evaluation, hub, ...) are not used by pre-training."""

    itc_normalize: bool | None = field(
        default=None, metadata={"help": "ITC on L2-normalised CLS (default true); false = the authors' raw CLS."}
    )
    itc_temperature: float | None = field(default=None, metadata={"help": "initial temperature (0.07; authors 0.5)."})
    itc_clamp_temperature: bool = field(
        default=True, metadata={"help": "clamp the temperature to [0.001, 0.5] (false = unclamped, the authors')."}
    )
    gather_itc: bool = field(
        default=True, metadata={"help": "ITC over the pairs of all processes (with gradients); false = per process."}
    )
    max_steps: int = field(
        default=-1,
        metadata={
            "help": "(required) optimiser steps to train, >= 1. As in `ivt train`, -1 would mean 'by epochs', which a "
            "stream of pairs does not have; 0 and negative values are refused."
        },
    )
    max_text_tokens: int = field(default=50, metadata={"help": "[CLS] + at most this - 1 tokens, padded (no [SEP])."})
    max_caption_words: int = field(default=50)
    mlm_probability: float = field(default=0.25)
    mlm_max_predictions: int = field(default=8)
    mlm_span_probability: float = field(default=0.2)
    mlm_max_span_words: int = field(default=3)
    shuffle_buffer_size: int = field(
        default=1000,
        metadata={
            "help": "pairs each process keeps and draws its batches from at random, so that a batch mixes "
            "shards (0: the stream's order, one shard at a time). Saved in every checkpoint (about this many "
            "encoded images per process)."
        },
    )
    log_pair_keys: bool = field(
        default=False, metadata={"help": "write the pairs each process trained on (pair_keys_rank*.jsonl), to audit."}
    )

    def __post_init__(self):
        if not self.output_dir:
            raise IVTInputError("--output_dir is required: the pre-training output (and its checkpoints)")
        if not self.use_cpu:
            import torch

            # without a GPU the run is on the CPU: say so before TrainingArguments sets up the processes' group
            self.use_cpu = not torch.cuda.is_available()
        super().__post_init__()
        if self.max_steps < 1:
            raise IVTInputError(
                f"--max_steps must be >= 1 (a stream has no length), got {self.max_steps}; -1, by epochs in "
                "`ivt train`, does not apply"
            )
        if self.per_device_train_batch_size < 2:
            raise IVTInputError("--per_device_train_batch_size must be >= 2: ITM draws its negatives from the batch")
        if self.shuffle_buffer_size < 0:
            raise IVTInputError(f"--shuffle_buffer_size must be >= 0, got {self.shuffle_buffer_size}")
        if self.max_text_tokens < 2:
            raise IVTInputError(f"--max_text_tokens must be >= 2, got {self.max_text_tokens}")
        for flag, probability in (
            ("--mlm_probability", self.mlm_probability),
            ("--mlm_span_probability", self.mlm_span_probability),
        ):
            if not 0 <= probability <= 1:
                raise IVTInputError(f"{flag} must be in [0, 1], got {probability}")
        for flag, count in (
            ("--mlm_max_predictions", self.mlm_max_predictions),
            ("--mlm_max_span_words", self.mlm_max_span_words),
            ("--max_caption_words", self.max_caption_words),
        ):
            at_least(flag, count, 1)

    def every(self, steps: float) -> int:
        """A `logging_steps` / `save_steps` value in steps: as given when >= 1, else that fraction of `max_steps`."""
        return int(steps) if steps >= 1 else max(1, round(steps * self.max_steps))


@dataclass
class PairDataArguments(DataArguments):
    """`DataArguments` of pre-training, whose pairs may come from several sources mixed by weight:
    `--dataset_name A B --mix_weights 0.7 0.3` (`ivt_hf.data.mixture`)."""

    dataset_name: list[str] | None = field(
        default=None,
        metadata={
            "help": "(required) image-text pairs: a folder of WebDataset / parquet shards, an image folder, a "
            "save_to_disk folder, a corpus folder as published (WebPerson, LUPerson-MLLM, MALS, SYNTH-PEDES: "
            "docs/corpora.md) or a Hub dataset id ORG/NAME; several are mixed (--mix_weights)."
        },
    )
    mix_weights: list[float] | None = field(
        default=None,
        metadata={"help": "one weight per --dataset_name source: its share of the pairs (default: equal shares)."},
    )

    def __post_init__(self):
        if isinstance(self.dataset_name, str):  # a recipe's (or an old run's) single source
            self.dataset_name = [self.dataset_name]
        if self.data_dir is not None:
            raise IVTInputError("--data_dir does not apply to ivt pretrain (image-text pairs)")
        super().__post_init__()
        if self.dataset_name is not None:
            mix_weights(self.dataset_name, self.mix_weights)  # before anything is read

    @property
    def name(self) -> str:
        """The sources, as messages name them."""
        if not self.dataset_name:
            raise IVTInputError("give --dataset_name: the pairs to pre-train on")
        return " + ".join(self.dataset_name)


ARGUMENT_CLASSES = (ModelArguments, PairDataArguments, PretrainingArguments)


def read_pretraining_recipe(path: str | Path) -> dict[str, Any]:
    """A pre-training recipe: one JSON object of flag values; keys starting with `_` are notes."""
    return read_recipe(path, known={name for cls in ARGUMENT_CLASSES for name in cls.__dataclass_fields__})


def parse_pretraining_args(
    argv: list[str] | None = None,
) -> tuple[ModelArguments, PairDataArguments, PretrainingArguments]:
    """Command-line flags, or one recipe JSON file followed by flags that override it (`stage.parse_stage_args`);
    the pairs must be named (`--dataset_name`), and data settings that pairs do not take are refused."""
    model_args, data_args, args = parse_stage_args(ARGUMENT_CLASSES, argv, prog="ivt pretrain")
    check_pair_data(data_args)
    return model_args, data_args, args


def check_pair_data(data_args: DataArguments) -> None:
    """Pre-training reads image-text pairs: `--dataset_name` is required (a folder of shards, an image folder, a
    save_to_disk folder or a Hub id), and the settings of person re-identification data are refused."""
    if data_args.dataset_name is None:
        raise IVTInputError(
            "--dataset_name is required: a folder of shards, an image folder, a save_to_disk folder or a Hub dataset id"
        )
    data_args.refuse_unused((*PAIR_FIELDS, "mix_weights"), "ivt pretrain (image-text pairs)")


__all__ = [
    "PairDataArguments",
    "PretrainingArguments",
    "check_pair_data",
    "parse_pretraining_args",
    "read_pretraining_recipe",
]

"""What `ivt pretrain` is told: `PretrainingArguments` (flags, or a recipe JSON followed by flags) and the presets."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transformers import HfArgumentParser

from ...errors import IVTInputError
from ..arguments import MODEL_PRESETS, RECIPES, read_recipe

PRETRAINING_PRESETS: dict[str, dict[str, Any]] = {
    "base": {},  # ViT-B/16 widths, 6 fusion layers (bert-base-uncased layers 0-5)
    "tiny": MODEL_PRESETS["tiny"]
    | dict(fusion_num_hidden_layers=2, fusion_hidden_dropout=0.0, fusion_attention_dropout=0.0),
}
PRETRAINING_RECIPE = RECIPES / "pretrain-ivt.json"


@dataclass
class PretrainingArguments:
    """Everything `ivt pretrain` is told (flags, or a recipe JSON followed by flags)."""

    train_data: str = field(
        metadata={"help": "image-text pairs: a folder of WebDataset .tar shards (KEY.jpg + KEY.txt), an image folder "
                  "with metadata.jsonl, a save_to_disk folder, or a Hub dataset id ORG/NAME."}
    )  # fmt: skip
    output_dir: str = field(
        metadata={"help": "the final IVTForPreTraining folder (fine-tune from it with --model_name_or_path), with "
                  "checkpoint-STEP/ folders, log.jsonl and pretrain_results.json."}
    )  # fmt: skip
    max_steps: int = field(default=1000, metadata={"help": "optimizer steps (a stream has no length)."})
    model_preset: str = field(default="base", metadata={"help": "base (ViT-B/16 + 6 fusion layers) or tiny (CPU)."})
    model_name_or_path: str | None = field(
        default=None,
        metadata={"help": "start from a folder: an IVTForPreTraining (continue pre-training) or an IVTModel (its "
                  "encoder; the fusion encoder and heads start fresh)."},
    )  # fmt: skip
    vit_checkpoint: str | None = field(default=None, metadata={"help": "ViT-B/16 to start the encoder from."})
    bert_checkpoint: str | None = field(
        default=None,
        metadata={"help": "bert-base-uncased to start the text side AND the fusion encoder (layers 0-5) and MLM "
                  "head from."},
    )  # fmt: skip
    backbone_revision: str | None = field(default=None)
    patch_stride: int | None = field(default=None, metadata={"help": "patch stride (the authors pre-train at 16)."})
    itc_normalize: bool | None = field(
        default=None,
        metadata={"help": "ITC on L2-normalised CLS (default true); false = the authors' raw CLS."},
    )
    itc_temperature: float | None = field(default=None, metadata={"help": "initial temperature (0.07; authors 0.5)."})
    itc_clamp_temperature: bool = field(
        default=True, metadata={"help": "clamp the temperature to [0.001, 0.5] (false = unclamped, the authors')."}
    )
    gather_itc: bool = field(
        default=True, metadata={"help": "ITC over the pairs of all processes (with gradients); false = per process."}
    )
    per_device_train_batch_size: int = field(default=48, metadata={"help": "pairs per process per micro-batch."})
    gradient_accumulation_steps: int = field(default=1)
    optim: str = field(default="adamw_torch", metadata={"help": "adamw_torch or sgd (momentum 0.9)."})
    learning_rate: float = field(default=1e-4)
    bias_lr_multiplier: float = field(default=1.0)
    weight_decay: float = field(
        default=0.02, metadata={"help": "on weight matrices only (biases, norms and the temperature: none)."}
    )
    warmup_ratio: float = field(default=0.04, metadata={"help": "linear warm-up over this fraction of max_steps."})
    min_lr: float = field(default=1e-6, metadata={"help": "cosine decay ends at this learning rate."})
    max_grad_norm: float = field(default=0.0, metadata={"help": "clip gradients to this norm (0 = no clipping)."})
    mixed_precision: str = field(default="no", metadata={"help": "no, fp16 (GPU) or bf16."})
    seed: int = field(
        default=42,
        metadata={"help": "the model's initialisation and the data order; process r draws its dropout and ITM "
                  "negatives from seed + r."},
    )  # fmt: skip
    save_steps: int = field(default=1000)
    save_total_limit: int | None = field(default=2, metadata={"help": "checkpoints kept (oldest removed first)."})
    resume_from_checkpoint: str | None = field(
        default=None, metadata={"help": "'latest' (the newest checkpoint in output_dir) or a checkpoint folder."}
    )
    overwrite_output_dir: bool = field(default=False)
    logging_steps: int = field(default=50)
    max_text_tokens: int = field(default=50, metadata={"help": "[CLS] + at most this - 1 tokens, padded (no [SEP])."})
    max_caption_words: int = field(default=50)
    mlm_probability: float = field(default=0.25)
    mlm_max_predictions: int = field(default=8)
    mlm_span_probability: float = field(default=0.2)
    mlm_max_span_words: int = field(default=3)
    random_erasing: float = field(default=0.5)
    train_interpolation: str = field(default="bicubic")
    shuffle_buffer_size: int = field(
        default=1000,
        metadata={"help": "pairs each process keeps and draws its batches from at random, so that a batch mixes "
                  "shards (0: the stream's order, one shard at a time). Saved in every checkpoint (about this many "
                  "encoded images per process)."},
    )  # fmt: skip
    dataloader_num_workers: int = field(
        default=4,
        metadata={"help": "processes decoding and augmenting images, tokenising and masking, per training process (0: "
                  "in the training process). benchmarks/README.md measures how many a GPU needs."},
    )  # fmt: skip
    image_column: str | None = field(default=None)
    caption_column: str | None = field(default=None)
    revision: str | None = field(default=None, metadata={"help": "branch, tag or commit of a Hub dataset."})
    on_invalid: str = field(
        default="raise",
        metadata={"help": "raise, or skip (count and log) broken pairs: no image, no caption, an image that does not "
                  "decode."},
    )  # fmt: skip
    log_pair_keys: bool = field(
        default=False, metadata={"help": "write the pairs each process trained on (pair_keys_rank*.jsonl), to audit."}
    )
    use_cpu: bool = field(default=False, metadata={"help": "train on the CPU even when a GPU is present."})

    def __post_init__(self):
        if self.max_steps < 1:
            raise IVTInputError(f"--max_steps must be >= 1, got {self.max_steps}")
        for name in ("per_device_train_batch_size", "gradient_accumulation_steps", "save_steps", "logging_steps"):
            if getattr(self, name) < 1:
                raise IVTInputError(f"--{name} must be >= 1, got {getattr(self, name)}")
        if self.per_device_train_batch_size < 2:
            raise IVTInputError("--per_device_train_batch_size must be >= 2: ITM draws its negatives from the batch")
        for name in ("shuffle_buffer_size", "dataloader_num_workers"):
            if getattr(self, name) < 0:
                raise IVTInputError(f"--{name} must be >= 0, got {getattr(self, name)}")
        if self.mixed_precision not in ("no", "fp16", "bf16"):
            raise IVTInputError(f"--mixed_precision must be no, fp16 or bf16, got {self.mixed_precision!r}")
        if self.model_preset not in PRETRAINING_PRESETS:
            raise IVTInputError(
                f"--model_preset must be one of {sorted(PRETRAINING_PRESETS)}, got {self.model_preset!r}"
            )
        if self.max_text_tokens < 2:
            raise IVTInputError(f"--max_text_tokens must be >= 2, got {self.max_text_tokens}")
        if self.on_invalid not in ("raise", "skip"):
            raise IVTInputError(f"--on_invalid must be raise or skip, got {self.on_invalid!r}")


def read_pretraining_recipe(path: str | Path) -> dict[str, Any]:
    """A pre-training recipe: one JSON object of flag values; keys starting with `_` are notes."""
    return read_recipe(path, known=set(PretrainingArguments.__dataclass_fields__))


def parse_pretraining_args(argv: list[str] | None = None) -> PretrainingArguments:
    parser = HfArgumentParser(PretrainingArguments, prog="ivt pretrain")
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0].endswith(".json"):
        recipe = read_pretraining_recipe(argv[0])
        argv = argv[1:]
        for action in parser._actions:  # a recipe's value satisfies a required flag; flags after it override it
            if action.dest in recipe:
                action.required = False
        parser.set_defaults(**recipe)
    (args,) = parser.parse_args_into_dataclasses(args=argv)
    return args


__all__ = [
    "PRETRAINING_PRESETS",
    "PRETRAINING_RECIPE",
    "PretrainingArguments",
    "parse_pretraining_args",
    "read_pretraining_recipe",
]

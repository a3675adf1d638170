"""Training IVT with the HF `Trainer`: MLA batches, BMM inside the model, the CMPM loss, retrieval validation.

`IVTTrainer` overrides little: the training data loader (P x K identity batches with keyed augmentation),
`compute_loss` (one forward of both modalities, CMPM over the 3B pairs, optionally over all processes), the
optimizer's parameter groups (the reference's doubled bias learning rate) and `evaluate` (R@K / mAP / mINP on the
validation split, never the test split, so that `load_best_model_at_end` selects on validation).

`main(argv)` is the body of `scripts/train.py`; its docstring shows the launch commands.
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader
from transformers import HfArgumentParser, Trainer, TrainingArguments, set_seed

from .collator import KeyedBatchSampler, MLACollator, TrainImageDataset
from .configuration_ivt import IVTConfig
from .hub import register_for_remote_code
from .losses import cmpm_loss_terms, gather_embeddings_and_labels
from .modeling_ivt import IVTModel
from .processing_ivt import IVTProcessor
from .retrieval import evaluate_split
from .sampler import IdentityBatchSampler
from .transforms import TrainTransform

logger = logging.getLogger(__name__)

# Architecture presets. "base" is the reference ViT-B/16 model; "tiny" is sized for CPU runs (demo, tests).
MODEL_PRESETS: dict[str, dict[str, Any]] = {
    "base": {},
    "tiny": dict(
        hidden_size=128,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=256,
        image_size=(128, 64),
        patch_size=16,
        patch_stride=16,
        max_position_embeddings=128,
        drop_path_rate=0.0,
        text_embedding_dropout=0.0,  # nn.Dropout is very slow on this CPU; the synthetic data does not need it
    ),
}


@dataclass
class IVTTrainingArguments(TrainingArguments):
    """`TrainingArguments` plus the IVT training knobs. `per_device_train_batch_size` counts IMAGES (P x K); each
    image gives three pairs."""

    images_per_id: int = field(default=4, metadata={"help": "K of the P x K identity sampler."})
    multi_level_alignment: bool = field(
        default=True, metadata={"help": "MLA: word/phrase/sentence texts; false = three sentence-level texts."}
    )
    gather_loss: bool = field(
        default=False,
        metadata={"help": "CMPM over the pairs of all processes (global negatives); false = per process, as the "
                  "reference."},
    )  # fmt: skip
    bias_lr_multiplier: float = field(default=2.0, metadata={"help": "bias learning rate = lr x this (reference: 2)."})
    random_erasing: float = field(default=0.5, metadata={"help": "probability of random erasing per view."})
    train_interpolation: str = field(
        default="bicubic", metadata={"help": "resize filter in training (eval: bilinear)."}
    )
    cache_train_images: bool = field(default=False, metadata={"help": "decode training images once into memory."})
    text_length_buckets: int = field(
        default=1,
        metadata={"help": "run the text pass as this many length-sorted groups, each trimmed to its longest text "
                  "(less padding for MLA's short word/phrase texts; 1 = one padded batch, as the reference)."},
    )  # fmt: skip
    eval_max_queries: int | None = field(default=None, metadata={"help": "cap validation captions (speed)."})
    remove_unused_columns: bool = field(default=False)
    ddp_find_unused_parameters: bool | None = field(default=False)


def build_optimizer(
    model: torch.nn.Module,
    optim: str,
    *,
    lr: float,
    weight_decay: float,
    bias_lr_multiplier: float = 2.0,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
) -> torch.optim.Optimizer:
    """The IVT optimizer: `"sgd"` (momentum 0.9, the reference) or `"adamw..."`; two parameter groups, biases at
    `lr * bias_lr_multiplier`; weight decay on every parameter, as the reference. AdamW uses PyTorch's fused kernel
    on CPU and CUDA (same update, several times faster than the per-tensor loop: `benchmarks/demo_recipe_sweep.py
    parts`)."""
    weights = [p for name, p in model.named_parameters() if p.requires_grad and not name.endswith(".bias")]
    biases = [p for name, p in model.named_parameters() if p.requires_grad and name.endswith(".bias")]
    groups = [
        {"params": weights, "lr": lr, "weight_decay": weight_decay},
        {"params": biases, "lr": lr * bias_lr_multiplier, "weight_decay": weight_decay},
    ]
    if optim == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=0.9)
    if optim.startswith("adamw"):
        fused = all(p.device.type in ("cpu", "cuda") for p in weights + biases)
        return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps, fused=fused or None)
    raise ValueError(f"optim must be 'sgd' or 'adamw_torch' for IVTTrainer, got {optim!r}")


class IVTTrainer(Trainer):
    """A `Trainer` for IVT. Pass `train_dataset=TrainImageDataset(...)`, `eval_dataset=<image-level split>`,
    `data_collator=MLACollator(...)` and `processing_class=IVTProcessor`."""

    loss_is_scaled_for_ga = False  # compute_loss returns a per-batch mean; the Trainer divides by the GA steps

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._loss_term_sums = {"loss_image_to_text": 0.0, "loss_text_to_image": 0.0}
        self._loss_term_count = 0

    def get_train_dataloader(self) -> DataLoader:
        args = self.args
        if args.per_device_train_batch_size % args.images_per_id:
            raise ValueError(
                f"per_device_train_batch_size ({args.per_device_train_batch_size}) must be a multiple of "
                f"images_per_id ({args.images_per_id}): batches hold P identities x K images"
            )
        identity_sampler = IdentityBatchSampler(
            self.train_dataset.person_ids,
            images_per_id=args.images_per_id,
            ids_per_batch=args.per_device_train_batch_size // args.images_per_id,
            num_replicas=args.world_size,
            rank=args.process_index,
            seed=args.data_seed if args.data_seed is not None else args.seed,
            drop_last=True,
            yield_all_replicas=True,  # accelerate's BatchSamplerShard hands batch i to process i % world_size
        )
        if len(identity_sampler) == 0:
            raise ValueError(
                f"the training split ({len(self.train_dataset)} images) is too small for one batch of "
                f"{args.per_device_train_batch_size} images on {args.world_size} process(es)"
            )
        loader = DataLoader(
            self.train_dataset,
            batch_sampler=KeyedBatchSampler(identity_sampler),
            collate_fn=self.data_collator,
            num_workers=args.dataloader_num_workers,
            pin_memory=args.dataloader_pin_memory,
            persistent_workers=args.dataloader_persistent_workers and args.dataloader_num_workers > 0,
        )
        return self.accelerator.prepare(loader)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        labels = inputs["labels"]
        # one forward for both modalities, so that DDP sees every parameter used in this step
        outputs = model(
            pixel_values=inputs["pixel_values"],
            input_ids=inputs["input_ids"],
            attention_mask=inputs["attention_mask"],
            text_length_buckets=self.args.text_length_buckets,
        )
        image_embeds, text_embeds = outputs.image_embeds, outputs.text_embeds
        if self.args.gather_loss:
            image_embeds, text_embeds, labels = gather_embeddings_and_labels(image_embeds, text_embeds, labels)
        terms = cmpm_loss_terms(image_embeds, text_embeds, labels)
        if model.training:
            self._loss_term_sums["loss_image_to_text"] += float(terms.image_to_text.detach())
            self._loss_term_sums["loss_text_to_image"] += float(terms.text_to_image.detach())
            self._loss_term_count += 1
        loss = terms.image_to_text + terms.text_to_image
        return (loss, outputs) if return_outputs else loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs and self._loss_term_count:
            for name, total in self._loss_term_sums.items():
                logs[name] = round(total / self._loss_term_count, 4)
                self._loss_term_sums[name] = 0.0
            self._loss_term_count = 0
        super().log(logs, start_time)

    def create_optimizer(self, model=None):
        """SGD (momentum 0.9) or AdamW per `args.optim`; biases get `lr * bias_lr_multiplier`; weight decay on all
        parameters, as the reference."""
        if self.optimizer is not None:
            return self.optimizer
        args = self.args
        self.optimizer = build_optimizer(
            self.model if model is None else model,
            str(getattr(args.optim, "value", args.optim)),
            lr=args.learning_rate,
            weight_decay=args.weight_decay,
            bias_lr_multiplier=args.bias_lr_multiplier,
            betas=(args.adam_beta1, args.adam_beta2),
            eps=args.adam_epsilon,
        )
        return self.optimizer

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval") -> dict[str, float]:
        """Text-to-image retrieval metrics on the validation split (every process computes the same numbers, so that
        best-model selection agrees across processes)."""
        image_split = eval_dataset if eval_dataset is not None else self.eval_dataset
        if image_split is None:
            raise ValueError("IVTTrainer.evaluate needs an image-level eval split (the validation split)")
        model = self.accelerator.unwrap_model(self.model)
        evaluation = evaluate_split(
            model,
            self.processing_class,
            image_split,
            batch_size=self.args.per_device_eval_batch_size,
            max_queries=self.args.eval_max_queries,
            progress=self.is_world_process_zero() and not self.args.disable_tqdm,
        )
        metrics = {f"{metric_key_prefix}_{name}": round(value, 4) for name, value in evaluation.metrics.items()}
        metrics[f"{metric_key_prefix}_seconds"] = evaluation.facts["seconds"]
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics


# ---- the train script -------------------------------------------------------------------------------------------


@dataclass
class ModelArguments:
    model_preset: str = field(default="tiny", metadata={"help": "tiny (CPU) or base (ViT-B/16, the reference)."})
    config_path: str | None = field(default=None, metadata={"help": "an IVTConfig JSON (overrides the preset)."})
    model_name_or_path: str | None = field(
        default=None, metadata={"help": "start from a from_pretrained folder (e.g. a converted authors' checkpoint)."}
    )
    vit_checkpoint: str | None = field(
        default=None, metadata={"help": "ViT-B/16 weights (timm or transformers layout, .safetensors) to start from."}
    )
    bert_checkpoint: str | None = field(
        default=None, metadata={"help": "bert-base-uncased BertModel weights (.safetensors) to start from."}
    )
    patch_stride: int | None = field(default=None, metadata={"help": "12 for CUHK/ICFG, 16 for RSTPReid."})
    image_height: int | None = field(default=None)
    image_width: int | None = field(default=None)
    token_drop_ratio: float | None = field(default=None, metadata={"help": "BMM ratio (0 disables)."})
    token_drop_mode: str | None = field(default=None, metadata={"help": "batch (reference) or per_sample."})
    num_hidden_layers: int | None = field(default=None, metadata={"help": "number of blocks (overrides the preset)."})
    initializer_range: float | None = field(
        default=None, metadata={"help": "std of the random initialisation (default 0.02)."}
    )
    attn_implementation: str | None = field(
        default=None,
        metadata={"help": "eager or sdpa (the default); eager is faster on CPU for the tiny preset's short sequences. "
                  "Not saved with the weights: a reloaded model uses the default."},
    )  # fmt: skip


@dataclass
class DataArguments:
    dataset_name: str = field(
        default="synthpedes", metadata={"help": "cuhk-pedes, icfg-pedes, rstpreid, synthpedes, or a prepared folder."}
    )
    data_root: str | None = field(
        default=None, metadata={"help": "raw benchmark folder; for synthpedes, where it is generated on first use."}
    )
    synth_train_ids: int = field(default=1000)
    synth_validation_ids: int = field(default=100)
    synth_test_ids: int = field(default=200)
    synth_seed: int = field(default=0)
    max_text_length: int | None = field(default=None, metadata={"help": "token limit (default: text positions)."})


def build_model(model_args: ModelArguments) -> IVTModel:
    """A model from a folder, or from a preset / config file with optional backbone initialisation."""
    attn_implementation = model_args.attn_implementation
    if attn_implementation not in (None, "eager", "sdpa"):
        raise ValueError(f"--attn_implementation must be 'eager' or 'sdpa', got {attn_implementation!r}")
    overrides = {
        key: value
        for key, value in {
            "patch_stride": model_args.patch_stride,
            "token_drop_ratio": model_args.token_drop_ratio,
            "token_drop_mode": model_args.token_drop_mode,
            "initializer_range": model_args.initializer_range,
            "num_hidden_layers": model_args.num_hidden_layers,
        }.items()
        if value is not None
    }
    if model_args.image_height or model_args.image_width:
        if not (model_args.image_height and model_args.image_width):
            raise ValueError("give both --image_height and --image_width")
        overrides["image_size"] = (model_args.image_height, model_args.image_width)
    if model_args.model_name_or_path:
        from transformers import AutoModel

        for key in ("patch_stride", "image_size", "num_hidden_layers"):
            if key in overrides:
                raise ValueError(f"--{key} cannot change a pretrained model's architecture")
        if attn_implementation is not None:
            overrides["attn_implementation"] = attn_implementation
        return AutoModel.from_pretrained(model_args.model_name_or_path, **overrides)
    if model_args.config_path:
        config = IVTConfig.from_json_file(model_args.config_path)
        for key, value in overrides.items():
            setattr(config, key, list(value) if key == "image_size" else value)
        config.validate_ivt()
    else:
        if model_args.model_preset not in MODEL_PRESETS:
            raise ValueError(f"--model_preset must be one of {sorted(MODEL_PRESETS)}, got {model_args.model_preset!r}")
        config = IVTConfig(**(MODEL_PRESETS[model_args.model_preset] | overrides))
    model = IVTModel(config)
    if attn_implementation is not None:
        model.set_attn_implementation(attn_implementation)
    if model_args.vit_checkpoint or model_args.bert_checkpoint:
        from safetensors.torch import load_file

        from .backbones import load_backbones

        load_backbones(
            model,
            load_file(model_args.vit_checkpoint) if model_args.vit_checkpoint else None,
            load_file(model_args.bert_checkpoint) if model_args.bert_checkpoint else None,
        )
    return model


def load_training_data(data_args: DataArguments, image_size: tuple[int, int]):
    """The benchmark's DatasetDict. SynthPEDES is rendered at the model's input size (no resize needed)."""
    from .data import is_prepared, load_benchmark, load_prepared

    if data_args.dataset_name not in ("cuhk-pedes", "icfg-pedes", "rstpreid", "synthpedes"):
        if is_prepared(data_args.dataset_name):
            return load_prepared(data_args.dataset_name)
        raise ValueError(f"--dataset_name {data_args.dataset_name!r} is neither a benchmark name nor a prepared folder")
    if data_args.dataset_name == "synthpedes":
        return load_benchmark(
            "synthpedes",
            data_args.data_root,
            split_ids={
                "train": data_args.synth_train_ids,
                "validation": data_args.synth_validation_ids,
                "test": data_args.synth_test_ids,
            },
            image_size=tuple(image_size),
            seed=data_args.synth_seed,
        )
    if data_args.data_root is None:
        raise ValueError(f"--data_root is required for {data_args.dataset_name}")
    return load_benchmark(data_args.dataset_name, data_args.data_root)


def build_trainer(model_args: ModelArguments, data_args: DataArguments, training_args: IVTTrainingArguments):
    """Model, processor, data, collator and trainer, ready for `trainer.train()`."""
    set_seed(training_args.seed)  # before the model exists: its random initialisation must follow the seed
    model = build_model(model_args)
    processor = IVTProcessor.from_config(model.config)
    register_for_remote_code(model, processor)  # checkpoints carry auto_map + modules
    data = load_training_data(data_args, tuple(model.config.image_size))
    if "train" not in data:
        raise ValueError(f"{data_args.dataset_name} has no train split")
    eval_split = data.get("validation")
    if eval_split is None and training_args.eval_strategy != "no":
        raise ValueError(
            f"{data_args.dataset_name} has no validation split; set --eval_strategy no (the test split is never used "
            "for model selection)"
        )
    transform = TrainTransform(
        image_size=tuple(model.config.image_size),
        padding=max(1, round(10 * model.config.image_size[0] / 384)),  # the reference's 10 px at 384 high
        erase_p=training_args.random_erasing,
        interpolation=training_args.train_interpolation,
    )
    collator = MLACollator(
        processor,
        transform,
        seed=training_args.seed,
        multi_level=training_args.multi_level_alignment,
        max_length=data_args.max_text_length or model.config.max_position_embeddings,
    )
    trainer = IVTTrainer(
        model=model,
        args=training_args,
        train_dataset=TrainImageDataset(data["train"], cache_images=training_args.cache_train_images),
        eval_dataset=eval_split,
        data_collator=collator,
        processing_class=processor,
    )
    trainer.benchmark = data  # the whole DatasetDict (test split included), for evaluation after training
    return trainer


def save_final_model(trainer: IVTTrainer, output_dir: str | Path) -> Path:
    """`save_model` (model + processor, with `auto_map`), with the training arguments as JSON instead of the
    Trainer's pickled `training_args.bin`: a folder meant for sharing should not carry a pickle."""
    trainer.save_model(str(output_dir))
    output_dir = Path(output_dir)
    if trainer.is_world_process_zero():
        (output_dir / "training_args.bin").unlink(missing_ok=True)
        (output_dir / "training_args.json").write_text(trainer.args.to_json_string())
    return output_dir


def parse_args(argv: list[str] | None = None) -> tuple[ModelArguments, DataArguments, IVTTrainingArguments]:
    """Command-line flags, or one JSON recipe file followed by flags that override it."""
    parser = HfArgumentParser((ModelArguments, DataArguments, IVTTrainingArguments))
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0].endswith(".json"):
        recipe = json.loads(Path(argv[0]).read_text())
        recipe_args = []
        for key, value in recipe.items():
            if isinstance(value, list):
                recipe_args += [f"--{key}", *map(str, value)]
            elif isinstance(value, dict):
                recipe_args += [f"--{key}", json.dumps(value)]
            else:
                recipe_args += [f"--{key}", str(value)]
        argv = recipe_args + argv[1:]
    return parser.parse_args_into_dataclasses(args=argv)


def main(argv: list[str] | None = None) -> dict[str, float]:
    model_args, data_args, training_args = parse_args(argv)
    logging.basicConfig(level=logging.INFO if training_args.process_index == 0 else logging.WARNING)
    trainer = build_trainer(model_args, data_args, training_args)
    world_size = training_args.world_size
    logger.info(
        "training on %d process(es), device %s; %d train images; batch %d images = %d pairs per process",
        world_size,
        training_args.device,
        len(trainer.train_dataset),
        training_args.per_device_train_batch_size,
        3 * training_args.per_device_train_batch_size,
    )
    resume = training_args.resume_from_checkpoint
    if resume in ("true", "True", "latest"):
        resume = True
    result = trainer.train(resume_from_checkpoint=resume)
    save_final_model(trainer, training_args.output_dir)  # the best model when load_best_model_at_end
    metrics = dict(result.metrics) | {"world_size": world_size}
    if trainer.is_world_process_zero():
        Path(training_args.output_dir).mkdir(parents=True, exist_ok=True)
        (Path(training_args.output_dir) / "train_results.json").write_text(json.dumps(metrics, indent=1))
    return metrics


__all__ = [
    "MODEL_PRESETS",
    "DataArguments",
    "IVTTrainer",
    "IVTTrainingArguments",
    "ModelArguments",
    "build_model",
    "build_optimizer",
    "build_trainer",
    "main",
    "parse_args",
    "save_final_model",
]

"""Vision-language pre-training of IVT (the authors' first stage): ITC + ITM + MLM on a stream of image-text pairs.

`main(argv)` is `ivt pretrain` and `scripts/pretrain.py`. The loop is plain accelerate (not the `Trainer`): the data is
an endless stream (`ivt_hf.data.PairStream`: each process reads its own shards, every pair once per epoch), and a
checkpoint must hold each process's position in it, so that a resumed run continues with exactly the next pairs.

A checkpoint (`OUTPUT/checkpoint-STEP/`) holds no pickle: the model in safetensors, the optimizer / scheduler / scaler
states and every process's random-number states as tensors (`torch.load(..., weights_only=True)`), and the stream
positions and the step as JSON. Masks and augmentations are drawn from generators seeded by (seed, process, batch), so
they do not depend on what ran before.
"""

from __future__ import annotations

import io
import json
import logging
import math
import random
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from transformers import HfArgumentParser, get_cosine_with_min_lr_schedule_with_warmup

from ..data.pairs import PairDataError, PairStream, clean_caption
from ..errors import InputNotFoundError, IVTInputError, OutputExistsError
from ..hub.folder import register_for_remote_code, save_model_folder
from ..model.configuration_ivt import IVTConfig
from ..model.modeling_ivt import IVTForPreTraining
from ..model.processing_ivt import IVTProcessor
from .arguments import MODEL_PRESETS, RECIPES, read_recipe
from .distributed import all_gather_with_grad
from .masking import IGNORE_INDEX, MaskingRules, whole_word_mask
from .optim import build_optimizer
from .transforms import TrainTransform, reference_padding

logger = logging.getLogger(__name__)

PRETRAINING_PRESETS: dict[str, dict[str, Any]] = {
    "base": {},  # ViT-B/16 widths, 6 fusion layers (bert-base-uncased layers 0-5)
    "tiny": MODEL_PRESETS["tiny"]
    | dict(fusion_num_hidden_layers=2, fusion_hidden_dropout=0.0, fusion_attention_dropout=0.0),
}
PRETRAINING_RECIPE = RECIPES / "pretrain-ivt.json"
CHECKPOINT_PREFIX = "checkpoint-"


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
    weight_decay: float = field(default=0.02)
    warmup_ratio: float = field(default=0.04, metadata={"help": "linear warm-up over this fraction of max_steps."})
    min_lr: float = field(default=1e-6, metadata={"help": "cosine decay ends at this learning rate."})
    max_grad_norm: float = field(default=0.0, metadata={"help": "clip gradients to this norm (0 = no clipping)."})
    mixed_precision: str = field(default="no", metadata={"help": "no, fp16 (GPU) or bf16."})
    seed: int = field(default=42)
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
    preprocessing_threads: int = field(
        default=1,
        metadata={"help": "threads decoding and augmenting images (on 2 CPU cores 1 is fastest for small images: "
                  "benchmarks/README.md; large web JPEGs on a many-core GPU host may gain from more)."},
    )  # fmt: skip
    image_column: str | None = field(default=None)
    caption_column: str | None = field(default=None)
    revision: str | None = field(default=None, metadata={"help": "branch, tag or commit of a Hub dataset."})
    on_invalid: str = field(default="raise", metadata={"help": "raise, or skip (and count) broken pairs."})
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


# ---------------------------------------------------------------------------------------------------------------- data


class PairCollator:
    """Pairs from the stream -> a pre-training batch: augmented images, cleaned captions as `[CLS]` + tokens padded to
    `max_text_tokens` (no `[SEP]`, as the authors), and the whole-word-masked copy with its labels.

    Randomness is a pure function of (seed, rank, batch index): a resumed run draws the same masks and views."""

    def __init__(
        self,
        tokenizer,
        transform: TrainTransform,
        *,
        seed: int,
        rank: int = 0,
        max_text_tokens: int = 50,
        max_caption_words: int = 50,
        rules: MaskingRules = MaskingRules(),
        threads: int = 1,
    ):
        self.tokenizer = tokenizer
        self.transform = transform
        self.seed = seed
        self.rank = rank
        self.max_text_tokens = max_text_tokens
        self.max_caption_words = max_caption_words
        self.rules = rules
        vocab = tokenizer.get_vocab()
        ordinary = [index for token, index in vocab.items() if not (token.startswith("[") and token.endswith("]"))]
        self.random_token_ids = (min(ordinary), len(vocab))  # BERT: "!" (999) onwards; the [unusedN] come before
        self.mask_token_id = tokenizer.mask_token_id
        self.pad_token_id = tokenizer.pad_token_id
        self.pool = ThreadPoolExecutor(max_workers=threads) if threads > 1 else None

    def _image(self, pair: dict[str, Any], index: int, batch_index: int) -> torch.Tensor:
        try:
            with Image.open(io.BytesIO(pair["image"])) as image:
                image.load()
                image = image.convert("RGB")
        except Exception as error:
            raise PairDataError(
                f"pair {pair['key']}: the image does not decode ({type(error).__name__}: {error})"
            ) from None
        generator = torch.Generator().manual_seed(hash((self.seed, self.rank, batch_index, index)) % (2**62))
        return self.transform(image, generator)

    def caption_tokens(self, caption: str, key: str) -> list[str]:
        """`[CLS]` + the cleaned caption's WordPiece tokens, at most `max_text_tokens` in all (no `[SEP]`)."""
        try:
            words = clean_caption(caption, self.max_caption_words)
        except ValueError as error:
            raise PairDataError(f"pair {key}: {error}") from None
        return [self.tokenizer.cls_token, *self.tokenizer.tokenize(words)[: self.max_text_tokens - 1]]

    def __call__(self, pairs: list[dict[str, Any]], batch_index: int) -> dict[str, torch.Tensor]:
        if self.pool is not None:
            images = list(self.pool.map(lambda item: self._image(item[1], item[0], batch_index), enumerate(pairs)))
        else:
            images = [self._image(pair, index, batch_index) for index, pair in enumerate(pairs)]
        rng = random.Random(f"{self.seed}-{self.rank}-{batch_index}")
        length = self.max_text_tokens
        input_ids = torch.full((len(pairs), length), self.pad_token_id, dtype=torch.long)
        mlm_input_ids = input_ids.clone()
        mlm_labels = torch.full((len(pairs), length), IGNORE_INDEX, dtype=torch.long)
        attention_mask = torch.zeros((len(pairs), length), dtype=torch.long)
        for row, pair in enumerate(pairs):
            tokens = self.caption_tokens(pair["caption"], pair["key"])
            ids = self.tokenizer.convert_tokens_to_ids(tokens)
            masked, labels = whole_word_mask(
                ids,
                tokens,
                mask_token_id=self.mask_token_id,
                random_token_ids=self.random_token_ids,
                rng=rng,
                rules=self.rules,
            )
            input_ids[row, : len(ids)] = torch.tensor(ids)
            mlm_input_ids[row, : len(ids)] = torch.tensor(masked)
            mlm_labels[row, : len(ids)] = torch.tensor(labels)
            attention_mask[row, : len(ids)] = 1
        return {
            "pixel_values": torch.stack(images),
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "mlm_input_ids": mlm_input_ids,
            "mlm_labels": mlm_labels,
        }


# --------------------------------------------------------------------------------------------------------------- model


def build_pretraining_model(args: PretrainingArguments) -> IVTForPreTraining:
    """A model from a folder, or from a preset with optional public-backbone initialisation."""
    overrides: dict[str, Any] = {}
    if args.patch_stride is not None:
        overrides["patch_stride"] = args.patch_stride
    if args.itc_normalize is not None:
        overrides["itc_normalize"] = args.itc_normalize
    if args.itc_temperature is not None:
        overrides["itc_temperature"] = args.itc_temperature
    if not args.itc_clamp_temperature:
        overrides["itc_temperature_range"] = None
    if args.model_name_or_path:
        if args.vit_checkpoint or args.bert_checkpoint or "patch_stride" in overrides:
            raise IVTInputError("--vit_checkpoint, --bert_checkpoint and --patch_stride start a new model; they cannot "
                             "apply to --model_name_or_path")  # fmt: skip
        model = IVTForPreTraining.from_pretrained(args.model_name_or_path, **overrides)
        model.config.validate_ivt()
        return model
    config = IVTConfig(**(PRETRAINING_PRESETS[args.model_preset] | overrides))
    model = IVTForPreTraining(config)
    if args.vit_checkpoint or args.bert_checkpoint:
        from ..conversion.backbones import load_backbones, read_backbone

        states = {
            f"{kind}_state_dict": read_backbone(source, kind, revision=args.backbone_revision)
            for kind, source in (("vit", args.vit_checkpoint), ("bert", args.bert_checkpoint))
            if source
        }
        load_backbones(model, **states)
    return model


def cosine_schedule(optimizer: torch.optim.Optimizer, args: PretrainingArguments) -> torch.optim.lr_scheduler.LambdaLR:
    """transformers' linear warm-up over `warmup_ratio * max_steps`, then cosine decay to `min_lr` at `max_steps`
    (the fine-tuning recipes' `cosine_with_min_lr`; every parameter group decays to the same fraction of its rate)."""
    return get_cosine_with_min_lr_schedule_with_warmup(
        optimizer,
        num_warmup_steps=math.ceil(args.warmup_ratio * args.max_steps),
        num_training_steps=args.max_steps,
        min_lr_rate=args.min_lr / args.learning_rate if args.learning_rate > 0 else 0.0,
    )


# --------------------------------------------------------------------------------------------------------- checkpoints


def _rng_state() -> dict[str, torch.Tensor]:
    """Every random-number state of this process as tensors (safe to load with weights_only=True)."""
    python_state = random.getstate()
    numpy_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "python": torch.tensor(python_state[1], dtype=torch.int64),
        "python_gauss": torch.tensor(
            [python_state[0], python_state[2] if python_state[2] is not None else -1.0], dtype=torch.float64
        ),  # fmt: skip
        "numpy": torch.from_numpy(numpy_state[1].astype(np.int64)),
        "numpy_pos": torch.tensor([numpy_state[2], numpy_state[3]], dtype=torch.int64),
        "numpy_gauss": torch.tensor([numpy_state[4]], dtype=torch.float64),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def _set_rng_state(state: dict[str, torch.Tensor]) -> None:
    torch.set_rng_state(state["torch"])
    version, gauss = state["python_gauss"].tolist()
    random.setstate(
        (int(version), tuple(int(item) for item in state["python"].tolist()), None if gauss == -1.0 else gauss)
    )
    position, has_gauss = state["numpy_pos"].tolist()
    np.random.set_state(
        (
            "MT19937",
            state["numpy"].numpy().astype(np.uint32),
            int(position),
            int(has_gauss),
            float(state["numpy_gauss"]),
        )
    )
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def find_checkpoint(output_dir: Path, resume: str) -> Path:
    """`'latest'` -> the newest `checkpoint-STEP` in `output_dir` that is complete; else the folder given."""
    if resume in ("latest", "true", "True"):
        candidates = sorted(
            (path for path in output_dir.glob(f"{CHECKPOINT_PREFIX}*") if (path / "state.json").is_file()),
            key=lambda path: int(path.name[len(CHECKPOINT_PREFIX) :]),
        )
        if not candidates:
            raise InputNotFoundError(f"--resume_from_checkpoint latest: no complete checkpoint in {output_dir}")
        return candidates[-1]
    path = Path(resume)
    if not (path / "state.json").is_file():
        raise InputNotFoundError(f"--resume_from_checkpoint {resume}: not a complete pre-training checkpoint "
                                "(no state.json)")  # fmt: skip
    return path


# ---------------------------------------------------------------------------------------------------------------- loop


@dataclass
class PretrainingResult:
    steps: int
    pairs_seen: int
    seconds: float
    pairs_per_second: float
    last_losses: dict[str, float]
    output_dir: str
    world_size: int


class PretrainingRun:
    """One pre-training run: `run()` trains to `max_steps`, saving and resuming as told."""

    def __init__(self, args: PretrainingArguments):
        from accelerate import Accelerator
        from accelerate.utils import DistributedDataParallelKwargs

        self.args = args
        use_cpu = args.use_cpu or not torch.cuda.is_available()
        if args.mixed_precision == "fp16" and use_cpu:
            raise IVTInputError("--mixed_precision fp16 needs a GPU; on a CPU use bf16 or no")
        self.accelerator = Accelerator(
            mixed_precision=args.mixed_precision,
            gradient_accumulation_steps=args.gradient_accumulation_steps,
            cpu=use_cpu,
            kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=False)],
        )
        self.output_dir = Path(args.output_dir)
        self.rank = self.accelerator.process_index
        self.world_size = self.accelerator.num_processes
        self.is_main = self.accelerator.is_main_process
        self.resume_dir = (
            find_checkpoint(self.output_dir, args.resume_from_checkpoint) if args.resume_from_checkpoint else None
        )
        if self.resume_dir is None and self.is_main:
            self._check_output_dir()
        self.accelerator.wait_for_everyone()

        torch.manual_seed(args.seed)
        random.seed(args.seed)
        np.random.seed(args.seed)
        model = build_pretraining_model(args)
        self.processor = IVTProcessor.from_config(model.config)
        register_for_remote_code(model, self.processor)
        self.stream = PairStream(
            args.train_data,
            rank=self.rank,
            world_size=self.world_size,
            seed=args.seed,
            revision=args.revision,
            image_column=args.image_column,
            caption_column=args.caption_column,
            on_invalid=args.on_invalid,
        )
        image_size = tuple(model.config.image_size)
        self.collator = PairCollator(
            self.processor.tokenizer,
            TrainTransform(
                image_size=image_size,
                padding=reference_padding(image_size),
                erase_p=args.random_erasing,
                interpolation=args.train_interpolation,
            ),
            seed=args.seed,
            rank=self.rank,
            max_text_tokens=args.max_text_tokens,
            max_caption_words=args.max_caption_words,
            rules=MaskingRules(
                mask_probability=args.mlm_probability,
                max_predictions=args.mlm_max_predictions,
                span_probability=args.mlm_span_probability,
                max_span_words=args.mlm_max_span_words,
            ),
            threads=args.preprocessing_threads,
        )
        optimizer = build_optimizer(
            model,
            args.optim,
            lr=args.learning_rate,
            weight_decay=args.weight_decay,
            bias_lr_multiplier=args.bias_lr_multiplier,
        )
        self.scheduler = cosine_schedule(optimizer, args)  # stepped by hand, once per optimizer step
        self.model, self.optimizer = self.accelerator.prepare(model, optimizer)
        self.step = 0
        self.epoch = 0
        self.log_history: list[dict[str, Any]] = []
        if self.resume_dir is not None:
            self._load_checkpoint(self.resume_dir)

    def _check_output_dir(self) -> None:
        if self.output_dir.is_dir() and any(self.output_dir.iterdir()):
            if not self.args.overwrite_output_dir:
                raise OutputExistsError(
                    f"--output_dir {self.output_dir} is not empty; pass --resume_from_checkpoint latest to continue "
                    "the run in it, or --overwrite_output_dir to start again"
                )
            shutil.rmtree(self.output_dir)
        self.output_dir.mkdir(parents=True, exist_ok=True)

    # -- checkpoints
    def _save_checkpoint(self) -> Path:
        folder = self.output_dir / f"{CHECKPOINT_PREFIX}{self.step}"
        partial = self.output_dir / f".{CHECKPOINT_PREFIX}{self.step}.partial"
        if self.is_main:
            shutil.rmtree(partial, ignore_errors=True)
            partial.mkdir(parents=True)
        self.accelerator.wait_for_everyone()
        torch.save(_rng_state(), partial / f"rng_rank{self.rank}.pt")
        (partial / f"stream_rank{self.rank}.json").write_text(json.dumps(self.stream.state_dict()))
        if self.is_main:
            from safetensors.torch import save_model

            save_model(self.accelerator.unwrap_model(self.model), str(partial / "model.safetensors"))
            states = {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict()}
            if self.accelerator.scaler is not None:
                states["scaler"] = self.accelerator.scaler.state_dict()
            torch.save(states, partial / "training_states.pt")
        self.accelerator.wait_for_everyone()
        if self.is_main:
            state = {"step": self.step, "world_size": self.world_size, "args": asdict(self.args)}
            (partial / "state.json").write_text(json.dumps(state, indent=1))  # written last: marks it complete
            shutil.rmtree(folder, ignore_errors=True)
            partial.rename(folder)
            self._prune_checkpoints()
        self.accelerator.wait_for_everyone()
        return folder

    def _prune_checkpoints(self) -> None:
        limit = self.args.save_total_limit
        if not limit:
            return
        folders = sorted(
            self.output_dir.glob(f"{CHECKPOINT_PREFIX}*"), key=lambda path: int(path.name[len(CHECKPOINT_PREFIX) :])
        )
        for folder in folders[:-limit]:
            shutil.rmtree(folder)

    def _load_checkpoint(self, folder: Path) -> None:
        from safetensors.torch import load_model

        state = json.loads((folder / "state.json").read_text())
        if state["world_size"] != self.world_size:
            raise IVTInputError(
                f"{folder} was written by {state['world_size']} process(es) and this run has {self.world_size}: each "
                "process's stream position is in the checkpoint, so resume with the same number of processes"
            )
        load_model(self.accelerator.unwrap_model(self.model), str(folder / "model.safetensors"))
        states = torch.load(folder / "training_states.pt", map_location="cpu", weights_only=True)
        self.optimizer.load_state_dict(states["optimizer"])
        self.scheduler.load_state_dict(states["scheduler"])
        if "scaler" in states and self.accelerator.scaler is not None:
            self.accelerator.scaler.load_state_dict(states["scaler"])
        self.stream.load_state_dict(json.loads((folder / f"stream_rank{self.rank}.json").read_text()))
        _set_rng_state(torch.load(folder / f"rng_rank{self.rank}.pt", weights_only=True))
        self.step = state["step"]
        for name in ("log.jsonl", f"pair_keys_rank{self.rank}.jsonl"):  # drop what the interrupted run did later
            path = self.output_dir / name
            if path.is_file() and (self.is_main or name.startswith("pair_keys")):
                kept = [line for line in path.read_text().splitlines() if json.loads(line)["step"] <= self.step]
                path.write_text("".join(line + "\n" for line in kept))
        self.accelerator.wait_for_everyone()
        logger.info("resumed from %s at step %d", folder, self.step)

    # -- training
    def _next_pairs(self, iterator) -> list[dict[str, Any]]:
        return [next(iterator) for _ in range(self.args.per_device_train_batch_size)]

    def run(self) -> PretrainingResult:
        from tqdm.auto import tqdm

        args = self.args
        accelerator = self.accelerator
        iterator = iter(self.stream)
        model = self.model
        model.train()
        itc_gather = all_gather_with_grad if args.gather_itc and self.world_size > 1 else None
        sums = {"loss": 0.0, "loss_itc": 0.0, "loss_itm": 0.0, "loss_mlm": 0.0}
        count = 0
        start_step, started = self.step, time.perf_counter()
        progress = tqdm(total=args.max_steps, initial=self.step, disable=not self.is_main, desc="pre-training")
        keys_file = (self.output_dir / f"pair_keys_rank{self.rank}.jsonl") if args.log_pair_keys else None
        while self.step < args.max_steps:
            for micro_step in range(args.gradient_accumulation_steps):
                pairs = self._next_pairs(iterator)
                batch = self.collator(pairs, batch_index=self.step * args.gradient_accumulation_steps + micro_step)
                batch = {name: tensor.to(accelerator.device) for name, tensor in batch.items()}
                with accelerator.accumulate(model):
                    with accelerator.autocast():
                        output = model(**batch, itc_gather=itc_gather)
                    accelerator.backward(output.loss)
                    if accelerator.sync_gradients and args.max_grad_norm > 0:
                        accelerator.clip_grad_norm_(model.parameters(), args.max_grad_norm)
                    self.optimizer.step()
                    self.optimizer.zero_grad(set_to_none=True)
                for name in sums:
                    value = getattr(output, name)
                    sums[name] += float(value.detach()) if value is not None else 0.0
                count += 1
                if keys_file is not None:
                    record = {"step": self.step + 1, "micro_step": micro_step,
                              "pairs": [[pair["epoch"], pair["key"]] for pair in pairs]}  # fmt: skip
                    with keys_file.open("a") as handle:
                        handle.write(json.dumps(record) + "\n")
            self.scheduler.step()
            self.step += 1
            self.epoch = self.stream.epoch
            progress.update(1)
            if self.step % args.logging_steps == 0 or self.step == args.max_steps:
                self._log(sums, count, started, start_step)
                sums = dict.fromkeys(sums, 0.0)
                count = 0
            if self.step % args.save_steps == 0 or self.step == args.max_steps:
                self._save_checkpoint()
        progress.close()
        seconds = time.perf_counter() - started
        pairs_seen = (self.step - start_step) * args.per_device_train_batch_size * args.gradient_accumulation_steps
        pairs_seen *= self.world_size
        self._save_final()
        last = self.log_history[-1] if self.log_history else {}
        result = PretrainingResult(
            steps=self.step,
            pairs_seen=pairs_seen,
            seconds=round(seconds, 2),
            pairs_per_second=round(pairs_seen / seconds, 2) if seconds > 0 else 0.0,
            last_losses={name: last[name] for name in ("loss", "loss_itc", "loss_itm", "loss_mlm") if name in last},
            output_dir=str(self.output_dir),
            world_size=self.world_size,
        )
        if self.is_main:
            (self.output_dir / "pretrain_results.json").write_text(json.dumps(asdict(result), indent=1))
        return result

    def _log(self, sums: dict[str, float], count: int, started: float, start_step: int) -> None:
        if not count:
            return
        # the losses of this process; every process logs the mean over all processes
        means = torch.tensor([sums[name] / count for name in sums], device=self.accelerator.device)
        means = self.accelerator.reduce(means, reduction="mean")
        record = {"step": self.step, "epoch": self.stream.epoch}
        record |= {name: round(float(value), 5) for name, value in zip(sums, means.tolist(), strict=True)}
        unwrapped = self.accelerator.unwrap_model(self.model)
        record["temperature"] = round(float(unwrapped.current_temperature().detach()), 5)
        record["learning_rate"] = self.scheduler.get_last_lr()[0]
        elapsed = time.perf_counter() - started
        record["pairs_per_second"] = round(
            (self.step - start_step)
            * self.args.per_device_train_batch_size
            * self.args.gradient_accumulation_steps
            * self.world_size
            / max(elapsed, 1e-9),
            2,
        )
        self.log_history.append(record)
        if self.is_main:
            logger.info("step %d: %s", self.step, {key: value for key, value in record.items() if key != "step"})
            with (self.output_dir / "log.jsonl").open("a") as handle:
                handle.write(json.dumps(record) + "\n")

    def _save_final(self) -> None:
        self.accelerator.wait_for_everyone()
        if self.is_main:
            save_model_folder(self.accelerator.unwrap_model(self.model), self.processor, self.output_dir)
        self.accelerator.wait_for_everyone()


def pretrain(args: PretrainingArguments) -> PretrainingResult:
    return PretrainingRun(args).run()


def main(argv: list[str] | None = None) -> PretrainingResult:
    args = parse_pretraining_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    return pretrain(args)


__all__ = [
    "PRETRAINING_PRESETS",
    "PRETRAINING_RECIPE",
    "PairCollator",
    "PretrainingArguments",
    "PretrainingResult",
    "PretrainingRun",
    "build_pretraining_model",
    "cosine_schedule",
    "find_checkpoint",
    "main",
    "parse_pretraining_args",
    "pretrain",
    "read_pretraining_recipe",
]

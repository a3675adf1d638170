"""The floor both training stages stand on: what fine-tuning (`train.py`, `trainer.py`) and pre-training
(`pretraining/loop.py`) would otherwise each write for themselves, written once.

- `parse_stage_args` / `read_recipe`: flags, or one recipe JSON followed by flags that override it;
- `seed_process`: seed this process's generators from `seed + rank`;
- `refuse_fp16_on_cpu`: fp16 needs a GPU;
- `means_latest`: the `--resume_from_checkpoint` words that mean the newest checkpoint;
- `stage_optimizer`: the optimiser from a stage's arguments (`optim.build_optimizer`);
- `train_transform`: the training augmentation at the model's input size;
- `rng_state` / `set_rng_state` / `random_states_restored`: every global random-number state of this process, as
  tensors (a checkpoint loads them with `weights_only=True`) or put back after a block.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..atomic import read_json_object
from ..data.arguments import DataArguments, add_renamed_flags, renamed_settings
from ..errors import InputNotFoundError, IVTInputError
from .optim import build_optimizer
from .transforms import TrainTransform, reference_padding

RESUME_LATEST = ("latest", "true", "True")  # --resume_from_checkpoint values that mean the newest checkpoint


def parse_stage_args(argument_classes: tuple, argv: list[str] | None = None, *, prog: str | None = None) -> tuple:
    """The argument objects of `argument_classes` from command-line flags, or one recipe JSON file (its settings
    named as the flags, checked against these classes' fields) followed by flags that override it."""
    from transformers import HfArgumentParser

    parser = HfArgumentParser(argument_classes, **({"prog": prog} if prog else {}))
    if any(issubclass(cls, DataArguments) for cls in argument_classes):
        add_renamed_flags(parser)  # --data_root, --train_data, ...: the old spellings work, and say so
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0].endswith(".json"):
        known = {name for cls in argument_classes for name in cls.__dataclass_fields__}
        parser.set_defaults(**read_recipe(argv[0], known=known))  # typed values as they are: flags after override
        argv = argv[1:]
    return tuple(parser.parse_args_into_dataclasses(args=argv))


def read_recipe(path: str | Path, known: set[str]) -> dict[str, Any]:
    """A recipe: one JSON object of settings, named as the flags are (`ivt_hf/recipes/*.json`); keys starting with
    `_` are notes. `known`: the setting names allowed; another is refused by name, as a mistyped flag is."""
    path = Path(path)
    try:
        recipe = read_json_object(path, name=f"recipe {path}", holds="one JSON object of settings")
    except FileNotFoundError:
        raise InputNotFoundError(f"recipe not found: {path}") from None
    recipe = renamed_settings({key: value for key, value in recipe.items() if not key.startswith("_")}, str(path))
    unknown = sorted(set(recipe) - known)
    if unknown:
        raise IVTInputError(f"recipe {path}: unknown setting(s) {', '.join(unknown)}")
    return recipe


def seed_process(seed: int, rank: int = 0, *, full_determinism: bool = False) -> None:
    """Seed Python's, numpy's and torch's (CPU and every GPU) generators of process `rank` from `seed + rank`, as
    open_clip's `random_seed(seed, rank)`: the model is initialised at rank 0's seed in every process, then each
    process continues from its own, so that dropout, drop-path, BMM and ITM negatives differ between processes.
    `full_determinism` also makes torch's kernels deterministic (transformers' `enable_full_determinism`)."""
    from transformers.trainer_utils import enable_full_determinism, set_seed

    enable_full_determinism(seed + rank) if full_determinism else set_seed(seed + rank)


def refuse_fp16_on_cpu(fp16: bool, on_cpu: bool) -> None:
    """accelerate applies no fp16 autocast or loss scaling on a CPU, so such a run would silently train in float32:
    refuse it before the run starts."""
    if fp16 and on_cpu:
        raise IVTInputError(
            "--fp16 needs a GPU (accelerate applies no fp16 autocast or loss scaling on a CPU, so the run would "
            "silently train in float32); on a CPU use --bf16"
        )


def means_latest(resume: Any) -> bool:
    """Whether a `--resume_from_checkpoint` value names no folder but the newest checkpoint in `--output_dir`."""
    return isinstance(resume, str) and resume in RESUME_LATEST


def stage_optimizer(model: torch.nn.Module, args: Any, *, decay_all: bool) -> torch.optim.Optimizer:
    """`build_optimizer` with a stage's `--optim`, `--learning_rate`, `--weight_decay`, `--bias_lr_multiplier`,
    `--adam_beta1/2` and `--adam_epsilon`; `decay_all`: fine-tuning decays every parameter (the reference),
    pre-training only matrices (`optim.py`)."""
    return build_optimizer(
        model,
        str(getattr(args.optim, "value", args.optim)),
        lr=args.learning_rate,
        weight_decay=args.weight_decay,
        bias_lr_multiplier=args.bias_lr_multiplier,
        decay_all=decay_all,
        betas=(args.adam_beta1, args.adam_beta2),
        eps=args.adam_epsilon,
    )


def train_transform(image_size: tuple[int, int] | list[int], args: Any) -> TrainTransform:
    """The training augmentation at the model's input size (the reference's padding), with the stage's
    `--random_erasing` and `--train_interpolation`."""
    image_size = tuple(image_size)
    return TrainTransform(
        image_size=image_size,
        padding=reference_padding(image_size),
        erase_p=args.random_erasing,
        interpolation=args.train_interpolation,
    )


def rng_state() -> dict[str, torch.Tensor]:
    """Every global random-number state of this process (torch, the current GPU's, Python's `random`, numpy's), as
    tensors only, so that a checkpoint holding it loads with `torch.load(..., weights_only=True)`."""
    python_state = random.getstate()
    numpy_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "python": torch.tensor(python_state[1], dtype=torch.int64),
        "python_gauss": torch.tensor(
            [python_state[0], python_state[2] if python_state[2] is not None else -1.0], dtype=torch.float64
        ),
        "numpy": torch.from_numpy(numpy_state[1].astype(np.int64)),
        "numpy_pos": torch.tensor([numpy_state[2], numpy_state[3]], dtype=torch.int64),
        "numpy_gauss": torch.tensor([numpy_state[4]], dtype=torch.float64),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict[str, torch.Tensor]) -> None:
    """Put back the states `rng_state()` returned."""
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


@contextmanager
def random_states_restored() -> Iterator[None]:
    """Run a block, then put every global random-number state (every GPU's included) back as it was before."""
    state = rng_state()
    cuda_states = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    try:
        yield
    finally:
        set_rng_state(state)
        if cuda_states is not None:
            torch.cuda.set_rng_state_all(cuda_states)


__all__ = [
    "RESUME_LATEST",
    "means_latest",
    "parse_stage_args",
    "random_states_restored",
    "refuse_fp16_on_cpu",
    "read_recipe",
    "rng_state",
    "seed_process",
    "set_rng_state",
    "stage_optimizer",
    "train_transform",
]

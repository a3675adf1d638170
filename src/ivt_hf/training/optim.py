"""The optimiser of both training stages: SGD with momentum 0.9 (the reference's) or AdamW, over the reference's
parameter groups (biases at `lr * bias_lr_multiplier`).

Weight decay: the reference decays every parameter, and fine-tuning keeps that (`decay_all=True`). Pre-training
(`decay_all=False`) decays only matrices: biases, LayerNorm scales and shifts and the ITC temperature are left alone,
as ALBEF and CLIP do. Decaying the temperature pulls it towards zero, and decaying LayerNorm scales shrinks
activations the next layer has to undo.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ..errors import IVTInputError


def parameter_groups(
    model: torch.nn.Module, *, lr: float, weight_decay: float, bias_lr_multiplier: float = 2.0, decay_all: bool = True
) -> list[dict]:
    """The trainable parameters as optimiser groups, each with its `name` ("weights", "biases", "no_decay").

    - weights: every trainable parameter that is not a bias (with `decay_all=False`: of two or more dimensions), at
      `lr` with `weight_decay`;
    - biases: parameters named `*.bias`, at `lr * bias_lr_multiplier`, with `weight_decay` only if `decay_all`;
    - no_decay (only with `decay_all=False`): the other parameters of at most one dimension (LayerNorm scales, the ITC
      temperature), at `lr` without weight decay.
    Empty groups are left out.
    """
    weights, biases, no_decay = [], [], []
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        if name.endswith(".bias"):
            biases.append(parameter)
        elif decay_all or parameter.ndim >= 2:
            weights.append(parameter)
        else:
            no_decay.append(parameter)
    groups = [
        {"name": "weights", "params": weights, "lr": lr, "weight_decay": weight_decay},
        {
            "name": "biases",
            "params": biases,
            "lr": lr * bias_lr_multiplier,
            "weight_decay": weight_decay if decay_all else 0.0,
        },
        {"name": "no_decay", "params": no_decay, "lr": lr, "weight_decay": 0.0},
    ]
    return [group for group in groups if group["params"]]


def build_optimizer(
    model: torch.nn.Module,
    optim: str,
    *,
    lr: float,
    weight_decay: float,
    bias_lr_multiplier: float = 2.0,
    decay_all: bool = True,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
) -> torch.optim.Optimizer:
    """`"sgd"` (momentum 0.9, the reference) or `"adamw..."` over `parameter_groups(...)`. AdamW uses PyTorch's fused
    kernel on CPU and CUDA (the same update, several times faster than the per-tensor loop:
    `experiments/demo_recipe_sweep.py parts`). Values the optimiser would refuse are refused first, by their flag's
    name (`check_optimizer_settings`)."""
    check_optimizer_settings(
        lr=lr, weight_decay=weight_decay, bias_lr_multiplier=bias_lr_multiplier, betas=betas, eps=eps
    )
    groups = parameter_groups(
        model, lr=lr, weight_decay=weight_decay, bias_lr_multiplier=bias_lr_multiplier, decay_all=decay_all
    )
    if optim == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=0.9)
    if optim.startswith("adamw"):
        fused = all(p.device.type in ("cpu", "cuda") for group in groups for p in group["params"])
        return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps, fused=fused or None)
    raise IVTInputError(f"optim must be 'sgd' or 'adamw_torch', got {optim!r}")


def check_optimizer_settings(
    *, lr: float, weight_decay: float, bias_lr_multiplier: float, betas: tuple[float, float], eps: float
) -> None:
    """Raise `IVTInputError` naming the flag and the value for a setting that torch's optimisers refuse (a negative
    or NaN learning rate, weight decay or epsilon, a beta outside [0, 1)) or that makes no sense (an infinite one,
    a negative bias rate), so that a recipe's typo is one error line, not an optimiser's traceback."""
    finite_non_negative = {
        "--learning_rate": lr,
        "--weight_decay": weight_decay,
        "--bias_lr_multiplier": bias_lr_multiplier,
        "--adam_epsilon": eps,
    }
    for flag, value in finite_non_negative.items():
        if not (math.isfinite(value) and value >= 0):
            raise IVTInputError(f"{flag} must be a finite number >= 0, got {value}")
    for flag, value in zip(("--adam_beta1", "--adam_beta2"), betas):
        if not 0 <= value < 1:
            raise IVTInputError(f"{flag} must be in [0, 1), got {value}")


def check_schedule(lr_scheduler_type: str, lr_scheduler_kwargs: dict[str, Any] | str | None) -> None:
    """Raise `IVTInputError` naming the values when `lr_scheduler_kwargs` do not fit `lr_scheduler_type` (an
    unknown or mistyped argument): the schedule is built on a one-parameter optimiser and stepped past its warm-up,
    which is where transformers' schedules read their arguments, so that the error comes before the run starts."""
    from transformers import get_scheduler

    if lr_scheduler_kwargs is not None and not isinstance(lr_scheduler_kwargs, dict):
        raise IVTInputError(f"--lr_scheduler_kwargs must be a JSON object of arguments, got {lr_scheduler_kwargs!r}")
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    try:
        schedule = get_scheduler(
            lr_scheduler_type,
            optimizer,
            num_warmup_steps=1,
            num_training_steps=4,
            scheduler_specific_kwargs=lr_scheduler_kwargs or {},
        )
        for _ in range(3):
            optimizer.step()
            schedule.step(*([0.0] if isinstance(schedule, torch.optim.lr_scheduler.ReduceLROnPlateau) else []))
    except (TypeError, ValueError, KeyError) as error:
        raise IVTInputError(
            f"--lr_scheduler_kwargs {lr_scheduler_kwargs!r} do not fit --lr_scheduler_type "
            f"{getattr(lr_scheduler_type, 'value', lr_scheduler_type)}: {error}"
        ) from None


__all__ = ["build_optimizer", "check_optimizer_settings", "check_schedule", "parameter_groups"]

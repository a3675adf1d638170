"""The one check of the converters: does a state dict of converted tensors fit the model it is meant for?

The authors' checkpoints (`original_checkpoint.py`), the encoder of a pre-training model (`pretraining_transfer.py`)
and the public backbones (`backbones.py`) all end in the same three questions before `load_state_dict`: a tensor the
model has no place for, a tensor of the model that nothing fills, a shape that differs. Each is an error naming the
key, so that a wrong file never turns into a `load_state_dict` traceback or a silently random weight.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import torch

from ..errors import IVTInputError

SHOWN_KEYS = 10  # an error names at most this many keys, then " ..."


def first_keys(keys: Iterable[str], describe: Callable[[str], str] = str) -> str:
    """`a, b, c` of the first `SHOWN_KEYS` keys (as `describe` names them), with ` ...` when there are more."""
    keys = list(keys)
    shown = ", ".join(describe(key) for key in keys[:SHOWN_KEYS])
    return shown + (" ..." if len(keys) > SHOWN_KEYS else "")


def check_state_fits(
    state: Mapping[str, torch.Tensor],
    model_state: Mapping[str, torch.Tensor],
    error: type[IVTInputError],
    *,
    origin: str,
    tensors: str = "tensors",
    describe: Callable[[str], str] = str,
    shape_note: str = "",
    partial: bool = False,
) -> None:
    """Raise `error` when `state` does not fit `model_state` (the model's `state_dict()`), in this order: tensors of
    the model that `state` lacks (not checked when `partial`: a backbone fills only its part of the model), tensors
    the model has no place for, and the first shape that differs.

    Args:
        origin: where the tensors come from, first in every message (a file, "the pre-training model").
        tensors: what they are called in the messages ("encoder tensors").
        describe: how a key is named in a message (e.g. with the name it has in `origin`).
        shape_note: appended to the shape message: why the shapes should agree.
    """
    missing = [] if partial else sorted(set(model_state) - set(state))
    if missing:
        raise error(f"{origin} lacks {tensors} for {first_keys(missing, describe)}")
    extra = sorted(set(state) - set(model_state))
    if extra:
        raise error(f"{origin} has {tensors} that the model has no place for: {first_keys(extra, describe)}")
    for key, tensor in state.items():
        expected = tuple(model_state[key].shape)
        if tuple(tensor.shape) != expected:
            raise error(f"{origin}: {describe(key)} has shape {tuple(tensor.shape)}, expected {expected}{shape_note}")


__all__ = ["check_state_fits", "first_keys"]

"""The IVT training loss: Cross-Modal Projection Matching (CMPM).

CMPM comes from Zhang & Lu, "Deep Cross-Modal Projection Learning for Image-Text Matching" (ECCV 2018); IVT
(Shu et al., arXiv 2208.08608) uses it as its only fine-tuning loss, over the 3B (image view, text) pairs of
multi-level alignment. Written from its definition (`docs/design.md`, "Training objective"):

    M[i, j] = 1 if labels_i == labels_j          q = M / ||M||_2 (row-wise)
    P_i2t   = v @ normalize(t).T                 P_t2i = t @ normalize(v).T
    L_i2t   = mean_i sum_j softmax(P_i2t)_ij * (log_softmax(P_i2t)_ij - log(q_ij + eps))
    loss    = L_i2t + L_t2i

The projecting side is NOT normalised and there is no temperature: the embedding norm itself plays the role of an
inverse temperature, which is why the raw final-LayerNorm CLS vectors go in.

All functions here are pure functions of tensors. `cmpm_loss` is the reference's per-process form;
`cmpm_loss_global` gathers embeddings and labels from all processes first (see `ivt_hf.training.distributed` for the
gradient convention under DDP). `IVTTrainer` does not call `cmpm_loss_global`: it gathers with
`gather_embeddings_and_labels` and calls `cmpm_loss_terms` to log both directions. `cmpm_loss_global` stays as the
one-call global loss for a training loop of one's own (as `cmpm_loss` is the per-process one), and it is the function
`tests/training/test_distributed_loss.py` proves the gradient convention on, with two real processes.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from ...errors import IVTInputError
from ..distributed import all_gather_no_grad, all_gather_with_grad

__all__ = ["CMPMLossTerms", "cmpm_loss", "cmpm_loss_global", "cmpm_loss_terms", "gather_embeddings_and_labels"]


class CMPMLossTerms(NamedTuple):
    """The two directions of CMPM, each a scalar; their sum is the loss (log them separately to see asymmetries)."""

    image_to_text: torch.Tensor
    text_to_image: torch.Tensor


def _check_inputs(image_embeddings: torch.Tensor, text_embeddings: torch.Tensor, labels: torch.Tensor) -> None:
    if image_embeddings.ndim != 2 or text_embeddings.ndim != 2:
        raise IVTInputError(
            "CMPM expects 2-D embeddings (pairs, dim), got image "
            f"{tuple(image_embeddings.shape)} and text {tuple(text_embeddings.shape)}."
        )
    if image_embeddings.shape != text_embeddings.shape:
        raise IVTInputError(
            "CMPM needs one text per image (row i of both is pair i), got image "
            f"{tuple(image_embeddings.shape)} and text {tuple(text_embeddings.shape)}."
        )
    if labels.ndim != 1 or labels.shape[0] != image_embeddings.shape[0]:
        raise IVTInputError(f"labels must be 1-D with {image_embeddings.shape[0]} entries, got {tuple(labels.shape)}.")


def _projection_matching(
    projecting: torch.Tensor, target: torch.Tensor, log_true_matching: torch.Tensor
) -> torch.Tensor:
    """One direction of CMPM: mean over rows of KL(softmax(projections) || q), with q given as log(q + eps)."""
    projections = projecting @ F.normalize(target, dim=1).t()  # (pairs, pairs), no temperature
    log_predicted = F.log_softmax(projections, dim=1)
    kl_per_row = (log_predicted.exp() * (log_predicted - log_true_matching)).sum(dim=1)  # (pairs,)
    return kl_per_row.mean()


def cmpm_loss_terms(
    image_embeddings: torch.Tensor, text_embeddings: torch.Tensor, labels: torch.Tensor, *, epsilon: float = 1e-8
) -> CMPMLossTerms:
    """CMPM's image-to-text and text-to-image terms over one batch of pairs.

    Args:
        image_embeddings: (pairs, dim) raw (not normalised) image embeddings; row i pairs with text row i.
        text_embeddings: (pairs, dim) raw text embeddings.
        labels: (pairs,) identity of each pair; every same-identity (image, text) pair is a positive.
        epsilon: added to q before the log, so non-matching pairs cost log(1/epsilon) instead of infinity.

    The maths runs in at least float32 with autocast switched off: the softmax over unnormalised projections
    (norms of raw CLS vectors, no temperature) loses too much precision in fp16/bf16. Gradients flow back in the
    input dtype; float64 inputs stay float64.
    """
    _check_inputs(image_embeddings, text_embeddings, labels)
    compute_dtype = torch.promote_types(
        torch.promote_types(image_embeddings.dtype, text_embeddings.dtype), torch.float32
    )
    with torch.autocast(device_type=image_embeddings.device.type, enabled=False):
        image_embeddings = image_embeddings.to(compute_dtype)
        text_embeddings = text_embeddings.to(compute_dtype)

        matching = (labels[:, None] == labels[None, :]).to(compute_dtype)  # (pairs, pairs), symmetric
        true_matching = matching / matching.norm(dim=1, keepdim=True)  # row-wise L2, never 0 (diagonal is 1)
        log_true_matching = torch.log(true_matching + epsilon)

        return CMPMLossTerms(
            image_to_text=_projection_matching(image_embeddings, text_embeddings, log_true_matching),
            text_to_image=_projection_matching(text_embeddings, image_embeddings, log_true_matching),
        )


def cmpm_loss(
    image_embeddings: torch.Tensor, text_embeddings: torch.Tensor, labels: torch.Tensor, *, epsilon: float = 1e-8
) -> torch.Tensor:
    """CMPM loss (scalar) over the pairs of this process only: the IVT reference's behaviour.

    Shapes: image_embeddings (pairs, dim), text_embeddings (pairs, dim), labels (pairs,) -> ().
    """
    terms = cmpm_loss_terms(image_embeddings, text_embeddings, labels, epsilon=epsilon)
    return terms.image_to_text + terms.text_to_image


def gather_embeddings_and_labels(
    image_embeddings: torch.Tensor,
    text_embeddings: torch.Tensor,
    labels: torch.Tensor,
    group: torch.distributed.ProcessGroup | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Concatenate the pairs of all processes (embeddings with gradient, labels without); identity on one process.

    Image and text travel in one collective (they have the same rows). Shapes: (pairs, dim), (pairs, dim), (pairs,)
    -> (global pairs, dim), (global pairs, dim), (global pairs,).
    """
    _check_inputs(image_embeddings, text_embeddings, labels)
    dim = image_embeddings.shape[1]
    both = all_gather_with_grad(torch.cat([image_embeddings, text_embeddings], dim=1), group)  # (global, 2 * dim)
    return both[:, :dim], both[:, dim:], all_gather_no_grad(labels, group)


def cmpm_loss_global(
    image_embeddings: torch.Tensor,
    text_embeddings: torch.Tensor,
    labels: torch.Tensor,
    *,
    epsilon: float = 1e-8,
    group: torch.distributed.ProcessGroup | None = None,
) -> torch.Tensor:
    """CMPM loss over the pairs of ALL processes, so negatives come from the global batch.

    Every process returns the same value: the loss of the concatenated batch. Under DDP (gradients averaged over
    processes) the parameter gradients equal those of one process over the concatenated batch; do not rescale the
    loss by the world size (see `ivt_hf.training.distributed`). Without a process group, or with one process, this is
    exactly `cmpm_loss`.
    """
    gathered = gather_embeddings_and_labels(image_embeddings, text_embeddings, labels, group)
    return cmpm_loss(*gathered, epsilon=epsilon)

"""GradCache: a contrastive loss over a batch larger than memory holds, for both training stages.

After Gao et al. 2021, "Scaling Deep Contrastive Learning Batch Size under Memory Limited Setup" (arXiv 2101.06983),
re-implemented. A loss that compares every row with every other (CMPM with MLA's 3B pairs, ITC) needs all rows'
embeddings at once, and a plain step keeps the activations of all rows until the backward. Here a batch of N rows is
cut into chunks (`--grad_cache_chunk` rows each, `chunk_slices`), and one step is:

1. every chunk encoded without a graph (`torch.no_grad`), keeping only its representations (the CLS embeddings);
2. the batch loss (CMPM, ITC) taken over all N representations as leaf tensors, and its gradient with respect to
   them, and to the parameters the loss itself uses (the ITC temperature) (`representation_gradients`);
3. each chunk encoded again, with a graph, and `sum(representation * its gradient)` backpropagated, plus that chunk's
   own loss terms (per-sample terms such as MLM need no cache). By the chain rule the parameter gradients add up to
   those of the full-batch loss, while memory holds one chunk's activations at a time.

Randomness. The second encoding must see the dropout, drop-path and BMM token drops of the first, or the gradient
belongs to other embeddings than the loss saw. Each chunk therefore draws from a stream of its own
(`ChunkRandomness`): a seed per chunk is drawn from the global torch generator at the start of the step, and both
encodings of chunk c run with torch's generators (CPU and the current GPU) seeded from seed c, inside a block that
puts every global state back afterwards (`stage.random_states_restored`). Streams of their own, rather than the
global state replayed at each chunk's start (as the paper's code does): in pre-training a chunk's forward draws more
after its embeddings (the ITM hard negatives, the fusion encoder's dropout), and on a replayed global stream those
draws would reuse the numbers of the next chunk's dropout masks. The step stays a function of the global state
(resuming is exact), and processes differ because their global generators do (`stage.seed_process`). BMM's `batch`
mode draws one set of positions per chunk, as the authors' code draws one per GPU.

Several processes: the batch loss may gather the representations of all processes (`all_gather_with_grad`): step 2
then holds the gradient of the global loss for this process's rows, under the convention of
`ivt_hf.training.distributed`, and DDP's averaging of step 3's parameter gradients gives the one-process gradient
over the global batch. Step 3 runs every chunk but the last under `no_sync`, so DDP reduces once per step. Tested
with two real processes (`tests/training/test_gradcache.py`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import NamedTuple

import torch

from ..errors import IVTInputError
from .stage import random_states_restored

logger = logging.getLogger(__name__)

__all__ = [
    "CachedStep",
    "ChunkOutput",
    "ChunkRandomness",
    "GradCache",
    "chunk_slices",
    "representation_gradients",
]


class ChunkOutput(NamedTuple):
    """What encoding one chunk gives: its representations, `(chunk rows, dim)` tensors in the order the batch loss
    takes them, and (second encoding only) the chunk's own loss terms, weighted as their share of the batch's."""

    representations: tuple[torch.Tensor, ...]
    loss: torch.Tensor | None = None


class CachedStep(NamedTuple):
    """A GradCache step's outcome, all detached: `loss` = the batch loss's terms + the chunks' own terms;
    `batch_terms` the batch loss's terms by name; `chunk_loss` the sum of the chunks' own terms (None if none)."""

    loss: torch.Tensor
    batch_terms: dict[str, torch.Tensor]
    chunk_loss: torch.Tensor | None


def chunk_slices(rows: int, chunk_size: int) -> list[slice]:
    """Consecutive slices of `chunk_size` rows covering `rows`; a last chunk of a single row joins the one before
    (ITM's hard negatives need two rows in a chunk)."""
    if chunk_size < 1:
        raise IVTInputError(f"--grad_cache_chunk must be >= 1 row to cut a batch into chunks, got {chunk_size}")
    starts = list(range(0, rows, chunk_size))
    if len(starts) > 1 and rows - starts[-1] == 1:
        starts.pop()
    return [slice(start, end) for start, end in zip(starts, [*starts[1:], rows])]


class ChunkRandomness:
    """One random stream per chunk (see the module docstring): `count` seeds drawn from the global torch generator
    when made; `with randomness.stream(c):` runs a block on stream c and then puts every global state back."""

    def __init__(self, count: int):
        self.seeds = torch.randint(0, 2**62, (count,), dtype=torch.int64).tolist()

    @contextlib.contextmanager
    def stream(self, index: int) -> Iterator[None]:
        with random_states_restored():
            torch.default_generator.manual_seed(self.seeds[index])
            if torch.cuda.is_available() and torch.cuda.is_initialized():
                torch.cuda.default_generators[torch.cuda.current_device()].manual_seed(self.seeds[index])
            yield


def representation_gradients(
    batch_loss: Callable[..., Mapping[str, torch.Tensor]],
    representations: Sequence[torch.Tensor],
    parameters: Sequence[torch.Tensor] = (),
) -> tuple[dict[str, torch.Tensor], tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
    """Step 2: the batch loss over `representations` taken as float32 leaves, and its gradient with respect to each
    of them and to `parameters` (tensors the loss uses directly, e.g. the ITC temperature), without touching any
    `.grad`. Float32 leaves: the gradient of a loss over hundreds of rows is small per row, and half precision
    would round it. Returns (the loss's terms, detached; the representations' gradients; the parameters')."""
    leaves = [
        representation.detach().to(_at_least_float32(representation)).requires_grad_(True)
        for representation in representations
    ]
    with torch.enable_grad():
        terms = dict(batch_loss(*leaves))
        loss = sum(terms.values())
        gradients = torch.autograd.grad(loss, [*leaves, *parameters], allow_unused=True)
    gradients = [
        torch.zeros_like(target) if gradient is None else gradient
        for target, gradient in zip([*leaves, *parameters], gradients, strict=True)
    ]
    detached = {name: term.detach() for name, term in terms.items()}
    return detached, tuple(gradients[: len(leaves)]), tuple(gradients[len(leaves) :])


_warned = False


def _check_reproduced(encoded: Sequence[torch.Tensor], cached: Sequence[torch.Tensor]) -> None:
    """Warn (once per process) when a chunk's second encoding is not its first: then the gradient is not the full
    batch's. Equal up to rounding when the masks are reproduced; far apart when they are not (a model drawing its
    random numbers otherwise in the two passes, e.g. in an order that differs with and without a graph)."""
    global _warned
    for second, first in zip(encoded, cached, strict=True):
        second = second.detach().to(first.dtype)
        if not _warned and (second - first).abs().max() > 1e-2 * first.abs().max().clamp(min=1e-6):
            _warned = True
            logger.warning(
                "GradCache: a chunk's second encoding differs from its first (largest difference %.3g): its random "
                "masks were not reproduced, so the gradient is not the full batch's",
                float((second - first).abs().max()),
            )


def _at_least_float32(tensor: torch.Tensor) -> torch.dtype:
    return torch.promote_types(tensor.dtype, torch.float32)


def _surrogate(representations: Sequence[torch.Tensor], gradients: Sequence[torch.Tensor]) -> torch.Tensor:
    """sum(representation * gradient): its gradient with respect to the parameters is the chain rule's product."""
    return sum(
        (representation.to(gradient.dtype) * gradient).sum()
        for representation, gradient in zip(representations, gradients, strict=True)
    )


class GradCache:
    """A cached-embedding step (`step`) with chunks of `chunk_size` rows.

    Args:
        chunk_size: rows per chunk (`--grad_cache_chunk`).
        backward: runs the backward of a chunk's surrogate loss (default `Tensor.backward`; the trainers pass
            accelerate's, which scales for fp16 and divides by the accumulation steps).
        no_sync: a context manager factory put around every chunk's backward but the last (accelerate's
            `no_sync(model)` under DDP, so gradients are reduced once per step).
    """

    def __init__(
        self,
        chunk_size: int,
        *,
        backward: Callable[[torch.Tensor], None] | None = None,
        no_sync: Callable[[], contextlib.AbstractContextManager] | None = None,
    ):
        if chunk_size < 1:
            raise IVTInputError(f"--grad_cache_chunk must be >= 1 row to cut a batch into chunks, got {chunk_size}")
        self.chunk_size = chunk_size
        self.backward = backward or torch.Tensor.backward
        self.no_sync = no_sync or contextlib.nullcontext

    def step(
        self,
        rows: int,
        encode_chunk: Callable[[slice, bool], ChunkOutput],
        batch_loss: Callable[..., Mapping[str, torch.Tensor]],
        parameters: Sequence[torch.Tensor] = (),
    ) -> CachedStep:
        """One forward and backward of a batch of `rows` rows; the parameters' `.grad` receive the full-batch gradient.

        Args:
            encode_chunk: `(rows slice, with_graph) -> ChunkOutput`; called under `no_grad` with `with_graph=False`
                first (its `loss` is then ignored), later with a graph and `True`. It must draw the same random
                numbers up to its representations both times (BMM, dropout and drop-path do).
            batch_loss: `(*representations of all rows) -> {name: scalar term}`; the loss is the terms' sum.
            parameters: tensors `batch_loss` uses directly whose gradient it contributes (the ITC temperature);
                their gradient goes into the last chunk's backward, so DDP reduces it with the rest.
        """
        slices = chunk_slices(rows, self.chunk_size)
        randomness = ChunkRandomness(len(slices))
        cached: list[tuple[torch.Tensor, ...]] = []
        with torch.no_grad():
            for index, chunk in enumerate(slices):
                with randomness.stream(index):
                    cached.append(tuple(encode_chunk(chunk, False).representations))
        representations = tuple(torch.cat(parts) for parts in zip(*cached, strict=True))
        del cached
        terms, gradients, parameter_gradients = representation_gradients(batch_loss, representations, parameters)
        chunk_losses = []
        for index, chunk in enumerate(slices):
            last = index == len(slices) - 1
            with self.no_sync() if not last else contextlib.nullcontext(), randomness.stream(index):
                output = encode_chunk(chunk, True)
                _check_reproduced(output.representations, [whole[chunk] for whole in representations])
                surrogate = _surrogate(output.representations, [gradient[chunk] for gradient in gradients])
                if output.loss is not None:
                    surrogate = surrogate + output.loss
                    chunk_losses.append(output.loss.detach())
                if last:
                    surrogate = surrogate + _surrogate(parameters, parameter_gradients)
                self.backward(surrogate)
        chunk_loss = torch.stack(chunk_losses).sum() if chunk_losses else None
        loss = sum(terms.values())
        if chunk_loss is not None:
            loss = loss + chunk_loss
        return CachedStep(loss=loss, batch_terms=terms, chunk_loss=chunk_loss)

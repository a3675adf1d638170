"""Several pair sources in one stream, for pre-training on a mixture of corpora: `ivt pretrain --dataset_name A B
--mix_weights 0.7 0.3` (the old spelling `--train_data A B` too).

`PairMixture` interleaves the pair streams of its sources (`open_pair_stream`, one per source, each split between the
processes by its own shards or rows): the source of draw n is a pure function of (seed, process, n), drawn with
probability proportional to the source's weight, so a source of weight 0.7 gives 70 % of the pairs whatever the
sources' sizes, and each source runs through its epochs at its own pace (a small corpus is read more often than a big
one). Keys are `I:KEY` (I: the source's place in the list), unique across sources.

Exact resume: the state is the number of draws and every source's own state (`state_dict()`, JSON), so a fresh
mixture over the same sources, weights, seed and process, after `load_state_dict`, yields exactly the pairs the saved
one would have yielded next; the shuffle buffer and the pre-training checkpoint hold it as they hold a single
stream's. A state of other sources or weights is refused, naming what differs.
"""

from __future__ import annotations

import bisect
import itertools
import logging
import math
import os
import random
from collections.abc import Iterator, Sequence
from typing import Any

from ..errors import IVTInputError
from .corpora import iter_reports
from .pairs import PairDataError, RowStream, ShardStream, open_pair_stream, refuse_other_settings

logger = logging.getLogger(__name__)

_STATE_FORMAT = "ivt_hf.PairMixture"
_STATE_VERSION = 1


def mix_weights(sources: Sequence[Any], weights: Sequence[float] | None) -> list[float]:
    """The weights of `sources`, checked and summing to 1: as given (one positive, finite number per source), or
    equal when none are given.

    Raises:
        IVTInputError: another number of weights than sources, or a weight that is not a positive finite number.
    """
    if not sources:
        raise IVTInputError("give at least one source of pairs (--dataset_name)")
    if weights is None:
        return [1 / len(sources)] * len(sources)
    weights = list(weights)
    if len(weights) != len(sources):
        raise IVTInputError(
            f"--mix_weights gives {len(weights)} weight(s) for {len(sources)} source(s); give one per source, in the "
            "order of --dataset_name"
        )
    for weight in weights:
        if (
            isinstance(weight, bool)
            or not isinstance(weight, (int, float))
            or not (math.isfinite(weight) and weight > 0)
        ):
            raise IVTInputError(f"--mix_weights must be positive numbers, got {weight!r}")
    total = math.fsum(weights)
    return [weight / total for weight in weights]


class PairMixture:
    """Pairs drawn from several pair streams by weight, resumable exactly (module docstring). Made by
    `open_pretraining_pairs`; iterating, `state_dict()` and `load_state_dict()` as a single stream's.

    Attributes:
        streams: the sources' streams, in order.
        names: the sources as given.
        weights: their weights, summing to 1.
        draws: pairs yielded so far.
        rank, seed: as given.
    """

    def __init__(
        self,
        streams: Sequence[ShardStream | RowStream],
        names: Sequence[str],
        weights: Sequence[float],
        *,
        seed: int,
        rank: int,
    ):
        self.streams, self.names = list(streams), [str(name) for name in names]
        self.weights = mix_weights(self.streams, weights)
        self.seed, self.rank = seed, rank
        self.draws = 0
        self._cumulative = list(itertools.accumulate(self.weights))
        self._generation = 0  # bumped by each new iterator and each load: an older iterator then stops

    @property
    def skipped(self) -> int:
        """Invalid pairs (and damaged shards) the sources skipped so far."""
        return sum(stream.skipped for stream in self.streams)

    @property
    def epoch(self) -> int:
        """The epoch of the source that has come least far (each source counts its own)."""
        return min(stream.epoch for stream in self.streams)

    def source_of(self, draw: int) -> int:
        """The source of draw number `draw`: a pure function of (seed, process, draw), by weight."""
        position = random.Random(f"mix-{self.seed}-{self.rank}-{draw}").random() * self._cumulative[-1]
        return min(bisect.bisect_right(self._cumulative, position), len(self.streams) - 1)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        self._generation += 1
        return self._pairs(self._generation)

    def _pairs(self, generation: int) -> Iterator[dict[str, Any]]:
        iterators: list[Iterator[dict[str, Any]] | None] = [None] * len(self.streams)
        while self._generation == generation:
            index = self.source_of(self.draws)
            if iterators[index] is None:  # started when first drawn: it continues from the source's position
                iterators[index] = iter(self.streams[index])
            pair = next(iterators[index])
            if self._generation != generation:
                return
            self.draws += 1
            yield {**pair, "key": f"{index}:{pair['key']}"}

    def state_dict(self) -> dict[str, Any]:
        """`{"format": "ivt_hf.PairMixture", "version", "sources", "weights", "seed", "rank", "draws", "skipped",
        "streams": [each source's state_dict()]}`, JSON-serialisable: the position after the last pair yielded."""
        return {
            "format": _STATE_FORMAT,
            "version": _STATE_VERSION,
            **self._settings(),
            "draws": self.draws,
            "skipped": self.skipped,
            "streams": [stream.state_dict() for stream in self.streams],
        }

    def _settings(self) -> dict[str, Any]:
        return {"sources": list(self.names), "weights": list(self.weights), "seed": self.seed, "rank": self.rank}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from `state` (from `state_dict()` of a mixture of the same sources, weights, seed and process).

        Raises:
            PairDataError: not a mixture's state, or one of other settings (each source's own state is checked by
                the source, as a single stream's).
        """
        if not isinstance(state, dict) or state.get("format") != _STATE_FORMAT:
            raise PairDataError(
                "is not a mixture's state (a run over one source cannot resume as a mixture, nor the other way)",
                where="the state",
            )
        refuse_other_settings(
            state,
            self._settings(),
            saved_by="a mixture of other settings",
            advice="resume with the same sources, weights, seed and processes, or start afresh",
            where="the state",
        )
        draws, streams = state.get("draws"), state.get("streams")
        if (
            not isinstance(draws, int)
            or draws < 0
            or not isinstance(streams, list)
            or len(streams) != len(self.streams)
        ):
            raise PairDataError("has no valid draw count and source states", where="the state")
        for stream, stream_state in zip(self.streams, streams, strict=True):
            stream.load_state_dict(stream_state)
        self.draws = draws
        self._generation += 1

    def __repr__(self) -> str:
        parts = ", ".join(f"{name!r}: {weight:.3g}" for name, weight in zip(self.names, self.weights, strict=True))
        return f"PairMixture({{{parts}}}, rank={self.rank}, seed={self.seed}, draws={self.draws})"


def open_pretraining_pairs(
    sources: str | os.PathLike | Sequence[str | os.PathLike],
    weights: Sequence[float] | None = None,
    *,
    rank: int = 0,
    world_size: int = 1,
    seed: int = 0,
    **settings: Any,
) -> ShardStream | RowStream | PairMixture:
    """The pairs `ivt pretrain` trains on: one source's stream (`open_pair_stream`, with `settings`: `revision`,
    `image_column`, `caption_column`, `on_invalid`, which every source shares), or for several sources their
    `PairMixture` by `weights` (default: equal). Each corpus's cleaning is logged once, by process 0."""
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    weights = mix_weights(sources, weights)
    streams = [open_pair_stream(source, rank=rank, world_size=world_size, seed=seed, **settings) for source in sources]
    stream = streams[0] if len(streams) == 1 else PairMixture(streams, sources, weights, seed=seed, rank=rank)
    if rank == 0:
        if len(streams) > 1:
            logger.info("mixing %s", stream)
        for report in iter_reports(stream):
            logger.info("%s", report.format())
    return stream


def cleaning_reports(stream: Any) -> list[dict[str, Any]]:
    """What the cleaning of each corpus a stream (or mixture) reads did (`corpora.CorpusReport.as_dict`), for the
    results of a run."""
    return [report.as_dict() for report in iter_reports(stream)]


__all__ = ["PairMixture", "cleaning_reports", "mix_weights", "open_pretraining_pairs"]

"""A deterministic, exactly resumable example shuffle over a pair stream (`open_pair_stream`).

A pair stream reads each shard from start to end, so without a buffer a batch holds consecutive pairs of one shard:
web-crawled shards are written in crawl order (the same site, the same photographer, near-duplicates), and ITC / ITM
would draw their negatives from neighbours. `ShuffleBuffer` keeps `size` pairs; each pair it yields is drawn at random
from them, and its place is refilled from the stream before the next draw (the WebDataset / tf.data buffer).

Exact resume: the draws come from one `random.Random` seeded by (seed, rank), and the state (`state_dict()`) holds
that generator's state, the stream's position after the last pair read, and the pairs in the buffer themselves
(their encoded image bytes too: the stream cannot go back to re-read them). `save(folder, name)` writes it as
`name.json` plus `name.safetensors` (one uint8 tensor per buffered image; no pickle). A fresh buffer over a fresh
stream built with the same arguments, after `load(folder, name)`, yields exactly the pairs the saved one would have
yielded next. Size: the buffer costs `size` encoded images in memory and in each checkpoint (1,000 pairs of web
images of about 40 kB: 40 MB per process).
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import IVTInputError

_FORMAT = "ivt_hf.ShuffleBuffer"


class ShuffleBuffer:
    """Pairs of `stream` in a random order drawn from a buffer of `size` (1 or less: the stream's own order).

    Args:
        stream: a pair stream from `open_pair_stream` (anything iterable with `state_dict()` / `load_state_dict()`
            that yields dicts with `key`, `image` (bytes), `caption` and `epoch`).
        size: pairs kept in the buffer.
        seed: with the stream's rank, seeds the draws.
    """

    def __init__(self, stream, size: int, *, seed: int):
        if not isinstance(size, int) or size < 0:
            raise IVTInputError(f"the shuffle buffer size should be an integer >= 0, got {size!r}")
        self.stream = stream
        self.size = size
        self._rng = random.Random(f"shuffle-{seed}-{getattr(stream, 'rank', 0)}")
        self._buffer: list[dict[str, Any]] = []

    def __iter__(self) -> Iterator[dict[str, Any]]:
        pairs = iter(self.stream)
        if self.size <= 1:
            yield from pairs
            return
        while True:
            while len(self._buffer) < self.size:
                self._buffer.append(next(pairs))
            drawn = self._rng.randrange(len(self._buffer))
            pair = self._buffer[drawn]
            self._buffer[drawn] = self._buffer[-1]  # the last one takes the drawn one's place
            self._buffer.pop()
            yield pair

    def state_dict(self) -> dict[str, Any]:
        """The state after the last pair yielded: `{"format", "stream": the stream's state, "rng": the generator's
        state, "buffer": [the buffered pairs]}`. The pairs are the buffer's own dicts (shared, not copied: a pair is
        never changed), so taking a state after every batch costs a list of `size` references."""
        version, internal, gauss = self._rng.getstate()
        return {
            "format": _FORMAT,
            "size": self.size,
            "stream": self.stream.state_dict(),
            "rng": [version, list(internal), gauss],
            "buffer": list(self._buffer),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not isinstance(state, dict) or state.get("format") != _FORMAT:
            raise IVTInputError("not a ShuffleBuffer state (from ShuffleBuffer.state_dict())")
        if state["size"] != self.size:
            raise IVTInputError(
                f"the state was saved with a shuffle buffer of {state['size']} pairs; this run has "
                f"{self.size}: resume with the same --shuffle_buffer_size"
            )
        self.stream.load_state_dict(state["stream"])
        version, internal, gauss = state["rng"]
        self._rng.setstate((version, tuple(internal), gauss))
        self._buffer = list(state["buffer"])

    @staticmethod
    def save(state: dict[str, Any], folder: str | Path, name: str) -> None:
        """Write a state as `folder/name.json` (everything but the images) and `folder/name.safetensors` (the
        buffered images' bytes, in order)."""
        import torch
        from safetensors.torch import save_file

        folder = Path(folder)
        pairs = state["buffer"]
        images = {
            f"{number}": torch.frombuffer(bytearray(pair["image"]), dtype=torch.uint8)
            for number, pair in enumerate(pairs)
        }
        save_file(images, str(folder / f"{name}.safetensors"))
        described = [{key: value for key, value in pair.items() if key != "image"} for pair in pairs]
        (folder / f"{name}.json").write_text(json.dumps({**state, "buffer": described}))

    @staticmethod
    def read(folder: str | Path, name: str) -> dict[str, Any]:
        """A state written by `save` (images loaded back as bytes)."""
        from safetensors.torch import load_file

        folder = Path(folder)
        state = json.loads((folder / f"{name}.json").read_text())
        images = load_file(str(folder / f"{name}.safetensors"))
        if len(images) != len(state["buffer"]):
            raise IVTInputError(f"{folder / name}: {len(state['buffer'])} buffered pairs but {len(images)} images")
        state["buffer"] = [
            {**pair, "image": images[f"{number}"].numpy().tobytes()} for number, pair in enumerate(state["buffer"])
        ]
        return state


__all__ = ["ShuffleBuffer"]

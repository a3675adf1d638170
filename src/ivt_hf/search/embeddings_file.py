"""An index folder's `embeddings.safetensors`, read without loading it: `EmbeddingsFile` checks the safetensors
header (an 8-byte little-endian length, then JSON naming each tensor's dtype, shape and byte offsets) and then reads
rows as they are asked for: a memory map for exact search (`memmap`, paged in by the kernel), a chunk or a few
sampled rows at a time for building a FAISS index (`chunks`, `take`), a streamed sha256 for the FAISS cache
(`digest`). So a gallery whose float vectors do not fit in memory can still be loaded, hashed and indexed.

The file is untrusted (an index folder may come from anyone): the header must describe one 2-D float32 tensor
`embeddings` whose bytes lie inside the file and whose shape is the manifest's, or one error names the file.
`write_embeddings` writes such a file from chunks (the safetensors layout, so `safetensors.load_file` reads it too).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import IVTInputError

TENSOR = "embeddings"
HEADER_LIMIT = 100 * 2**20  # safetensors' own limit on its JSON header
CHUNK_ROWS = 65_536  # rows read at a time: 192 MiB of 768-d float32
_DIGEST_BLOCK = 16 * 2**20
_FLOAT32 = np.dtype("<f4")  # safetensors stores little-endian


def _natural(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


@dataclass(frozen=True)
class EmbeddingsFile:
    """Where the `(rows, dim)` float32 embeddings lie in a checked safetensors file (`open`)."""

    path: Path
    offset: int  # the first byte of the first row
    rows: int
    dim: int
    error: type[IVTInputError] = field(default=IVTInputError, compare=False, repr=False)

    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        rows: int | None = None,
        dim: int | None = None,
        against: str = "",
        error: type[IVTInputError] = IVTInputError,
    ) -> EmbeddingsFile:
        """The embeddings of `path` once its header is checked: one F32 2-D tensor `embeddings` whose data offsets
        lie inside the file and hold exactly its shape's bytes, of `rows` rows and `dim` columns where given (what
        the manifest says; `against` names it in the message). Otherwise `error` naming the file."""
        path = Path(path)
        with open(path, "rb") as handle:  # unreadable: the OSError itself (a permission is not bad input)
            size = os.fstat(handle.fileno()).st_size
            prefix = handle.read(8)
            length = int.from_bytes(prefix, "little") if len(prefix) == 8 else None
            if length is None or length > min(HEADER_LIMIT, size - 8):
                why = "shorter than a safetensors header" if length is None else f"a header of {length} bytes"
                raise error(f"{path} is not a readable safetensors file ({why} in a file of {size} bytes)")
            try:
                header = json.loads(handle.read(length))
            except (UnicodeDecodeError, ValueError):
                raise error(f"{path} is not a readable safetensors file (its header is not JSON)") from None
        entry = header.get(TENSOR) if isinstance(header, dict) else None
        if not isinstance(entry, dict):
            raise error(f"{path} holds no '{TENSOR}' tensor")
        shape, offsets = entry.get("shape"), entry.get("data_offsets")
        if entry.get("dtype") != "F32":
            raise error(f"{path}: its embeddings are {entry.get('dtype')!r}, not F32 (float32)")
        if not (isinstance(shape, list) and len(shape) == 2 and all(map(_natural, shape))):
            raise error(f"{path}: its embeddings' shape {shape!r} is not 2-D (rows, dim)")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(map(_natural, offsets))):
            raise error(f"{path}: its embeddings' data_offsets {offsets!r} are not two byte offsets")
        start, stop = 8 + length + offsets[0], 8 + length + offsets[1]
        if not start <= stop <= size:
            raise error(f"{path}: its embeddings' data_offsets {offsets} lie outside the file ({size} bytes)")
        if stop - start != shape[0] * shape[1] * 4:
            raise error(f"{path}: its embeddings' data_offsets {offsets} do not hold {shape} float32 values")
        if (rows is not None and shape[0] != rows) or (dim is not None and shape[1] != dim):
            wanted = f"({rows if rows is not None else '*'}, {dim if dim is not None else '*'})"
            raise error(f"{path} holds {tuple(shape)} embeddings where {against or 'the caller'} says {wanted}")
        return cls(path, start, shape[0], shape[1], error)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.rows, self.dim)

    def __len__(self) -> int:
        return self.rows

    def memmap(self) -> np.ndarray:
        """The rows as a read-only memory map: nothing is read until used, and the kernel pages it in and out."""
        if self.rows * self.dim == 0:  # an empty mapping is refused by mmap
            return np.zeros(self.shape, dtype=np.float32)
        return np.memmap(self.path, dtype=_FLOAT32, mode="r", offset=self.offset, shape=self.shape)

    def _read_into(self, handle, row: int, out: np.ndarray) -> None:
        handle.seek(self.offset + row * self.dim * 4)
        if handle.readinto(memoryview(out).cast("B")) != out.nbytes:
            raise self.error(f"{self.path} ended before row {row + len(out)}: it changed while being read")

    def __getitem__(self, rows: slice) -> np.ndarray:
        """Rows `start:stop` (a step of 1), read from the file into a new array."""
        start, stop, step = rows.indices(self.rows)
        if step != 1:
            raise ValueError("EmbeddingsFile reads contiguous rows only")
        out = np.empty((max(0, stop - start), self.dim), dtype=np.float32)
        with open(self.path, "rb") as handle:
            self._read_into(handle, start, out)
        return out

    def take(self, rows: Iterable[int]) -> np.ndarray:
        """The given rows (a training sample), read one by one: memory holds the sample, not the file."""
        rows = list(rows)
        out = np.empty((len(rows), self.dim), dtype=np.float32)
        with open(self.path, "rb") as handle:
            for position, row in enumerate(rows):
                self._read_into(handle, int(row), out[position : position + 1])
        return out

    def chunks(self, rows: int = CHUNK_ROWS) -> Iterator[tuple[int, np.ndarray]]:
        """`(first row, block)` for consecutive blocks of at most `rows` rows: one block in memory at a time."""
        for start in range(0, self.rows, rows):
            yield start, self[start : start + rows]

    def digest(self) -> str:
        """sha256 of the shape and the float32 bytes, streamed: `faiss_cache.embeddings_digest` of the same rows."""
        digest = hashlib.sha256(f"float32{self.shape}".encode())
        remaining = self.rows * self.dim * 4
        with open(self.path, "rb") as handle:
            handle.seek(self.offset)
            while remaining:
                block = handle.read(min(_DIGEST_BLOCK, remaining))
                if not block:
                    raise self.error(f"{self.path} ended before its last row: it changed while being read")
                digest.update(block)
                remaining -= len(block)
        return digest.hexdigest()


def write_embeddings(path: str | Path, rows: int, dim: int, blocks: Iterable[np.ndarray]) -> EmbeddingsFile:
    """Write `(rows, dim)` float32 embeddings to `path` as a safetensors file, block by block as `blocks` yields
    them (so a gallery larger than memory can be written); the blocks must add up to `rows` rows."""
    header = json.dumps({TENSOR: {"dtype": "F32", "shape": [rows, dim], "data_offsets": [0, rows * dim * 4]}})
    encoded = header.encode()
    encoded += b" " * (-len(encoded) % 8)  # safetensors aligns the data to 8 bytes
    written = 0
    with open(path, "wb") as handle:
        handle.write(len(encoded).to_bytes(8, "little") + encoded)
        for block in blocks:
            block = np.ascontiguousarray(block, dtype=_FLOAT32)
            if block.ndim != 2 or block.shape[1] != dim:
                raise ValueError(f"a block of shape {block.shape} in a file of {dim}-d rows")
            handle.write(memoryview(block).cast("B"))
            written += len(block)
    if written != rows:
        Path(path).unlink(missing_ok=True)
        raise ValueError(f"{written} rows written where {rows} were announced")
    return EmbeddingsFile.open(path, rows=rows, dim=dim)


__all__ = ["CHUNK_ROWS", "EmbeddingsFile", "write_embeddings"]

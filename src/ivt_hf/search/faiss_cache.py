"""FAISS indexes over a gallery's embeddings, and their cache beside the gallery index: `FaissSettings` (which index:
flat, ivf, hnsw, ivfpq, and its knobs), `build_faiss_index`, and `cached_faiss_index`, which trains an index once and
keeps it in the index folder's `faiss/` (FAISS's own format behind a JSON header that names the build settings and the
sha256 of the embeddings and of the FAISS bytes) for the next search.

The cache is derived data: a missing, stale or damaged file is built again (a damaged one with a warning), never an
error. `GalleryIndex` (`index.py`) uses this module; this module knows nothing of the gallery's files but the
embeddings file (`embeddings_file.EmbeddingsFile`), which it can build from and hash out of core: a chunk at a time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import IVTInputError
from .embeddings_file import CHUNK_ROWS, EmbeddingsFile

if TYPE_CHECKING:
    import torch

FAISS_CACHE_DIR = "faiss"  # trained FAISS indexes, beside the embeddings: `faiss/KIND-SETTINGS.faiss`
FAISS_CACHE_MAGIC = b"IVT-FAISS-CACHE\n"
FAISS_CACHE_HEADER_BYTES = 4096  # magic + a JSON header padded with spaces; the FAISS bytes follow
FAISS_CACHE_VERSION = 1
FAISS_KINDS = ("flat", "ivf", "hnsw", "ivfpq")
IVF_KINDS = ("ivf", "ivfpq")

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FaissSettings:
    """Which FAISS index to search with (inner product over normalised vectors, so scores are cosines).

    - `flat`: exact, every vector compared (the same ranking as the built-in exact search).
    - `ivf`: an inverted file: vectors are grouped under `nlist` k-means centroids (default ~4 x sqrt(gallery) from a
      sample of the gallery) and a query scans the `nprobe` nearest groups. Approximate: more `nprobe`, more recall
      and more time.
    - `hnsw`: a navigable small-world graph with `hnsw_m` links per vector, searched with `ef_search` candidates.
      Approximate; slower to build than `ivf`, no training.
    - `ivfpq`: `ivf` whose lists hold compressed codes instead of vectors: each vector is cut into `pq_bytes`
      sub-vectors and each stored as one byte (the nearest of 256 trained centroids), so a 768-d vector takes 64
      bytes instead of 3,072 (`pq_bytes` must divide the dimension; default `pq_sub_quantizers`). For galleries
      whose float vectors do not fit in memory: built from the embeddings file a chunk at a time. More
      approximate than `ivf`: its scores are estimates.
    """

    kind: str = "flat"
    nlist: int | None = None
    nprobe: int = 32
    hnsw_m: int = 32
    ef_search: int = 128
    ef_construction: int = 80
    train_sample: int | None = None  # vectors the IVF centroids are trained on (default 50 per centroid)
    pq_bytes: int | None = None  # ivfpq: bytes (8-bit sub-quantizers) per vector

    def __post_init__(self):
        if self.kind not in FAISS_KINDS:
            raise IVTInputError(f"FAISS index kind must be flat, ivf, hnsw or ivfpq, got {self.kind!r}")
        for name in ("nprobe", "hnsw_m", "ef_search", "ef_construction", "nlist", "train_sample", "pq_bytes"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise IVTInputError(f"{name} must be >= 1, got {value}")

    def ivf_nlist(self, count: int) -> int:
        """Centroids of an IVF index over `count` vectors: `nlist`, or about 4 x sqrt(count)."""
        return self.nlist or max(1, min(count // 39, int(4 * count**0.5)))  # FAISS wants >= 39 points/centroid

    def pq_sub_quantizers(self, dim: int) -> int:
        """ivfpq's bytes per vector over `dim`-d vectors: `pq_bytes`, which must divide `dim` (an `IVTInputError`
        naming `--pq_bytes` otherwise), or by default the largest divisor of `dim` up to min(64, dim / 4): 64 for
        768-d (48x smaller than float32), 16 for 64-d."""
        if self.pq_bytes is None:
            return max(m for m in range(1, max(1, min(64, dim // 4)) + 1) if dim % m == 0)
        if dim % self.pq_bytes:
            some = ", ".join(str(m) for m in range(1, min(dim, 128) + 1) if dim % m == 0)
            raise IVTInputError(
                f"--pq_bytes {self.pq_bytes} does not divide the embedding dimension {dim}: each byte codes "
                f"dim / pq_bytes of its dimensions (divisors of {dim}: {some})"
            )
        return self.pq_bytes

    def build_key(self, count: int, seed: int = 0, dim: int | None = None) -> dict[str, Any]:
        """The settings that shape the built index over `count` vectors (of `dim` dimensions: ivfpq needs it), and
        only those: the search-time knobs (`nprobe`, `ef_search`) are left out, so changing them reuses a built (or
        cached) index."""
        if self.kind == "hnsw":
            return {"kind": "hnsw", "hnsw_m": self.hnsw_m, "ef_construction": self.ef_construction}
        if self.kind == "ivf":
            nlist = self.ivf_nlist(count)
            return {"kind": "ivf", "nlist": nlist, "train_sample": self.train_sample or 50 * nlist, "seed": seed}
        if self.kind == "ivfpq":
            if dim is None:
                raise TypeError("build_key of an ivfpq index needs the dimension")
            nlist = self.ivf_nlist(count)
            # 8-bit codes want 256 trained centroids per sub-quantizer: a smaller sample (or gallery) gets fewer bits
            sample = self.train_sample or max(50 * nlist, 39 * 256)
            bits = min(8, max(1, min(count, sample).bit_length() - 1))
            pq = self.pq_sub_quantizers(dim)
            return {
                "kind": "ivfpq",
                "nlist": nlist,
                "train_sample": sample,
                "pq_bytes": pq,
                "pq_bits": bits,
                "seed": seed,
            }
        return {"kind": "flat"}

    def apply_search_knobs(self, index) -> None:
        """Set `nprobe` (ivf, ivfpq: at most its nlist) or `efSearch` (hnsw) on a built or loaded index."""
        if self.kind in IVF_KINDS:
            index.nprobe = min(self.nprobe, index.nlist)
        elif self.kind == "hnsw":
            index.hnsw.efSearch = self.ef_search


def _import_faiss():
    try:
        import faiss
    except ImportError as error:
        raise ImportError("FAISS search needs faiss-cpu: pip install 'ivt_hf[faiss]'") from error
    return faiss


def _vectors(embeddings):
    """`embeddings` as rows that can be sliced into float32 numpy blocks: an `EmbeddingsFile` as it is (read a block
    at a time), a tensor or an array as a numpy view (no copy for float32)."""
    if isinstance(embeddings, EmbeddingsFile):
        return embeddings
    if isinstance(embeddings, np.ndarray):
        return np.ascontiguousarray(embeddings, dtype=np.float32)
    return embeddings.float().contiguous().numpy()


def _training_rows(count: int, sample: int, seed: int) -> np.ndarray:
    """The sorted rows of a `sample` of `count` that an IVF index is trained on, drawn with `seed` (torch's
    generator where torch is installed, as ever; numpy's on the torch-free page)."""
    try:
        import torch  # here, not above: the torch-free page (a Space for onnxruntime) imports this module
    except ImportError:
        return np.sort(np.random.default_rng(seed).permutation(count)[:sample])
    rng = torch.Generator().manual_seed(seed)
    return torch.randperm(count, generator=rng)[:sample].sort().values.numpy()


def _trained_ivf(faiss, vectors, key: dict[str, Any], seed: int):
    """An empty IVF (flat lists) or IVF-PQ inner-product index, trained on `key`'s sample of `vectors`: the only
    rows held in memory at once besides one chunk."""
    count, dim = vectors.shape
    quantizer = faiss.IndexFlatIP(dim)
    if key["kind"] == "ivf":
        index = faiss.IndexIVFFlat(quantizer, dim, key["nlist"], faiss.METRIC_INNER_PRODUCT)
    else:
        index = faiss.IndexIVFPQ(
            quantizer, dim, key["nlist"], key["pq_bytes"], key["pq_bits"], faiss.METRIC_INNER_PRODUCT
        )
        index.pq.cp.seed = seed
    index.cp.seed = seed
    rows = _training_rows(count, key["train_sample"], seed)
    index.train(vectors.take(rows) if isinstance(vectors, EmbeddingsFile) else vectors[rows])
    return index


def build_faiss_index(
    embeddings, settings: FaissSettings = FaissSettings(), seed: int = 0, *, chunk_rows: int = CHUNK_ROWS
):
    """A FAISS inner-product index over `(n, dim)` normalised float32 `embeddings` (a tensor, an array, or an
    `EmbeddingsFile` read a chunk at a time), as `settings` say. IVF indexes are trained on a sample, and flat and
    IVF indexes filled `chunk_rows` rows at a time, so an `EmbeddingsFile` is never in memory whole: ivfpq's memory
    is one chunk, the training sample and the codes; the chunking changes nothing in the index (each vector is added
    alone). hnsw takes all rows in one call, as ever (from a memory map of a file: no copy besides its own)."""
    faiss = _import_faiss()
    vectors = _vectors(embeddings)
    if settings.kind == "hnsw" and isinstance(vectors, EmbeddingsFile):
        vectors = vectors.memmap()
    count, dim = vectors.shape
    key = settings.build_key(count, seed, dim)
    if settings.kind == "flat":
        index = faiss.IndexFlatIP(dim)
    elif settings.kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, settings.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = settings.ef_construction
    else:
        index = _trained_ivf(faiss, vectors, key, seed)
    step = max(1, count) if settings.kind == "hnsw" else chunk_rows
    for start in range(0, count, step):
        index.add(np.ascontiguousarray(vectors[start : start + step], dtype=np.float32))
    settings.apply_search_knobs(index)
    return index


def embeddings_digest(embeddings) -> str:
    """sha256 of `(n, dim)` float32 embeddings (shape and bytes): which gallery a cached FAISS index was built from.
    An `EmbeddingsFile` is hashed as it is read, a block at a time (the same digest as its rows in memory)."""
    if isinstance(embeddings, EmbeddingsFile):
        return embeddings.digest()
    vectors = _vectors(embeddings)
    digest = hashlib.sha256(f"float32{tuple(vectors.shape)}".encode())
    digest.update(memoryview(vectors).cast("B"))
    return digest.hexdigest()


def faiss_cache_path(directory: str | Path, key: dict[str, Any]) -> Path:
    """Where the FAISS index of an index folder is kept for these build settings: one file per settings; a changed
    gallery replaces it (its header records which embeddings it was built from)."""
    settings = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return Path(directory) / FAISS_CACHE_DIR / f"{key['kind']}-{settings}.faiss"


def _cache_header(key: dict[str, Any], embeddings_sha256: str, count: int, dim: int) -> dict[str, Any]:
    return {
        "format_version": FAISS_CACHE_VERSION,
        "key": key,
        "embeddings_sha256": embeddings_sha256,
        "ntotal": count,
        "dim": dim,
    }


def save_faiss_cache(index, path: str | Path, header: dict[str, Any]) -> Path:
    """Write `index` to `path` with `header`, atomically: into a temporary file beside it, renamed into place when
    complete, so a concurrent reader sees the old file or the new one, never half of one. The header records the
    sha256 of the FAISS bytes (written by `faiss.write_index`; nothing is pickled)."""
    faiss = _import_faiss()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    digest, written = hashlib.sha256(), 0
    try:
        with open(temporary, "wb") as handle:
            handle.write(b"\0" * FAISS_CACHE_HEADER_BYTES)  # filled in once the payload's hash is known

            def write(chunk: bytes) -> None:
                nonlocal written
                handle.write(chunk)
                digest.update(chunk)
                written += len(chunk)

            faiss.write_index(index, faiss.PyCallbackIOWriter(write))
            full = {
                **header,
                "payload_bytes": written,
                "payload_sha256": digest.hexdigest(),
                "faiss_version": faiss.__version__,
            }
            encoded = FAISS_CACHE_MAGIC + json.dumps(full).encode()
            if len(encoded) > FAISS_CACHE_HEADER_BYTES:  # settings and hashes ivt_hf made, a few hundred bytes: a bug
                raise RuntimeError(f"FAISS cache header too long for {path} ({len(encoded)} bytes)")
            handle.seek(0)
            handle.write(encoded.ljust(FAISS_CACHE_HEADER_BYTES, b" "))
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path


def _read_cache_header(handle) -> dict[str, Any] | None:
    raw = handle.read(FAISS_CACHE_HEADER_BYTES)
    if len(raw) < FAISS_CACHE_HEADER_BYTES or not raw.startswith(FAISS_CACHE_MAGIC):
        return None
    try:
        header = json.loads(raw[len(FAISS_CACHE_MAGIC) :].decode())
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return header if isinstance(header, dict) else None


def load_faiss_cache(path: str | Path, header: dict[str, Any]):
    """The FAISS index in `path` if it was built with `header`'s settings from `header`'s embeddings and its bytes
    are intact, else None: missing or stale (another gallery) quietly, corrupt or foreign with a warning naming the
    file. The bytes are checked against the recorded sha256 before FAISS reads them (`faiss.read_index`), and the
    index read must have the recorded size, dimension, kind and metric; nothing is ever unpickled.

    A bad file is rebuilt rather than an error: it is derived data that the embeddings always reproduce, and
    refusing to search an intact index over a cache file would stop the user for nothing they can fix but deleting
    it; the warning says which file and why, so the rebuild is never silent."""
    faiss = _import_faiss()
    path = Path(path)
    if not path.is_file():
        return None

    def unusable(why: str) -> None:
        warnings.warn(f"ignoring the cached FAISS index {path}: {why}; building it again", stacklevel=3)

    with open(path, "rb") as handle:
        found = _read_cache_header(handle)
        if found is None:
            return unusable("not an ivt_hf FAISS cache file (no valid header)")
        if any(found.get(name) != value for name, value in header.items()):
            logger.info("the cached FAISS index %s was built for another gallery or settings: building again", path)
            return None
        size = path.stat().st_size - FAISS_CACHE_HEADER_BYTES
        if not isinstance(found.get("payload_bytes"), int) or size != found["payload_bytes"]:
            return unusable(f"{size} bytes of index data where the header records {found.get('payload_bytes')}")
        digest = hashlib.sha256()
        while chunk := handle.read(16 * 2**20):
            digest.update(chunk)
        if digest.hexdigest() != found.get("payload_sha256"):
            return unusable("its bytes do not match the sha256 in its header (corrupt)")
        handle.seek(FAISS_CACHE_HEADER_BYTES)
        try:
            index = faiss.read_index(faiss.PyCallbackIOReader(handle.read))
        except RuntimeError as error:
            return unusable(f"FAISS cannot read it ({str(error).splitlines()[-1]})")
    kinds = {"flat": faiss.IndexFlatIP, "ivf": faiss.IndexIVFFlat, "hnsw": faiss.IndexHNSWFlat}
    kinds["ivfpq"] = faiss.IndexIVFPQ
    if (
        not isinstance(index, kinds[header["key"]["kind"]])
        or index.ntotal != header["ntotal"]
        or index.d != header["dim"]
        or index.metric_type != faiss.METRIC_INNER_PRODUCT
    ):
        return unusable(f"it holds a {type(index).__name__} of {index.ntotal} x {index.d}, not the recorded index")
    return index


def cached_faiss_index(
    embeddings: torch.Tensor | EmbeddingsFile,
    settings: FaissSettings,
    directory: str | Path | None,
    *,
    seed: int = 0,
    embeddings_sha256: str | None = None,
):
    """`(index, source)`: the FAISS index over `embeddings` as `settings` say, read from the cache under
    `directory/faiss/` when one was built there from the same embeddings with the same build settings (`source`
    "cache"), else built (`source` "built") and saved there for the next search. The search-time knobs are applied
    either way. `directory` None, or a folder that cannot be written (a warning says so), builds without caching."""
    count, dim = embeddings.shape
    key = settings.build_key(count, seed, dim)
    if directory is None:
        return build_faiss_index(embeddings, settings, seed), "built"
    path = faiss_cache_path(directory, key)
    header = _cache_header(key, embeddings_sha256 or embeddings_digest(embeddings), count, dim)
    index = load_faiss_cache(path, header)
    if index is not None:
        settings.apply_search_knobs(index)
        return index, "cache"
    index = build_faiss_index(embeddings, settings, seed)
    try:
        save_faiss_cache(index, path, header)
    except OSError as error:  # a read-only index folder: search anyway, rebuilt next time
        warnings.warn(
            f"cannot save the FAISS index to {path} ({error}); it will be built again next time", stacklevel=2
        )
    return index, "built"


__all__ = [
    "FAISS_KINDS",
    "FaissSettings",
    "build_faiss_index",
    "cached_faiss_index",
    "embeddings_digest",
    "faiss_cache_path",
    "load_faiss_cache",
    "save_faiss_cache",
]

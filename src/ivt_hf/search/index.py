"""A searchable gallery of your own images: embeddings saved as safetensors + a JSON manifest (never pickle),
searched with exact cosine similarity, or with a FAISS inner-product index (the `faiss` extra) for large galleries.
A FAISS index is trained once and kept in the index folder's `faiss/` (FAISS's own format behind a JSON header that
names the build settings and the sha256 of the embeddings and of the FAISS bytes), then read by the next search."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import uuid
import warnings
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from ..errors import InputNotFoundError, IVTInputError
from ..evaluation.encoding import encode_images, encode_texts, model_fingerprint
from ..model.image_processing_ivt import to_rgb_uint8

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
INDEX_EMBEDDINGS = "embeddings.safetensors"
INDEX_MANIFEST = "manifest.json"
INDEX_FORMAT_VERSION = 1
FAISS_CACHE_DIR = "faiss"  # trained FAISS indexes, beside the embeddings: `faiss/KIND-SETTINGS.faiss`
FAISS_CACHE_MAGIC = b"IVT-FAISS-CACHE\n"
FAISS_CACHE_HEADER_BYTES = 4096  # magic + a JSON header padded with spaces; the FAISS bytes follow
FAISS_CACHE_VERSION = 1

logger = logging.getLogger(__name__)


class GalleryIndexError(IVTInputError):
    """An index folder that cannot be read, or a gallery with nothing to index; the message names the file."""


class IndexNotFoundError(GalleryIndexError, FileNotFoundError):
    """A folder that is not a gallery index (its manifest or embeddings file is missing)."""


class ModelMismatchError(GalleryIndexError):
    """An index searched with a model other than the one that built it."""


def resolve_under_root(root: str | os.PathLike, entry: str, *, cache: dict[str, Any] | None = None) -> str | None:
    """Where `entry` (a path relative to `root`, or absolute) really is, every symlink followed, when that lies
    strictly under `root` (itself followed); None when it leads anywhere else: an absolute path elsewhere, a `..`
    component, no file name, or a symlink (a folder on the way or the file itself) that points out.

    An index folder is data from whoever made it (a Hub download, say): its manifest's entries are checked with this
    before anything is opened, served or copied, so that a crafted `/etc/passwd` or `../../x` is never reached.
    `cache`, a dict kept across the entries of one check of one root, holds each folder's real path and the names of
    the links in it (one directory listing), so a million entries cost a few seconds, not a `realpath` each; leave
    it out where the answer is used to open the file at once: then every step is looked up as it is now."""
    root = os.fspath(root)
    if not isinstance(entry, str) or "\0" in entry or (".." in entry and ".." in entry.split(os.sep)):
        return None
    head, _, name = entry.rpartition(os.sep)
    if name in ("", "."):
        return None
    key = (head or os.sep) if entry.startswith(os.sep) else os.path.join(root, head) if head else root
    folders = {} if cache is None else cache  # folder -> (its real path with a trailing separator, its links)
    for folder in {root, key}:
        if folder not in folders:
            real = os.path.realpath(folder).rstrip(os.sep) + os.sep
            folders[folder] = (real, None if cache is None else _link_names(real))
    inside, (real_folder, links) = folders[root][0], folders[key]
    target = real_folder + name
    if not target.startswith(inside):
        return None
    if (name in links) if links is not None else os.path.islink(target):
        target = os.path.realpath(target)
        if not target.startswith(inside):
            return None
    return target


def _link_names(folder: str) -> frozenset[str]:
    """The names of the symbolic links in `folder` (none if it cannot be listed: nothing there can be opened)."""
    try:
        with os.scandir(folder) as listing:
            return frozenset(item.name for item in listing if item.is_symlink())
    except OSError:
        return frozenset()


def find_images(folder: str | Path) -> list[Path]:
    """Image files under `folder` (recursive, sorted), by extension."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputNotFoundError(f"image folder not found: {folder}")
    paths = sorted(path for path in folder.rglob("*") if path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file())
    if not paths:
        raise GalleryIndexError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) under {folder}")
    return paths


@dataclass
class SearchHit:
    path: str
    score: float
    rank: int


@dataclass(frozen=True)
class FaissSettings:
    """Which FAISS index to search with (inner product over normalised vectors, so scores are cosines).

    - `flat`: exact, every vector compared (the same ranking as the built-in exact search).
    - `ivf`: an inverted file: vectors are grouped under `nlist` k-means centroids (default ~4 x sqrt(gallery) from a
      sample of the gallery) and a query scans the `nprobe` nearest groups. Approximate: more `nprobe`, more recall
      and more time.
    - `hnsw`: a navigable small-world graph with `hnsw_m` links per vector, searched with `ef_search` candidates.
      Approximate; slower to build than `ivf`, no training.
    """

    kind: str = "flat"
    nlist: int | None = None
    nprobe: int = 32
    hnsw_m: int = 32
    ef_search: int = 128
    ef_construction: int = 80
    train_sample: int | None = None  # vectors the IVF centroids are trained on (default 50 per centroid)

    def __post_init__(self):
        if self.kind not in ("flat", "ivf", "hnsw"):
            raise IVTInputError(f"FAISS index kind must be flat, ivf or hnsw, got {self.kind!r}")
        for name in ("nprobe", "hnsw_m", "ef_search", "ef_construction", "nlist", "train_sample"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise IVTInputError(f"{name} must be >= 1, got {value}")

    def ivf_nlist(self, count: int) -> int:
        """Centroids of an IVF index over `count` vectors: `nlist`, or about 4 x sqrt(count)."""
        return self.nlist or max(1, min(count // 39, int(4 * count**0.5)))  # FAISS wants >= 39 points/centroid

    def build_key(self, count: int, seed: int = 0) -> dict[str, Any]:
        """The settings that shape the built index over `count` vectors, and only those: the search-time knobs
        (`nprobe`, `ef_search`) are left out, so changing them reuses a built (or cached) index."""
        if self.kind == "hnsw":
            return {"kind": "hnsw", "hnsw_m": self.hnsw_m, "ef_construction": self.ef_construction}
        if self.kind == "ivf":
            nlist = self.ivf_nlist(count)
            return {"kind": "ivf", "nlist": nlist, "train_sample": self.train_sample or 50 * nlist, "seed": seed}
        return {"kind": "flat"}

    def apply_search_knobs(self, index) -> None:
        """Set `nprobe` (ivf, at most its nlist) or `efSearch` (hnsw) on a built or loaded index."""
        if self.kind == "ivf":
            index.nprobe = min(self.nprobe, index.nlist)
        elif self.kind == "hnsw":
            index.hnsw.efSearch = self.ef_search


def _import_faiss():
    try:
        import faiss
    except ImportError as error:
        raise ImportError("FAISS search needs faiss-cpu: pip install 'ivt_hf[faiss]'") from error
    return faiss


def build_faiss_index(embeddings: torch.Tensor, settings: FaissSettings = FaissSettings(), seed: int = 0):
    """A FAISS inner-product index over `(n, dim)` normalised float32 `embeddings`, as `settings` say."""
    faiss = _import_faiss()
    vectors = embeddings.float().contiguous().numpy()
    count, dim = vectors.shape
    key = settings.build_key(count, seed)
    if settings.kind == "flat":
        index = faiss.IndexFlatIP(dim)
    elif settings.kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, settings.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = settings.ef_construction
    else:
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, key["nlist"], faiss.METRIC_INNER_PRODUCT)
        rng = torch.Generator().manual_seed(seed)
        sample = torch.randperm(count, generator=rng)[: key["train_sample"]].sort().values.numpy()
        index.cp.seed = seed
        index.train(vectors[sample])
    index.add(vectors)
    settings.apply_search_knobs(index)
    return index


def embeddings_digest(embeddings: torch.Tensor) -> str:
    """sha256 of `(n, dim)` float32 embeddings (shape and bytes): which gallery a cached FAISS index was built from."""
    vectors = embeddings.float().contiguous().numpy()
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
            if len(encoded) > FAISS_CACHE_HEADER_BYTES:
                raise GalleryIndexError(f"FAISS cache header too long for {path} ({len(encoded)} bytes)")
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
    if (
        not isinstance(index, kinds[header["key"]["kind"]])
        or index.ntotal != header["ntotal"]
        or index.d != header["dim"]
        or index.metric_type != faiss.METRIC_INNER_PRODUCT
    ):
        return unusable(f"it holds a {type(index).__name__} of {index.ntotal} x {index.d}, not the recorded index")
    return index


def cached_faiss_index(
    embeddings: torch.Tensor,
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
    key = settings.build_key(count, seed)
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


def encode_image_files(
    model,
    processor,
    paths: Sequence[Path],
    *,
    on_invalid: str = "error",
    batch_size: int = 64,
    chunk_size: int = 1024,
    progress: bool = True,
) -> tuple[torch.Tensor, list[Path], list[dict[str, str]]]:
    """`(embeddings, readable paths, skipped)` of image files, each decoded once: checked and encoded from the same
    pixels, `chunk_size` images at a time (so memory holds one chunk of pixels).

    An unreadable file stops with a `GalleryIndexError` naming it (`on_invalid="error"`), or is left out and listed
    in `skipped` with its error (`"skip"`), never silently.
    """
    if on_invalid not in ("error", "skip"):
        raise IVTInputError(f"on_invalid must be 'error' or 'skip', got {on_invalid!r}")
    readable: list[Path] = []
    skipped: list[dict[str, str]] = []
    parts = []
    with tqdm(total=len(paths), desc="encoding images", disable=not progress, unit="img") as bar:
        for start in range(0, len(paths), chunk_size):
            pixels = []
            for path in paths[start : start + chunk_size]:
                try:
                    pixels.append(to_rgb_uint8(path, name=str(path)))
                    readable.append(Path(path))
                except (OSError, ValueError) as error:
                    if on_invalid == "error":
                        message = f"cannot index {path}: {error} (on_invalid 'skip' leaves it out)"
                        raise GalleryIndexError(message) from error
                    skipped.append({"path": str(path), "error": str(error)})
            if pixels:
                parts.append(encode_images(model, processor, pixels, batch_size=batch_size, progress=False))
            bar.update(min(chunk_size, len(paths) - start))
    embeddings = torch.cat(parts) if parts else torch.empty(0, model.config.hidden_size)
    return embeddings, readable, skipped


def index_manifest(
    *,
    root: str | None,
    model_name: str | None,
    fingerprint: str,
    embeddings: torch.Tensor,
    skipped: list[dict[str, str]],
    dtype: str = "float32",
) -> dict[str, Any]:
    """The manifest of an index (without its `paths`, which `GalleryIndex.save` adds)."""
    return {
        "format_version": INDEX_FORMAT_VERSION,
        "root": root,
        "model": model_name,
        "model_fingerprint": fingerprint,
        "dtype": dtype,
        "hidden_size": int(embeddings.shape[1]),
        "num_images": int(embeddings.shape[0]),
        "skipped": skipped,
        "normalised": True,
    }


def _checked_gallery_root(directory: Path, root: Any, paths: list[str]) -> str:
    """The gallery root of a loaded index, once every entry is known to be an image file under it: the manifest's
    absolute `root` (where `ivt index build` found the images), a relative one read against the index folder and
    kept inside it (a Space's `gallery/`), or the index folder itself when none is named. Otherwise a
    `GalleryIndexError` naming the index folder and the first offending entry, before anything is opened."""

    def refuse(why: str) -> GalleryIndexError:
        return GalleryIndexError(f"refusing the index {directory}: {why} (an index may only reach its own gallery)")

    if root is None:
        root = str(directory.resolve())
    elif not isinstance(root, str) or not root:
        raise refuse(f"its manifest's root {root!r} is not a folder path")
    elif not os.path.isabs(root):
        inside = resolve_under_root(directory, root)
        if inside is None:
            raise refuse(f"its manifest's relative root {root!r} leads outside the index folder")
        root = inside
    cache: dict[str, Any] = {}
    for entry in paths:
        if not entry.lower().endswith(IMAGE_EXTENSIONS):
            raise refuse(f"entry {entry!r} is not an image file ({', '.join(IMAGE_EXTENSIONS)})")
        if resolve_under_root(root, entry, cache=cache) is None:
            raise refuse(f"entry {entry!r} leads outside the gallery root {root}")
    return root


class GalleryIndex:
    """Normalised image embeddings + the image paths they came from, searchable by text.

    Build with `GalleryIndex.build(model, processor, folder_or_paths)`, keep with `save(dir)` / `GalleryIndex.load(dir)`
    (safetensors + JSON, never pickle), query with `search(texts, k, model, processor)`. Exact cosine search by
    default; `use_faiss=True` searches a FAISS index instead: exact (`flat`) or, for large galleries, approximate
    (`ivf`, `hnsw`), as `faiss` (a `FaissSettings`) says. An index that lives in a folder (`load`, `save`) keeps
    its trained FAISS index there (`faiss/`) and reuses it in later processes until the embeddings or the build
    settings change (`cached_faiss_index`).
    """

    def __init__(
        self,
        embeddings: torch.Tensor,
        paths: Sequence[str],
        manifest: dict[str, Any] | None = None,
        directory: str | Path | None = None,
    ):
        if embeddings.dim() != 2 or embeddings.shape[0] != len(paths):
            raise IVTInputError(f"embeddings {tuple(embeddings.shape)} do not match {len(paths)} paths")
        self.embeddings = embeddings.float().contiguous()
        self.paths = [str(path) for path in paths]
        self.manifest = dict(manifest or {})
        self.directory = Path(directory) if directory is not None else None  # where FAISS indexes are cached
        self._faiss_index = None
        self._faiss_key: dict[str, Any] | None = None  # the build settings of `_faiss_index`
        self._embeddings_sha256: str | None = None
        self._passed_model: weakref.ref | None = None  # the last model `check_model` accepted

    def __len__(self) -> int:
        return len(self.paths)

    @classmethod
    def build(
        cls,
        model,
        processor,
        images: str | Path | Sequence[str | Path],
        *,
        batch_size: int = 64,
        on_invalid: str = "error",
        model_name_or_path: str | None = None,
        progress: bool = True,
    ) -> GalleryIndex:
        """Encode every image of a folder (recursive) or a list of paths.

        `on_invalid="error"` stops at an unreadable image naming it; `"skip"` leaves it out and lists it in the
        manifest under `skipped` (and the returned index's `skipped`), never silently.
        """
        root = Path(images) if isinstance(images, (str, Path)) else None
        paths = find_images(root) if root is not None else [Path(path) for path in images]
        for path in paths:  # what `load` accepts back: image files by name, as `find_images` finds them
            if path.suffix.lower() not in IMAGE_EXTENSIONS:
                raise GalleryIndexError(f"{path} is not an image file by its name ({', '.join(IMAGE_EXTENSIONS)})")

        embeddings, readable, skipped = encode_image_files(
            model, processor, paths, on_invalid=on_invalid, batch_size=batch_size, progress=progress
        )
        if not readable:
            first = f" (first: {skipped[0]['path']}: {skipped[0]['error']})" if skipped else ""
            raise GalleryIndexError(f"none of the {len(paths)} images could be read, nothing to index{first}")
        if root is not None:
            stored_paths = [str(path.relative_to(root)) for path in readable]
        else:  # absolute, under the folder they share: the root that `load` checks them against
            stored_paths = [os.path.abspath(path) for path in readable]
            root = Path(os.path.commonpath([os.path.dirname(path) for path in stored_paths]))
        manifest = index_manifest(
            root=str(root.resolve()),
            model_name=model_name_or_path or getattr(model.config, "_name_or_path", "") or None,
            fingerprint=model_fingerprint(model),
            embeddings=embeddings,
            skipped=skipped,
        )
        return cls(embeddings, stored_paths, manifest)

    @property
    def skipped(self) -> list[dict[str, str]]:
        return list(self.manifest.get("skipped", []))

    def resolve(self, path: str) -> Path:
        """The file to open for a stored path: under the index's root, every symlink followed
        (`resolve_under_root`); a `GalleryIndexError` if it leads outside (a link changed since `load` checked it).
        An index made in memory without a root holds its caller's own paths, used as given."""
        root = self.manifest.get("root")
        if not root:
            return Path(path)
        found = resolve_under_root(root, path)
        if found is None:
            raise GalleryIndexError(f"the index entry {path!r} leads outside the gallery root {root}; not opened")
        return Path(found)

    def save(self, directory: str | Path) -> Path:
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        save_file({"embeddings": self.embeddings}, str(directory / INDEX_EMBEDDINGS))
        manifest = {**self.manifest, "paths": self.paths}
        (directory / INDEX_MANIFEST).write_text(json.dumps(manifest, indent=1))
        self.directory = directory  # these embeddings are now the folder's: its FAISS cache is theirs
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> GalleryIndex:
        from safetensors.torch import load_file

        directory = Path(directory)
        manifest_path, embeddings_path = directory / INDEX_MANIFEST, directory / INDEX_EMBEDDINGS
        for path in (manifest_path, embeddings_path):
            if not path.is_file():
                raise IndexNotFoundError(f"not a gallery index folder: {path} is missing")
        try:
            manifest = json.loads(manifest_path.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise GalleryIndexError(f"{manifest_path} is not valid JSON: {error}") from error
        if not isinstance(manifest, dict):
            raise GalleryIndexError(f"{manifest_path} must hold a JSON object, found {type(manifest).__name__}")
        if manifest.get("format_version") != INDEX_FORMAT_VERSION:
            raise GalleryIndexError(f"{manifest_path}: unsupported index format {manifest.get('format_version')!r}")
        paths = manifest.pop("paths", None)
        if not isinstance(paths, list) or not all(isinstance(path, str) for path in paths):
            raise GalleryIndexError(f"{manifest_path} has no 'paths' list of image paths")
        manifest["root"] = _checked_gallery_root(directory, manifest.get("root"), paths)  # before reading the rest
        with open(embeddings_path, "rb"):  # a file the user may not read: PermissionError (exit 3), which
            pass  # safetensors would misreport as "No such file or directory"
        try:
            tensors = load_file(str(embeddings_path))
        except Exception as error:  # safetensors raises its own error type, naming no file
            raise GalleryIndexError(f"{embeddings_path} is not a readable safetensors file ({error})") from None
        if "embeddings" not in tensors:
            raise GalleryIndexError(f"{embeddings_path} holds no 'embeddings' tensor")
        if tensors["embeddings"].dim() != 2 or tensors["embeddings"].shape[0] != len(paths):
            raise GalleryIndexError(
                f"{embeddings_path} holds {tuple(tensors['embeddings'].shape)} embeddings for "
                f"{len(paths)} paths in {manifest_path}"
            )
        return cls(tensors["embeddings"], paths, manifest, directory=directory)

    def _scores_and_indices(
        self, queries: torch.Tensor, k: int, use_faiss: bool, faiss: FaissSettings | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        k = min(k, len(self))
        if use_faiss or faiss is not None:
            scores, indices = self.faiss_index(faiss or FaissSettings()).search(queries.numpy(), k)
            return torch.from_numpy(scores), torch.from_numpy(indices)
        scores = queries @ self.embeddings.t()  # (queries, gallery) cosine
        return scores.topk(k, dim=1)

    def faiss_index(self, settings: FaissSettings):
        """The FAISS index for `settings`: kept in memory per build settings (a new `nprobe` / `ef_search` only
        sets the knob), read from or saved to the folder's cache (`cached_faiss_index`), else built."""
        key = settings.build_key(len(self))
        if self._faiss_index is None or self._faiss_key != key:
            if self.directory is not None and self._embeddings_sha256 is None:
                self._embeddings_sha256 = embeddings_digest(self.embeddings)
            self._faiss_index, source = cached_faiss_index(
                self.embeddings, settings, self.directory, embeddings_sha256=self._embeddings_sha256
            )
            self._faiss_key = key
            logger.info("FAISS %s index over %d vectors: %s", settings.kind, len(self), source)
        settings.apply_search_knobs(self._faiss_index)
        return self._faiss_index

    def search_embeddings(
        self, queries: torch.Tensor, k: int = 10, use_faiss: bool = False, faiss: FaissSettings | None = None
    ) -> list[list[SearchHit]]:
        """Top-k hits for each row of `(num_queries, hidden)` normalised query embeddings (`faiss` implies
        `use_faiss`; an approximate index can return fewer than k hits: -1 rows are dropped)."""
        if queries.dim() != 2 or queries.shape[1] != self.embeddings.shape[1]:
            raise IVTInputError(
                f"query embeddings must be (num_queries, {self.embeddings.shape[1]}), got {tuple(queries.shape)}"
            )
        if k < 1:
            raise IVTInputError(f"k must be >= 1, got {k}")
        scores, indices = self._scores_and_indices(queries.float().contiguous(), k, use_faiss, faiss)
        return [
            [
                SearchHit(self.paths[int(index)], float(score), rank + 1)
                for rank, (score, index) in enumerate(zip(row_s, row_i))
                if int(index) >= 0
            ]
            for row_s, row_i in zip(scores, indices)
        ]

    def check_model(self, model) -> None:
        """`ModelMismatchError` unless `model` is the one that built the index (by `model_fingerprint`; indexes written
        before fingerprints were recorded are checked by hidden size only). The model that passed last is not hashed
        again, so a page that searches once per query pays for the hash once."""
        if self._passed_model is not None and self._passed_model() is model:
            return
        if model.config.hidden_size != self.embeddings.shape[1]:
            raise ModelMismatchError(
                f"the model's hidden size {model.config.hidden_size} differs from the index's "
                f"{self.embeddings.shape[1]}: the index was built by another model ({self.manifest.get('model')})"
            )
        recorded = self.manifest.get("model_fingerprint")
        found = None if recorded is None else model_fingerprint(model)
        if found != recorded:
            raise ModelMismatchError(
                f"the index was built by another model ({self.manifest.get('model')}, fingerprint {recorded}; this "
                f"model's is {found}): search it with that model, or build the index again"
            )
        self._passed_model = weakref.ref(model)

    def search(
        self,
        texts: str | Sequence[str],
        model,
        processor,
        k: int = 10,
        use_faiss: bool = False,
        faiss: FaissSettings | None = None,
    ):
        """Top-k gallery images for each text (a list of `SearchHit` per text), best first."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        self.check_model(model)
        queries = encode_texts(model, processor, texts, progress=False)
        return self.search_embeddings(queries, k=k, use_faiss=use_faiss, faiss=faiss)


__all__ = [
    "FaissSettings",
    "GalleryIndex",
    "encode_image_files",
    "index_manifest",
    "GalleryIndexError",
    "IndexNotFoundError",
    "ModelMismatchError",
    "SearchHit",
    "build_faiss_index",
    "cached_faiss_index",
    "embeddings_digest",
    "faiss_cache_path",
    "find_images",
    "load_faiss_cache",
    "model_fingerprint",
    "resolve_under_root",
    "save_faiss_cache",
]

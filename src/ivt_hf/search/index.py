"""A searchable gallery of your own images: embeddings saved as safetensors + a JSON manifest (never pickle),
searched with exact cosine similarity, or with a FAISS inner-product index (the `faiss` extra) for large galleries.
A FAISS index is trained once and kept in the index folder's `faiss/`, then read by the next search
(`faiss_cache.py`). A loaded index maps its embeddings file into memory rather than reading it (`embeddings_file.py`):
exact search pages it in as it goes, and FAISS indexes are built and hashed from the file a chunk at a time, so a
gallery larger than memory can be opened and given an ivfpq index.

Where torch is not installed (the page of a Space exported for onnxruntime: `ivt app --export_space --runtime onnx`)
an index still loads and is searched: it keeps its embeddings as numpy arrays and scores them with numpy
(`_float_matrix`, `_top_k`): torch's scores and order (equal scores in gallery order, which torch does not promise).
Building and saving indexes need torch."""

from __future__ import annotations

import json
import logging
import os
import warnings
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ..atomic import read_json_object
from ..data.arguments import check_on_invalid
from ..errors import InputNotFoundError, IVTInputError
from ..evaluation.encoding import encode_images, encode_texts, model_fingerprint
from ..model.image_processing_ivt import to_rgb_uint8
from .embeddings_file import EmbeddingsFile
from .faiss_cache import FaissSettings, cached_faiss_index, embeddings_digest

try:
    import torch
except ImportError:  # the torch-free page: numpy arrays instead of tensors (module docstring)
    torch = None

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
INDEX_EMBEDDINGS = "embeddings.safetensors"
INDEX_MANIFEST = "manifest.json"
INDEX_FORMAT_VERSION = 1

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
    footage: dict[str, Any] | None = None  # where a crop of footage comes from (`ivt_hf.footage.FootageEntry`)


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
    on_invalid = check_on_invalid(on_invalid)
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


FOOTAGE_FIELDS = {"source", "frame", "time_s", "box", "track", "score", "frame_file", "video_file"}
VIDEO_SUFFIXES = (".mp4", ".webm")  # the playable copies `ivt_hf.footage` writes


def _checked_footage(manifest_path: Path, root: str, paths: list[str], footage: Any) -> list[dict[str, Any] | None]:
    """The manifest's footage records (one per path; None for a plain image), every field of the type
    `ivt_hf.footage.FootageEntry` writes and every file it names (the whole frame, the playable video) under the
    gallery root, or a `GalleryIndexError` naming the manifest and the entry. An index without footage (every index
    written before it existed) gives None for each path."""
    if footage is None:
        return [None] * len(paths)

    def refuse(number: int, why: str) -> GalleryIndexError:
        return GalleryIndexError(f"refusing {manifest_path}: footage record {number} ({paths[number]!r}) {why}")

    if not isinstance(footage, list) or len(footage) != len(paths):
        raise GalleryIndexError(f"refusing {manifest_path}: 'footage' must be a list of one record per path")
    cache: dict[str, Any] = {}
    for number, record in enumerate(footage):
        if record is None:
            continue
        if not isinstance(record, dict) or set(record) != FOOTAGE_FIELDS:
            raise refuse(number, f"must hold exactly {sorted(FOOTAGE_FIELDS)}")
        box, time_s = record["box"], record["time_s"]
        numbers_ok = (
            isinstance(record["source"], str)
            and all(isinstance(record[key], int) and record[key] >= 0 for key in ("frame", "track"))
            and (time_s is None or (isinstance(time_s, (int, float)) and time_s >= 0))
            and isinstance(record["score"], (int, float))
            and isinstance(box, list)
            and len(box) == 4
            and all(isinstance(value, (int, float)) for value in box)
        )
        if not numbers_ok:
            raise refuse(number, "has a field of the wrong type")
        for key, suffixes in (("frame_file", IMAGE_EXTENSIONS), ("video_file", VIDEO_SUFFIXES)):
            entry = record[key]
            if entry is None and key == "video_file":
                continue
            if not isinstance(entry, str) or not entry.lower().endswith(suffixes):
                raise refuse(number, f"names a {key} that is not a {'/'.join(suffixes)} file: {entry!r}")
            if resolve_under_root(root, entry, cache=cache) is None:
                raise refuse(number, f"names a {key} outside the gallery root {root}: {entry!r}")
    return footage


def checked_manifest(directory: Path, manifest: dict[str, Any]) -> tuple[list[str], list[dict[str, Any] | None]]:
    """`(paths, footage records)` of the manifest read from the index folder `directory` (untrusted), each checked
    (`_checked_gallery_root`, `_checked_footage`) before anything else is read; `manifest` keeps the rest, its
    `root` made the checked gallery root. `GalleryIndex.load` and a Milvus store's index (`milvus_store`) read it."""
    manifest_path = directory / INDEX_MANIFEST
    if manifest.get("format_version") != INDEX_FORMAT_VERSION:
        raise GalleryIndexError(f"{manifest_path}: unsupported index format {manifest.get('format_version')!r}")
    paths = manifest.pop("paths", None)
    if not isinstance(paths, list) or not all(isinstance(path, str) for path in paths):
        raise GalleryIndexError(f"{manifest_path} has no 'paths' list of image paths")
    manifest["root"] = _checked_gallery_root(directory, manifest.get("root"), paths)  # before reading the rest
    footage = _checked_footage(manifest_path, manifest["root"], paths, manifest.pop("footage", None))
    return paths, footage


def _float_matrix(array):
    """`array` (a torch tensor or a numpy array) as contiguous float32: a torch tensor, or where torch is not
    installed a numpy array (module docstring). A float32 memory map stays one (no copy)."""
    if torch is None:
        return np.ascontiguousarray(array, dtype=np.float32)
    if isinstance(array, np.ndarray) and not array.flags.writeable:
        with warnings.catch_warnings():  # a read-only map: torch warns that writing to it would be undefined
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            array = torch.from_numpy(array)
    return torch.as_tensor(array).float().contiguous()


def _top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """`torch.topk(scores, k, dim=1)` for the torch-free page: each row's k highest scores and their positions, best
    first, equal scores in gallery order (torch orders them as it likes). A full sort: a Space's gallery is small, a
    large one is searched through FAISS."""
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, axis=1), order


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
        footage: Sequence[dict[str, Any] | None] | None = None,
    ):
        if embeddings.ndim != 2 or embeddings.shape[0] != len(paths):
            raise IVTInputError(f"embeddings {tuple(embeddings.shape)} do not match {len(paths)} paths")
        if footage is not None and len(footage) != len(paths):
            raise IVTInputError(f"{len(footage)} footage records do not match {len(paths)} paths")
        self.embeddings = _float_matrix(embeddings)
        self.paths = [str(path) for path in paths]
        self.manifest = dict(manifest or {})
        # per entry: where a crop of footage comes from (source, frame, time_s, box, track, frame_file, video_file),
        # None for an image that was indexed as it is; the manifest keeps them as "footage", beside "paths"
        self.footage: list[dict[str, Any] | None] = list(footage) if footage is not None else [None] * len(paths)
        self.directory = Path(directory) if directory is not None else None  # where FAISS indexes are cached
        self._faiss_index = None
        self._faiss_key: dict[str, Any] | None = None  # the build settings of `_faiss_index`
        self._embeddings_sha256: str | None = None
        self._stored: EmbeddingsFile | None = None  # the file `embeddings` was mapped from (`load`, `save`)
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
        # safetensors writes a new file (a new inode): a map of the old one, this index's own included, stays valid
        save_file({"embeddings": self.embeddings}, str(directory / INDEX_EMBEDDINGS))
        self._stored = EmbeddingsFile.open(directory / INDEX_EMBEDDINGS, error=GalleryIndexError)
        manifest = {**self.manifest, "paths": self.paths}
        if any(record is not None for record in self.footage):
            manifest["footage"] = self.footage
        (directory / INDEX_MANIFEST).write_text(json.dumps(manifest, indent=1))
        self.directory = directory  # these embeddings are now the folder's: its FAISS cache is theirs
        return directory

    @classmethod
    def load(cls, directory: str | Path, *, manifest: dict[str, Any] | None = None) -> GalleryIndex:
        """The index saved in `directory`, its embeddings mapped from the file, not read (module docstring): its
        manifest and the embeddings file's header are checked first (untrusted: every entry under the gallery root,
        the tensor's bytes inside the file and of the manifest's shape), each error naming the file. `manifest`: the
        folder's manifest as a caller already read it (not read again; checked all the same)."""
        directory = Path(directory)
        manifest_path, embeddings_path = directory / INDEX_MANIFEST, directory / INDEX_EMBEDDINGS
        for path in (embeddings_path,) if manifest is not None else (manifest_path, embeddings_path):
            if not path.is_file():
                raise IndexNotFoundError(f"not a gallery index folder: {path} is missing")
        if manifest is None:
            manifest = read_json_object(manifest_path, GalleryIndexError)
        paths, footage = checked_manifest(directory, manifest)
        hidden_size = manifest.get("hidden_size")
        stored = EmbeddingsFile.open(  # a file the user may not read: PermissionError (exit 3)
            embeddings_path,
            rows=len(paths),
            dim=hidden_size if isinstance(hidden_size, int) and not isinstance(hidden_size, bool) else None,
            against=f"{manifest_path} (paths, hidden_size)",
            error=GalleryIndexError,
        )
        index = cls(stored.memmap(), paths, manifest, directory=directory, footage=footage)
        index._stored = stored
        return index

    def _scores_and_indices(self, queries, k: int, use_faiss: bool, faiss: FaissSettings | None = None):
        """(scores, gallery positions), each `(queries, k)`, best first: torch tensors, or numpy arrays (FAISS's, or
        the torch-free page's)."""
        k = min(k, len(self))
        if use_faiss or faiss is not None:
            return self.faiss_index(faiss or FaissSettings()).search(np.asarray(queries), k)
        if torch is None:
            return _top_k(queries @ self.embeddings.T, k)
        scores = queries @ self.embeddings.t()  # (queries, gallery) cosine
        return scores.topk(k, dim=1)

    def faiss_index(self, settings: FaissSettings):
        """The FAISS index for `settings`: kept in memory per build settings (a new `nprobe` / `ef_search` only
        sets the knob), read from or saved to the folder's cache (`cached_faiss_index`), else built."""
        key = settings.build_key(len(self), dim=self.embeddings.shape[1])
        if self._faiss_index is None or self._faiss_key != key:
            # the file the embeddings are mapped from, where there is one: hashed and read a chunk at a time
            vectors = self._stored if self._stored is not None else self.embeddings
            if self.directory is not None and self._embeddings_sha256 is None:
                self._embeddings_sha256 = embeddings_digest(vectors)
            self._faiss_index, source = cached_faiss_index(
                vectors, settings, self.directory, embeddings_sha256=self._embeddings_sha256
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
        if queries.ndim != 2 or queries.shape[1] != self.embeddings.shape[1]:
            raise IVTInputError(
                f"query embeddings must be (num_queries, {self.embeddings.shape[1]}), got {tuple(queries.shape)}"
            )
        if k < 1:
            raise IVTInputError(f"k must be >= 1, got {k}")
        scores, indices = self._scores_and_indices(_float_matrix(queries), k, use_faiss, faiss)
        return [
            [
                SearchHit(self.paths[int(index)], float(score), rank + 1, self.footage[int(index)])
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
    "GalleryIndex",
    "encode_image_files",
    "index_manifest",
    "GalleryIndexError",
    "IndexNotFoundError",
    "ModelMismatchError",
    "SearchHit",
    "find_images",
    "model_fingerprint",
    "resolve_under_root",
]

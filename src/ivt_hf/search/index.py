"""A searchable gallery of your own images: embeddings saved as safetensors + a JSON manifest (never pickle),
searched with exact cosine similarity, or with a FAISS inner-product index (the `faiss` extra) for large galleries."""

from __future__ import annotations

import json
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

class GalleryIndexError(IVTInputError):
    """An index folder that cannot be read, or a gallery with nothing to index; the message names the file."""


class IndexNotFoundError(GalleryIndexError, FileNotFoundError):
    """A folder that is not a gallery index (its manifest or embeddings file is missing)."""


class ModelMismatchError(GalleryIndexError):
    """An index searched with a model other than the one that built it."""


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


def build_faiss_index(embeddings: torch.Tensor, settings: FaissSettings = FaissSettings(), seed: int = 0):
    """A FAISS inner-product index over `(n, dim)` normalised float32 `embeddings`, as `settings` say."""
    try:
        import faiss
    except ImportError as error:
        raise ImportError("FAISS search needs faiss-cpu: pip install 'ivt_hf[faiss]'") from error
    vectors = embeddings.float().contiguous().numpy()
    count, dim = vectors.shape
    if settings.kind == "flat":
        index = faiss.IndexFlatIP(dim)
    elif settings.kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, settings.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = settings.ef_construction
        index.hnsw.efSearch = settings.ef_search
    else:
        nlist = settings.nlist or max(1, min(count // 39, int(4 * count**0.5)))  # FAISS wants >= 39 points/centroid
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
        rng = torch.Generator().manual_seed(seed)
        sample_size = settings.train_sample or 50 * nlist
        sample = torch.randperm(count, generator=rng)[:sample_size].sort().values.numpy()
        index.cp.seed = seed
        index.train(vectors[sample])
        index.nprobe = min(settings.nprobe, nlist)
    index.add(vectors)
    return index


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


class GalleryIndex:
    """Normalised image embeddings + the image paths they came from, searchable by text.

    Build with `GalleryIndex.build(model, processor, folder_or_paths)`, keep with `save(dir)` / `GalleryIndex.load(dir)`
    (safetensors + JSON, never pickle), query with `search(texts, k, model, processor)`. Exact cosine search by
    default; `use_faiss=True` searches a FAISS index instead: exact (`flat`) or, for large galleries, approximate
    (`ivf`, `hnsw`), as `faiss` (a `FaissSettings`) says.
    """

    def __init__(self, embeddings: torch.Tensor, paths: Sequence[str], manifest: dict[str, Any] | None = None):
        if embeddings.dim() != 2 or embeddings.shape[0] != len(paths):
            raise IVTInputError(f"embeddings {tuple(embeddings.shape)} do not match {len(paths)} paths")
        self.embeddings = embeddings.float().contiguous()
        self.paths = [str(path) for path in paths]
        self.manifest = dict(manifest or {})
        self._faiss_index = None
        self._faiss_settings: FaissSettings | None = None
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

        embeddings, readable, skipped = encode_image_files(model, processor, paths, on_invalid=on_invalid,
                                                           batch_size=batch_size, progress=progress)  # fmt: skip
        if not readable:
            first = f" (first: {skipped[0]['path']}: {skipped[0]['error']})" if skipped else ""
            raise GalleryIndexError(f"none of the {len(paths)} images could be read, nothing to index{first}")
        stored_paths = [str(path.relative_to(root)) if root is not None else str(path) for path in readable]
        manifest = index_manifest(
            root=str(root.resolve()) if root is not None else None,
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
        """Absolute path of a stored (root-relative) path."""
        root = self.manifest.get("root")
        return Path(root) / path if root else Path(path)

    def save(self, directory: str | Path) -> Path:
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        save_file({"embeddings": self.embeddings}, str(directory / INDEX_EMBEDDINGS))
        manifest = {**self.manifest, "paths": self.paths}
        (directory / INDEX_MANIFEST).write_text(json.dumps(manifest, indent=1))
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
        try:
            tensors = load_file(str(embeddings_path))
        except Exception as error:  # safetensors raises its own error type, naming no file
            raise GalleryIndexError(f"{embeddings_path} is not a readable safetensors file ({error})") from None
        if "embeddings" not in tensors:
            raise GalleryIndexError(f"{embeddings_path} holds no 'embeddings' tensor")
        if tensors["embeddings"].dim() != 2 or tensors["embeddings"].shape[0] != len(paths):
            raise GalleryIndexError(f"{embeddings_path} holds {tuple(tensors['embeddings'].shape)} embeddings for "
                             f"{len(paths)} paths in {manifest_path}")  # fmt: skip
        root = manifest.get("root")
        if isinstance(root, str) and not Path(root).is_absolute():  # a relative root is relative to the index folder
            manifest["root"] = str((directory / root).resolve())
        return cls(tensors["embeddings"], paths, manifest)

    def _scores_and_indices(
        self, queries: torch.Tensor, k: int, use_faiss: bool, faiss: FaissSettings | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        k = min(k, len(self))
        if use_faiss or faiss is not None:
            settings = faiss or FaissSettings()
            if self._faiss_index is None or self._faiss_settings != settings:  # built once per settings, then reused
                self._faiss_index, self._faiss_settings = build_faiss_index(self.embeddings, settings), settings
            scores, indices = self._faiss_index.search(queries.numpy(), k)
            return torch.from_numpy(scores), torch.from_numpy(indices)
        scores = queries @ self.embeddings.t()  # (queries, gallery) cosine
        return scores.topk(k, dim=1)

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
    "find_images",
    "model_fingerprint",
]

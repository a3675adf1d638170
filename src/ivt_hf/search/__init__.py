"""Search over your own images: `GalleryIndex` (build, save, load, search; safetensors + JSON, never pickle), and
`build_index` for galleries of any size (several processes, resumable); FAISS indexes for large galleries,
cached beside the index (`faiss_cache.py`: `FaissSettings`, `cached_faiss_index`)."""

from .building import BuildReport, build_index
from .faiss_cache import FaissSettings, build_faiss_index, cached_faiss_index
from .index import (
    GalleryIndex,
    GalleryIndexError,
    IndexNotFoundError,
    ModelMismatchError,
    SearchHit,
    find_images,
    model_fingerprint,
)

__all__ = [
    "BuildReport",
    "FaissSettings",
    "GalleryIndex",
    "GalleryIndexError",
    "IndexNotFoundError",
    "ModelMismatchError",
    "SearchHit",
    "build_faiss_index",
    "build_index",
    "cached_faiss_index",
    "find_images",
    "model_fingerprint",
]

"""Search over your own images: `GalleryIndex` (build, save, load, search; safetensors + JSON, never pickle), and
`build_index` for galleries of any size (several processes, resumable); FAISS indexes for large galleries,
cached beside the index (`faiss_cache.py`: `FaissSettings`, `cached_faiss_index`); `build_footage_index` for the
people in videos and still frames (`footage_index.py`)."""

from .building import BuildReport, build_index
from .faiss_cache import FaissSettings, build_faiss_index, cached_faiss_index
from .footage_index import FootageBuildReport, build_footage_index
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
    "FootageBuildReport",
    "GalleryIndex",
    "GalleryIndexError",
    "IndexNotFoundError",
    "ModelMismatchError",
    "SearchHit",
    "build_faiss_index",
    "build_footage_index",
    "build_index",
    "cached_faiss_index",
    "find_images",
    "model_fingerprint",
]

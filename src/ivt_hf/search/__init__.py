"""Search over your own images: `GalleryIndex` (build, save, load, search; safetensors + JSON, never pickle), and
`build_index` for galleries of any size (several processes, resumable); FAISS indexes for large galleries,
cached beside the index (`faiss_cache.py`: `FaissSettings`, `cached_faiss_index`; `ivfpq` built out of core from
the index's embeddings file, `embeddings_file.py`: `EmbeddingsFile`); `build_footage_index` for the people in videos
and still frames (`footage_index.py`)."""

import importlib

# Each name loads its module on first use (PEP 562), as the root package does: the page of a Space exported for
# onnxruntime imports `index.py` and `faiss_cache.py` where torch is not installed, and `building.py` needs torch
_LAZY = {
    "BuildReport": ".building",
    "build_index": ".building",
    "EmbeddingsFile": ".embeddings_file",
    "FaissSettings": ".faiss_cache",
    "build_faiss_index": ".faiss_cache",
    "cached_faiss_index": ".faiss_cache",
    "FootageBuildReport": ".footage_index",
    "build_footage_index": ".footage_index",
    "GalleryIndex": ".index",
    "GalleryIndexError": ".index",
    "IndexNotFoundError": ".index",
    "ModelMismatchError": ".index",
    "SearchHit": ".index",
    "find_images": ".index",
    "model_fingerprint": ".index",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = sorted(_LAZY)

"""Search over your own images: `GalleryIndex` (build, save, load, search; safetensors + JSON, never pickle)."""

from .index import GalleryIndex, GalleryIndexError, IndexNotFoundError, SearchHit, find_images

__all__ = ["GalleryIndex", "GalleryIndexError", "IndexNotFoundError", "SearchHit", "find_images"]

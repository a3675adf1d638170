"""Search over your own images: `GalleryIndex` (build, save, load, search; safetensors + JSON, never pickle)."""

from .index import GalleryIndex, SearchHit, find_images

__all__ = ["GalleryIndex", "SearchHit", "find_images"]

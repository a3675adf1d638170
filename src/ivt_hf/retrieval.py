"""Encoding, benchmark evaluation and text search over a gallery of images.

- `encode_images` / `encode_texts`: batched, L2-normalised embeddings with a progress bar.
- `evaluate_split`: the standard protocol (every caption of a split queries every image of it) through
  `ivt_hf.metrics.retrieval_metrics`; used by the trainer's validation, `ivt evaluate` and the demo.
- `GalleryIndex`: embeddings of your own images, saved as safetensors + a JSON manifest (no pickle), searched with
  exact cosine similarity, or with a FAISS inner-product index (the `faiss` extra) for large galleries.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from .metrics import retrieval_metrics

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
INDEX_EMBEDDINGS = "embeddings.safetensors"
INDEX_MANIFEST = "manifest.json"
INDEX_FORMAT_VERSION = 1


@torch.no_grad()
def _encode_in_batches(model, num_items: int, batch_size: int, embed_batch, progress: bool, description: str):
    """Run `embed_batch(start, stop) -> (batch, hidden)` over [0, num_items) in eval mode (restoring the mode
    afterwards) and return the L2-normalised float32 embeddings `(num_items, hidden)` on the CPU."""
    was_training = model.training
    model.eval()
    chunks = []
    try:
        for start in tqdm(range(0, num_items, batch_size), desc=description, disable=not progress, unit="batch"):
            embeddings = embed_batch(start, min(start + batch_size, num_items))
            chunks.append(torch.nn.functional.normalize(embeddings.float(), dim=-1).cpu())
    finally:
        model.train(was_training)
    return torch.cat(chunks) if chunks else torch.empty(0, model.config.hidden_size)


def encode_images(
    model,
    processor,
    images: Sequence[Any],
    *,
    batch_size: int = 64,
    progress: bool = True,
    description: str = "encoding images",
) -> torch.Tensor:
    """`(len(images), hidden)` L2-normalised float32 image embeddings. `images`: anything the processor accepts, or a
    `datasets.Dataset` with an `image` column (decoded batch by batch)."""
    device = next(model.parameters()).device

    def embed_batch(start: int, stop: int) -> torch.Tensor:
        batch = images[start:stop]
        if isinstance(batch, dict):  # a datasets.Dataset slice
            batch = batch["image"]
        pixel_values = processor.image_processor(list(batch), return_tensors="pt")["pixel_values"]
        return model.get_image_features(pixel_values.to(device))

    return _encode_in_batches(model, len(images), batch_size, embed_batch, progress, description)


def encode_texts(
    model,
    processor,
    texts: Sequence[str],
    *,
    batch_size: int = 256,
    max_length: int | None = None,
    progress: bool = True,
    description: str = "encoding captions",
) -> torch.Tensor:
    """`(len(texts), hidden)` L2-normalised float32 text embeddings."""
    device = next(model.parameters()).device
    texts = list(texts)

    def embed_batch(start: int, stop: int) -> torch.Tensor:
        encoded = processor(text=texts[start:stop], max_length=max_length)
        return model.get_text_features(encoded["input_ids"].to(device), encoded["attention_mask"].to(device))

    return _encode_in_batches(model, len(texts), batch_size, embed_batch, progress, description)


@dataclass
class SplitEvaluation:
    """The outcome of `evaluate_split`: metrics plus what is needed to draw or re-score the ranking."""

    metrics: dict[str, float]
    similarity: torch.Tensor  # (num_captions, num_images), text -> image cosine
    query_pids: torch.Tensor  # (num_captions,)
    gallery_pids: torch.Tensor  # (num_images,)
    captions: list[str]
    image_index: torch.Tensor  # (num_captions,) row of each caption's own image
    facts: dict[str, Any] = field(default_factory=dict)


def evaluate_split(
    model,
    processor,
    image_split,
    *,
    protocol: str = "standard",
    official_every_second_gallery_row: bool = False,
    batch_size: int = 64,
    max_queries: int | None = None,
    progress: bool = True,
) -> SplitEvaluation:
    """Text-to-image retrieval on one image-level split: every caption queries every image of the split.

    `image_split` is a split of `ivt_hf.data.load_benchmark` (columns `image`, `captions`, `person_id`).
    `official_every_second_gallery_row` rebuilds the reference's gallery (one image per caption row, rows 0, 2, 4...).
    `max_queries` keeps the first N captions (for quick validation during training; the gallery stays whole).
    """
    from .data import caption_view

    start = time.perf_counter()
    queries = caption_view(image_split)
    if max_queries is not None and max_queries < len(queries):
        queries = queries.select(range(max_queries))
    captions = list(queries["caption"])
    query_pids = torch.tensor(queries["person_id"], dtype=torch.long)
    image_index = torch.tensor(queries["image_index"], dtype=torch.long)
    gallery_pids = torch.tensor(image_split["person_id"], dtype=torch.long)

    image_embeddings = encode_images(model, processor, image_split, batch_size=batch_size, progress=progress)
    text_embeddings = encode_texts(model, processor, captions, batch_size=4 * batch_size, progress=progress)
    similarity = text_embeddings @ image_embeddings.t()  # (captions, images)
    if official_every_second_gallery_row:
        scored, scored_pids = similarity[:, image_index], gallery_pids[image_index]
    else:
        scored, scored_pids = similarity, gallery_pids
    metrics = retrieval_metrics(
        scored,
        query_pids,
        scored_pids,
        protocol=protocol,
        official_every_second_gallery_row=official_every_second_gallery_row,
    )
    facts = {
        "protocol": protocol,
        "official_every_second_gallery_row": official_every_second_gallery_row,
        "num_queries": len(captions),
        "num_gallery": len(range(0, scored.shape[1], 2 if official_every_second_gallery_row else 1)),
        "num_identities": int(gallery_pids.unique().numel()),
        "seconds": round(time.perf_counter() - start, 2),
    }
    return SplitEvaluation(metrics, similarity, query_pids, gallery_pids, captions, image_index, facts)


def find_images(folder: str | Path) -> list[Path]:
    """Image files under `folder` (recursive, sorted), by extension."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder not found: {folder}")
    paths = sorted(path for path in folder.rglob("*") if path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file())
    if not paths:
        raise ValueError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) under {folder}")
    return paths


@dataclass
class SearchHit:
    path: str
    score: float
    rank: int


class GalleryIndex:
    """Normalised image embeddings + the image paths they came from, searchable by text.

    Build with `GalleryIndex.build(model, processor, folder_or_paths)`, keep with `save(dir)` / `GalleryIndex.load(dir)`
    (safetensors + JSON, never pickle), query with `search(texts, k, model, processor)`. Exact cosine search by
    default; `use_faiss=True` uses a FAISS flat inner-product index (exact too, faster on very large galleries).
    """

    def __init__(self, embeddings: torch.Tensor, paths: Sequence[str], manifest: dict[str, Any] | None = None):
        if embeddings.dim() != 2 or embeddings.shape[0] != len(paths):
            raise ValueError(f"embeddings {tuple(embeddings.shape)} do not match {len(paths)} paths")
        self.embeddings = embeddings.float().contiguous()
        self.paths = [str(path) for path in paths]
        self.manifest = dict(manifest or {})
        self._faiss_index = None

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
        if on_invalid not in ("error", "skip"):
            raise ValueError(f"on_invalid must be 'error' or 'skip', got {on_invalid!r}")
        root = Path(images) if isinstance(images, (str, Path)) else None
        paths = find_images(root) if root is not None else [Path(path) for path in images]
        from .image_processing_ivt import to_rgb_uint8

        readable, skipped = [], []
        for path in tqdm(paths, desc="checking images", disable=not progress, unit="img"):
            try:
                to_rgb_uint8(path, name=str(path))
                readable.append(path)
            except (OSError, ValueError) as error:
                if on_invalid == "error":
                    raise ValueError(f"cannot index {path}: {error} (use on_invalid='skip' to leave it out)") from error
                skipped.append({"path": str(path), "error": str(error)})
        embeddings = encode_images(model, processor, [str(path) for path in readable], batch_size=batch_size,
                                   progress=progress)  # fmt: skip
        stored_paths = [str(path.relative_to(root)) if root is not None else str(path) for path in readable]
        manifest = {
            "format_version": INDEX_FORMAT_VERSION,
            "root": str(root.resolve()) if root is not None else None,
            "model": model_name_or_path or getattr(model.config, "_name_or_path", "") or None,
            "hidden_size": int(embeddings.shape[1]),
            "num_images": len(stored_paths),
            "skipped": skipped,
            "normalised": True,
        }
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
                raise FileNotFoundError(f"not a gallery index folder: {path} is missing")
        try:
            manifest = json.loads(manifest_path.read_text())
        except json.JSONDecodeError as error:
            raise ValueError(f"{manifest_path} is not valid JSON: {error}") from error
        if manifest.get("format_version") != INDEX_FORMAT_VERSION:
            raise ValueError(f"{manifest_path}: unsupported index format {manifest.get('format_version')!r}")
        tensors = load_file(str(embeddings_path))
        if "embeddings" not in tensors:
            raise ValueError(f"{embeddings_path} holds no 'embeddings' tensor")
        paths = manifest.pop("paths")
        return cls(tensors["embeddings"], paths, manifest)

    def _scores_and_indices(self, queries: torch.Tensor, k: int, use_faiss: bool) -> tuple[torch.Tensor, torch.Tensor]:
        k = min(k, len(self))
        if use_faiss:
            try:
                import faiss
            except ImportError as error:
                raise ImportError("use_faiss needs the faiss extra: pip install 'ivt_hf[faiss]'") from error
            if self._faiss_index is None:
                self._faiss_index = faiss.IndexFlatIP(self.embeddings.shape[1])
                self._faiss_index.add(self.embeddings.numpy())
            scores, indices = self._faiss_index.search(queries.numpy(), k)
            return torch.from_numpy(scores), torch.from_numpy(indices)
        scores = queries @ self.embeddings.t()  # (queries, gallery) cosine
        return scores.topk(k, dim=1)

    def search_embeddings(self, queries: torch.Tensor, k: int = 10, use_faiss: bool = False) -> list[list[SearchHit]]:
        """Top-k hits for each row of `(num_queries, hidden)` normalised query embeddings."""
        if queries.dim() != 2 or queries.shape[1] != self.embeddings.shape[1]:
            raise ValueError(
                f"query embeddings must be (num_queries, {self.embeddings.shape[1]}), got {tuple(queries.shape)}"
            )
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        scores, indices = self._scores_and_indices(queries.float().contiguous(), k, use_faiss)
        return [
            [
                SearchHit(self.paths[int(index)], float(score), rank + 1)
                for rank, (score, index) in enumerate(zip(row_s, row_i))
            ]
            for row_s, row_i in zip(scores, indices)
        ]

    def search(self, texts: str | Sequence[str], model, processor, k: int = 10, use_faiss: bool = False):
        """Top-k gallery images for each text (a list of `SearchHit` per text), best first."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        queries = encode_texts(model, processor, texts, progress=False)
        if model.config.hidden_size != self.embeddings.shape[1]:
            raise ValueError(
                f"the model's hidden size {model.config.hidden_size} differs from the index's "
                f"{self.embeddings.shape[1]}"
            )
        return self.search_embeddings(queries, k=k, use_faiss=use_faiss)


__all__ = [
    "GalleryIndex",
    "SearchHit",
    "SplitEvaluation",
    "encode_images",
    "encode_texts",
    "evaluate_split",
    "find_images",
]

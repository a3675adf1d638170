"""Pictures of retrieval results: per query, its text and the top-k images, framed green (right person) or red.

Only PIL: rows of `[caption panel | rank 1 | rank 2 | ... ]`, thumbnails fitted into a fixed box.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from ..errors import IVTInputError

GREEN = (32, 170, 60)
RED = (210, 40, 40)
GREY = (150, 150, 150)


@dataclass
class RetrievalRow:
    """One query: its text, its ranked images (PIL images or paths), and which are correct (None: unknown)."""

    query: str
    images: Sequence[Any]
    correct: Sequence[bool] | None = None
    scores: Sequence[float] | None = None


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType
        return ImageFont.load_default()


def _fit(image: Any, box: tuple[int, int]) -> Image.Image:
    """Open (if a path) and fit into box (width, height) keeping the aspect ratio, centred on white."""
    if not isinstance(image, Image.Image):
        image = Image.open(image)
    image = image.convert("RGB")
    width, height = box
    scale = min(width / image.width, height / image.height)
    resized = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.BILINEAR)
    canvas = Image.new("RGB", box, (255, 255, 255))
    canvas.paste(resized, ((width - resized.width) // 2, (height - resized.height) // 2))
    return canvas


def draw_retrieval(
    rows: Sequence[RetrievalRow],
    output_path: str | Path | None = None,
    *,
    thumb_size: tuple[int, int] = (64, 160),
    text_width: int = 300,
    title: str | None = None,
) -> Image.Image:
    """Draw the rows and save them to `output_path` (PNG/JPEG by extension) if given; returns the picture."""
    if not rows:
        raise IVTInputError("nothing to draw: no query rows")
    font, small = _font(15), _font(12)
    frame, gap = 4, 6
    cell_w, cell_h = thumb_size[0] + 2 * frame, thumb_size[1] + 2 * frame
    k = max(len(row.images) for row in rows)
    header = 30 if title else 0
    row_h = cell_h + 22
    width = text_width + k * (cell_w + gap) + gap
    canvas = Image.new("RGB", (width, header + len(rows) * row_h + gap), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((gap, 6), title, fill=(0, 0, 0), font=font)
    chars_per_line = max(10, text_width // 8)
    for row_number, row in enumerate(rows):
        top = header + row_number * row_h + gap
        lines = textwrap.wrap(row.query, chars_per_line)[: cell_h // 18]
        draw.multiline_text((gap, top), "\n".join(lines), fill=(20, 20, 20), font=small, spacing=4)
        for rank, image in enumerate(row.images):
            left = text_width + rank * (cell_w + gap)
            correct = None if row.correct is None else bool(row.correct[rank])
            color = GREY if correct is None else (GREEN if correct else RED)
            draw.rectangle([left, top, left + cell_w - 1, top + cell_h - 1], fill=color)
            canvas.paste(_fit(image, thumb_size), (left + frame, top + frame))
            label = f"{rank + 1}" + (f"  {row.scores[rank]:.2f}" if row.scores is not None else "")
            draw.text((left + 2, top + cell_h + 2), label, fill=(60, 60, 60), font=small)
    if output_path is not None:
        output_path = Path(output_path)
        output_path.parent.mkdir(parents=True, exist_ok=True)
        canvas.save(output_path)
    return canvas


def rows_from_evaluation(evaluation, image_split, query_indices: Sequence[int], k: int = 10) -> list[RetrievalRow]:
    """Rows for some queries of a `SplitEvaluation` (gallery images taken from the image-level split)."""
    rows = []
    for query in query_indices:
        scores, order = evaluation.similarity[query].topk(min(k, evaluation.similarity.shape[1]))
        images = [image_split[int(index)]["image"] for index in order]
        correct = (evaluation.gallery_pids[order] == evaluation.query_pids[query]).tolist()
        rows.append(RetrievalRow(evaluation.captions[query], images, correct, scores.tolist()))
    return rows


__all__ = ["RetrievalRow", "draw_retrieval", "rows_from_evaluation"]

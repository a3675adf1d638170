"""The whole frame of a footage entry with its person's box drawn, as the search page shows it."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

BOX_COLOUR = (255, 32, 32)


def box_line_width(width: int, height: int) -> int:
    """A line that shows at any frame size: about 0.5 % of the shorter side, at least 2 pixels."""
    return max(2, round(min(width, height) / 200))


def draw_box(
    frame_file: str | os.PathLike, box: Sequence[float], target: str | os.PathLike, label: str | None = None
) -> Path:
    """Write `frame_file` with `box` (x0, y0, x1, y1, x1 and y1 exclusive) outlined in red, the line drawn outside
    the box so the person stays unobscured, and `label` above it; returns `target` (a JPEG)."""
    from PIL import Image, ImageDraw

    with Image.open(frame_file) as opened:
        picture = opened.convert("RGB")
    draw = ImageDraw.Draw(picture)
    line = box_line_width(*picture.size)
    x0, y0, x1, y1 = (int(round(value)) for value in box)
    draw.rectangle((x0 - line, y0 - line, x1 - 1 + line, y1 - 1 + line), outline=BOX_COLOUR, width=line)
    if label:
        left, top, right, bottom = draw.textbbox((0, 0), label)
        y = max(0, y0 - line - (bottom - top) - 4)
        draw.rectangle((x0 - line, y, x0 - line + (right - left) + 4, y + (bottom - top) + 4), fill=BOX_COLOUR)
        draw.text((x0 - line + 2, y + 2 - top), label, fill=(255, 255, 255))
    target = Path(target)
    picture.save(target, format="JPEG", quality=92)
    return target


__all__ = ["BOX_COLOUR", "box_line_width", "draw_box"]

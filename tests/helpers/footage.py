"""Footage for the tests: a synthetic video of two coloured figures at known places and times (written with PyAV), a
detector that finds them by colour (the known truth, to check where boxes, times and crops land), and a tiny random
transformers object detector saved to a folder (to drive the transformers path without weights)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

WIDTH, HEIGHT, FPS, FRAMES = 320, 240, 10, 40
FIGURE_WIDTH, FIGURE_HEIGHT = 40, 100
RED, BLUE = (220, 30, 30), (30, 30, 220)
# (container format, encoder, suffix): the kinds of file the footage reader is tested on
CONTAINERS = {
    "avi": ("avi", "mjpeg", ".avi"),
    "mp4": ("mp4", "libx264", ".mp4"),
    "mkv": ("matroska", "libsvtav1", ".mkv"),
}


def figure_boxes(frame: int) -> dict[str, tuple[int, int, int, int]]:
    """Where each figure is in `frame` (x0, y0, x1, y1, exclusive ends): red walks right on the lower half, blue
    walks left on the upper half, so they never overlap."""
    red_x, blue_x = 20 + 4 * frame, 270 - 4 * frame
    return {
        "red": (red_x, 130, red_x + FIGURE_WIDTH, 130 + FIGURE_HEIGHT),
        "blue": (blue_x, 10, blue_x + FIGURE_WIDTH, 10 + FIGURE_HEIGHT),
    }


def synthetic_frame(frame: int) -> np.ndarray:
    rng = np.random.default_rng(frame)
    pixels = (100 + rng.integers(0, 20, (HEIGHT, WIDTH, 3))).astype(np.uint8)  # a grey, slightly noisy street
    for colour, (x0, y0, x1, y1) in zip((RED, BLUE), figure_boxes(frame).values()):
        pixels[y0:y1, x0:x1] = colour
        pixels[y0 + 5 : y0 + 20, x0 + 8 : x1 - 8] = (230, 190, 160)  # a face, so crops are not flat colour
    return pixels


def write_synthetic_video(path: Path, kind: str = "avi", frames: int = FRAMES) -> Path:
    """`frames` frames at `FPS` frames per second, frame i at i / FPS seconds."""
    import av

    container_format, encoder, _ = CONTAINERS[kind]
    options = {"mjpeg": {"qscale": "2"}, "libx264": {"crf": "18"}, "libsvtav1": {"preset": "12", "crf": "20"}}[encoder]
    with av.open(str(path), "w", format=container_format) as container:
        stream = container.add_stream(encoder, rate=FPS, options=options)
        stream.width, stream.height = WIDTH, HEIGHT
        stream.pix_fmt = "yuvj420p" if encoder == "mjpeg" else "yuv420p"
        for index in range(frames):
            frame = av.VideoFrame.from_ndarray(synthetic_frame(index), format="rgb24")
            frame.pts, frame.time_base = index, Fraction(1, FPS)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


class ColourDetector:
    """Finds the red and the blue figure by colour (the bounding box of their strongly coloured pixels)."""

    name = "colour-test-detector"

    def __init__(self):
        self.calls = 0
        self.frames_seen: list[np.ndarray] = []

    def detect(self, frames):
        from ivt_hf.footage import Detection

        found = []
        for pixels in frames:
            self.calls += 1
            people = []
            red, green, blue = (pixels[..., channel].astype(int) for channel in range(3))
            for mask in ((red > 150) & (green < 90) & (blue < 90), (blue > 150) & (red < 90) & (green < 90)):
                rows, columns = np.nonzero(mask)
                if len(rows) > 50:
                    box = (float(columns.min()), float(rows.min()), float(columns.max() + 1), float(rows.max() + 1))
                    people.append(Detection(box, 0.9))
            found.append(people)
        return found


def save_tiny_detector(folder: Path, labels: dict[int, str] | None = None, seed: int = 0) -> Path:
    """A randomly initialised RT-DETR (a ResNet of width 8-16, one encoder and one decoder layer of width 16, 10
    queries, about 65,000 weights) and its image processor (64 x 64), saved with `save_pretrained`. Nothing is
    downloaded: the backbone is transformers' own RT-DETR ResNet (no timm), built without pretrained weights."""
    import torch
    from transformers import RTDetrConfig, RTDetrForObjectDetection, RTDetrResNetConfig
    from transformers.models.rt_detr.image_processing_pil_rt_detr import RTDetrImageProcessorPil

    labels = labels or {0: "person", 1: "bicycle", 2: "car"}
    torch.manual_seed(seed)
    backbone = RTDetrResNetConfig(
        embedding_size=8,
        hidden_sizes=[8, 16, 16, 16],
        depths=[1, 1, 1, 1],
        out_features=["stage2", "stage3", "stage4"],
        layer_type="basic",
    )
    config = RTDetrConfig(
        backbone_config=backbone,
        use_pretrained_backbone=False,
        encoder_hidden_dim=16,
        encoder_in_channels=[16, 16, 16],
        d_model=16,
        encoder_ffn_dim=16,
        decoder_ffn_dim=16,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_layers=1,
        decoder_layers=1,
        num_queries=10,
        decoder_in_channels=[16, 16, 16],
        num_denoising=0,
        id2label=labels,
        label2id={label: key for key, label in labels.items()},
    )
    RTDetrForObjectDetection(config).save_pretrained(folder)
    RTDetrImageProcessorPil(size={"height": 64, "width": 64}).save_pretrained(folder)
    return folder

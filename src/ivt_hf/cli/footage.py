"""The footage flags of `ivt index build` (`--video`, `--frames` and how people are found in them) and the build
they start; `cli/search.py` registers them on its parser and hands a footage build here.

ivt index build --model MODEL --video street.mp4 other.avi --output_dir INDEX [--detector hog] [--sample_fps 2.5]
ivt index build --model MODEL --frames camera_frames/ --frames_fps 25 --output_dir INDEX
"""

from __future__ import annotations

import argparse
import os

from . import CommandError, flag
from .parsers import positive_float, positive_int


def unit_interval(text: str) -> float:
    """An argparse `type`: a number from 0 to 1 (a score, a fraction)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number from 0 to 1, got {text!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be a number from 0 to 1, got {text}")
    return value


def non_negative_float(text: str) -> float:
    """An argparse `type`: a finite number >= 0 (a size in pixels)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not (value >= 0 and value != float("inf")):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def add_footage_arguments(build: argparse.ArgumentParser) -> None:
    """The flags of a build from footage (the crops come from the people found in it)."""
    footage = build.add_argument_group("footage (instead of --images: people are found, tracked and cropped)")
    footage.add_argument("--video", nargs="+", metavar="FILE", help="video files (any container FFmpeg reads)")
    footage.add_argument("--frames", nargs="+", metavar="DIR", help="folders of still frames (a sub-folder each)")
    footage.add_argument(
        *flag("--sample_fps"), type=positive_float, default=2.5, help="frames looked at per second (default 2.5)"
    )
    footage.add_argument(
        *flag("--frames_fps"), type=positive_float, help="the frame rate of --frames folders, when known (gives times)"
    )
    footage.add_argument(
        "--detector",
        help="a transformers object-detection checkpoint (Hub id or folder, e.g. DETR, RT-DETR) or 'hog' (OpenCV's "
        "people detector, no weights); default: PekingU/rtdetr_r18vd_coco_o365, or HOG when it cannot be had",
    )
    footage.add_argument(*flag("--min_score"), type=unit_interval, default=0.5, help="detector confidence (0-1)")
    footage.add_argument(
        *flag("--min_height"), type=non_negative_float, default=96.0, help="smallest person kept, in pixels"
    )
    footage.add_argument("--margin", type=unit_interval, default=0.1, help="added around a box, of its size per side")
    footage.add_argument(
        *flag("--crops_per_track"), type=positive_int, default=3, help="crops kept per tracked person (default 3)"
    )


def is_footage_build(args: argparse.Namespace) -> bool:
    """Whether the build reads footage; one error line when it names both images and footage, or neither."""
    footage = bool(args.video or args.frames)
    if footage == bool(args.images):
        raise CommandError("give --images DIR, or --video FILE... / --frames DIR... (one kind of gallery per index)")
    return footage


def run_footage_build(args: argparse.Namespace, model, processor, model_name: str, store=None) -> int:
    from ..footage import FootageSettings, load_person_detector
    from ..search.footage_index import build_footage_index

    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise CommandError("an index of footage is built by one process: start it without torchrun / accelerate")
    settings = FootageSettings(
        sample_fps=args.sample_fps,
        min_score=args.min_score,
        min_height=args.min_height,
        margin=args.margin,
        crops_per_track=args.crops_per_track,
        frames_fps=args.frames_fps,
    )
    detector, notice = load_person_detector(args.detector, min_score=args.min_score)
    if notice:
        print(f"note: {notice}")
    from ..footage import FootageReadError

    try:
        report = build_footage_index(
            model,
            processor,
            args.output_dir,
            detector=detector,
            videos=args.video or (),
            frame_folders=args.frames or (),
            settings=settings,
            batch_size=args.batch_size,
            on_invalid=args.on_invalid,
            model_name_or_path=model_name,
            overwrite=args.overwrite,
            dtype=args.dtype,
            store=store,
        )
    except FootageReadError as error:
        if getattr(error, "report", None) is not None:  # the index of what was read is in place: say what it holds
            print(error.report.summary())
        raise
    print(report.summary())
    for skipped in report.skipped:  # the error names the file
        print(f"skipped: {skipped['error']}")
    return 0


def describe_footage(record: dict | None) -> str:
    """One line for a search hit from footage: source, time, frame, track, box ('' for a plain image)."""
    if not record:
        return ""
    when = f"{record['time_s']:.2f} s, " if record["time_s"] is not None else ""
    x0, y0, x1, y1 = record["box"]
    return (
        f"{os.path.basename(record['source'])} at {when}frame {record['frame']}, track {record['track']}, "
        f"box ({x0}, {y0}, {x1}, {y1})"
    )

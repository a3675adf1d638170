"""`ivt index add` and `ivt index remove` (galleries that grow, `ivt_hf.search.growing`), and the filters of
`ivt search` (`--where source=... / camera=...`, `--after`, `--before`); `cli/search.py` registers them.

ivt index add INDEX --images DIR                 (an index of images; only images it does not hold are encoded)
ivt index add INDEX --video FILE... / --frames DIR...   (an index of footage; the settings it was built with)
ivt index remove INDEX --missing / --source FILE_OR_DIR...
ivt search --index INDEX "a man in red" --where camera=cam2 --after 10 --before 60
"""

from __future__ import annotations

import argparse
import math
import os

from . import CommandError, flag
from .parsers import positive_int
from .store import add_store_argument, check_time_range

STORE_CHANGE_HELP = "the Milvus server (milvus:http(s)://HOST:PORT) the index keeps its vectors on: changed to match"

WHERE_KEYS = ("source", "camera")


def where_filter(text: str) -> tuple[str, str]:
    """An argparse `type`: `source=FILE_OR_DIR` or `camera=NAME`."""
    key, equals, value = text.partition("=")
    if not equals or key not in WHERE_KEYS or not value:
        raise argparse.ArgumentTypeError(f"must be source=FILE_OR_DIR or camera=NAME, got {text!r}")
    return key, value


def seconds(text: str) -> float:
    """An argparse `type`: a finite number of seconds into the footage, >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be seconds into the footage (a number), got {text!r}") from None
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds >= 0, got {text}")
    return value


def add_search_filters(search: argparse.ArgumentParser) -> None:
    search.add_argument(
        "--where",
        action="append",
        type=where_filter,
        default=[],
        metavar="KEY=VALUE",
        help="search only entries from a source (source=FILE_OR_DIR: an image, a folder, a video, a frame folder) "
        "or a camera (camera=NAME: the first folder under the gallery root; for footage also the video's or frame "
        "folder's name); repeat to narrow (the same key twice: either)",
    )
    search.add_argument("--after", type=seconds, help="footage only: from this many seconds into the source")
    search.add_argument("--before", type=seconds, help="footage only: up to this many seconds into the source")


def selected_rows(index, args: argparse.Namespace) -> list[int] | None:
    """The entries `ivt search`'s filters leave (None: no filter given, search everything)."""
    from ..search.growing import select_entries

    if not args.where and args.after is None and args.before is None:
        return None
    check_time_range(args)
    rows = select_entries(
        index,
        sources=[value for key, value in args.where if key == "source"],
        cameras=[value for key, value in args.where if key == "camera"],
        after=args.after,
        before=args.before,
    )
    if not rows:  # before the model is loaded
        raise CommandError("no entry of the index passes the filters (--where, --after, --before)")
    return rows


def run_index_add(args: argparse.Namespace) -> int:
    from ..search.index import GalleryIndex
    from .export import load_for_runtime
    from .store import named_store

    if bool(args.images) == bool(args.video or args.frames):
        raise CommandError("give --images DIR, or --video FILE... / --frames DIR... (what the index holds)")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # each process would encode the same images and race to write
        raise CommandError("ivt index add is one process: start it without torchrun / accelerate")
    store = named_store(args, args.index)  # a Milvus server the index keeps its vectors on
    index = GalleryIndex.load(args.index)
    footage, manifest = any(index.footage), index.manifest
    if footage != bool(args.video or args.frames):  # before a model or a detector is loaded
        held = "footage: add --video FILE... / --frames DIR..." if footage else "images: add --images DIR"
        raise CommandError(f"{args.index} is an index of {held}")
    model_dir = args.model or manifest.get("model")
    if not model_dir:
        raise CommandError("the index does not name its model; pass --model")
    model, processor = load_for_runtime(model_dir, args.runtime)
    if args.images:
        from ..search.growing import add_images

        report = add_images(
            model,
            processor,
            args.index,
            args.images,
            batch_size=args.batch_size,
            on_invalid=args.on_invalid,
            store=store,
        )
    else:
        from ..footage import load_person_detector
        from ..search.growing import add_footage

        recorded = manifest.get("footage_settings") or {}
        detector, notice = load_person_detector(
            args.detector or recorded.get("detector"), min_score=recorded.get("min_score", 0.5)
        )
        if notice:
            print(f"note: {notice}")
        report = add_footage(
            model,
            processor,
            args.index,
            detector=detector,
            videos=args.video or (),
            frame_folders=args.frames or (),
            batch_size=args.batch_size,
            store=store,
        )
    print(report.summary())
    for skipped in report.skipped:
        print(f"skipped: {skipped['error']}")
    return 0


def run_index_remove(args: argparse.Namespace) -> int:
    from ..search.growing import remove_entries
    from .store import named_store

    if not args.missing and not args.source:
        raise CommandError("say what to remove: --missing, or --source FILE_OR_DIR...")
    store = named_store(args, args.index)
    print(remove_entries(args.index, missing=args.missing, sources=args.source or (), store=store).summary())
    return 0


def register_index_changes(index_commands, add_runtime_argument) -> None:
    """`ivt index add` and `ivt index remove` under `ivt index`."""
    add = index_commands.add_parser("add", help="add images (or footage) to an index, encoding only what is new")
    add.add_argument("index", help="an index folder written by `ivt index build`")
    add.add_argument("--images", help="a folder of images (recursive): those the index does not hold are added")
    add.add_argument("--video", nargs="+", metavar="FILE", help="an index of footage: videos to add")
    add.add_argument("--frames", nargs="+", metavar="DIR", help="an index of footage: folders of still frames")
    add.add_argument("--detector", help="footage: default the detector the index was built with")
    add.add_argument("--model", help="default: the model the index was built with (another one is refused)")
    add.add_argument(*flag("--batch_size"), type=positive_int, default=64)
    add.add_argument(*flag("--on_invalid"), choices=["error", "skip"], default="error")
    add_runtime_argument(add)
    add_store_argument(add, STORE_CHANGE_HELP)
    add.set_defaults(handler=run_index_add)

    remove = index_commands.add_parser("remove", help="remove entries whose files are gone, or of a source")
    remove.add_argument("index", help="an index folder written by `ivt index build`")
    remove.add_argument("--missing", action="store_true", help="entries whose image (or crop) file is gone")
    remove.add_argument(
        "--source", nargs="+", metavar="FILE_OR_DIR", help="entries from these images, folders, videos, frame folders"
    )
    add_store_argument(remove, STORE_CHANGE_HELP)
    remove.set_defaults(handler=run_index_remove)

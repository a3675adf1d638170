"""`ivt data prepare | stats | synth`: thin wrappers over `ivt_hf.data` (heavy imports stay inside the handlers).

ivt data prepare --benchmark cuhk-pedes --root ~/data/CUHK-PEDES --output_dir ~/data/cuhk-prepared
ivt data prepare --dataset_name ORG/NAME --caption_column text --output_dir ~/data/mine-prepared
ivt data stats ~/data/cuhk-prepared
ivt data synth --num_ids 1300 --image_size 384 128 --seed 0 --layout cuhk-pedes --output_dir ~/data/synthpedes
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ..data.specs import BENCHMARK_NAMES, BENCHMARKS, SPLITS, get_spec
from . import CommandError, flag
from .parsers import non_negative_int, positive_int


def add_source_arguments(parser: argparse.ArgumentParser) -> None:
    """Where data comes from, the same for every command: `--benchmark NAME --root DIR`, or `--dataset_name` (a
    folder or a Hub id) with the flags of `datasets` data."""
    source = parser.add_argument_group("data (--benchmark with --root, or --dataset_name)")
    source.add_argument("--benchmark", choices=BENCHMARK_NAMES, help="a benchmark layout, read from --root")
    source.add_argument("--root", help="the raw copy (annotation JSON + imgs/), or a prepared folder")
    source.add_argument(
        *flag("--dataset_name"),
        dest="dataset_name",
        help="a folder (ivt data prepare / save_to_disk output, or an image folder with "
        "metadata.jsonl / metadata.csv) or a Hub dataset id ORG/NAME",
    )
    source.add_argument(*flag("--dataset_config"), dest="dataset_config", help="the Hub dataset's configuration")
    source.add_argument("--revision", help="the Hub dataset's branch, tag or commit")
    for role, default in (("image", "image"), ("caption", "captions, else caption"), ("person_id", "person_id")):
        source.add_argument(*flag(f"--{role}_column"), dest=f"{role}_column", help=f"default: {default}")
    source.add_argument(
        *flag("--min_images_per_id"),
        dest="min_images_per_id",
        type=positive_int,
        help="least images per identity in the train split of your own data (default 2)",
    )


def source_name(args: argparse.Namespace) -> str:
    """The data's name as given (a benchmark name, a folder or a Hub id); checks that exactly one was given."""
    if (args.benchmark is None) == (args.dataset_name is None):
        raise CommandError("give --benchmark NAME --root DIR, or --dataset_name (a folder or a Hub id), not both")
    if args.benchmark is not None and args.root is None and args.benchmark != "synthpedes":
        raise CommandError(f"--benchmark {args.benchmark} needs --root (the folder of your copy)")
    if args.dataset_name is not None and args.root is not None:
        raise CommandError("--root goes with --benchmark; --dataset_name is itself the folder or Hub id")
    return args.benchmark or args.dataset_name


def load_source(args: argparse.Namespace, **checks):
    """The data the source arguments name, with its report (`ivt_hf.data.load_data_with_report`)."""
    from ..data.hf_datasets import ColumnMapping
    from ..data.loading import load_data_with_report

    columns = ColumnMapping(args.image_column, args.caption_column, args.person_id_column)
    minimum = None if args.min_images_per_id is None else {"train": args.min_images_per_id}
    return load_data_with_report(
        source_name(args),
        args.root,
        config=args.dataset_config,
        revision=args.revision,
        columns=columns,
        min_images_per_id=minimum,
        **checks,
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    data = subparsers.add_parser("data", help="prepare, inspect and generate benchmarks")
    commands = data.add_subparsers(dest="data_command", required=True, metavar="COMMAND")

    prepare = commands.add_parser(
        "prepare", help="check any data, normalise it and save it self-contained (images embedded)"
    )
    add_source_arguments(prepare)
    prepare.add_argument(
        *flag("--output_dir"), "--output", dest="output_dir", required=True, help="folder for the saved DatasetDict"
    )
    prepare.add_argument(*flag("--on_invalid"), dest="on_invalid", choices=("error", "skip"), default="error")
    prepare.add_argument(*flag("--no_verify_images"), dest="verify_images", action="store_false", help="skip decoding")
    prepare.add_argument("--overwrite", action="store_true", help="replace an output folder that ivt_hf wrote")
    prepare.set_defaults(handler=run_prepare)

    stats = commands.add_parser("stats", help="ids / images / captions per split")
    stats.add_argument("path", help="a prepared folder, or a raw copy together with --benchmark")
    stats.add_argument("--benchmark", choices=BENCHMARK_NAMES, help="read PATH as this raw benchmark")
    stats.set_defaults(handler=run_stats)

    synth = commands.add_parser("synth", help="generate SynthPEDES in the raw layout of a real benchmark")
    synth.add_argument(*flag("--num_ids"), dest="num_ids", type=positive_int, default=None, help="default 1300")
    synth.add_argument(
        *flag("--split_ids"),
        dest="split_ids",
        type=int,
        nargs=3,
        metavar=("TRAIN", "VAL", "TEST"),
        help="identities per split instead of --num_ids (VAL is ignored by the icfg-pedes layout)",
    )
    synth.add_argument(
        *flag("--image_size"),
        dest="image_size",
        type=int,
        nargs=2,
        default=[384, 128],
        metavar=("H", "W"),
        help="rendered image size, default 384 128 (the IVT input)",
    )
    synth.add_argument(
        *flag("--images_per_id"),
        dest="images_per_id",
        type=int,
        nargs=2,
        default=[2, 4],
        metavar=("MIN", "MAX"),
    )
    synth.add_argument("--seed", type=non_negative_int, default=0)
    synth.add_argument("--layout", choices=tuple(BENCHMARKS), default="cuhk-pedes")
    synth.add_argument(*flag("--output_dir"), "--output", dest="output_dir", required=True)
    synth.add_argument("--overwrite", action="store_true", help="replace an output folder that ivt_hf wrote")
    synth.set_defaults(handler=run_synth)


def run_prepare(args: argparse.Namespace) -> int:
    from ..data.prepared import prepare_benchmark
    from ..data.schema import split_counts
    from ..outputs import check_output_dir

    source_name(args)
    output = Path(args.output_dir)
    check_output_dir(output, overwrite=args.overwrite)  # fail before the long read (and again under the lock)
    start = time.perf_counter()
    dataset, report = load_source(args, on_invalid=args.on_invalid, verify_images=args.verify_images)
    if report is not None:
        print(report.format())
    prepare_benchmark(dataset, output, overwrite=args.overwrite)
    images = sum(split_counts(split).images for split in dataset.values())
    seconds = time.perf_counter() - start
    print(
        f"wrote {images} images to {output} in {seconds:.1f} s ({1000 * seconds / max(images, 1):.2f} s / 1,000 images)"
    )
    empty = [split for split, split_dataset in dataset.items() if not len(split_dataset)]
    if empty:
        print(
            f"splits written: {', '.join(split for split in dataset if split not in empty)}; left out the empty "
            f"{', '.join(empty)}"
        )
    return 0


def run_stats(args: argparse.Namespace) -> int:
    from ..data.loading import load_benchmark_with_report
    from ..data.prepared import is_prepared, load_prepared
    from ..data.schema import format_counts_table, split_counts

    if args.benchmark is None and not is_prepared(args.path):
        raise CommandError(f"{args.path!r} is not a prepared folder; to read a raw copy, add --benchmark NAME")
    if is_prepared(args.path):
        dataset = load_prepared(args.path)
    else:
        dataset, _ = load_benchmark_with_report(args.benchmark, args.path, verify_images=False)
    counts = {split: split_counts(split_dataset) for split, split_dataset in dataset.items()}
    sources = sorted({source for split_dataset in dataset.values() for source in split_dataset.unique("source")})
    print(f"{args.path} ({', '.join(sources)})")
    print(format_counts_table(counts))
    return 0


def run_synth(args: argparse.Namespace) -> int:
    from ..data.synthpedes import generate

    split_ids = None
    if args.split_ids is not None:
        if args.num_ids is not None:
            raise CommandError("give --num_ids or --split_ids, not both")
        layout_splits = get_spec(args.layout).splits  # ICFG-PEDES has no validation split: its VAL is ignored
        split_ids = {split: ids for split, ids in zip(SPLITS, args.split_ids) if split in layout_splits}
    start = time.perf_counter()
    synth_plan = generate(
        args.output_dir,
        num_ids=args.num_ids,
        split_ids=split_ids,
        image_size=args.image_size,
        seed=args.seed,
        layout=args.layout,
        images_per_id=args.images_per_id,
        overwrite=args.overwrite,
    )
    seconds = time.perf_counter() - start
    images = len(synth_plan.images)
    print(
        f"SynthPEDES ({args.layout} layout, seed {args.seed}): {len(synth_plan.identities)} identities, {images} "
        f"images in {args.output_dir} ({seconds:.1f} s, {images / max(seconds, 1e-9):.0f} images/s)"
    )
    return 0

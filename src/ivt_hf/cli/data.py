"""`ivt data prepare | stats | synth`: thin wrappers over `ivt_hf.data` (heavy imports stay inside the handlers).

ivt data prepare --dataset_name cuhk-pedes --data_dir ~/data/CUHK-PEDES --output_dir ~/data/cuhk-prepared
ivt data prepare --dataset_name ORG/NAME --caption_column text --output_dir ~/data/mine-prepared
ivt data stats ~/data/cuhk-prepared
ivt data synth --num_ids 1300 --image_size 384 128 --images_per_id_range 2 4 --output_dir ~/data/synthpedes
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

from ..data.arguments import (
    SYNTH_FIELDS,
    DataArguments,
    add_data_arguments,
    add_renamed_flag,
    data_arguments,
)
from ..data.specs import BENCHMARK_NAMES, BENCHMARKS, SPLITS, get_spec
from . import CommandError, flag
from .parsers import non_negative_int, positive_int

SOURCE_FIELDS = tuple(each.name for each in dataclasses.fields(DataArguments) if each.name not in SYNTH_FIELDS)


def add_source_arguments(parser: argparse.ArgumentParser) -> None:
    """Where data comes from, in the words of every command (`ivt_hf.data.arguments.DataArguments`): `--dataset_name`
    (a benchmark name with `--data_dir`, a folder or a Hub id) and the flags of `datasets` data."""
    add_data_arguments(
        parser, SOURCE_FIELDS, title="data (--dataset_name: a benchmark with --data_dir, a folder or a Hub id)"
    )


def source_arguments(args: argparse.Namespace) -> DataArguments:
    """The `DataArguments` of the command's flags, checked (`DataArguments.__post_init__`)."""
    return data_arguments(args, SOURCE_FIELDS)


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
    prepare.add_argument(*flag("--no_verify_images"), dest="verify_images", action="store_false", help="skip decoding")
    prepare.add_argument("--overwrite", action="store_true", help="replace an output folder that ivt_hf wrote")
    prepare.set_defaults(handler=run_prepare)

    stats = commands.add_parser("stats", help="ids / images / captions per split; a corpus's pairs and cleaning")
    stats.add_argument(
        "path", help="a prepared folder, a raw copy together with --dataset_name, or a pre-training corpus folder"
    )
    stats.add_argument(
        *flag("--dataset_name"), dest="dataset_name", choices=BENCHMARK_NAMES, help="read PATH as this raw benchmark"
    )
    add_renamed_flag(stats, "benchmark", "dataset_name", choices=BENCHMARK_NAMES)
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
    range_flag = {"type": int, "nargs": 2, "metavar": ("MIN", "MAX")}
    synth.add_argument(
        *flag("--images_per_id_range"),
        dest="images_per_id_range",
        default=[2, 4],
        help="images per identity, drawn from MIN to MAX (default 2 4)",
        **range_flag,
    )
    add_renamed_flag(synth, "images_per_id", "images_per_id_range", **range_flag)
    synth.add_argument("--seed", type=non_negative_int, default=0)
    synth.add_argument("--layout", choices=tuple(BENCHMARKS), default="cuhk-pedes")
    synth.add_argument(*flag("--output_dir"), "--output", dest="output_dir", required=True)
    synth.add_argument("--overwrite", action="store_true", help="replace an output folder that ivt_hf wrote")
    synth.set_defaults(handler=run_synth)


def run_prepare(args: argparse.Namespace) -> int:
    from ..data.loading import load_from_arguments
    from ..data.prepared import prepare_benchmark
    from ..data.schema import split_counts
    from ..outputs import check_output_dir

    data_args = source_arguments(args)
    name = data_args.name  # data that is not named: one error line before anything is read
    output = Path(args.output_dir)
    check_output_dir(output, overwrite=args.overwrite)  # fail before the long read (and again under the lock)
    start = time.perf_counter()
    dataset, report = load_from_arguments(data_args, verify_images=args.verify_images)
    if report is not None:
        print(report.format())
    prepare_benchmark(dataset, output, overwrite=args.overwrite)
    images = sum(split_counts(split).images for split in dataset.values())
    seconds = time.perf_counter() - start
    print(
        f"{name}: wrote {images} images to {output} in {seconds:.1f} s "
        f"({1000 * seconds / max(images, 1):.2f} s / 1,000 images)"
    )
    empty = [split for split, split_dataset in dataset.items() if not len(split_dataset)]
    if empty:
        print(
            f"splits written: {', '.join(split for split in dataset if split not in empty)}; left out the empty "
            f"{', '.join(empty)}"
        )
    return 0


def run_stats(args: argparse.Namespace) -> int:
    from ..data.caption_noise import caption_noise, dataset_caption_records
    from ..data.corpora import read_corpus
    from ..data.loading import load_benchmark_with_report
    from ..data.prepared import is_prepared, load_prepared
    from ..data.schema import format_counts_table, split_counts
    from ..data.sources import corpus_kind

    corpus = None if args.dataset_name else corpus_kind(args.path)
    if corpus is not None:  # a pre-training corpus as published: its pairs and what its cleaning did
        _, report = read_corpus(corpus, args.path, on_invalid="skip")
        first, *rest = report.format().splitlines()
        print("\n".join([f"{first} ({args.path})", *rest]))
        return 0
    if args.dataset_name is None and not is_prepared(args.path):
        raise CommandError(f"{args.path!r} is not a prepared folder; to read a raw copy, add --dataset_name NAME")
    if is_prepared(args.path):
        dataset = load_prepared(args.path)
    else:
        dataset, _ = load_benchmark_with_report(args.dataset_name, args.path, verify_images=False)
    counts = {split: split_counts(split_dataset) for split, split_dataset in dataset.items()}
    sources = sorted({source for split_dataset in dataset.values() for source in split_dataset.unique("source")})
    print(f"{args.path} ({', '.join(sources)})")
    print(format_counts_table(counts))
    print(caption_noise(dataset_caption_records(dataset)).format())
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
        images_per_id=args.images_per_id_range,
        overwrite=args.overwrite,
    )
    seconds = time.perf_counter() - start
    images = len(synth_plan.images)
    print(
        f"SynthPEDES ({args.layout} layout, seed {args.seed}): {len(synth_plan.identities)} identities, {images} "
        f"images in {args.output_dir} ({seconds:.1f} s, {images / max(seconds, 1e-9):.0f} images/s)"
    )
    return 0

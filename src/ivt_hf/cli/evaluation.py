"""`ivt evaluate`: R@1/5/10, mAP and mINP of a model on a benchmark split, written as an `EvaluationRecord`.

The record (and the `--show` picture) is a new file, or with `--overwrite` one that ivt_hf wrote; a file of anyone
else's is never replaced (`ivt_hf.outputs.writing_output_file`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..data.specs import BENCHMARK_NAMES, SYNTHPEDES
from . import DTYPE_CHOICES, CommandError, flag
from .data import add_source_arguments, source_arguments
from .export import add_runtime_argument
from .parsers import picture_path, positive_int


def run_evaluate(args: argparse.Namespace) -> int:
    import torch

    from ..data.loading import load_from_arguments
    from ..data.normalise import emit_report
    from ..evaluation.floor_and_ceiling import synthpedes_baselines
    from ..evaluation.pictures import draw_retrieval, rows_from_evaluation
    from ..evaluation.record import EvaluationRecord
    from ..evaluation.split_evaluation import evaluate_split
    from ..outputs import check_output_file, writing_output_file
    from .export import load_for_runtime

    data_args = source_arguments(args)
    name = data_args.name
    output = _record_path(args, name)
    for path in (output, args.show):  # before the model and the data load
        if path:
            check_output_file(path, overwrite=args.overwrite)
    if args.threads:
        torch.set_num_threads(args.threads)
    from ..evaluation.encoding import prepare_for_inference

    model, processor = load_for_runtime(args.model, args.runtime, threads=args.threads)
    model = prepare_for_inference(model, args.dtype)
    data, report = load_from_arguments(data_args)
    if report is not None:
        emit_report(report)
    with_images = [split for split, split_dataset in data.items() if len(split_dataset)]
    if args.split not in with_images:  # absent, or empty (evaluation-only data has no train split to speak of)
        raise CommandError(
            f"{name} has no images in split {args.split!r} (splits with images: {', '.join(with_images) or 'none'})"
        )
    image_split = data[args.split]
    evaluation = evaluate_split(
        model,
        processor,
        image_split,
        protocol=args.protocol,
        official_every_second_gallery_row=args.official_gallery,
        batch_size=args.batch_size,
        max_queries=args.max_queries,
    )
    record = EvaluationRecord(
        benchmark=name,
        split=args.split,
        protocol=args.protocol,
        metrics=evaluation.metrics,
        facts={"model": str(args.model), "root": str(data_args.data_dir or name), "dtype": args.dtype}
        | ({"runtime": "onnx"} if args.runtime == "onnx" else {})
        | evaluation.facts,
        baselines=synthpedes_baselines(image_split, split=args.split) if name == SYNTHPEDES else None,
    )
    print(
        f"{name} {args.split}: {evaluation.facts['num_queries']} queries, "
        f"{evaluation.facts['num_gallery']} gallery images, protocol {args.protocol}"
    )
    print(record.table())
    with writing_output_file(output, overwrite=args.overwrite, command="ivt evaluate") as partial:
        record.save(partial)
    print(f"wrote {output}")
    if args.show:
        step = max(1, len(evaluation.captions) // args.num_show)
        queries = list(range(0, len(evaluation.captions), step))[: args.num_show]
        with writing_output_file(args.show, overwrite=args.overwrite, command="ivt evaluate --show") as partial:
            draw_retrieval(
                rows_from_evaluation(evaluation, image_split, queries),
                partial,
                title=f"{name} {args.split}: top-10 per query (green = right person)",
            )
        print(f"wrote {args.show}")
    return 0


def _record_path(args: argparse.Namespace, name: str) -> Path:
    """`--output`, or by default `eval_DATA_SPLIT.json` in the model folder (beside the working folder for a Hub
    model)."""
    if args.output:
        return Path(args.output)
    if name in BENCHMARK_NAMES:
        data_tag = name
    else:  # a folder by its name, a Hub id ORG/NAME as ORG--NAME
        data_tag = Path(name).name if Path(name).is_dir() else name.replace("/", "--")
    if Path(args.model).is_dir():
        return Path(args.model) / f"eval_{data_tag}_{args.split}.json"
    return Path(f"eval_{args.model.replace('/', '--')}_{data_tag}_{args.split}.json")  # a Hub id: no model folder


def register(subparsers) -> None:
    evaluate = subparsers.add_parser("evaluate", help="R@1/5/10, mAP, mINP of a model on a benchmark split")
    evaluate.add_argument("--model", required=True, help="a from_pretrained folder or a Hub repo id")
    add_source_arguments(evaluate)
    evaluate.add_argument("--split", default="test")
    evaluate.add_argument("--protocol", default="standard", choices=["standard", "official"])
    evaluate.add_argument(
        *flag("--official_gallery"),
        action="store_true",
        help="the reference's every-second-caption-row gallery (for comparing with its logs)",
    )
    evaluate.add_argument(*flag("--batch_size"), type=positive_int, default=64)
    evaluate.add_argument(*flag("--max_queries"), type=positive_int, default=None)
    evaluate.add_argument("--threads", type=positive_int, default=None)
    evaluate.add_argument(
        "--dtype",
        choices=DTYPE_CHOICES,
        default="float32",
        help="encoding precision: bfloat16, float16 (GPU), int8 (CPU)",
    )
    evaluate.add_argument(
        "--output",
        help="the evaluation record, JSON (default: MODEL/eval_BENCHMARK_SPLIT.json, or "
        "./eval_ORG--NAME_BENCHMARK_SPLIT.json for a Hub model)",
    )
    evaluate.add_argument("--show", type=picture_path, help="write a picture of the top-10 for a few queries (PNG)")
    evaluate.add_argument(
        "--overwrite", action="store_true", help="replace an --output (or --show) file that ivt_hf wrote"
    )
    evaluate.add_argument(*flag("--num_show"), type=positive_int, default=4)
    add_runtime_argument(evaluate)
    evaluate.set_defaults(handler=run_evaluate)

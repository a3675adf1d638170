"""`ivt evaluate`, `ivt index build` and `ivt search`: thin command-line wrappers over `ivt_hf.retrieval`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

METRIC_ORDER = ("R1", "R5", "R10", "mAP", "mINP")


def format_metrics_table(named_metrics: dict[str, dict[str, float]]) -> str:
    """Rows of R@1/5/10, mAP, mINP (in %) for each name, aligned."""
    keys = [key for key in METRIC_ORDER if any(key in metrics for metrics in named_metrics.values())]
    name_width = max(len(name) for name in named_metrics)
    lines = [" " * name_width + "".join(f"{key:>8}" for key in keys)]
    for name, metrics in named_metrics.items():
        lines.append(
            f"{name:<{name_width}}"
            + "".join(f"{metrics[key]:>8.2f}" if key in metrics else f"{'-':>8}" for key in keys)
        )
    return "\n".join(lines)


def load_model_and_processor(model_dir: str):
    from transformers import AutoModel, AutoProcessor

    import ivt_hf  # noqa: F401  (registers the Auto classes)

    if not Path(model_dir).is_dir():
        raise FileNotFoundError(f"model folder not found: {model_dir}")
    return AutoModel.from_pretrained(model_dir).eval(), AutoProcessor.from_pretrained(model_dir)


def run_evaluate(args: argparse.Namespace) -> int:
    import torch

    from .data import load_benchmark
    from .retrieval import evaluate_split
    from .visualize import draw_retrieval, rows_from_evaluation

    if args.threads:
        torch.set_num_threads(args.threads)
    model, processor = load_model_and_processor(args.model)
    data = load_benchmark(args.benchmark, args.root)
    if args.split not in data:
        print(f"error: {args.benchmark} has no split {args.split!r} (splits: {', '.join(data)})", file=sys.stderr)
        return 2
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
    report: dict[str, Any] = {
        "metrics": evaluation.metrics,
        "facts": {
            "model": str(args.model),
            "benchmark": args.benchmark,
            "root": str(args.root),
            "split": args.split,
            **evaluation.facts,
        },
    }
    table = {"model": evaluation.metrics}
    if args.benchmark == "synthpedes":
        from .data.synthpedes import baselines

        floor_ceiling = baselines(image_split, split=args.split)
        report["baselines"] = floor_ceiling
        table = {"random (floor)": floor_ceiling["random"], "model": evaluation.metrics,
                 "oracle (ceiling)": floor_ceiling["oracle"]}  # fmt: skip
    print(f"{args.benchmark} {args.split}: {evaluation.facts['num_queries']} queries, "
          f"{evaluation.facts['num_gallery']} gallery images, protocol {args.protocol}")  # fmt: skip
    print(format_metrics_table(table))
    output = Path(args.output) if args.output else Path(args.model) / f"eval_{args.benchmark}_{args.split}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=1))
    print(f"wrote {output}")
    if args.show:
        step = max(1, len(evaluation.captions) // args.num_show)
        queries = list(range(0, len(evaluation.captions), step))[: args.num_show]
        draw_retrieval(rows_from_evaluation(evaluation, image_split, queries), args.show,
                       title=f"{args.benchmark} {args.split}: top-10 per query (green = right person)")  # fmt: skip
        print(f"wrote {args.show}")
    return 0


def run_index_build(args: argparse.Namespace) -> int:
    from .retrieval import GalleryIndex

    model, processor = load_model_and_processor(args.model)
    index = GalleryIndex.build(model, processor, args.images, batch_size=args.batch_size, on_invalid=args.on_invalid,
                               model_name_or_path=str(Path(args.model).resolve()))  # fmt: skip
    index.save(args.output)
    print(f"indexed {len(index)} images from {args.images} -> {args.output}")
    for skipped in index.skipped:
        print(f"skipped {skipped['path']}: {skipped['error']}")
    return 0


def run_search(args: argparse.Namespace) -> int:
    from .retrieval import GalleryIndex
    from .visualize import RetrievalRow, draw_retrieval

    index = GalleryIndex.load(args.index)
    model_dir = args.model or index.manifest.get("model")
    if not model_dir:
        print("error: the index does not name its model; pass --model", file=sys.stderr)
        return 2
    model, processor = load_model_and_processor(model_dir)
    results = index.search(args.queries, model, processor, k=args.k, use_faiss=args.faiss)
    rows = []
    for query, hits in zip(args.queries, results):
        print(f"\n{query}")
        for hit in hits:
            print(f"  {hit.rank:>2}. {hit.score:.3f}  {hit.path}")
        rows.append(RetrievalRow(query, [index.resolve(hit.path) for hit in hits], None, [h.score for h in hits]))
    if args.show:
        draw_retrieval(rows, args.show, title=f"search over {len(index)} images")
        print(f"\nwrote {args.show}")
    return 0


def _guard(handler):
    """Turn expected user errors into one clear line and exit code 2 instead of a traceback."""

    def wrapped(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except (FileNotFoundError, ValueError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 2

    return wrapped


def register(subparsers) -> None:
    evaluate = subparsers.add_parser("evaluate", help="R@1/5/10, mAP, mINP of a model on a benchmark split")
    evaluate.add_argument("--model", required=True, help="a from_pretrained folder")
    evaluate.add_argument("--benchmark", required=True, choices=["cuhk-pedes", "icfg-pedes", "rstpreid", "synthpedes"])
    evaluate.add_argument("--root", required=True, help="raw or prepared benchmark folder")
    evaluate.add_argument("--split", default="test")
    evaluate.add_argument("--protocol", default="standard", choices=["standard", "official"])
    evaluate.add_argument(
        "--official-gallery",
        action="store_true",
        help="the reference's every-second-caption-row gallery (for comparing with its logs)",
    )
    evaluate.add_argument("--batch-size", type=int, default=64)
    evaluate.add_argument("--max-queries", type=int, default=None)
    evaluate.add_argument("--threads", type=int, default=None)
    evaluate.add_argument("--output", help="metrics JSON (default: MODEL/eval_BENCHMARK_SPLIT.json)")
    evaluate.add_argument("--show", help="write a picture of the top-10 for a few queries (PNG)")
    evaluate.add_argument("--num-show", type=int, default=4)
    evaluate.set_defaults(handler=_guard(run_evaluate))

    index = subparsers.add_parser("index", help="gallery indexes of your own images")
    index_commands = index.add_subparsers(dest="index_command", required=True)
    build = index_commands.add_parser("build", help="encode a folder of images into an index")
    build.add_argument("--model", required=True)
    build.add_argument("--images", required=True, help="folder of images (searched recursively)")
    build.add_argument("--output", required=True, help="index folder to write")
    build.add_argument("--batch-size", type=int, default=64)
    build.add_argument("--on-invalid", choices=["error", "skip"], default="error")
    build.set_defaults(handler=_guard(run_index_build))

    search = subparsers.add_parser("search", help="find the images that best match a description")
    search.add_argument("--index", required=True)
    search.add_argument("queries", nargs="+", help="one or more descriptions")
    search.add_argument("-k", type=int, default=10)
    search.add_argument("--model", help="default: the model the index was built with")
    search.add_argument("--faiss", action="store_true", help="use a FAISS index (pip install 'ivt_hf[faiss]')")
    search.add_argument("--show", help="write a picture of the results (PNG)")
    search.set_defaults(handler=_guard(run_search))

"""`ivt evaluate`: R@1/5/10, mAP and mINP of a model on a benchmark split, written as an `EvaluationRecord`.

Several test sets (`--dataset_name A B C`, with one `--data_dir` folder per name in the same order) and several
models (`--model M1 M2`) give the cross-domain table (`ivt_hf.evaluation.cross_domain`): a row per model, named by what
it was trained on (its folder's `training_facts.json`; "zero-shot (pre-training)" for a pre-training output), a
column per test set. Each pair is evaluated exactly as a single `ivt evaluate` of it and writes the same record into
the model folder (the model card's `model-index` rows); the table is printed as Markdown and written as JSON.

Every file (a record, the table, the `--show` picture) is new, or with `--overwrite` one that ivt_hf wrote; a file of
anyone else's is never replaced (`ivt_hf.outputs.writing_output_file`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..data.arguments import DataArguments
from ..data.specs import BENCHMARK_NAMES, SYNTHPEDES
from . import DTYPE_CHOICES, CommandError, flag
from .data import add_source_arguments, source_arguments
from .export import add_runtime_argument
from .parsers import picture_path, positive_int

SEVERAL = ("dataset_name", "data_dir")  # the data flags that take one value per test set


def data_sources(args: argparse.Namespace) -> list[DataArguments]:
    """One checked `DataArguments` per `--dataset_name`, each with its `--data_dir` folder (same order); the other
    data flags apply to all. A count mismatch or a name given twice is one error line naming the flags."""
    names = args.dataset_name or [None]
    folders = args.data_dir
    if folders is not None and len(folders) != len(names):
        raise CommandError(
            f"--dataset_name names {len(names)} data set(s) but --data_dir gives {len(folders)} folder(s): give one "
            "--data_dir folder per --dataset_name, in the same order"
        )
    repeated = sorted({name for name in names if name is not None and names.count(name) > 1})
    if repeated:
        raise CommandError(f"--dataset_name names {repeated[0]} twice; evaluate each data set once")
    return [
        source_arguments(argparse.Namespace(**{**vars(args), "dataset_name": name, "data_dir": folder}))
        for name, folder in zip(names, folders or [None] * len(names))
    ]


def run_evaluate(args: argparse.Namespace) -> int:
    import torch

    from ..data.specs import display_name
    from ..evaluation.cross_domain import CrossDomainRow, CrossDomainTable
    from ..outputs import check_output_file

    sources = data_sources(args)
    cross_domain = len(args.model) > 1 or len(sources) > 1
    if cross_domain and args.show:
        raise CommandError("--show draws one model on one data set: give one --model and one --dataset_name with it")
    records = _record_paths(args, sources, None if cross_domain else args.output)
    table_path = _table_path(args) if cross_domain else None
    for path in (*records.values(), table_path, args.show):  # before the models and the data load
        if path:
            check_output_file(path, overwrite=args.overwrite)
    if args.threads:
        torch.set_num_threads(args.threads)
    first = _load_model(args.model[0], args)  # a model that does not load fails before the data is read
    splits = {source.name: _image_split(source, args.split) for source in sources}
    table = CrossDomainTable(args.split, args.protocol, [source.name for source in sources])
    for index, model_name in enumerate(args.model):
        model, processor = first if index == 0 else _load_model(model_name, args)
        row = CrossDomainRow(model_name, _training_of(model_name, args.runtime))
        for source in sources:
            record, evaluation = _evaluate_pair(model, processor, row, source, splits[source.name], args)
            row.cells[source.name] = record
            row.record_files[source.name] = str(_write_record(record, records[model_name, source.name], args))
        table.rows.append(row)
        del model, processor
        first = None  # each model is released before the next loads
    if not cross_domain:
        if args.show:
            _draw(evaluation, splits[sources[0].name], f"{sources[0].name} {args.split}", args)
        return 0
    print(f"\ncross-domain: {len(args.model)} model(s) x {', '.join(map(display_name, table.test_sets))}\n")
    print(table.format())
    _write_table(table, table_path, args)
    return 0


def _record_paths(args: argparse.Namespace, sources: list[DataArguments], output: str | None):
    """The record file of each (model, data set) pair (`_record_path`; `source.name` checks each source: a benchmark
    without its folder, or no name at all, is one error line); two pairs that would write one file (a model given
    twice, two folders of one name) are one error line."""
    records: dict[tuple[str, str], Path] = {}
    for model in args.model:
        for source in sources:
            path = _record_path(model, source.name, args.split, output)
            earlier = next((pair for pair, taken in records.items() if taken == path), None)
            if earlier:
                raise CommandError(
                    f"{' on '.join(earlier)} and {model} on {source.name} would both write "
                    f"{path}: give each --model and --dataset_name once, and folders of different names"
                )
            records[model, source.name] = path
    return records


def _load_model(model_name: str, args: argparse.Namespace):
    """The model (in `--dtype`) and its processor, for `--runtime`."""
    from ..evaluation.encoding import prepare_for_inference
    from .export import load_for_runtime

    model, processor = load_for_runtime(model_name, args.runtime, threads=args.threads)
    return prepare_for_inference(model, args.dtype), processor


def _image_split(source: DataArguments, split: str):
    """The image split `split` of the data `source` names; absent or empty is one error line naming its splits."""
    from ..data.loading import load_from_arguments
    from ..data.normalise import emit_report

    data, report = load_from_arguments(source)
    if report is not None:
        emit_report(report)
    with_images = [name for name, split_dataset in data.items() if len(split_dataset)]
    if split not in with_images:  # absent, or empty (evaluation-only data has no train split to speak of)
        raise CommandError(
            f"{source.name} has no images in split {split!r} (splits with images: {', '.join(with_images) or 'none'})"
        )
    return data[split]


def _training_of(model_name: str, runtime: str):
    """What the model was trained on (`Training`): a pre-training output (its encoder is what was evaluated: the
    `AutoModel` of such a folder is its `IVTModel`), else the `dataset` of its folder's `training_facts.json`; a Hub
    model's facts are not fetched (not recorded)."""
    from ..conversion.pretraining_transfer import is_pretraining_folder
    from ..evaluation.record import Training
    from ..hub.facts import recorded_training_set

    if runtime == "torch" and is_pretraining_folder(model_name):
        return Training(zero_shot=True)
    return Training(recorded_training_set(model_name) if Path(model_name).is_dir() else None)


def _evaluate_pair(model, processor, row, source: DataArguments, image_split, args: argparse.Namespace):
    """The model of `row` (a `CrossDomainRow`: its name, what it was trained on) on one data set's split, as its
    `EvaluationRecord` and the `SplitEvaluation`; prints the pair's numbers."""
    from ..evaluation.floor_and_ceiling import synthpedes_baselines
    from ..evaluation.record import EvaluationRecord
    from ..evaluation.split_evaluation import evaluate_split

    name = source.name
    evaluation = evaluate_split(
        model,
        processor,
        image_split,
        protocol=args.protocol,
        official_every_second_gallery_row=args.official_gallery,
        batch_size=args.batch_size,
        max_queries=args.max_queries,
    )
    training = row.training
    record = EvaluationRecord(
        benchmark=name,
        split=args.split,
        protocol=args.protocol,
        metrics=evaluation.metrics,
        facts={"model": str(row.model), "root": str(source.data_dir or name), "dtype": args.dtype}
        | ({"runtime": "onnx"} if args.runtime == "onnx" else {})
        | training.facts()
        | evaluation.facts,
        baselines=synthpedes_baselines(image_split, split=args.split) if name == SYNTHPEDES else None,
    )
    setting = record.setting
    print(
        f"{name} {args.split}: {evaluation.facts['num_queries']} queries, "
        f"{evaluation.facts['num_gallery']} gallery images, protocol {args.protocol}"
        + (f"; {setting}" if setting else "")
        + (f" (trained on {training.label})" if training.trained_on else "")
    )
    print(record.table())
    return record, evaluation


def _write_record(record, path: Path, args: argparse.Namespace) -> Path:
    from ..outputs import writing_output_file

    with writing_output_file(path, overwrite=args.overwrite, command="ivt evaluate") as partial:
        record.save(partial)
    print(f"wrote {path}")
    return path


def _write_table(table, path: Path, args: argparse.Namespace) -> None:
    from ..outputs import writing_output_file

    with writing_output_file(path, overwrite=args.overwrite, command="ivt evaluate") as partial:
        partial.write_text(json.dumps(table.to_dict(), indent=1))
    print(f"\nwrote {path}")


def _draw(evaluation, image_split, title: str, args: argparse.Namespace) -> None:
    """`--show`: the top-10 of `--num_show` queries spread over the split."""
    from ..evaluation.pictures import draw_retrieval, rows_from_evaluation
    from ..outputs import writing_output_file

    step = max(1, len(evaluation.captions) // args.num_show)
    queries = list(range(0, len(evaluation.captions), step))[: args.num_show]
    with writing_output_file(args.show, overwrite=args.overwrite, command="ivt evaluate --show") as partial:
        draw_retrieval(
            rows_from_evaluation(evaluation, image_split, queries),
            partial,
            title=f"{title}: top-10 per query (green = right person)",
        )
    print(f"wrote {args.show}")


def _record_path(model: str, name: str, split: str, output: str | None) -> Path:
    """`output`, or by default `eval_DATA_SPLIT.json` in the model folder (beside the working folder for a Hub
    model)."""
    if output:
        return Path(output)
    if name in BENCHMARK_NAMES:
        data_tag = name
    else:  # a folder by its name, a Hub id ORG/NAME as ORG--NAME
        data_tag = Path(name).name if Path(name).is_dir() else name.replace("/", "--")
    if Path(model).is_dir():
        return Path(model) / f"eval_{data_tag}_{split}.json"
    return Path(f"eval_{model.replace('/', '--')}_{data_tag}_{split}.json")  # a Hub id: no model folder


def _table_path(args: argparse.Namespace) -> Path:
    """The cross-domain table's JSON: `--output`, or `cross_domain_SPLIT.json` in the one model's folder (in the
    working folder for several models or a Hub model)."""
    if args.output:
        return Path(args.output)
    (model, *others) = args.model
    folder = Path(model) if not others and Path(model).is_dir() else Path()
    return folder / f"cross_domain_{args.split}.json"


def register(subparsers) -> None:
    evaluate = subparsers.add_parser(
        "evaluate",
        help="R@1/5/10, mAP, mINP of a model on a benchmark split; several: the cross-domain table",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    evaluate.add_argument(
        "--model",
        required=True,
        nargs="+",
        help="a from_pretrained folder or a Hub repo id; several: one row each in the cross-domain table",
    )
    add_source_arguments(evaluate)
    for action in evaluate._actions:  # --dataset_name / --data_dir (and their old spellings) take one value per set
        if action.dest in SEVERAL:
            action.nargs = "+"
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
        "./eval_ORG--NAME_BENCHMARK_SPLIT.json for a Hub model); with several models or data sets, the "
        "cross-domain table (default: MODEL/cross_domain_SPLIT.json for one model folder, else "
        "./cross_domain_SPLIT.json), each pair's record going to its default place",
    )
    evaluate.add_argument(
        "--show", type=picture_path, help="write a picture of the top-10 for a few queries (PNG; one model, one set)"
    )
    evaluate.add_argument(
        "--overwrite", action="store_true", help="replace an --output (or --show) file that ivt_hf wrote"
    )
    evaluate.add_argument(*flag("--num_show"), type=positive_int, default=4)
    add_runtime_argument(evaluate)
    evaluate.set_defaults(handler=run_evaluate)

"""Model cards generated from a run's recorded facts (never hand-typed numbers).

The template is `model_cards/template.md` (shipped in the package as `resources/model_card_template.md`); the YAML
front matter, including `model-index` with the evaluation results, is produced by `huggingface_hub.ModelCardData`.
Every evaluation record is one `model-index` result (task, test set as `dataset`, split, metrics); a result of a
model tested off its training set says so in the task's name ("cross-domain: trained on CUHK-PEDES", "zero-shot:
pre-training only"), the model-index spec having no field for the training set (`source` is where a result was
published, with a URL).
`save_model_card` writes the card and `card_facts.json` (title, provenance), so the card can be regenerated from JSON
facts alone (`hub/facts.py`), never by reading the Markdown back.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any

from ..data.specs import display_name
from ..evaluation.record import EvaluationRecord

TEMPLATE = Path(__file__).resolve().parents[1] / "resources" / "model_card_template.md"
CARD_FACTS_FILE = "card_facts.json"
METRIC_NAMES = {"R1": "R@1", "R5": "R@5", "R10": "R@10", "mAP": "mAP", "mINP": "mINP"}
TASK_NAME = "Text-based person retrieval"
DEFAULT_LIMITATIONS = (
    "- Retrieval quality depends on how closely the gallery resembles the training data (camera angles, resolution, "
    "clothing styles, the language of the descriptions: English only).\n"
    "- Descriptions of appearance are ambiguous; two people in similar clothes are easily confused, and the model "
    "ranks confidently either way.\n"
    "- The text side reads at most {max_text_tokens} WordPiece tokens; longer descriptions are truncated."
)


def one_per_evaluation(named: Mapping[str, EvaluationRecord]) -> dict[str, EvaluationRecord]:
    """`named` (in order) with one record per evaluation (`EvaluationRecord.key`): a later record replaces an earlier
    one of the same key, in the earlier one's place. So a second evaluation of a pair replaces its card row."""
    kept: dict[tuple[str, str, str], tuple[str, EvaluationRecord]] = {}
    for name, record in named.items():
        kept[record.key] = (name, record)  # an existing key keeps its position in the dict
    return dict(kept.values())


def _setting_words(evaluation: EvaluationRecord) -> str | None:
    """What the model was trained on, in words, when it was not the test set (None: in-domain or not recorded)."""
    if evaluation.setting == "cross-domain":
        return f"cross-domain: trained on {evaluation.training.label}"
    if evaluation.setting == "zero-shot":
        return "zero-shot: pre-training only"
    return None


def _task_name(evaluation: EvaluationRecord) -> str:
    """The task's name in `model-index`, saying what the model was trained on when it was not the test set."""
    words = _setting_words(evaluation)
    return f"{TASK_NAME} ({words})" if words else TASK_NAME


def _yaml_front_matter(
    model_name: str, license: str, datasets: list[str], tags: list[str], evaluations: Sequence[EvaluationRecord]
) -> str:
    from huggingface_hub import EvalResult, ModelCardData

    eval_results = [
        EvalResult(
            task_type="text-to-image-retrieval",
            task_name=_task_name(evaluation),
            dataset_type=evaluation.benchmark,
            dataset_name=display_name(evaluation.benchmark),
            dataset_split=evaluation.split,
            metric_type=f"{key.lower()}",
            metric_name=f"{METRIC_NAMES.get(key, key)} ({evaluation.protocol} protocol)",
            metric_value=round(float(value), 2),
        )
        for evaluation in evaluations
        for key, value in evaluation.metrics.items()
    ]
    card_data = ModelCardData(
        library_name="transformers",
        pipeline_tag="feature-extraction",
        license=license,
        datasets=datasets,
        tags=tags,
        model_name=model_name,
        eval_results=eval_results or None,
    )
    return card_data.to_yaml()


def _evaluation_section(evaluations: Sequence[EvaluationRecord]) -> str:
    """The first evaluation in words and numbers (between floor and ceiling on SynthPEDES), then, when there are
    more, one row per evaluation."""
    if not evaluations:
        return "Not evaluated in this run."
    section = _main_evaluation(evaluations[0])
    if len(evaluations) > 1:
        section += "\n\n" + _all_evaluations(evaluations)
    return section


def _all_evaluations(evaluations: Sequence[EvaluationRecord]) -> str:
    keys = [key for key in METRIC_NAMES if any(key in evaluation.metrics for evaluation in evaluations)]
    lines = [
        "All evaluations of these weights (in percent):",
        "",
        "| test set | split | protocol | setting | " + " | ".join(METRIC_NAMES[key] for key in keys) + " |",
        "|---|---|---|---|" + "---|" * len(keys),
    ]
    for evaluation in evaluations:
        setting = _setting_words(evaluation) or evaluation.setting or "not recorded"
        values = [f"{evaluation.metrics[key]:.2f}" if key in evaluation.metrics else "-" for key in keys]
        lines.append(
            f"| {display_name(evaluation.benchmark)} | {evaluation.split} | {evaluation.protocol} | {setting} | "
            + " | ".join(values)
            + " |"
        )
    return "\n".join(lines)


def _main_evaluation(evaluation: EvaluationRecord) -> str:
    metrics = evaluation.metrics
    keys = [key for key in METRIC_NAMES if key in metrics]
    rows = [("this model", metrics)]
    baselines = evaluation.baselines or {}
    if baselines:
        rows = [
            ("random ranking (floor)", baselines["random"]),
            *rows,
            ("attribute oracle (ceiling)", baselines["oracle"]),
        ]
    header = "| | " + " | ".join(METRIC_NAMES[key] for key in keys) + " |"
    lines = [header, "|---" * (len(keys) + 1) + "|"]
    for name, values in rows:
        lines.append(f"| {name} | " + " | ".join(f"{values[key]:.2f}" for key in keys) + " |")
    facts = evaluation.facts
    words = _setting_words(evaluation)
    description = (
        f"Text-to-image retrieval on the **{evaluation.split}** split of "
        f"{display_name(evaluation.benchmark)}{f' ({words})' if words else ''}: every caption queries every image "
        f"({facts.get('num_queries', '?')} queries, {facts.get('num_gallery', '?')} gallery images), identity-level "
        f"positives, cosine similarity. Protocol: **{evaluation.protocol}** (R@K; mAP as the mean precision at "
        "each positive; mINP = positives / rank of the last positive; the protocol IRRA and later work report). "
        "Numbers in percent."
    )
    return description + "\n\n" + "\n".join(lines)


def render_model_card(
    config,
    *,
    repo_id: str,
    title: str | None = None,
    evaluation: EvaluationRecord | dict[str, Any] | None = None,
    evaluations: Sequence[EvaluationRecord | dict[str, Any]] = (),
    training: dict[str, Any] | None = None,
    provenance: str = "",
    license: str = "apache-2.0",
    num_parameters: int | None = None,
    extra_limitations: str = "",
    model_name: str | None = None,
) -> str:
    """The card text for a model `config`, from recorded facts.

    Args:
        evaluation: an `EvaluationRecord` (or its dict), as written by `ivt evaluate` / the demo.
        evaluations: more records (or their dicts): each is a `model-index` result too, after `evaluation`; a later
            record of the same data set, split and protocol replaces an earlier one (`one_per_evaluation`).
        training: `{"dataset", "recipe": {...}, "train_runtime_seconds", ...}`: shown as a table.
        provenance: one paragraph saying honestly what the weights are (e.g. "trained for 5 minutes on synthetic
            data", "converted from the authors' checkpoint").
    """
    import transformers

    records = [
        EvaluationRecord.from_dict(record) if isinstance(record, dict) else record
        for record in ([evaluation] if evaluation else []) + list(evaluations)
    ]
    records = list(one_per_evaluation({str(index): record for index, record in enumerate(records)}).values())
    datasets = _datasets(training, records)
    tags = ["ivt", "text-based-person-retrieval", "person-retrieval", "image-text-retrieval", "ivt_hf"]
    model_name = model_name or repo_id.rstrip("/").split("/")[-1]
    training_text = "No training facts were recorded for these weights."
    if training:
        rows = "\n".join(
            f"| {key} | {json.dumps(value) if isinstance(value, (dict, list)) else value} |"
            for key, value in training.items()
        )
        training_text = "| fact | value |\n|---|---|\n" + rows
    height, width = config.image_size
    template = TEMPLATE.read_text()
    return template.format(
        front_matter=_yaml_front_matter(model_name, license, datasets, tags, records).strip(),
        title=title or model_name,
        provenance=provenance,
        num_layers=config.num_hidden_layers,
        hidden_size=config.hidden_size,
        num_heads=config.num_attention_heads,
        intermediate_size=config.intermediate_size,
        image_height=height,
        image_width=width,
        patch_size=config.patch_size,
        patch_stride=config.patch_stride,
        num_patches=config.num_patches,
        max_text_tokens=config.max_position_embeddings,
        num_parameters=f"{num_parameters:,}" if num_parameters is not None else "see config",
        ivt_hf_version=version("ivt_hf"),
        transformers_version=transformers.__version__,
        repo_id=repo_id,
        training=training_text,
        evaluation=_evaluation_section(records),
        limitations=DEFAULT_LIMITATIONS.format(max_text_tokens=config.max_position_embeddings)
        + (f"\n{extra_limitations}" if extra_limitations else ""),
    )


def _datasets(training: dict[str, Any] | None, evaluations: Sequence[EvaluationRecord]) -> list[str]:
    """The card's `datasets` (the Hub lists a model under the data it was trained on): the training set, from the
    training facts or the records; else, as before cross-domain records, the first evaluation's data set."""
    trained_on = (training or {}).get("dataset") or next(
        (record.training.trained_on for record in evaluations if record.training.trained_on), None
    )
    if trained_on:
        return [trained_on]
    return [evaluations[0].benchmark] if evaluations else []


def write_model_card(output_dir: str | Path, text: str) -> Path:
    path = Path(output_dir) / "README.md"
    path.write_text(text)
    return path


def write_card_facts(output_dir: str | Path, *, title: str | None, provenance: str | None) -> Path:
    """`card_facts.json`: what a later refresh of the card (`ivt push`) needs besides the run's other facts."""
    path = Path(output_dir) / CARD_FACTS_FILE
    path.write_text(json.dumps({"title": title, "provenance": provenance}, indent=1))
    return path


def save_model_card(output_dir: str | Path, config, **card_facts: Any) -> Path:
    """Render the card (arguments of `render_model_card`), write it as `README.md` and record its title and
    provenance in `card_facts.json`."""
    write_card_facts(output_dir, title=card_facts.get("title"), provenance=card_facts.get("provenance"))
    return write_model_card(output_dir, render_model_card(config, **card_facts))


__all__ = [
    "CARD_FACTS_FILE",
    "one_per_evaluation",
    "render_model_card",
    "save_model_card",
    "write_card_facts",
    "write_model_card",
]

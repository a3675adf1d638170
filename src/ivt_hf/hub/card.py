"""Model cards generated from a run's recorded facts (never hand-typed numbers).

The template is `model_cards/template.md` (shipped in the package as `resources/model_card_template.md`); the YAML
front matter, including `model-index` with the evaluation results, is produced by `huggingface_hub.ModelCardData`.
`save_model_card` writes the card and `card_facts.json` (title, provenance), so the card can be regenerated from JSON
facts alone (`hub/facts.py`), never by reading the Markdown back.
"""

from __future__ import annotations

import json
from importlib.metadata import version
from pathlib import Path
from typing import Any

from ..data.specs import display_name
from ..evaluation.record import EvaluationRecord

TEMPLATE = Path(__file__).resolve().parents[1] / "resources" / "model_card_template.md"
CARD_FACTS_FILE = "card_facts.json"
METRIC_NAMES = {"R1": "R@1", "R5": "R@5", "R10": "R@10", "mAP": "mAP", "mINP": "mINP"}
DEFAULT_LIMITATIONS = (
    "- Retrieval quality depends on how closely the gallery resembles the training data (camera angles, resolution, "
    "clothing styles, the language of the descriptions: English only).\n"
    "- Descriptions of appearance are ambiguous; two people in similar clothes are easily confused, and the model "
    "ranks confidently either way.\n"
    "- The text side reads at most {max_text_tokens} WordPiece tokens; longer descriptions are truncated."
)


def _yaml_front_matter(
    model_name: str, license: str, datasets: list[str], tags: list[str], evaluation: EvaluationRecord | None
) -> str:
    from huggingface_hub import EvalResult, ModelCardData

    eval_results = None
    if evaluation:
        eval_results = [
            EvalResult(
                task_type="text-to-image-retrieval",
                task_name="Text-based person retrieval",
                dataset_type=evaluation.benchmark,
                dataset_name=display_name(evaluation.benchmark),
                dataset_split=evaluation.split,
                metric_type=f"{key.lower()}",
                metric_name=f"{METRIC_NAMES.get(key, key)} ({evaluation.protocol} protocol)",
                metric_value=round(float(value), 2),
            )
            for key, value in evaluation.metrics.items()
        ]
    card_data = ModelCardData(
        library_name="transformers",
        pipeline_tag="feature-extraction",
        license=license,
        datasets=datasets,
        tags=tags,
        model_name=model_name,
        eval_results=eval_results,
    )
    return card_data.to_yaml()


def _evaluation_section(evaluation: EvaluationRecord | None) -> str:
    if not evaluation:
        return "Not evaluated in this run."
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
    description = (
        f"Text-to-image retrieval on the **{evaluation.split}** split of "
        f"{display_name(evaluation.benchmark)}: every caption queries every image "
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
        training: `{"dataset", "recipe": {...}, "train_runtime_seconds", ...}`: shown as a table.
        provenance: one paragraph saying honestly what the weights are (e.g. "trained for 5 minutes on synthetic
            data", "converted from the authors' checkpoint").
    """
    import transformers

    if isinstance(evaluation, dict):
        evaluation = EvaluationRecord.from_dict(evaluation)
    datasets = [evaluation.benchmark] if evaluation else []
    if training and training.get("dataset") and training["dataset"] not in datasets:
        datasets.insert(0, training["dataset"])
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
        front_matter=_yaml_front_matter(model_name, license, datasets, tags, evaluation).strip(),
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
        evaluation=_evaluation_section(evaluation),
        limitations=DEFAULT_LIMITATIONS.format(max_text_tokens=config.max_position_embeddings)
        + (f"\n{extra_limitations}" if extra_limitations else ""),
    )


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


__all__ = ["CARD_FACTS_FILE", "render_model_card", "save_model_card", "write_card_facts", "write_model_card"]

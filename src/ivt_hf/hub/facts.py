"""What a model folder records about its run, read back from JSON files only; the model card is generated from these.

Files beside the weights:
- `evaluation.json` (`ivt demo`) and `eval_BENCHMARK_SPLIT.json` (`ivt evaluate`): `EvaluationRecord`s;
- `training_facts.json`: a flat object of training facts, shown as a table in the card; its `dataset` is what the
  model was trained on (`ivt demo`, `ivt train`), which `ivt evaluate` records with each evaluation;
- `card_facts.json`: the card's title and provenance paragraph (what the weights are), written by `save_model_card`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_json, read_json_object
from ..errors import IVTInputError
from ..evaluation.record import EvaluationRecord, InvalidEvaluationRecordError
from ..model.configuration_ivt import IVTConfig
from .card import CARD_FACTS_FILE, one_per_evaluation, render_model_card

EVALUATION_FILE_PATTERNS = ("evaluation.json", "eval_*.json")  # written by `ivt demo` / `ivt evaluate`
TRAINING_FACTS_FILE = "training_facts.json"
UNRECORDED_PROVENANCE = (
    "How these weights were produced was not recorded in the folder they were shared from (no provenance in "
    f"`{CARD_FACTS_FILE}`). Treat them as unverified until their source is known."
)


@dataclass
class FolderFacts:
    """What a model folder records about its run.

    `evaluations` maps a file name to its record (the card takes the first: `evaluation.json`, else the first
    `eval_*.json` by name). Files that match the patterns but are not evaluation records (e.g. a Trainer's
    `eval_results.json`) are listed in `skipped` with the reason, and neither shape the card nor get uploaded.
    """

    evaluations: dict[str, EvaluationRecord] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    training: dict[str, Any] | None = None
    title: str | None = None
    provenance: str | None = None
    has_card_facts: bool = False

    @property
    def card_evaluations(self) -> dict[str, EvaluationRecord]:
        """The records the card shows, one per evaluation (`EvaluationRecord.key`): a later file replaces an earlier
        one of the same data set, split and protocol (so an `ivt evaluate` record replaces the demo's
        `evaluation.json`), keeping its place."""
        return one_per_evaluation(self.evaluations)

    @property
    def files(self) -> list[str]:
        """The fact files to share beside the weights."""
        return [
            *self.evaluations,
            *([TRAINING_FACTS_FILE] if self.training is not None else []),
            *([CARD_FACTS_FILE] if self.has_card_facts else []),
        ]


def _read_facts(path: Path) -> dict[str, Any]:
    """A fact file's JSON object (`read_json_object`); a file that cannot be read is bad input too."""
    try:
        return read_json_object(path, holds="a JSON object of facts")
    except OSError as error:
        raise IVTInputError(f"{path} is unreadable: {error}") from None


def recorded_training_set(model_dir: str | Path) -> str | None:
    """The `dataset` of a model folder's `training_facts.json`: what the model was trained on; None when the folder
    records none. A `dataset` that is not a name is bad input, named."""
    path = Path(model_dir) / TRAINING_FACTS_FILE
    if not path.is_file():
        return None
    dataset = _read_facts(path).get("dataset")
    if dataset is not None and not (isinstance(dataset, str) and dataset):
        raise IVTInputError(f"{path}: 'dataset' must be the name of the training data, got {dataset!r}")
    return dataset


def write_training_facts(model_dir: str | Path, facts: dict[str, Any]) -> Path:
    """`training_facts.json` (written whole or not at all): the run's facts, `dataset` first."""
    return atomic_write_json(Path(model_dir) / TRAINING_FACTS_FILE, facts)


def read_folder_facts(model_dir: str | Path) -> FolderFacts:
    """Collect the run's recorded facts from a model folder (see `FolderFacts`)."""
    model_dir = Path(model_dir)
    facts = FolderFacts()
    candidates = sorted(
        {path for pattern in EVALUATION_FILE_PATTERNS for path in model_dir.glob(pattern)},
        key=lambda path: (path.name != "evaluation.json", path.name),
    )
    for path in candidates:
        try:
            facts.evaluations[path.name] = EvaluationRecord.load(path)
        except InvalidEvaluationRecordError as error:
            facts.skipped[path.name] = str(error).removeprefix(f"{path}: ")
    training_path = model_dir / TRAINING_FACTS_FILE
    if training_path.is_file():
        training = _read_facts(training_path)
        # folders of ivt_hf 0.1 kept the provenance among the training facts
        facts.provenance = training.pop("provenance", None)
        facts.training = training
    card_path = model_dir / CARD_FACTS_FILE
    if card_path.is_file():
        card = _read_facts(card_path)
        facts.has_card_facts = True
        facts.title = card.get("title")
        facts.provenance = card.get("provenance") or facts.provenance
    return facts


def model_card_for_folder(
    model_dir: str | Path,
    repo_id: str,
    config: IVTConfig,
    *,
    num_parameters: int | None = None,
    provenance: str | None = None,
    facts: FolderFacts | None = None,
) -> str:
    """The card of a folder from its recorded facts: every evaluation record is a `model-index` result (one per
    evaluation, `FolderFacts.card_evaluations`), the first the card's evaluation section; without any it says "not
    evaluated"."""
    facts = facts if facts is not None else read_folder_facts(model_dir)
    return render_model_card(
        config,
        repo_id=repo_id,
        title=facts.title,
        evaluations=list(facts.card_evaluations.values()),
        training=facts.training,
        num_parameters=num_parameters,
        provenance=provenance or facts.provenance or UNRECORDED_PROVENANCE,
    )


__all__ = [
    "EVALUATION_FILE_PATTERNS",
    "TRAINING_FACTS_FILE",
    "FolderFacts",
    "model_card_for_folder",
    "read_folder_facts",
    "recorded_training_set",
    "write_training_facts",
]

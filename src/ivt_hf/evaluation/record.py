"""One record of an evaluation, written by `ivt demo` and `ivt evaluate` and read by the model card and `ivt push`.

An `EvaluationRecord` is saved as JSON:

    {"benchmark": "synthpedes", "split": "test", "protocol": "standard",
     "metrics": {"R1": 24.2, "R5": ..., "R10": ..., "mAP": ..., "mINP": ...},
     "facts": {"num_queries": ..., "num_gallery": ..., "num_identities": ..., "seconds": ...,
               "trained_on": "cuhk-pedes", ...},              # or "zero_shot": true for a pre-training output
     "baselines": {"random": {...}, "oracle": {...}}}     # SynthPEDES only: the floor and the ceiling

Metrics are in percent. `from_dict` validates a record read from a file and says what is wrong with it. What the
model was trained on (`Training`, in the facts) says whether the numbers are in-domain, cross-domain or zero-shot;
the cross-domain table and the model card's `model-index` read it from here.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..data.specs import display_name
from ..errors import IVTInputError

METRIC_ORDER = ("R1", "R5", "R10", "mAP", "mINP")
TRAINED_ON, ZERO_SHOT = "trained_on", "zero_shot"  # the facts that say what the evaluated model was trained on
BASELINE_NAMES = ("random", "oracle")
_KEYS = ("benchmark", "split", "protocol")


class InvalidEvaluationRecordError(IVTInputError):
    """A JSON file or mapping that is not an evaluation record; the message says why."""


@dataclass(frozen=True)
class Training:
    """What an evaluated model was trained on: a data set's name (`dataset_name` as `ivt train` was given it, from
    the model folder's `training_facts.json`), or nothing but pre-training (`zero_shot`: its encoder's embeddings,
    never fine-tuned on a benchmark), or not recorded (both empty)."""

    trained_on: str | None = None
    zero_shot: bool = False

    @property
    def label(self) -> str:
        """How a table or a card names it."""
        if self.zero_shot:
            return "zero-shot (pre-training)"
        return display_name(self.trained_on) if self.trained_on else "not recorded"

    def setting(self, test_set: str) -> str | None:
        """`in-domain` (tested on its training set), `cross-domain`, `zero-shot`, or None when not recorded."""
        if self.zero_shot:
            return "zero-shot"
        if not self.trained_on:
            return None
        return "in-domain" if self.trained_on == test_set else "cross-domain"

    def facts(self) -> dict[str, Any]:
        """The record's facts that say it (none when not recorded)."""
        return {ZERO_SHOT: True} if self.zero_shot else {TRAINED_ON: self.trained_on} if self.trained_on else {}


@dataclass
class EvaluationRecord:
    """Text-to-image retrieval numbers of one model on one split, with what is needed to read them."""

    benchmark: str
    split: str
    protocol: str
    metrics: dict[str, float]
    facts: dict[str, Any] = field(default_factory=dict)
    baselines: dict[str, dict[str, float]] | None = None

    @property
    def training(self) -> Training:
        """What the evaluated model was trained on, as the facts say (`Training`; older records: not recorded)."""
        trained_on = self.facts.get(TRAINED_ON)
        return Training(trained_on if isinstance(trained_on, str) else None, self.facts.get(ZERO_SHOT) is True)

    @property
    def setting(self) -> str | None:
        """`in-domain`, `cross-domain`, `zero-shot` or None (`Training.setting` of this record's test set)."""
        return self.training.setting(self.benchmark)

    @property
    def key(self) -> tuple[str, str, str]:
        """What makes two records the same evaluation, so that the later replaces the earlier on a card: the data
        set, the split and the protocol (one model folder holds one model, with one training set)."""
        return (self.benchmark, self.split, self.protocol)

    def to_dict(self) -> dict[str, Any]:
        record = asdict(self)
        if record["baselines"] is None:
            del record["baselines"]
        return record

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1))
        return path

    @classmethod
    def from_dict(cls, record: Any) -> EvaluationRecord:
        """Validate and build. Records written by ivt_hf 0.1's `ivt evaluate` kept benchmark / split / protocol inside
        `facts`; they are read too. Baselines are kept only as a floor-and-ceiling pair covering every metric."""
        if not isinstance(record, dict) or not isinstance(record.get("metrics"), dict) or not record["metrics"]:
            raise InvalidEvaluationRecordError("no 'metrics' mapping")
        facts = record.get("facts") if isinstance(record.get("facts"), dict) else {}
        values = {key: record.get(key, facts.get(key)) for key in _KEYS}
        missing = [key for key, value in values.items() if value in (None, "")]
        if missing:
            raise InvalidEvaluationRecordError(f"missing {', '.join(missing)}")
        metrics = record["metrics"]
        if not all(_is_finite_number(value) for value in metrics.values()):
            raise InvalidEvaluationRecordError("metrics must be finite numbers")
        baselines = record.get("baselines")
        pair = None
        if isinstance(baselines, dict) and all(
            isinstance(baselines.get(name), dict) and set(metrics) <= set(baselines[name]) for name in BASELINE_NAMES
        ):
            pair = {name: dict(baselines[name]) for name in BASELINE_NAMES}
        return cls(**values, metrics=dict(metrics), facts=dict(facts), baselines=pair)

    @classmethod
    def load(cls, path: str | Path) -> EvaluationRecord:
        path = Path(path)
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise InvalidEvaluationRecordError(f"{path}: unreadable: {error}") from None
        except InvalidEvaluationRecordError as error:
            raise InvalidEvaluationRecordError(f"{path}: not an evaluation record: {error}") from None

    def table(self, model_name: str = "model") -> str:
        """The metrics as a table, between floor and ceiling when the record has them."""
        rows = {model_name: self.metrics}
        if self.baselines:
            rows = {"random (floor)": self.baselines["random"], **rows, "oracle (ceiling)": self.baselines["oracle"]}
        return format_metrics_table(rows)


def _is_finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


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


__all__ = [
    "TRAINED_ON",
    "ZERO_SHOT",
    "EvaluationRecord",
    "InvalidEvaluationRecordError",
    "Training",
    "format_metrics_table",
]

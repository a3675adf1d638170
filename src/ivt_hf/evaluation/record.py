"""One record of an evaluation, written by `ivt demo` and `ivt evaluate` and read by the model card and `ivt push`.

An `EvaluationRecord` is saved as JSON:

    {"benchmark": "synthpedes", "split": "test", "protocol": "standard",
     "metrics": {"R1": 24.2, "R5": ..., "R10": ..., "mAP": ..., "mINP": ...},
     "facts": {"num_queries": ..., "num_gallery": ..., "num_identities": ..., "seconds": ..., ...},
     "baselines": {"random": {...}, "oracle": {...}}}     # SynthPEDES only: the floor and the ceiling

Metrics are in percent. `from_dict` validates a record read from a file and says what is wrong with it.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import IVTInputError

METRIC_ORDER = ("R1", "R5", "R10", "mAP", "mINP")
BASELINE_NAMES = ("random", "oracle")
_KEYS = ("benchmark", "split", "protocol")


class InvalidEvaluationRecordError(IVTInputError):
    """A JSON file or mapping that is not an evaluation record; the message says why."""


@dataclass
class EvaluationRecord:
    """Text-to-image retrieval numbers of one model on one split, with what is needed to read them."""

    benchmark: str
    split: str
    protocol: str
    metrics: dict[str, float]
    facts: dict[str, Any] = field(default_factory=dict)
    baselines: dict[str, dict[str, float]] | None = None

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


__all__ = ["EvaluationRecord", "InvalidEvaluationRecordError", "format_metrics_table"]

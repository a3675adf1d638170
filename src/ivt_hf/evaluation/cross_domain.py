"""The cross-domain table of `ivt evaluate --model M... --dataset_name A B C`: train on X, test on Y.

A row is a model, named by what it was trained on (`Training`: the model folder's `training_facts.json`, or
"zero-shot (pre-training)" for a pre-training output, evaluated through its encoder); a column is a test set; a cell is
the `EvaluationRecord` of that pair, the very record a single `ivt evaluate` of the pair writes (and the model card
reads). Cells where the test set is the model's training set (in-domain) are marked.

Printed as two Markdown tables of one number per cell, R@1 and mAP: R@1 is the number cross-domain tables of this
field lead with, mAP says how the whole ranking holds up; four or five numbers per cell make a grid of three or four
test sets too wide to read. Every metric of every cell (R@5, R@10, mINP too) is in the JSON (`to_dict`) and in each
pair's record.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..data.specs import display_name
from .record import METRIC_ORDER, EvaluationRecord, Training

TABLE_METRICS = {"R1": "R@1", "mAP": "mAP"}  # the printed tables; the JSON keeps every metric


@dataclass
class CrossDomainRow:
    """One model's evaluations: `cells` maps a test set to its record, `record_files` to the file it was saved in."""

    model: str
    training: Training
    cells: dict[str, EvaluationRecord] = field(default_factory=dict)
    record_files: dict[str, str] = field(default_factory=dict)


@dataclass
class CrossDomainTable:
    """Models (rows) against test sets (columns), all on one split under one protocol."""

    split: str
    protocol: str
    test_sets: list[str]
    rows: list[CrossDomainRow] = field(default_factory=list)

    def markdown(self, metric: str = "R1") -> str:
        """One metric of every cell as a Markdown table; in-domain cells in bold."""
        header = ["trained on", "model", *(display_name(name) for name in self.test_sets)]
        lines = ["| " + " | ".join(header) + " |", "|---|---|" + "---:|" * len(self.test_sets)]
        for row in self.rows:
            cells = []
            for test_set in self.test_sets:
                record = row.cells.get(test_set)
                value = "-" if record is None else f"{record.metrics[metric]:.2f}"
                cells.append(f"**{value}**" if row.training.setting(test_set) == "in-domain" else value)
            lines.append("| " + " | ".join([row.training.label, row.model, *cells]) + " |")
        return "\n".join(lines)

    def format(self) -> str:
        """The printed tables (`TABLE_METRICS`), each with a line saying what it holds."""
        parts = []
        for metric, name in TABLE_METRICS.items():
            parts.append(
                f"{name} (%), text-to-image, {self.split} split, {self.protocol} protocol; rows: training set, "
                f"columns: test set; **bold**: in-domain\n\n{self.markdown(metric)}"
            )
        return "\n\n".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """The table as JSON: every metric of every cell, with its setting and the record file it came from."""
        return {
            "split": self.split,
            "protocol": self.protocol,
            "test_sets": list(self.test_sets),
            "rows": [
                {
                    "model": row.model,
                    "trained_on": row.training.trained_on,
                    "zero_shot": row.training.zero_shot,
                    "label": row.training.label,
                    "results": {
                        test_set: {
                            "setting": record.setting,
                            "metrics": {key: record.metrics[key] for key in METRIC_ORDER if key in record.metrics},
                            "num_queries": record.facts.get("num_queries"),
                            "num_gallery": record.facts.get("num_gallery"),
                            "record": row.record_files.get(test_set),
                        }
                        for test_set, record in row.cells.items()
                    },
                }
                for row in self.rows
            ],
        }


__all__ = ["TABLE_METRICS", "CrossDomainRow", "CrossDomainTable"]

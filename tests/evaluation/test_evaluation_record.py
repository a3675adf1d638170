"""`EvaluationRecord`: the one shape of an evaluation's result (written by `ivt demo` / `ivt evaluate`, read by
the model card)."""

from __future__ import annotations

import json
import math

import pytest

from ivt_hf.evaluation import EvaluationRecord, InvalidEvaluationRecordError, format_metrics_table

METRICS = {"R1": 24.23, "R5": 57.67, "R10": 70.96, "mAP": 29.19, "mINP": 19.06}
FLOOR = {"R1": 0.41, "R5": 2.37, "R10": 4.81, "mAP": 1.45, "mINP": 0.77}
CEILING = {"R1": 87.19, "R5": 99.67, "R10": 100.0, "mAP": 90.54, "mINP": 89.41}


def test_save_and_load_round_trip(tmp_path):
    record = EvaluationRecord(
        "synthpedes", "test", "standard", dict(METRICS), {"num_queries": 1226}, {"random": FLOOR, "oracle": CEILING}
    )
    path = record.save(tmp_path / "sub" / "evaluation.json")
    assert json.loads(path.read_text()) == {
        "benchmark": "synthpedes",
        "split": "test",
        "protocol": "standard",
        "metrics": METRICS,
        "facts": {"num_queries": 1226},
        "baselines": {"random": FLOOR, "oracle": CEILING},
    }
    assert EvaluationRecord.load(path) == record
    plain = EvaluationRecord("rstpreid", "test", "official", dict(METRICS))
    assert "baselines" not in plain.to_dict() and EvaluationRecord.from_dict(plain.to_dict()) == plain


def test_records_of_ivt_hf_0_1s_evaluate_command_are_read():
    """`ivt evaluate` of version 0.1 kept benchmark / split / protocol inside `facts`."""
    legacy = {"metrics": METRICS, "facts": {"benchmark": "cuhk-pedes", "split": "test", "protocol": "standard"}}
    record = EvaluationRecord.from_dict(legacy)
    assert (record.benchmark, record.split, record.protocol) == ("cuhk-pedes", "test", "standard")


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ([1, 2], "no 'metrics' mapping"),
        ({"eval_loss": 0.5, "epoch": 1.0}, "no 'metrics' mapping"),  # a Trainer's eval_results.json
        ({"metrics": {}}, "no 'metrics' mapping"),
        ({"metrics": METRICS, "benchmark": "x", "split": "test"}, "missing protocol"),
        ({"metrics": {"R1": math.nan}, "benchmark": "x", "split": "t", "protocol": "standard"}, "finite numbers"),
        ({"metrics": {"R1": True}, "benchmark": "x", "split": "t", "protocol": "standard"}, "finite numbers"),
        ({"metrics": {"R1": "high"}, "benchmark": "x", "split": "t", "protocol": "standard"}, "finite numbers"),
    ],
)
def test_what_is_not_a_record_says_why(record, reason):
    with pytest.raises(InvalidEvaluationRecordError, match=reason):
        EvaluationRecord.from_dict(record)


def test_load_names_the_file(tmp_path):
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(InvalidEvaluationRecordError, match="broken.json: unreadable"):
        EvaluationRecord.load(tmp_path / "broken.json")
    (tmp_path / "other.json").write_text(json.dumps({"loss": 1}))
    with pytest.raises(InvalidEvaluationRecordError, match="other.json: not an evaluation record: no 'metrics'"):
        EvaluationRecord.load(tmp_path / "other.json")


def test_baselines_are_kept_only_as_a_complete_pair():
    base = {"benchmark": "synthpedes", "split": "test", "protocol": "standard", "metrics": METRICS}
    assert EvaluationRecord.from_dict({**base, "baselines": {"random": FLOOR}}).baselines is None
    partial = {"random": FLOOR, "oracle": {"R1": 87.19}}
    assert EvaluationRecord.from_dict({**base, "baselines": partial}).baselines is None
    full = EvaluationRecord.from_dict({**base, "baselines": {"random": FLOOR, "oracle": CEILING, "other": {}}})
    assert full.baselines == {"random": FLOOR, "oracle": CEILING}


def test_table_puts_the_model_between_floor_and_ceiling():
    record = EvaluationRecord("synthpedes", "test", "standard", METRICS, baselines={"random": FLOOR, "oracle": CEILING})
    lines = record.table("IVT").splitlines()
    assert lines[0].split() == ["R1", "R5", "R10", "mAP", "mINP"]
    assert [line.split()[0] for line in lines[1:]] == ["random", "IVT", "oracle"]
    assert lines[2].split()[1:] == ["24.23", "57.67", "70.96", "29.19", "19.06"]
    assert format_metrics_table({"a": {"R1": 1.0}, "bb": {"mAP": 2.5}}).splitlines() == [
        "        R1     mAP",
        "a     1.00       -",
        "bb       -    2.50",
    ]

"""UFine6926 and UFine3C (UFineBench) as benchmarks beside the three: tiny copies of their layout (records `{"split",
"id", "file_path": "images/N.jpg", "captions"}`, UFine3C's with `source`), read by the one normaliser with the same
checks and errors, prepared and evaluated like the others."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ivt_hf.data import (
    BENCHMARK_NAMES,
    BenchmarkFormatError,
    BenchmarkWarning,
    SplitCounts,
    load_benchmark,
    load_benchmark_with_report,
    load_prepared,
)
from ivt_hf.data.specs import get_spec

# (split, id, file_path, captions)
UFINE6926 = [
    ("train", 1, "images/1.jpg", 2),
    ("train", 1, "images/2.jpg", 2),
    ("train", 4, "images/3.jpg", 2),
    ("test", 6001, "images/26001.jpg", 2),
    ("test", 6002, "images/26002.jpg", 2),
]
# (source, id, file_path, captions): every record test
UFINE3C = [
    ("UFine6926", 2250, "images/7446.jpg", 6),
    ("CUHK-PEDES", 2249, "images/7445.jpg", 3),
    ("UFine6926", 2250, "images/7444.jpg", 2),
]


def _write_image(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 255, size=(24, 12, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, format="PNG")


def _caption(index: int, position: int) -> str:
    return f"A young person {index} with wheat-colored skin, caption {position}, in a white cotton T-shirt."


def make_ufine6926(root: Path, records: list[dict] | None = None, name: str = "UFine6926.json") -> Path:
    for index, (_, _, path, _) in enumerate(UFINE6926):
        _write_image(root / path, index)
    if records is None:
        records = [
            {"split": split, "id": pid, "file_path": path, "captions": [_caption(i, c) for c in range(count)]}
            for i, (split, pid, path, count) in enumerate(UFINE6926)
        ]
    (root / name).write_text(json.dumps(records), encoding="utf-8")
    return root


def make_ufine3c(root: Path) -> Path:
    records = []
    for index, (source, pid, path, count) in enumerate(UFINE3C):
        _write_image(root / path, 10 + index)
        records.append(
            {
                "id": pid,
                "source": source,
                "split": "test",
                "file_path": path,
                "captions": [_caption(index, c) for c in range(count)],
            }
        )
    (root / "UFine3C_Annotations.json").write_text(json.dumps(records), encoding="utf-8")
    return root


def test_ufine6926_and_ufine3c_are_benchmark_names():
    assert {"ufine6926", "ufine3c"} <= set(BENCHMARK_NAMES)
    assert get_spec("ufine3c").splits == ("test",)


def test_ufine6926_reads_every_field_of_its_splits(tmp_path):
    root = make_ufine6926(tmp_path / "UFine6926")
    dataset, report = load_benchmark_with_report("ufine6926", root)
    assert list(dataset) == ["train", "test"]  # no validation records: no empty validation split
    train = dataset["train"]
    assert train["image_path"] == ["images/1.jpg", "images/2.jpg", "images/3.jpg"]
    assert train["original_person_id"] == [1, 1, 4] and train["person_id"] == [0, 0, 1]
    assert train["captions"][2] == [_caption(2, 0), _caption(2, 1)] and set(train["source"]) == {"ufine6926"}
    with Image.open(root / "images/3.jpg") as original:
        assert np.array_equal(np.asarray(train[2]["image"]), np.asarray(original))
    assert report.counts == {"train": SplitCounts(2, 3, 6), "test": SplitCounts(2, 2, 4)} and not report.skipped


def test_ufine3c_is_test_only_and_keeps_each_records_source(tmp_path):
    root = make_ufine3c(tmp_path / "UFine3C")
    dataset, report = load_benchmark_with_report("ufine3c", root)
    assert list(dataset) == ["test"]
    test = dataset["test"]
    assert test["source"] == ["ufine3c/UFine6926", "ufine3c/CUHK-PEDES", "ufine3c/UFine6926"]
    assert test["person_id"] == [1, 0, 1] and [len(captions) for captions in test["captions"]] == [6, 3, 2]
    assert not report.full_copy  # 3 of the published 7,446 images: a subset, its counts not compared
    record = json.loads((root / "UFine3C_Annotations.json").read_text())
    del record[1]["source"]
    (root / "UFine3C_Annotations.json").write_text(json.dumps(record))
    with pytest.raises(BenchmarkFormatError, match=r"record 1 \(image 'images/7445.jpg'\): missing field 'source'"):
        load_benchmark("ufine3c", root)


def _broken(kind: str) -> tuple[list[dict], int, str]:
    records = json.loads(make_ufine6926_records())
    if kind == "missing_image":
        records[1]["file_path"] = "images/404.jpg"
        return records, 1, "image file not found"
    if kind == "empty_caption":
        records[3]["captions"][1] = " "
        return records, 3, "caption 1 is empty"
    if kind == "unknown_split":
        records[0]["split"] = "query"
        return records, 0, "unknown split 'query'; expected one of ['test', 'train', 'val']"
    if kind == "outside":
        records[4]["file_path"] = "../secret.jpg"
        return records, 4, "leads outside"
    records[2]["id"] = "4"
    return records, 2, "field 'id' should be an integer"


def make_ufine6926_records() -> str:
    return json.dumps(
        [
            {"split": split, "id": pid, "file_path": path, "captions": [_caption(i, c) for c in range(count)]}
            for i, (split, pid, path, count) in enumerate(UFINE6926)
        ]
    )


@pytest.mark.parametrize("kind", ["missing_image", "empty_caption", "unknown_split", "outside", "wrong_type"])
def test_a_broken_record_is_an_error_naming_file_and_record_or_skipped(tmp_path, kind):
    records, index, reason = _broken(kind)
    root = make_ufine6926(tmp_path / "UFine6926", records)
    with pytest.raises(BenchmarkFormatError) as caught:
        load_benchmark("ufine6926", root)
    message = str(caught.value)
    assert message.startswith(f"{root / 'UFine6926.json'}: record {index} (image ")
    assert reason in message and "\n" not in message
    with pytest.warns(BenchmarkWarning, match="skipped 1 record"):
        dataset = load_benchmark("ufine6926", root, on_invalid="skip")
    assert sum(len(split) for split in dataset.values()) == len(UFINE6926) - 1


def test_a_missing_annotation_file_lists_the_names_tried(tmp_path):
    root = make_ufine6926(tmp_path / "UFine6926", name="annotations.json")
    with pytest.raises(BenchmarkFormatError) as caught:
        load_benchmark("ufine6926", root)
    message = str(caught.value)
    assert "tried UFine6926.json, ufine6926.json, UFine6926_Annotations.json" in message
    assert "annotations.json, images/" in message


def test_ufine3c_prepares_and_evaluates_like_the_other_benchmarks(tmp_path, capsys):
    """`ivt data prepare` keeps the records' sources, the prepared folder reads back as UFine3C, and `ivt evaluate`
    scores a model on its test split."""
    from helpers.commands import run_cli, save_tiny_model_folder

    root = make_ufine3c(tmp_path / "UFine3C")
    prepared = tmp_path / "prepared"
    code, out, err = run_cli(
        f"data prepare --dataset_name ufine3c --data_dir {root} --output_dir {prepared}".split(), capsys
    )
    assert code == 0, err
    assert load_prepared(prepared, expected_source="ufine3c")["test"]["source"][1] == "ufine3c/CUHK-PEDES"
    model = save_tiny_model_folder(tmp_path / "model")
    output = tmp_path / "eval.json"
    code, out, err = run_cli(
        f"evaluate --model {model} --dataset_name ufine3c --data_dir {prepared} --output {output}".split(), capsys
    )
    assert code == 0, err
    assert out.splitlines()[0] == "ufine3c test: 11 queries, 3 gallery images, protocol standard"
    assert output.is_file()

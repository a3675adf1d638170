"""Your own data, the Hugging Face way: an image folder with `metadata.jsonl` or `metadata.csv`, read by the same
normaliser and the same checks as the three benchmarks, into training, `ivt data prepare` and `ivt evaluate`."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ivt_hf.cli import main as ivt
from ivt_hf.data import BenchmarkFormatError, caption_view, load_benchmark, load_benchmark_with_report


def _images(root: Path, names: list[str]) -> None:
    rng = np.random.default_rng(0)
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (64, 32, 3), dtype=np.uint8)).save(root / name)


ROWS = [
    {"file_name": "crops/a1.jpg", "person_id": 7, "caption": "A man in a red coat.", "split": "train"},
    {"file_name": "crops/a2.jpg", "person_id": 7, "captions": ["A man, red coat.", "Red coat, black bag."],
     "split": "train"},
    {"file_name": "crops/b1.jpg", "person_id": 3, "caption": "A woman in blue jeans.", "split": "train"},
    {"file_name": "crops/b2.jpg", "person_id": 3, "caption": "Blue jeans and white shoes.", "split": "train"},
    {"file_name": "crops/c1.jpg", "person_id": 11, "caption": "A child with a yellow hat.", "split": "test"},
    {"file_name": "crops/c2.jpg", "person_id": 11, "caption": "Yellow hat, green shirt.", "split": "test"},
]  # fmt: skip


@pytest.fixture
def jsonl_folder(tmp_path) -> Path:
    root = tmp_path / "jsonl"
    _images(root, [row["file_name"] for row in ROWS])
    (root / "metadata.jsonl").write_text("".join(json.dumps(row) + "\n" for row in ROWS))
    return root


def test_an_image_folder_with_metadata_jsonl_is_a_benchmark(jsonl_folder):
    data, report = load_benchmark_with_report("imagefolder", jsonl_folder)
    assert sorted(data) == ["test", "train"] and report.skipped == []
    train = data["train"]
    assert train["image_path"] == ["crops/a1.jpg", "crops/a2.jpg", "crops/b1.jpg", "crops/b2.jpg"]
    assert train["person_id"] == [1, 1, 0, 0] and train["original_person_id"] == [7, 7, 3, 3]  # 0-based per split
    assert train["captions"][1] == ["A man, red coat.", "Red coat, black bag."]
    assert set(train["source"]) == {"imagefolder"} and train[0]["image"].size == (32, 64)
    assert len(caption_view(data["test"])) == 2


def test_metadata_csv_rows_repeating_a_file_add_captions_and_split_defaults_to_train(tmp_path):
    root = tmp_path / "csv"
    _images(root, ["p1.jpg", "p2.jpg"])
    with open(root / "metadata.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file_name", "person_id", "caption"])
        writer.writerows([["p1.jpg", "0", "First caption."], ["p1.jpg", "0", "Second caption."],
                          ["p2.jpg", "1", "Another person."]])  # fmt: skip
    data, report = load_benchmark_with_report("imagefolder", root)
    assert list(data) == ["train"] and data["train"]["captions"] == [["First caption.", "Second caption."],
                                                                        ["Another person."]]  # fmt: skip
    assert report.merged and "repeats image 'p1.jpg'" in report.merged[0]


@pytest.mark.parametrize(
    ("broken", "message"),
    [
        ({"file_name": "crops/missing.jpg"}, "jsonl: record 1 (image 'crops/missing.jpg'): image file not found"),
        ({"caption": "   "}, "metadata.jsonl: record 1 (image 'crops/a2.jpg'): caption 0 is empty"),
        ({"person_id": "seven"}, "record 1 (image 'crops/a2.jpg'): field 'person_id' should be an integer"),
        ({"split": "holdout"}, "record 1 (image 'crops/a2.jpg'): unknown split 'holdout'"),
    ],
)
def test_broken_rows_are_errors_naming_file_row_and_image(jsonl_folder, broken, message):
    rows = [dict(row) for row in ROWS]
    rows[1] = {key: value for key, value in rows[1].items() if key != "captions"} | {"caption": "A man."} | broken
    (jsonl_folder / "metadata.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    with pytest.raises(BenchmarkFormatError) as raised:
        load_benchmark("imagefolder", jsonl_folder)
    assert message in str(raised.value)
    data, report = load_benchmark_with_report("imagefolder", jsonl_folder, on_invalid="skip")  # or skip, and say so
    assert len(report.skipped) == 1 and report.skipped[0].record_index == 1 and len(data["train"]) == 3


def test_non_utf8_and_bad_json_lines_name_the_file(jsonl_folder):
    (jsonl_folder / "metadata.jsonl").write_bytes(b'{"file_name": "crops/a1.jpg", "caption": "caf\\xe9"}\n\xff\xfe\n')
    with pytest.raises(BenchmarkFormatError, match="metadata.jsonl: not UTF-8 text"):
        load_benchmark("imagefolder", jsonl_folder)
    (jsonl_folder / "metadata.jsonl").write_text('{"file_name": "crops/a1.jpg"}\n{not json\n')
    with pytest.raises(BenchmarkFormatError, match="metadata.jsonl: invalid JSON on line 2"):
        load_benchmark("imagefolder", jsonl_folder)


def test_prepare_stats_and_training_take_an_image_folder(jsonl_folder, tmp_path, capsys):
    from ivt_hf.training import build_trainer, parse_args

    assert ivt(["data", "prepare", "--benchmark", "imagefolder", "--root", str(jsonl_folder), "--output_dir",
                str(tmp_path / "prepared")]) == 0  # fmt: skip
    assert ivt(["data", "stats", str(tmp_path / "prepared")]) == 0
    assert "(imagefolder)" in capsys.readouterr().out
    common = ["--output_dir", str(tmp_path / "run"), "--model_preset", "tiny", "--image_height", "64", "--image_width",
              "32", "--per_device_train_batch_size", "4", "--images_per_id", "2", "--use_cpu", "--report_to", "none",
              "--eval_strategy", "no"]  # fmt: skip
    datasets = [
        ["--dataset_name", str(jsonl_folder)],
        ["--dataset_name", "imagefolder", "--data_root", str(jsonl_folder)],
        ["--dataset_name", str(tmp_path / "prepared")],
    ]
    for dataset in datasets:
        trainer = build_trainer(*parse_args([*dataset, *common]))
        assert len(trainer.train_dataset) == 4 and sorted(set(trainer.train_dataset.person_ids)) == [0, 1]
        batch = next(iter(trainer.get_train_dataloader()))
        assert batch["pixel_values"].shape == (12, 3, 64, 32)

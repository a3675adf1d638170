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
    {
        "file_name": "crops/a2.jpg",
        "person_id": 7,
        "captions": ["A man, red coat.", "Red coat, black bag."],
        "split": "train",
    },
    {"file_name": "crops/b1.jpg", "person_id": 3, "caption": "A woman in blue jeans.", "split": "train"},
    {"file_name": "crops/b2.jpg", "person_id": 3, "caption": "Blue jeans and white shoes.", "split": "train"},
    {"file_name": "crops/c1.jpg", "person_id": 11, "caption": "A child with a yellow hat.", "split": "test"},
    {"file_name": "crops/c2.jpg", "person_id": 11, "caption": "Yellow hat, green shirt.", "split": "test"},
]


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
    _images(root, ["p1.jpg", "p2.jpg", "p3.jpg"])
    with open(root / "metadata.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file_name", "person_id", "caption"])
        writer.writerows(
            [
                ["p1.jpg", "0", "First caption."],
                ["p1.jpg", "0", "Second caption."],
                ["p2.jpg", "0", "Same person."],
                ["p3.jpg", "1", "Another person."],
            ]
        )
    data, report = load_benchmark_with_report("imagefolder", root, min_images_per_id={})  # 1 image of person 1: ok
    assert list(data) == ["train"]
    assert data["train"]["captions"] == [["First caption.", "Second caption."], ["Same person."], ["Another person."]]
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
    # skipping row 1 leaves person 7 with one training image (row 0): skipped too, and said
    assert [item.record_index for item in report.skipped] == [1, 0] and len(data["train"]) == 2
    assert "person id 7 has 1 image(s) in the train split, which needs at least 2" in report.skipped[1].reason


def test_non_utf8_and_bad_json_lines_name_the_file(jsonl_folder):
    (jsonl_folder / "metadata.jsonl").write_bytes(b'{"file_name": "crops/a1.jpg", "caption": "caf\\xe9"}\n\xff\xfe\n')
    with pytest.raises(BenchmarkFormatError, match="metadata.jsonl: not UTF-8 text"):
        load_benchmark("imagefolder", jsonl_folder)
    (jsonl_folder / "metadata.jsonl").write_text('{"file_name": "crops/a1.jpg"}\n{not json\n')
    with pytest.raises(BenchmarkFormatError, match="metadata.jsonl: invalid JSON on line 2"):
        load_benchmark("imagefolder", jsonl_folder)


@pytest.mark.compat
def test_prepare_stats_and_training_take_an_image_folder(jsonl_folder, tmp_path, capsys):
    from ivt_hf.training import build_trainer, parse_args

    assert (
        ivt(
            [
                *f"data prepare --benchmark imagefolder --root {jsonl_folder}".split(),
                *f"--output_dir {tmp_path / 'prepared'}".split(),
            ]
        )
        == 0
    )
    assert ivt(["data", "stats", str(tmp_path / "prepared")]) == 0
    assert "(imagefolder)" in capsys.readouterr().out
    common = [
        *f"--output_dir {tmp_path / 'run'} --model_preset tiny --image_height 64 --image_width 32".split(),
        *"--per_device_train_batch_size 4 --images_per_id 2 --use_cpu --report_to none".split(),
        *"--eval_strategy no".split(),
    ]
    datasets = [
        ["--dataset_name", str(jsonl_folder)],
        ["--dataset_name", "imagefolder", "--data_dir", str(jsonl_folder)],
        ["--dataset_name", str(tmp_path / "prepared")],
    ]
    for dataset in datasets:
        trainer = build_trainer(*parse_args([*dataset, *common]))
        assert len(trainer.train_dataset) == 4 and sorted(set(trainer.train_dataset.person_ids)) == [0, 1]
        batch = next(iter(trainer.get_train_dataloader()))
        assert batch["pixel_values"].shape == (12, 3, 64, 32)

    # a 10,000-character caption is data, not an error: read whole, cut to the token limit with a warning
    rows = [dict(row) for row in ROWS]
    rows[0]["caption"] = ("a man in a red coat, with a black bag. " * 300)[:10_000]
    (jsonl_folder / "metadata.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    trainer = build_trainer(*parse_args(["--dataset_name", str(jsonl_folder), "--max_text_length", "32", *common]))
    assert len(trainer.train_dataset.split[0]["captions"][0]) == 10_000
    with pytest.warns(UserWarning, match="longer than 32 tokens were truncated"):
        batches = [batch for _, batch in zip(range(2), trainer.get_train_dataloader())]
    assert all(batch["input_ids"].shape[1] <= 32 for batch in batches)


def _people_dataset(person_ids, captions, shades=None):
    """A `datasets.Dataset` with its own column names (`img`, `text`, `pid`): one row per image-caption pair."""
    import io

    import datasets

    shades = shades or list(range(len(person_ids)))
    images = []
    for shade in shades:
        buffer = io.BytesIO()
        Image.new("RGB", (32, 64), (40 * shade % 256, 100, 30)).save(buffer, "PNG")
        images.append({"bytes": buffer.getvalue(), "path": f"person_{shade}.png"})
    features = datasets.Features(
        {"img": datasets.Image(), "text": datasets.Value("string"), "pid": datasets.Value("int64")}
    )
    return datasets.Dataset.from_dict({"img": images, "text": captions, "pid": person_ids}, features=features)


@pytest.mark.compat
def test_a_save_to_disk_folder_in_another_schema_with_a_column_mapping(tmp_path):
    import datasets

    from ivt_hf.data import ColumnMapping, load_data_with_report

    train = _people_dataset(
        [5, 5, 5, 9, 9], ["a man", "a man, red coat", "a man again", "a woman", "a woman, bag"], shades=[0, 0, 1, 2, 3]
    )  # rows 0 and 1 are one image with two captions
    test = _people_dataset([4], ["a child"])
    datasets.DatasetDict({"train": train, "valid": test}).save_to_disk(str(tmp_path / "saved"))

    with pytest.raises(BenchmarkFormatError, match=r"saved split 'train': no image column: .* --image_column"):
        load_data_with_report(str(tmp_path / "saved"))
    data, report = load_data_with_report(str(tmp_path / "saved"), columns=ColumnMapping("img", "text", "pid"))
    assert sorted(data) == ["train", "validation"]  # `valid` is read as the validation split
    assert data["train"]["captions"] == [["a man", "a man, red coat"], ["a man again"], ["a woman"], ["a woman, bag"]]
    assert data["train"]["person_id"] == [0, 0, 1, 1] and data["train"]["original_person_id"] == [5, 5, 9, 9]
    assert data["train"]["image_path"][:2] == ["person_0.png", "person_1.png"]
    assert data["train"][3]["image"].size == (32, 64) and set(data["validation"]["source"]) == {str(tmp_path / "saved")}
    assert report.merged == [f"{tmp_path / 'saved'} split 'train' row 1 repeats the image of row 0"]

    # what `ivt data prepare` wrote is read back as it is, and training takes either folder
    mapping = ["--image_column", "img", "--caption_column", "text", "--person_id_column", "pid"]
    assert (
        ivt(
            [
                "data",
                "prepare",
                "--dataset_name",
                str(tmp_path / "saved"),
                *mapping,
                "--output_dir",
                str(tmp_path / "p"),
            ]
        )
        == 0
    )
    prepared, again = load_data_with_report(str(tmp_path / "p"))
    assert again is None and prepared["train"]["captions"] == data["train"]["captions"]


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ({"pid": [1, 1, -3]}, "split 'train': record 2 (image 'person_2.png'): negative person id -3"),
        ({"text": ["a man", "a man", "  "]}, "record 2 (image 'person_2.png'): caption 0 is empty"),
        ({"text": ["a man", "a man", ""]}, "record 2 (image 'person_2.png'): caption 0 is empty"),
        ({"img": "undecodable"}, "record 2 (image 'person_2.png'): image cannot be decoded"),
        ({"img": "missing"}, "record 2: 'img' holds no image"),
        ({"pid": [1, 1, 1], "shades": [0, 1, 1]}, None),  # a repeated image of the same person: merged, not an error
        (
            {"pid": [1, 2, 1], "shades": [0, 0, 1]},
            "record 1 (image 'person_0.png'): the same image as row 0 with another person id (2; row 0 has 1)",
        ),
        (
            {"pid": [1, 1, 2], "shades": [0, 1, 2]},
            "record 2 (image 'person_2.png'): person id 2 has 1 image(s) in the train split, which needs at least 2",
        ),
    ],
)
def test_bad_rows_of_a_datasets_dataset_are_errors_naming_split_and_row(rows, message, tmp_path):
    import datasets

    from ivt_hf.data import ColumnMapping, load_data_with_report

    dataset = _people_dataset(rows.get("pid", [1, 1, 1]), rows.get("text", ["a man"] * 3), rows.get("shades"))
    if rows.get("img"):
        undecoded = dataset.cast_column("img", datasets.Image(decode=False))
        images = list(undecoded["img"])
        images[2] = {"bytes": b"not an image", "path": "person_2.png"} if rows["img"] == "undecodable" else None
        dataset = datasets.Dataset.from_dict({**undecoded.to_dict(), "img": images}, features=dataset.features)
    dataset.save_to_disk(str(tmp_path / "d"))
    columns = ColumnMapping("img", "text", "pid")
    if message is None:
        data, report = load_data_with_report(str(tmp_path / "d"), columns=columns)
        assert len(data["train"]) == 2 and len(report.merged) == 1
        return
    with pytest.raises(BenchmarkFormatError) as raised:
        load_data_with_report(str(tmp_path / "d"), columns=columns)
    assert f"{tmp_path / 'd'} split 'train': {message}" in str(raised.value) or message in str(raised.value)
    data, report = load_data_with_report(str(tmp_path / "d"), columns=columns, on_invalid="skip")
    assert report.skipped and message.split(": ", 1)[1] in report.format()  # skipped and listed, never dropped silently


HUB_SCRIPT = r"""
import json, sys
from ivt_hf.cli import main
from ivt_hf.data import load_prepared
out, model = sys.argv[1], sys.argv[2]
common = ["--dataset_name", "people-org/street-crops", "--image_column", "img", "--caption_column", "text",
          "--person_id_column", "pid"]
codes = {}
codes["prepare main"] = main(["data", "prepare", *common, "--output_dir", f"{out}/main"])
codes["prepare small@v2"] = main(["data", "prepare", *common, "--dataset_config_name", "small", "--revision", "v2",
                                  "--output_dir", f"{out}/small-v2"])
codes["evaluate"] = main(["evaluate", "--model", model, *common, "--split", "test", "--output", f"{out}/eval.json"])
codes["train"] = main(["train", *common, "--output_dir", f"{out}/run", "--model_name_or_path", model,
                       "--per_device_train_batch_size", "4", "--images_per_id", "2", "--max_steps", "2",
                       "--eval_strategy", "no", "--use_cpu", "true", "--report_to", "none", "--save_strategy", "no"])
codes["missing repo"] = main(["data", "prepare", "--dataset_name", "people-org/no-such", "--output_dir", f"{out}/x"])
codes["missing revision"] = main(["data", "prepare", *common, "--revision", "v9", "--output_dir", f"{out}/y"])
codes["missing config"] = main(["data", "prepare", *common, "--dataset_config_name", "huge",
                               "--output_dir", f"{out}/z"])
summary = {name: list(load_prepared(f"{out}/{name}")["train"]["captions"]) for name in ("main", "small-v2")}
print(json.dumps({"codes": codes, "captions": summary}))
"""

DATASET_CARD = """---
configs:
- config_name: default
  data_files:
  - split: train
    path: data/train-*.parquet
  - split: test
    path: data/test-*.parquet
- config_name: small
  data_files:
  - split: train
    path: small/train-*.parquet
---
# Street crops (a test dataset)
"""


@pytest.mark.compat
def test_a_hub_dataset_by_id_with_config_revision_and_column_mapping(tmp_path, tiny_config):
    """`--dataset_name ORG/NAME` goes through `datasets.load_dataset` against the package's local Hub server (the
    real client, in a subprocess with `HF_ENDPOINT` pointing at it), for prepare, evaluate and training."""
    import io
    import subprocess
    import sys

    from helpers.hub_access import TOKEN, hub_env
    from helpers.hub_access import load_local_hub as _load_local_hub

    from ivt_hf import IVTModel, IVTProcessor
    from ivt_hf.hub import save_model_folder

    def parquet(dataset) -> bytes:
        buffer = io.BytesIO()
        dataset.to_parquet(buffer)
        return buffer.getvalue()

    train = parquet(_people_dataset([3, 3, 8, 8], ["red coat", "red coat, bag", "blue jeans", "jeans, cap"]))
    test = parquet(_people_dataset([1, 1, 2], ["green shirt", "green shirt again", "a hat"], shades=[4, 5, 6]))
    small = parquet(_people_dataset([3, 3], ["small config", "small config again"]))
    small_v2 = parquet(_people_dataset([3, 3], ["small config at v2", "small config at v2 again"]))
    save_model_folder(IVTModel(tiny_config), IVTProcessor.from_config(tiny_config), tmp_path / "model")
    with _load_local_hub().LocalHub(token=TOKEN) as hub:
        files = {
            "README.md": DATASET_CARD.encode(),
            "data/train-00000-of-00001.parquet": train,
            "data/test-00000-of-00001.parquet": test,
            "small/train-00000-of-00001.parquet": small,
        }
        hub.seed_repo("people-org/street-crops", files, repo_type="dataset")
        hub.seed_commit(
            "people-org/street-crops",
            {"small/train-00000-of-00001.parquet": small_v2},
            branch="v2",
            repo_type="dataset",
        )
        env = hub_env(hub, tmp_path)
        completed = subprocess.run(
            [sys.executable, "-c", HUB_SCRIPT, str(tmp_path / "out"), str(tmp_path / "model")],
            capture_output=True,
            text=True,
            timeout=600,
            env=env,
        )
        assert hub.unhandled == [], hub.unhandled
    assert completed.returncode == 0, completed.stderr[-4000:]
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert result["codes"] == {
        "prepare main": 0,
        "prepare small@v2": 0,
        "evaluate": 0,
        "train": 0,
        "missing repo": 2,
        "missing revision": 2,
        "missing config": 2,
    }
    assert result["captions"] == {
        "main": [["red coat"], ["red coat, bag"], ["blue jeans"], ["jeans, cap"]],
        "small-v2": [["small config at v2"], ["small config at v2 again"]],
    }
    errors = [line for line in completed.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 3 and "Traceback" not in completed.stderr
    assert errors[0].startswith("error: people-org/no-such: cannot be loaded: Dataset 'people-org/no-such' doesn't")
    assert "people-org/street-crops at revision v9: cannot be loaded: Revision 'v9' doesn't exist" in errors[1]
    assert "people-org/street-crops (config huge): cannot be loaded: BuilderConfig 'huge' not found" in errors[2]
    record = json.loads((tmp_path / "out" / "eval.json").read_text())
    assert record["benchmark"] == "people-org/street-crops" and record["facts"]["num_queries"] == 3


def test_evaluation_only_data_prepares_reads_back_and_evaluates(tmp_path, tiny_config, capsys):
    """Data with only a test split (a raw copy of a benchmark's test part; a `save_to_disk` dataset whose train split
    is declared but empty): `ivt data prepare` writes only the splits that hold images, and `ivt data stats` and
    `ivt evaluate` read the folder back and evaluate its test split."""
    import datasets

    from ivt_hf import IVTModel, IVTProcessor
    from ivt_hf.hub import save_model_folder

    save_model_folder(IVTModel(tiny_config), IVTProcessor.from_config(tiny_config), tmp_path / "model")
    # a CUHK-PEDES-layout copy of test records only
    cuhk = tmp_path / "cuhk-test"
    _images(cuhk / "imgs", ["test/a1.jpg", "test/a2.jpg", "test/b1.jpg"])
    records = [
        {"split": "test", "captions": [caption], "file_path": path, "processed_tokens": [[]], "id": person}
        for path, person, caption in [
            ("test/a1.jpg", 4, "A man in a red coat."),
            ("test/a2.jpg", 4, "Red coat, black bag."),
            ("test/b1.jpg", 9, "A woman in blue jeans."),
        ]
    ]
    (cuhk / "reid_raw.json").write_text(json.dumps(records))
    # a Hub-style dataset saved with an empty train split beside its test split
    people = _people_dataset([1, 1, 2], ["a man", "a man again", "a woman"])
    saved = tmp_path / "saved-test-only"
    datasets.DatasetDict({"train": people.select([]), "test": people}).save_to_disk(str(saved))
    mapping = ["--image_column", "img", "--caption_column", "text", "--person_id_column", "pid"]

    sources = {"cuhk": f"--dataset_name cuhk-pedes --data_dir {cuhk}".split(), "saved": ["--dataset_name", str(saved)]}
    for name, source in sources.items():
        prepared = tmp_path / f"prepared-{name}"
        columns = mapping if name == "saved" else []
        assert ivt(["data", "prepare", *source, *columns, "--output_dir", str(prepared)]) == 0, capsys.readouterr()
        assert json.loads((prepared / "dataset_dict.json").read_text()) == {"splits": ["test"]}
        assert [path.name for path in prepared.iterdir() if path.is_dir()] == ["test"]  # no empty split folders
        capsys.readouterr()
        assert ivt(["data", "stats", str(prepared)]) == 0
        table = capsys.readouterr().out.splitlines()
        assert [line.split() for line in table[1:3]] == [
            ["split", "ids", "images", "captions"],
            ["test", "2", "3", "3"],
        ]
        assert table[3] == "caption noise over 3 captions"  # then the noise table (tests/data/test_caption_noise.py)

        record_path = tmp_path / f"eval-{name}.json"
        assert (
            ivt(
                [
                    "evaluate",
                    "--model",
                    str(tmp_path / "model"),
                    "--dataset_name",
                    str(prepared),
                    "--output",
                    str(record_path),
                ]
            )
            == 0
        ), capsys.readouterr().err
        record = json.loads(record_path.read_text())
        assert record["split"] == "test" and record["facts"]["num_queries"] == 3
        assert record["facts"]["num_gallery"] == 3
        # the empty train split is no split to evaluate: a clear error, not a traceback
        capsys.readouterr()
        assert (
            ivt(
                [
                    *f"evaluate --model {tmp_path / 'model'}".split(),
                    *source,
                    *columns,
                    *f"--split train --output {tmp_path / 'never.json'}".split(),
                ]
            )
            == 2
        )
        error = capsys.readouterr().err
        assert f"{source[1]} has no images in split 'train' (splits with images: test)" in error, error
        assert not (tmp_path / "never.json").exists()

    # a folder prepared before empty splits were left out (as `save_to_disk` wrote them) still reads back
    load_benchmark("cuhk-pedes", cuhk).save_to_disk(str(tmp_path / "prepared-before"))
    capsys.readouterr()
    assert ivt(["data", "stats", str(tmp_path / "prepared-before")]) == 0, capsys.readouterr().err
    assert capsys.readouterr().out.splitlines()[2].split() == ["test", "2", "3", "3"]
    # the library says so too, before encoding anything
    from ivt_hf.errors import IVTInputError
    from ivt_hf.evaluation.split_evaluation import evaluate_split

    with pytest.raises(IVTInputError, match="split 'train' holds no images: nothing to evaluate"):
        evaluate_split(
            IVTModel(tiny_config), IVTProcessor.from_config(tiny_config), load_benchmark("cuhk-pedes", cuhk)["train"]
        )


def _path_rows_dataset(paths: list[str]):
    """Rows whose image column holds file paths (strings), two people with two images each."""
    import datasets

    return datasets.Dataset.from_dict(
        {"img": paths, "text": [f"caption {index}" for index in range(len(paths))], "pid": [1, 1, 2, 2]}
    )


def test_image_paths_of_a_saved_folder_stay_inside_it_or_the_row_is_refused(tmp_path):
    """A `save_to_disk` folder whose image column names files: `..`, an absolute path and a symbolic link out of the
    folder are an error naming the split and row, or skipped and listed; the files inside are read."""
    from ivt_hf.data import ColumnMapping, load_data_with_report

    folder = tmp_path / "saved"
    _images(folder, ["imgs/0.png", "imgs/1.png", "imgs/2.png"])
    _images(tmp_path / "private", ["secret.png"])
    secret = tmp_path / "private" / "secret.png"
    (folder / "imgs").mkdir(exist_ok=True)
    (folder / "imgs" / "link.png").symlink_to(secret)
    columns = ColumnMapping("img", "text", "pid")
    escaping = {
        "../private/secret.png": "leads outside",
        str(secret): "leads outside",
        "imgs/link.png": "leads through a symbolic link outside",
    }
    for bad, how in escaping.items():
        _path_rows_dataset(["imgs/0.png", "imgs/1.png", bad, "imgs/2.png"]).save_to_disk(str(folder))
        with pytest.raises(BenchmarkFormatError) as raised:
            load_data_with_report(str(folder), columns=columns, verify_images=False)
        assert str(raised.value).startswith(f"{folder} split 'train': record 2: column 'img': {bad!r} {how} ")
        data, report = load_data_with_report(
            str(folder), columns=columns, verify_images=False, on_invalid="skip", min_images_per_id={}
        )
        assert [(item.record_index, how in item.reason) for item in report.skipped] == [(2, True)]
        assert data["train"]["image_path"] == ["imgs/0.png", "imgs/1.png", "imgs/2.png"]
        for file in (folder / "data-00000-of-00001.arrow", folder / "state.json", folder / "dataset_info.json"):
            file.unlink()


def test_a_hub_dataset_row_naming_a_local_file_is_refused(tmp_path):
    """Rows of a Hub dataset (`normalise_hf_dataset` with no folder) whose image is a local path outside the download
    caches (`/etc/passwd`, a file of the user's): refused, never read, even without decoding the images."""
    import datasets

    from ivt_hf.data.hf_datasets import ColumnMapping, normalise_hf_dataset

    _images(tmp_path, ["mine.png"])
    rows = _path_rows_dataset([str(tmp_path / "mine.png"), "/etc/passwd", str(tmp_path / "mine.png"), "/etc/hosts"])
    rows = rows.cast_column("img", datasets.Image())
    checks = {"name": "org/set", "columns": ColumnMapping("img", "text", "pid"), "verify_images": False}
    with pytest.raises(BenchmarkFormatError) as raised:
        normalise_hf_dataset(rows, **checks)
    assert str(raised.value).startswith(
        f"org/set split 'train': record 0: column 'img': {str(tmp_path / 'mine.png')!r} is a local file outside the "
        "download caches"
    )
    data, report = normalise_hf_dataset(rows, **checks, on_invalid="skip", min_images_per_id={})
    assert [item.record_index for item in report.skipped] == [0, 1, 2, 3] and len(data["train"]) == 0

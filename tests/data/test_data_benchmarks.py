"""The benchmark normaliser on tiny raw copies of the three layouts (docs/design.md, "Data"), good and broken."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import datasets
import numpy as np
import pytest
from PIL import Image

from ivt_hf.data import (
    BENCHMARKS,
    COLUMNS,
    BenchmarkFormatError,
    BenchmarkWarning,
    SplitCounts,
    caption_view,
    load_benchmark,
    load_benchmark_with_report,
    normalise_benchmark,
)


def run_cli(argv: list[str]) -> int:
    from ivt_hf.cli import main

    return main(argv)


def write_image(path: Path, seed: int) -> None:
    """A small image with distinct content per seed, so that rows can be matched to files by their pixels."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 255, size=(24, 12, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, format="PNG")  # lossless: prepared pixels must equal the originals


# (raw split, original id, path in the annotation file, number of captions)
CUHK_IMAGES = [
    ("train", 5, "Market/0005_c1s1_000151_01.jpg", 3),
    ("train", 1, "CUHK01/0001001.png", 2),
    ("train", 1, "CUHK01/0001002.png", 2),
    ("train", 3, "cam_a/003_45.bmp", 2),
    ("val", 20, "CUHK03/20_1.jpg", 2),
    ("val", 20, "CUHK03/20_2.jpg", 2),
    ("test", 31, "test_query/p31_s1.jpg", 3),
    ("test", 30, "train_query/p30_s9.jpg", 2),
    ("test", 31, "cam_b/031_90.bmp", 2),
]
ICFG_IMAGES = [
    ("train", 0, "train/0000/0000_001_01_0303morning_0001_0.jpg", 1),
    ("train", 0, "train/0000/0000_002_01_0303morning_0002_0.jpg", 1),
    ("train", 2, "train/0002/0002_001_05_0303noon_0003_1.jpg", 1),
    ("test", 3102, "test/3102/3102_001_01_0303morning_0004_0.jpg", 1),
    ("test", 3105, "test/3105/3105_002_07_0303evening_0005_1.jpg", 1),
]
RSTP_IMAGES = [
    ("train", 0, "0000_c14_0001.jpg", 2),
    ("train", 1, "0001_c3_0002.jpg", 2),
    ("train", 1, "0001_c7_0003.jpg", 2),
    ("val", 3701, "3701_c1_0004.jpg", 2),
    ("test", 3901, "3901_c14_0007.jpg", 2),
    ("test", 3902, "3902_c2_0008.jpg", 2),
]
LAYOUTS = {"cuhk-pedes": CUHK_IMAGES, "icfg-pedes": ICFG_IMAGES, "rstpreid": RSTP_IMAGES}


def make_records(name: str, images: list[tuple[str, int, str, int]]) -> list[dict]:
    """Records spelled as each real file spells them (field names and order)."""
    spec = BENCHMARKS[name]
    records = []
    for index, (split, person_id, path, count) in enumerate(images):
        captions = [f"Caption {position} of image {index}, person {person_id}." for position in range(count)]
        tokens = [caption.lower().split() for caption in captions]
        values = {
            "split": split,
            "captions": captions,
            spec.path_field: path,
            "processed_tokens": tokens,
            "id": person_id,
        }
        records.append({name: values[name] for name in spec.record_fields})
    return records


def make_copy(root: Path, name: str, annotation_name: str | None = None, records: list[dict] | None = None) -> Path:
    """A tiny raw copy: the annotation JSON beside `imgs/` with the image sub-folders of the real layout."""
    spec = BENCHMARKS[name]
    images = LAYOUTS[name]
    for index, (_, _, path, _) in enumerate(images):
        write_image(root / "imgs" / path, seed=index)
    records = make_records(name, images) if records is None else records
    (root / (annotation_name or spec.annotation_files[0])).write_text(json.dumps(records), encoding="utf-8")
    return root


def expected_rows(name: str) -> dict[str, list[dict]]:
    """What the normaliser must produce from LAYOUTS[name]: file order kept, ids 0..n-1 per split by original id."""
    spec = BENCHMARKS[name]
    records = make_records(name, LAYOUTS[name])
    rows: dict[str, list[dict]] = {split: [] for split in spec.splits}
    for record in records:
        split = spec.split_names[record["split"]]
        rows[split].append(
            {
                "image_path": "imgs/" + record[spec.path_field],
                "original_person_id": record["id"],
                "captions": record["captions"],
                "split": split,
                "source": name,
            }
        )
    for split_rows in rows.values():
        labels = {
            original: label for label, original in enumerate(sorted({r["original_person_id"] for r in split_rows}))
        }
        for row in split_rows:
            row["person_id"] = labels[row["original_person_id"]]
    return rows


@pytest.mark.parametrize(
    "name, annotation_name",
    [
        ("cuhk-pedes", "reid_raw.json"),
        ("cuhk-pedes", "caption_all.json"),
        ("icfg-pedes", "ICFG-PEDES.json"),
        ("icfg-pedes", "ICFG_PEDES.json"),
        ("rstpreid", "data_captions.json"),
    ],
)
def test_every_field_split_and_count(tmp_path, name, annotation_name):
    root = make_copy(tmp_path / "raw", name, annotation_name)
    dataset, report = load_benchmark_with_report(name, root)

    expected = expected_rows(name)
    assert list(dataset) == list(expected)  # train, validation (not for ICFG), test
    assert ("validation" in dataset) == (name != "icfg-pedes")
    for split, rows in expected.items():
        split_dataset = dataset[split]
        assert split_dataset.column_names == list(COLUMNS)
        assert isinstance(split_dataset.features["image"], datasets.Image)
        assert split_dataset.select_columns([c for c in COLUMNS if c != "image"]).to_list() == [
            {column: row[column] for column in COLUMNS if column != "image"} for row in rows
        ]
        for row in split_dataset:
            with Image.open(root / row["image_path"]) as original:
                assert np.array_equal(np.asarray(row["image"]), np.asarray(original))
        counts = report.counts[split]
        assert counts == SplitCounts(
            ids=len({row["person_id"] for row in rows}),
            images=len(rows),
            captions=sum(len(row["captions"]) for row in rows),
        )
    assert report.records == len(LAYOUTS[name]) and not report.skipped
    assert report.annotation_file.endswith(annotation_name)


def test_cuhk_ids_are_remapped_per_split(tmp_path):
    dataset = load_benchmark("cuhk-pedes", make_copy(tmp_path, "cuhk-pedes"))
    train = dataset["train"].select_columns(["original_person_id", "person_id"]).to_list()
    assert {(row["original_person_id"], row["person_id"]) for row in train} == {(1, 0), (3, 1), (5, 2)}
    assert sorted(set(dataset["test"]["person_id"])) == [0, 1]  # 30 -> 0, 31 -> 1: labels restart in every split
    assert sum(len(captions) for captions in dataset["test"]["captions"]) == 7  # two images with three captions


def test_caption_view_is_the_flat_query_list(tmp_path):
    dataset = load_benchmark("cuhk-pedes", make_copy(tmp_path, "cuhk-pedes"))
    test = dataset["test"].select([2, 0])  # an indices mapping must be honoured
    queries = caption_view(test)
    assert queries.column_names == ["caption", "person_id", "image_index"]
    expected = [
        {"caption": caption, "person_id": row["person_id"], "image_index": image_index}
        for image_index, row in enumerate(test.select_columns(["captions", "person_id"]).to_list())
        for caption in row["captions"]
    ]
    assert queries.to_list() == expected
    assert len(caption_view(dataset["train"])) == 9


def test_path_relative_to_root_is_accepted(tmp_path):
    """Some copies write `imgs/...` into the path field; the image is found either way."""
    root = tmp_path / "raw"
    records = make_records("rstpreid", RSTP_IMAGES)
    for record in records:
        record["img_path"] = "imgs/" + record["img_path"]
    make_copy(root, "rstpreid", records=records)
    dataset = load_benchmark("rstpreid", root)
    assert dataset["test"]["image_path"] == ["imgs/3901_c14_0007.jpg", "imgs/3902_c2_0008.jpg"]


# ------------------------------------------------------------------------------------------------------------------
# broken copies
# ------------------------------------------------------------------------------------------------------------------


def corrupt(root: Path, kind: str) -> tuple[int, str, str]:
    """Break one record of a CUHK-PEDES copy; return (record index, image path in the file, words in the reason)."""
    annotation = root / "reid_raw.json"
    records = json.loads(annotation.read_text())
    if kind == "missing_field":
        del records[2]["captions"]
        index, reason = 2, "missing field 'captions'"
    elif kind == "wrong_type":
        records[3]["id"] = "3"
        index, reason = 3, "field 'id' should be an integer"
    elif kind == "missing_image":
        (root / "imgs" / records[1]["file_path"]).unlink()
        index, reason = 1, "image file not found"
    elif kind == "undecodable":
        (root / "imgs" / records[4]["file_path"]).write_bytes(b"\x89PNG\r\n\x1a\n not really an image")
        index, reason = 4, "cannot be decoded"
    elif kind == "truncated":
        path = root / "imgs" / records[5]["file_path"]
        path.write_bytes(path.read_bytes()[:60])
        index, reason = 5, "cannot be decoded"
    elif kind == "empty_caption":
        records[6]["captions"][1] = "   "
        index, reason = 6, "caption 1 is empty"
    elif kind == "duplicate":
        records[8]["file_path"] = records[7]["file_path"]  # id 31 claims the image of id 30
        index, reason = 8, "duplicate image path: record 7 gives it id 30"
    elif kind == "unknown_split":
        records[0]["split"] = "query"
        index, reason = 0, "unknown split 'query'"
    else:
        raise AssertionError(kind)
    annotation.write_text(json.dumps(records))
    return index, records[index]["file_path"], reason


BROKEN = ["missing_field", "wrong_type", "missing_image", "undecodable", "truncated", "empty_caption", "duplicate"]


@pytest.mark.parametrize("kind", [*BROKEN, "unknown_split"])
def test_error_names_file_record_and_path(tmp_path, kind):
    root = make_copy(tmp_path, "cuhk-pedes")
    index, path, reason = corrupt(root, kind)
    with pytest.raises(BenchmarkFormatError) as caught:
        load_benchmark("cuhk-pedes", root)
    message = str(caught.value)
    assert str(root / "reid_raw.json") in message
    assert f"record {index} " in message and repr(path) in message and reason in message
    assert (caught.value.record_index, caught.value.image_path) == (index, path)
    assert isinstance(caught.value, ValueError)


def test_invalid_json_names_the_file_and_position(tmp_path):
    root = make_copy(tmp_path, "rstpreid")
    (root / "data_captions.json").write_text('[{"id": 0, "img_path": "a.jpg",\n "captions": ["x"] "split": "train"}]')
    with pytest.raises(BenchmarkFormatError, match=r"data_captions\.json: invalid JSON at line 2 column"):
        load_benchmark("rstpreid", root)
    (root / "data_captions.json").write_text('{"not": "a list"}')
    with pytest.raises(BenchmarkFormatError, match="expected a JSON list of records, found dict"):
        load_benchmark("rstpreid", root)


def test_missing_annotation_file_lists_names_tried_and_folder(tmp_path):
    root = make_copy(tmp_path, "icfg-pedes")
    (root / "ICFG-PEDES.json").rename(root / "icfg.json")
    with pytest.raises(BenchmarkFormatError) as caught:
        load_benchmark("icfg-pedes", root)
    message = str(caught.value)
    assert "tried ICFG-PEDES.json, ICFG_PEDES.json" in message and "icfg.json, imgs/" in message


def test_skip_reports_every_skipped_record(tmp_path):
    root = make_copy(tmp_path, "cuhk-pedes")
    broken = [corrupt(root, kind) for kind in BROKEN]
    dataset, report = load_benchmark_with_report("cuhk-pedes", root, on_invalid="skip")
    skipped = sorted((item.record_index, item.image_path) for item in report.skipped)
    assert skipped == sorted((index, path) for index, path, _ in broken)
    for index, path, reason in broken:
        assert any(item.record_index == index and reason in item.reason for item in report.skipped)
        assert f"record {index} (image {path!r})" in report.format()
    kept = sum(len(split) for split in dataset.values())
    assert kept == len(CUHK_IMAGES) - len(broken)
    assert sum(counts.images for counts in report.counts.values()) == kept

    with pytest.warns(BenchmarkWarning, match=f"skipped {len(broken)} record"):
        load_benchmark("cuhk-pedes", root, on_invalid="skip")


def test_duplicate_with_same_id_is_merged_and_reported(tmp_path):
    records = make_records("rstpreid", RSTP_IMAGES)
    records.append({**records[0], "captions": ["A third caption of the first image."]})
    root = make_copy(tmp_path, "rstpreid", records=records)
    dataset, report = load_benchmark_with_report("rstpreid", root)
    assert dataset["train"][0]["captions"] == [*records[0]["captions"], "A third caption of the first image."]
    assert len(dataset["train"]) == 3 and report.merged == ["record 6 repeats image '0000_c14_0001.jpg' of record 0"]


def test_published_counts_are_compared_on_a_full_copy(tmp_path, monkeypatch):
    root = make_copy(tmp_path, "rstpreid")
    spec = BENCHMARKS["rstpreid"]
    _, report = normalise_benchmark(spec, root)
    assert not report.full_copy and report.mismatches == []  # six records of 20,505: a subset, not compared
    assert "subset copy: published counts not compared" in report.format()

    matching = {"train": SplitCounts(2, 3, 6), "validation": SplitCounts(1, 1, 2), "test": SplitCounts(2, 2, 4)}
    _, report = normalise_benchmark(dataclasses.replace(spec, published=matching), root)
    assert report.full_copy and report.mismatches == []

    published = {**matching, "test": SplitCounts(2, 3, 6)}  # the copy lost a test image
    monkeypatch.setitem(BENCHMARKS, "rstpreid", dataclasses.replace(spec, published=published))
    _, report = load_benchmark_with_report("rstpreid", root)
    assert report.mismatches == ["test: 2 images, published 3", "test: 4 captions, published 6"]
    assert "2/3/6" in report.format()
    with pytest.warns(BenchmarkWarning, match="count mismatch: test: 2 images, published 3"):
        load_benchmark("rstpreid", root)


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="unknown benchmark 'market'"):
        load_benchmark("market", tmp_path)
    with pytest.raises(ValueError, match="on_invalid must be"):
        load_benchmark("rstpreid", make_copy(tmp_path, "rstpreid"), on_invalid="ignore")
    with pytest.raises(BenchmarkFormatError, match="does not exist"):
        load_benchmark("rstpreid", tmp_path / "nowhere")
    with pytest.raises(TypeError, match="only synthpedes"):
        load_benchmark("rstpreid", tmp_path, num_ids=3)


# ------------------------------------------------------------------------------------------------------------------
# the command line
# ------------------------------------------------------------------------------------------------------------------


@pytest.mark.compat
def test_prepare_output_is_self_contained(tmp_path, capsys):
    raw, output = make_copy(tmp_path / "raw", "cuhk-pedes"), tmp_path / "prepared"
    originals = {f"imgs/{path}": np.asarray(Image.open(raw / "imgs" / path)) for _, _, path, _ in CUHK_IMAGES}
    expected = load_benchmark("cuhk-pedes", raw)
    assert run_cli(["data", "stats", str(raw)]) == 2  # a raw copy needs its benchmark name
    assert "add --dataset_name NAME" in capsys.readouterr().err
    assert run_cli(["data", "stats", str(raw), "--dataset_name", "cuhk-pedes"]) == 0
    assert capsys.readouterr().out.splitlines()[2].split() == ["train", "3", "4", "9"]

    assert run_cli(f"data prepare --dataset_name cuhk-pedes --data_dir {raw} --output {output}".split()) == 0
    assert "wrote 9 images" in capsys.readouterr().out
    shutil.rmtree(raw)  # the prepared folder must not need the raw copy any more

    prepared = load_benchmark("cuhk-pedes", output)
    assert list(prepared) == ["train", "validation", "test"]
    for split, split_dataset in prepared.items():
        columns = [column for column in COLUMNS if column != "image"]
        assert split_dataset.select_columns(columns).to_list() == expected[split].select_columns(columns).to_list()
        for row in split_dataset:
            assert np.array_equal(np.asarray(row["image"]), originals[row["image_path"]])

    assert run_cli(["data", "stats", str(output)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[1].split() == ["split", "ids", "images", "captions"]
    assert table[2].split() == ["train", "3", "4", "9"]
    assert table[3].split() == ["validation", "1", "2", "4"]
    assert table[4].split() == ["test", "2", "3", "7"]

    # an existing output is not overwritten by accident; the wrong benchmark name is refused
    assert run_cli(f"data prepare --dataset_name cuhk-pedes --data_dir {tmp_path} --output {output}".split()) == 2
    with pytest.raises(BenchmarkFormatError, match="holds cuhk-pedes, not 'rstpreid'"):
        load_benchmark("rstpreid", output)


def test_prepare_with_skip_prints_the_report(tmp_path, capsys):
    raw = make_copy(tmp_path / "raw", "cuhk-pedes")
    index, path, _ = corrupt(raw, "missing_image")
    argv = f"data prepare --dataset_name cuhk-pedes --data_dir {raw} --output {tmp_path / 'out'}".split()
    assert run_cli(argv) == 2
    assert f"record {index} (image {path!r}): image file not found" in capsys.readouterr().err
    assert run_cli([*argv, "--on-invalid", "skip"]) == 0
    out = capsys.readouterr().out
    assert "skipped 1 record(s):" in out and f"record {index} (image {path!r})" in out and "wrote 8 images" in out


# ------------------------------------------------------------------------------------------------------------------
# paths that lead outside the copy
# ------------------------------------------------------------------------------------------------------------------


def _secret(tmp_path: Path) -> Path:
    """A decodable image outside every copy: what a path leading outside would pull in."""
    write_image(tmp_path / "private" / "secret.png", seed=99)
    return tmp_path / "private" / "secret.png"


def _escaping_paths(root: Path, secret: Path) -> list[str]:
    """`..` (from `imgs/` and from the root), absolute, and a symbolic link inside `imgs/` pointing out."""
    (root / "imgs" / "link.png").symlink_to(secret)
    return ["../../private/secret.png", "../private/secret.png", str(secret), "link.png"]


@pytest.mark.parametrize("name", list(LAYOUTS))
def test_a_path_leading_outside_the_copy_is_refused_or_skipped_and_listed(tmp_path, name):
    """Each of the three annotation files' path field is untrusted: `..`, an absolute path and a symbolic link out of
    the copy are an error naming the file and record, or skipped and listed; nothing outside is read."""
    spec = BENCHMARKS[name]
    secret = _secret(tmp_path)
    root = make_copy(tmp_path / "raw", name)
    escaping = _escaping_paths(root, secret)
    annotation = root / spec.annotation_files[0]
    records = json.loads(annotation.read_text())
    for index, path in enumerate(escaping):
        records[index][spec.path_field] = path
    annotation.write_text(json.dumps(records))

    with pytest.raises(BenchmarkFormatError) as caught:
        load_benchmark(name, root)
    message = str(caught.value)
    assert message.startswith(f"{annotation}: record 0 (image '../../private/secret.png'): field {spec.path_field!r}")
    assert "leads outside" in message and caught.value.record_index == 0

    dataset, report = load_benchmark_with_report(name, root, on_invalid="skip", verify_images=False)
    reasons = {item.record_index: item.reason for item in report.skipped}
    assert sorted(reasons)[:4] == [0, 1, 2, 3]
    assert "leads outside" in reasons[0] and "leads outside" in reasons[2]
    assert "leads through a symbolic link outside" in reasons[3]
    assert all(f"record {index} (image {path!r})" in report.format() for index, path in enumerate(escaping))
    paths = [path for split in dataset.values() for path in split["image_path"]]
    assert all("secret" not in path and "link" not in path for path in paths)


def test_prepare_never_embeds_a_file_outside_the_folder(tmp_path, capsys):
    """`ivt data prepare --no_verify_images` of an image folder whose metadata names `/etc/passwd` (and a file
    beside the folder): refused with one line naming the row; with skip, listed and left out of the output."""
    folder = tmp_path / "mine"
    for index in range(4):
        write_image(folder / f"{index}.png", seed=index)
    secret = _secret(tmp_path)
    rows = [
        {"file_name": "0.png", "person_id": 1, "caption": "A man."},
        {"file_name": "1.png", "person_id": 1, "caption": "A man again."},
        {"file_name": "/etc/passwd", "person_id": 2, "caption": "Not an image."},
        {"file_name": "../private/secret.png", "person_id": 2, "caption": "Not yours."},
        {"file_name": "2.png", "person_id": 3, "caption": "A woman."},
        {"file_name": "3.png", "person_id": 3, "caption": "A woman again."},
    ]
    (folder / "metadata.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    argv = ["data", "prepare", "--dataset_name", str(folder), "--output_dir", str(tmp_path / "out")]
    argv.append("--no_verify_images")
    assert run_cli(argv) == 2
    error = capsys.readouterr().err
    assert f"error: {folder / 'metadata.jsonl'}: record 2 (image '/etc/passwd'): field 'file_name': " in error
    assert "leads outside" in error and not (tmp_path / "out").exists()

    assert run_cli([*argv, "--on_invalid", "skip"]) == 0
    out = capsys.readouterr().out
    assert "record 2 (image '/etc/passwd')" in out and "record 3 (image '../private/secret.png')" in out
    prepared = datasets.load_from_disk(str(tmp_path / "out"))
    embedded = [row["image"]["bytes"] for row in prepared["train"].cast_column("image", datasets.Image(decode=False))]
    assert len(embedded) == 4 and secret.read_bytes() not in embedded
    assert all(b"root:" not in image for image in embedded)

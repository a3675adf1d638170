"""The published pre-training corpora (`ivt_hf.data.corpora`, docs/corpora.md): WebPerson, LUPerson-MLLM, MALS and
SYNTH-PEDES, each a tiny copy of its exact layout (`helpers/corpus_fixtures.py`), recognised by its files, read through
the pair stream and `ivt pretrain --train_data` with its authors' caption cleaning counted, broken copies refused
naming file and record; SYNTH-PEDES also as fine-tuning data."""

from __future__ import annotations

import json
from itertools import islice
from pathlib import Path

import pytest
from helpers.commands import error_lines, run_cli
from helpers.corpus_fixtures import EXPECTED, MAKERS, SYNTH_PEDES_RECORDS, attributes, jpeg_bytes, make_synth_pedes

from ivt_hf.data import BenchmarkFormatError, BenchmarkWarning, PairDataError, load_data, open_pair_stream
from ivt_hf.data.sources import FINE_TUNING_KINDS, PAIR_KINDS, Source, recognise_source

KINDS = tuple(MAKERS)


@pytest.fixture(scope="module")
def corpora(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("corpora")
    return {kind: make(root / kind) for kind, make in MAKERS.items()}


@pytest.mark.parametrize("kind", KINDS)
def test_each_corpus_is_recognised_by_its_files_before_the_generic_kinds(corpora, tmp_path, kind):
    assert recognise_source(corpora[kind], accepts=PAIR_KINDS) == Source(kind, corpora[kind])
    # a corpus folder that also holds a metadata.jsonl and a shard is still the corpus: its own files name it
    folder = MAKERS[kind](tmp_path / kind)
    (folder / "metadata.jsonl").write_text("")
    (folder / "extra").mkdir()
    (folder / "extra" / "pairs-0.tar").write_bytes(b"")
    assert recognise_source(folder, accepts=PAIR_KINDS).kind == kind


@pytest.mark.parametrize("kind", KINDS)
def test_each_corpus_streams_its_cleaned_pairs_once_an_epoch_and_counts_the_cleaning(corpora, kind):
    stream = open_pair_stream(corpora[kind])
    expected = EXPECTED[kind]
    assert stream.num_shards == len(expected["pairs"])
    epoch = list(islice(iter(stream), stream.num_shards))
    assert {pair["key"]: pair["caption"] for pair in epoch} == expected["pairs"]
    assert len(epoch) == len(expected["pairs"]) and {pair["epoch"] for pair in epoch} == {0}
    report = stream.cleaning
    assert (report.corpus, report.images, report.captions) == (kind, expected["images"], len(expected["pairs"]))
    assert dict(report.cleaning) == expected["cleaning"] and report.skipped == []
    first = epoch[0]
    assert first["image"] == (corpora[kind] / first["key"].rsplit("#", 1)[0]).read_bytes()  # the file's bytes
    if kind == "mals":  # the label travels with its pair, as the attribute vector
        by_key = {pair["key"]: pair["attributes"] for pair in epoch}
        assert by_key == {
            "gene_crop/c_g_a_0/000000.jpg#1": attributes(0),
            "gene_crop/i_g_a_0/000000.jpg#1": attributes(2),
        }
    else:
        assert "attributes" not in first


@pytest.mark.parametrize("kind", ["luperson_mllm", "mals"])
def test_a_corpus_stream_resumes_with_exactly_the_next_pair(corpora, kind):
    stream = open_pair_stream(corpora[kind], seed=3)
    pairs = iter(stream)
    list(islice(pairs, 5))
    state = json.loads(json.dumps(stream.state_dict()))
    following = [(pair["key"], pair["epoch"]) for pair in islice(pairs, 9)]
    resumed = open_pair_stream(corpora[kind], seed=3)
    resumed.load_state_dict(state)
    assert [(pair["key"], pair["epoch"]) for pair in islice(iter(resumed), 9)] == following


BROKEN_JSON = {
    "webperson": ("100w.json", '[{"a.jpg": {"caption1": "x"}}'),
    "luperson_mllm": ("Td-qwen.json", '{"a/b.jpg": "x",, }'),
    "mals": ("gene_attrs/g_c_g_a_0_attrs.json", '[{"image": "gene_crop/x.jpg" "caption": "y"}]'),
    "synth_pedes": ("synthpedes_dataset.json", "[{]"),
}


@pytest.mark.parametrize("kind", KINDS)
def test_a_file_that_is_not_json_is_one_error_naming_it_and_where(tmp_path, kind):
    folder = MAKERS[kind](tmp_path / kind)
    name, text = BROKEN_JSON[kind]
    (folder / name).write_text(text)
    with pytest.raises(PairDataError) as raised:
        open_pair_stream(folder)
    message = str(raised.value)
    assert message.startswith(f"{folder / name}: invalid JSON at line 1 column ") and "\n" not in message


# a record naming a path outside the corpus folder: the file, the record and the path, as the message names them
OUTSIDE = {
    "webperson": ("100w.json", 4, "../../secret.jpg"),
    "mals": ("gene_attrs/g_i_g_a_0_attrs.json", 1, "/etc/secret.jpg"),
    "synth_pedes": ("synthpedes_dataset.json", 4, "Part1/../../secret.jpg"),
}


def _add_record(folder: Path, kind: str, path: str) -> None:
    name = OUTSIDE[kind][0]
    records = json.loads((folder / name).read_text())
    if kind == "webperson":
        records.append({path: {"caption1": "a secret", "caption2": "another"}})
    elif kind == "mals":
        records.append({"image": path, "caption": "a secret", "image_id": 9, "label": attributes(9)})
    else:
        records.append({"id": 3, "file_path": path, "attributes": {}, "captions": ["a secret"], "prompt_caption": ""})
    (folder / name).write_text(json.dumps(records))


@pytest.mark.parametrize("kind", OUTSIDE)
def test_a_record_naming_a_path_outside_is_an_error_naming_file_and_record_or_skipped(tmp_path, kind, caplog):
    (tmp_path / "secret.jpg").write_bytes(b"never read")
    folder = MAKERS[kind](tmp_path / "corpus" / kind)
    _add_record(folder, kind, OUTSIDE[kind][2])
    name, index, path = OUTSIDE[kind]
    with pytest.raises(PairDataError) as raised:
        open_pair_stream(folder)
    assert str(raised.value).startswith(f"{folder / name}: record {index} (image {path!r}): ")
    assert "leads outside the corpus folder" in str(raised.value)

    stream = open_pair_stream(folder, on_invalid="skip")
    pairs = list(islice(iter(stream), stream.num_shards))
    assert {pair["key"]: pair["caption"] for pair in pairs} == EXPECTED[kind]["pairs"]  # the rest, all of it
    assert len(stream.cleaning.skipped) == 1 and f"record {index} (image {path!r})" in stream.cleaning.skipped[0]
    assert "skipped a broken record" in caplog.text


def test_a_webperson_folder_without_its_images_folder_is_one_error_saying_where_they_go(tmp_path):
    folder = MAKERS["webperson"](tmp_path / "wp")
    (folder / "images").rename(tmp_path / "elsewhere")
    with pytest.raises(PairDataError) as raised:
        open_pair_stream(folder)
    assert str(raised.value) == (
        f"{folder}: holds 100w.json but no images/ folder: WebPerson's images go in images/<the path each record names>"
    )


def test_a_luperson_key_naming_no_file_is_an_error_naming_the_entry(tmp_path):
    folder = MAKERS["luperson_mllm"](tmp_path / "lup")
    captions = json.loads((folder / "Ts-qwen.json").read_text())
    (folder / "Ts-qwen.json").write_text(json.dumps({**captions, "LUPerson/part1/": "no file name", "x/4.jpg": 7}))
    with pytest.raises(PairDataError, match=r"Ts-qwen.json: entry 'LUPerson/part1/': the key names no image file$"):
        open_pair_stream(folder)
    stream = open_pair_stream(folder, on_invalid="skip")
    skipped = stream.cleaning.skipped
    assert len(skipped) == 2 and "the caption should be a string, found int 7" in skipped[1]
    assert stream.num_shards == len(EXPECTED["luperson_mllm"]["pairs"])


def test_ivt_pretrain_reads_every_corpus_and_reports_its_cleaning(corpora, tmp_path, capsys):
    """`ivt pretrain --train_data` (the old spelling of --dataset_name, several sources mixed) reads each corpus and
    writes what each corpus's cleaning did into pretrain_results.json."""
    output = tmp_path / "run"
    argv = (
        f"pretrain --train_data {' '.join(str(corpora[kind]) for kind in KINDS)} --mix_weights 1 1 1 1 "
        f"--output_dir {output} --model_preset micro --image_height 32 --image_width 16 --max_steps 1 "
        "--per_device_train_batch_size 8 --save_steps 100 --shuffle_buffer_size 0 --dataloader_num_workers 0 "
        "--use_cpu --seed 0 --log_pair_keys"
    ).split()
    code, _, err = run_cli(argv, capsys)
    assert code == 0, err[-3000:]
    results = json.loads((output / "pretrain_results.json").read_text())
    cleaning = {report["corpus"]: report for report in results["data_cleaning"]}
    assert list(cleaning) == list(KINDS)
    for kind in KINDS:
        expected = EXPECTED[kind]
        assert cleaning[kind]["cleaning"] == dict(sorted(expected["cleaning"].items()))
        assert (cleaning[kind]["images"], cleaning[kind]["captions"]) == (expected["images"], len(expected["pairs"]))
    (record,) = [json.loads(line) for line in (output / "pair_keys_rank0.jsonl").read_text().splitlines()]
    for _, key in record["pairs"]:  # every key names its source and a pair of it
        source, pair = key.split(":", 1)
        assert pair in EXPECTED[KINDS[int(source)]]["pairs"]


@pytest.mark.parametrize("name", ["synthpedes_dataset.json", "synthpedes-dataset.json"])
def test_synth_pedes_fine_tunes_from_either_spelling_of_its_file(tmp_path, name):
    folder = make_synth_pedes(tmp_path / "SYNTH-PEDES", name)
    assert recognise_source(folder, accepts=FINE_TUNING_KINDS) == Source("synth_pedes", folder)
    # fine-tuning data is held to the benchmarks' checks: the empty caption that pre-training drops is an error here
    with pytest.raises(BenchmarkFormatError, match=rf"{name}: record 2 \(image 'Part2/2/0.jpg'\): caption 1 is empty$"):
        load_data(str(folder))
    with pytest.warns(BenchmarkWarning, match="skipped 1 record"):
        dataset = load_data(str(folder), on_invalid="skip")
    assert list(dataset) == ["train"]
    train = dataset["train"]
    kept = [record for index, record in enumerate(SYNTH_PEDES_RECORDS) if index != 2]
    assert train["image_path"] == [path for _, path, _ in kept]
    assert train["original_person_id"] == [1, 1, 2] and train["person_id"] == [0, 0, 1]
    assert train["captions"] == [captions for _, _, captions in kept] and set(train["source"]) == {"synth-pedes"}


def test_ivt_data_stats_reads_a_corpus_folder(corpora, capsys):
    code, out, err = run_cli(["data", "stats", str(corpora["webperson"])], capsys)
    assert code == 0, err
    assert out.splitlines() == [
        f"WebPerson: 5 captions of 3 images from 100w.json ({corpora['webperson']})",
        "  '/n' stripped: 3 (first: 100w.json: record 0)",
        "  empty caption dropped: 1 (first: 100w.json: record 1)",
        "  repeated record of an image dropped: 1 (first: 100w.json: record 3)",
    ]
    code, _, err = run_cli(["data", "stats", str(corpora["webperson"] / "images")], capsys)
    assert code == 2 and len(error_lines(err)) == 1


# ----- WebPerson's Hub release: parquet `data/train-*`, columns read from the schema -----


def _webperson_parquet(folder: Path, columns: dict[str, str] | None = None) -> Path:
    """Two `data/train-*.parquet` shards of three rows: an Image column and two numbered caption columns (with the
    literal "/n"), plus an id; `columns` renames them."""
    import datasets

    names = {"image": "image", "caption1": "caption1", "caption2": "caption2", "id": "id"} | (columns or {})
    features = datasets.Features(
        {
            names["image"]: datasets.Image(),
            names["caption1"]: datasets.Value("string"),
            names["caption2"]: datasets.Value("string"),
            names["id"]: datasets.Value("int64"),
        }
    )
    (folder / "data").mkdir(parents=True)
    for shard in range(2):
        rows = {
            names["image"]: [{"bytes": jpeg_bytes(3 * shard + row), "path": None} for row in range(3)],
            names["caption1"]: [f"Person {shard}.{row} in a coat./n" for row in range(3)],
            names["caption2"]: ["/n" if (shard, row) == (1, 2) else f"Person {shard}.{row} walks." for row in range(3)],
            names["id"]: list(range(3)),
        }
        path = folder / "data" / f"train-{shard:05d}-of-00002.parquet"
        datasets.Dataset.from_dict(rows, features=features).to_parquet(str(path))
    return folder


def test_webpersons_hub_parquet_gives_a_pair_per_caption_column_cleaned_and_resumes_inside_a_row(tmp_path):
    folder = _webperson_parquet(tmp_path / "WebPerson-1M")
    assert recognise_source(folder, accepts=PAIR_KINDS).kind == "parquet"
    stream = open_pair_stream(folder)
    pairs = list(islice(iter(stream), 12))  # an epoch of 11 pairs, and the next epoch's first
    epoch = [pair for pair in pairs if pair["epoch"] == 0]
    shard = "data/train-{:05d}-of-00002.parquet/row {}#{}"
    expected = {}
    for number in range(2):
        for row in range(3):
            expected[shard.format(number, row, 1)] = f"Person {number}.{row} in a coat."
            if (number, row) != (1, 2):  # its second caption was nothing but "/n": dropped
                expected[shard.format(number, row, 2)] = f"Person {number}.{row} walks."
    assert {pair["key"]: pair["caption"] for pair in epoch} == expected and len(epoch) == 11
    # counted over the pairs read: the epoch's 7 and, when it was a first caption, the next epoch's first pair
    stripped = 7 + pairs[11]["key"].endswith("#1")
    assert dict(stream.cleaning.cleaning) == {"'/n' stripped": stripped, "empty caption dropped": 1}
    assert stream.cleaning.streamed and stream.skipped == 0

    resumed = open_pair_stream(folder, seed=5)
    pairs = iter(resumed)
    list(islice(pairs, 3))  # inside the second row of a shard
    state = json.loads(json.dumps(resumed.state_dict()))
    assert state["position"]["example"] == 3
    following = [pair["key"] for pair in islice(pairs, 8)]
    again = open_pair_stream(folder, seed=5)
    again.load_state_dict(state)
    assert [pair["key"] for pair in islice(iter(again), 8)] == following


def test_a_parquet_schema_without_a_caption_column_is_an_error_naming_its_columns(tmp_path):
    folder = _webperson_parquet(tmp_path / "other", {"caption1": "description_a", "caption2": "description_b"})
    with pytest.raises(PairDataError) as raised:
        next(iter(open_pair_stream(folder)))
    assert str(raised.value).endswith(
        "has no caption column (txt or text or caption, or numbered ones: caption1, caption2, ...); its columns are "
        "image (Image), description_a (string), description_b (string), id (int64) (name yours with image_column= / "
        "caption_column=)"
    )
    pairs = open_pair_stream(folder, caption_column="description_b")  # named: one caption per row
    assert next(iter(pairs))["caption"].endswith("walks.")

"""`ivt_hf.data.sources`: one place that recognises a source, for `load_data` (fine-tuning data) and `open_pair_stream`
(pre-training pairs). Folders are made here, in `tmp_path`: recognition reads only which files a folder holds, so most
folders hold empty marker files; the last test reads real data of each kind through both callers."""

from __future__ import annotations

import io
import json
import socket
from itertools import islice
from pathlib import Path

import pytest
from PIL import Image

from ivt_hf.data import BenchmarkFormatError, PairDataError, load_data, open_pair_stream, write_webdataset_shards
from ivt_hf.data.sources import FINE_TUNING_KINDS, PAIR_KINDS, Source, recognise_source


def _touch(folder: Path, *names: str) -> Path:
    """`folder`, holding an empty file of each name."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(b"")
    return folder


@pytest.fixture
def no_network(monkeypatch):
    """Recognition never asks the network, not even for a Hub id."""

    def refuse(*args, **kwargs):
        raise AssertionError("recognise_source made a network request")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.mark.compat
def test_each_kind_is_recognised(tmp_path, no_network):
    saved_dict = _touch(tmp_path / "saved-dict", "dataset_dict.json")
    saved_lone = _touch(tmp_path / "saved-lone", "state.json")
    jsonl = _touch(tmp_path / "jsonl", "metadata.jsonl", "a.jpg")
    csv = _touch(tmp_path / "csv", "metadata.csv")
    tars = _touch(tmp_path / "tars", "b/pairs-1.tar", "a/pairs-0.tar", "pairs-2.tar", "notes.txt")
    parquets = _touch(tmp_path / "parquets", "data/train-1.parquet", "data/train-0.parquet")

    assert recognise_source("cuhk-pedes") == Source("benchmark", "cuhk-pedes")
    assert recognise_source("synthpedes") == Source("benchmark", "synthpedes")
    for folder, kind in [(saved_dict, "saved"), (saved_lone, "saved"), (jsonl, "imagefolder"), (csv, "imagefolder")]:
        for accepts in (FINE_TUNING_KINDS, PAIR_KINDS):
            assert recognise_source(str(folder), accepts=accepts) == Source(kind, folder)
            assert recognise_source(folder, accepts=accepts) == Source(kind, folder)  # a Path as well as a string
    shards = recognise_source(tars, accepts=PAIR_KINDS)
    assert shards.kind == "webdataset" and shards.location == tars
    assert shards.shards == (tars / "a/pairs-0.tar", tars / "b/pairs-1.tar", tars / "pairs-2.tar")  # at any depth
    assert recognise_source(parquets, accepts=PAIR_KINDS) == Source(
        "parquet", parquets, (parquets / "data/train-0.parquet", parquets / "data/train-1.parquet")
    )
    assert recognise_source("people-org/street-crops") == Source("hub", "people-org/street-crops")
    assert recognise_source("people-org/pairs", accepts=PAIR_KINDS) == Source("hub", "people-org/pairs")


def test_the_files_at_a_folders_top_come_before_shards_found_below_it(tmp_path, monkeypatch):
    both = _touch(tmp_path / "both", "metadata.jsonl", "archive/images.tar")  # an image folder keeping an archive
    assert recognise_source(both, accepts=PAIR_KINDS) == Source("imagefolder", both)
    saved = _touch(tmp_path / "saved", "dataset_dict.json", "metadata.csv")
    assert recognise_source(saved).kind == "saved"
    mixed = _touch(tmp_path / "mixed", "00000.tar", "00000.parquet")  # img2dataset: shards with parquet metadata
    assert recognise_source(mixed, accepts=PAIR_KINDS).kind == "webdataset"
    # an existing folder is a folder, also when its name looks like ORG/NAME; a benchmark name is one only where
    # benchmarks are read
    monkeypatch.chdir(tmp_path)
    _touch(tmp_path / "people-org" / "pairs", "pairs-0.tar")
    assert recognise_source("people-org/pairs", accepts=PAIR_KINDS).kind == "webdataset"
    _touch(tmp_path / "synthpedes", "pairs-0.tar")
    assert recognise_source("synthpedes", accepts=PAIR_KINDS).kind == "webdataset"
    assert recognise_source("synthpedes").kind == "benchmark"


SAVED = "a folder written by save_to_disk / ivt data prepare"
IMAGEFOLDER = "an image folder with metadata.jsonl or metadata.csv"
WEBDATASET, PARQUET = "a folder of WebDataset .tar shards (at any depth)", "a folder of .parquet files (at any depth)"
NOT_FOUND = "no such folder, and not a Hub dataset id (ORG/NAME)"
BENCHMARK = "a benchmark name (cuhk-pedes, icfg-pedes, rstpreid, ufine6926, ufine3c, imagefolder, synthpedes)"
# the corpora (corpora.py): SYNTH-PEDES alone where fine-tuning data is read, all four as one entry for pairs
SYNTH = "a SYNTH-PEDES folder (synthpedes_dataset.json or synthpedes-dataset.json and Part*/)"
CORPORA = "a corpus folder as published (WebPerson, LUPerson-MLLM, MALS, SYNTH-PEDES: docs/corpora.md)"

# name: (the source, made in tmp_path; what the caller reads; how the message ends)
ERRORS = {
    "missing": (
        lambda tmp: tmp / "nowhere",
        FINE_TUNING_KINDS,
        f"nowhere: {NOT_FOUND}; expected {BENCHMARK}, {SAVED}, {IMAGEFOLDER} or {SYNTH}",
    ),
    "mistyped benchmark": (
        lambda tmp: "cuhk-pedse",
        FINE_TUNING_KINDS,
        f"cuhk-pedse: {NOT_FOUND}; did you mean cuhk-pedes? expected {BENCHMARK}, {SAVED}, {IMAGEFOLDER} or {SYNTH}",
    ),
    "benchmark for pairs": (
        lambda tmp: "cuhk-pedes",
        PAIR_KINDS,
        f"cuhk-pedes: {NOT_FOUND}; expected {SAVED}, {IMAGEFOLDER}, {WEBDATASET}, {PARQUET} or {CORPORA}",
    ),
    "not ORG/NAME": (
        lambda tmp: "org/name/extra",
        FINE_TUNING_KINDS,
        f"org/name/extra: {NOT_FOUND}; expected {BENCHMARK}, {SAVED}, {IMAGEFOLDER} or {SYNTH}",
    ),
    "a Path is never a Hub id": (
        lambda tmp: tmp / "org" / "name",
        PAIR_KINDS,
        f"org/name: {NOT_FOUND}; expected {SAVED}, {IMAGEFOLDER}, {WEBDATASET}, {PARQUET} or {CORPORA}",
    ),
    "a file": (
        lambda tmp: _touch(tmp, "a.tar") / "a.tar",
        PAIR_KINDS,
        "a.tar: is a file; give the folder that holds the data",
    ),
    "neither, fine-tuning": (
        lambda tmp: _touch(tmp / "empty"),
        FINE_TUNING_KINDS,
        f"empty: is neither {SAVED} nor {IMAGEFOLDER} nor {SYNTH}",
    ),
    "neither, pairs": (
        lambda tmp: _touch(tmp / "images", "a.jpg"),
        PAIR_KINDS,
        f"images: is neither {SAVED} nor {IMAGEFOLDER} nor {WEBDATASET} nor {PARQUET} nor {CORPORA}",
    ),
    "shards for fine-tuning": (
        lambda tmp: _touch(tmp / "shards", "p.tar"),
        FINE_TUNING_KINDS,
        f"shards: is {WEBDATASET}, not {SAVED}, {IMAGEFOLDER} or {SYNTH}",
    ),
    "not a path": (
        lambda tmp: 7,
        PAIR_KINDS,
        f"7: should be {SAVED}, {IMAGEFOLDER}, {WEBDATASET}, {PARQUET}, {CORPORA} or a Hub dataset id (ORG/NAME), "
        "found int",
    ),
}


@pytest.mark.parametrize("name", ERRORS)
def test_a_source_of_no_kind_read_is_an_error_saying_what_it_is_and_what_is_expected(tmp_path, no_network, name):
    make, accepts, message = ERRORS[name]
    with pytest.raises(BenchmarkFormatError) as raised:
        recognise_source(make(tmp_path), accepts=accepts)
    assert str(raised.value).endswith(message)


# ----- load_data and open_pair_stream agree -----


def _jpeg(shade: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 32), (40 * shade % 256, 90, 30)).save(buffer, "JPEG")
    return buffer.getvalue()


def _people(count: int = 4) -> list[dict]:
    """`count` images of `count // 2` people, with the column names both callers look for."""
    return [
        {"image": _jpeg(index), "caption": f"A person in coat {index}.", "person_id": index // 2}
        for index in range(count)
    ]


def _image_folder(folder: Path) -> Path:
    folder.mkdir()
    rows = []
    for index, person in enumerate(_people()):
        (folder / f"{index}.jpg").write_bytes(person["image"])
        rows.append({"file_name": f"{index}.jpg", "caption": person["caption"], "person_id": person["person_id"]})
    (folder / "metadata.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return folder


def _saved_folder(folder: Path) -> Path:
    import datasets

    people = _people()
    features = datasets.Features(
        {"image": datasets.Image(), "caption": datasets.Value("string"), "person_id": datasets.Value("int64")}
    )
    table = {"image": [{"bytes": person["image"], "path": f"{index}.jpg"} for index, person in enumerate(people)]}
    table |= {column: [person[column] for person in people] for column in ("caption", "person_id")}
    datasets.DatasetDict({"train": datasets.Dataset.from_dict(table, features=features)}).save_to_disk(str(folder))
    return folder


def _shard_folder(folder: Path) -> Path:
    pairs = [(f"{index:03d}", person["image"], person["caption"]) for index, person in enumerate(_people())]
    write_webdataset_shards(pairs, folder, 2)
    return folder


def _outcome_of_load_data(source) -> str:
    try:
        dataset = load_data(str(source))
    except BenchmarkFormatError as error:
        return error.reason
    return f"read {len(dataset['train'])} images"


def _outcome_of_pair_stream(source) -> str:
    try:
        stream = open_pair_stream(source)
    except PairDataError as error:
        return error.reason
    captions = {pair["caption"] for pair in islice(iter(stream), 4)}
    return f"read {len(captions)} captions as {stream.state_dict()['route']}"


def test_load_data_and_pair_stream_agree_on_what_a_folder_is(tmp_path, monkeypatch):
    """Each caller reads the folders it can and says the same thing about the ones it cannot."""
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "datasets-cache"))
    folders = {
        "imagefolder": _image_folder(tmp_path / "imagefolder"),
        "saved": _saved_folder(tmp_path / "saved"),
        "webdataset": _shard_folder(tmp_path / "shards"),
        None: _touch(tmp_path / "nothing", "readme.txt"),
    }
    outcomes = {
        kind: (_outcome_of_load_data(folder), _outcome_of_pair_stream(folder)) for kind, folder in folders.items()
    }
    assert outcomes["imagefolder"] == ("read 4 images", "read 4 captions as rows")
    assert outcomes["saved"] == ("read 4 images", "read 4 captions as rows")
    assert outcomes["webdataset"] == (
        f"is {WEBDATASET}, not {SAVED}, {IMAGEFOLDER} or {SYNTH}",
        "read 4 captions as webdataset",
    )
    # the same words for a folder that neither reads, the stream naming the shards it also reads
    assert outcomes[None] == (
        f"is neither {SAVED} nor {IMAGEFOLDER} nor {SYNTH}",
        f"is neither {SAVED} nor {IMAGEFOLDER} nor {WEBDATASET} nor {PARQUET} nor {CORPORA}",
    )
    for kind, folder in folders.items():
        for accepts in (FINE_TUNING_KINDS, PAIR_KINDS):
            if kind in accepts:
                assert recognise_source(folder, accepts=accepts).kind == kind
    missing = _outcome_of_load_data(tmp_path / "missing"), _outcome_of_pair_stream(tmp_path / "missing")
    assert [outcome.split(";")[0] for outcome in missing] == [NOT_FOUND] * 2

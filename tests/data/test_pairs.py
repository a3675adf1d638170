"""`ivt_hf.data.pairs`: the endless, resumable, process-split stream of image-text pairs for pre-training.

Every collection is made here, in `tmp_path` (small random-colour JPEGs): WebDataset shards written by
`write_webdataset_shards`, an image folder with `metadata.jsonl`, a `save_to_disk` folder, parquet files, and a Hub
dataset repo on the package's local Hub-protocol server (`tests/helpers/local_hub.py`). Local sources are read with
every socket connection refused and recorded, so a network request for a local path fails the test.
"""

from __future__ import annotations

import io
import json
import random
import shutil
import socket
import tarfile
from itertools import islice

import pytest
from PIL import Image

from ivt_hf.data import PairDataError, clean_caption, open_pair_stream, write_webdataset_shards

NUM_PAIRS, PAIRS_PER_SHARD = 24, 4  # 6 shards


def _jpeg(rng: random.Random) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), tuple(rng.randrange(256) for _ in range(3))).save(buffer, "JPEG")
    return buffer.getvalue()


def _caption(index: int) -> str:
    return f"Person {index}, in a Red-coat/jeans."


def _pairs(count: int = NUM_PAIRS, seed: int = 0) -> list[tuple[str, bytes, str]]:
    rng = random.Random(seed)
    return [(f"{index:06d}", _jpeg(rng), _caption(index)) for index in range(count)]


def _take(iterator, count: int) -> list[dict]:
    return list(islice(iterator, count))


@pytest.fixture
def no_network(monkeypatch):
    """Refuse (and record) every host name lookup and socket connection made while a local source is read."""
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args[1] if isinstance(args[0], socket.socket) else args[0])
        raise OSError(f"test: no network for local sources (tried {attempts[-1]!r})")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    yield attempts
    assert attempts == [], f"network requests for a local source: {attempts}"


@pytest.fixture
def datasets_cache(tmp_path, monkeypatch):
    """`datasets` writes the arrow cache of an image folder: into tmp_path, not the user's cache."""
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "datasets-cache"))


@pytest.fixture
def shards(tmp_path):
    pairs = _pairs()
    write_webdataset_shards(pairs, tmp_path / "shards", PAIRS_PER_SHARD)
    return tmp_path / "shards", {
        f"pairs-{index // PAIRS_PER_SHARD:05d}.tar/{key}": image for index, (key, image, _) in enumerate(pairs)
    }


# ----- clean_caption -----


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("A man in a T-shirt/jeans, holding a bag!", "a man in a t shirt jeans holding a bag"),
        ("  Woman's   RED\tcoat.\n(Black shoes)  ", "womans red coat black shoes"),
        ('2/3 of the 4-year-olds; "quoted" & under_score + $5', "2 3 of the 4 year olds quoted underscore 5"),
        ("Café «Zürich» — naïve", "café zürich naïve"),
        ("ΕΛΛΗΝΙΚΆ: Αβγ, 数字 42号。", "ελληνικά αβγ 数字 42号"),
        ("a--b//c", "a b c"),
    ],
)
def test_clean_caption_rules(text, expected):
    assert clean_caption(text) == expected


def test_clean_caption_keeps_at_most_max_words_and_refuses_empty_captions():
    sixty = " ".join(f"w{index}" for index in range(60))
    assert clean_caption(sixty) == " ".join(f"w{index}" for index in range(50))
    assert clean_caption("One, two - three four", max_words=3) == "one two three"
    for empty in ("", "   ", "?!... -- //", "«»"):
        with pytest.raises(ValueError, match="empty once punctuation is removed"):
            clean_caption(empty)
    with pytest.raises(TypeError):
        clean_caption(None)
    with pytest.raises(ValueError, match="max_words"):
        clean_caption("a man", max_words=0)


# ----- write_webdataset_shards -----


def test_write_webdataset_shards_layout_and_refusal_of_a_folder_with_shards(tmp_path):
    pairs = _pairs(10)
    paths = write_webdataset_shards(pairs, tmp_path / "out", 4)
    assert [path.name for path in paths] == ["pairs-00000.tar", "pairs-00001.tar", "pairs-00002.tar"]
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == [path.name for path in paths]
    with tarfile.open(paths[0]) as tar:
        names = tar.getnames()
        assert names == [
            *"000000.jpg 000000.txt 000001.jpg 000001.txt 000002.jpg 000002.txt 000003.jpg".split(),
            *"000003.txt".split(),
        ]
        assert tar.extractfile("000001.jpg").read() == pairs[1][1]
        assert tar.extractfile("000001.txt").read().decode() == pairs[1][2]
    with tarfile.open(paths[2]) as tar:
        assert tar.getnames() == ["000008.jpg", "000008.txt", "000009.jpg", "000009.txt"]

    with pytest.raises(FileExistsError, match="already holds 3 .tar file"):
        write_webdataset_shards(pairs, tmp_path / "out", 4)
    again = write_webdataset_shards(pairs[:3], tmp_path / "out", 5, prefix="new", overwrite=True)
    assert [path.name for path in again] == ["new-00000.tar"]
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == ["new-00000.tar"]  # the old ones are gone

    for number, (bad, message) in enumerate(
        [
            ([("a.b", b"x", "c")], "without '.'"),
            ([("a", b"x", "c"), ("a", b"y", "d")], "used twice"),  # after a first pair was written: no partial shard
            ([("a", b"", "c")], "non-empty encoded bytes"),
            ([("a", b"x", None)], "caption should be a string"),
        ]
    ):
        with pytest.raises(ValueError, match=message):
            write_webdataset_shards(bad, tmp_path / f"bad-{number}", 2)
        assert list((tmp_path / f"bad-{number}").iterdir()) == []


# ----- the old name -----


def test_the_old_name_pair_stream_still_opens_the_same_stream_and_warns_once(shards, monkeypatch, no_network):
    """`PairStream`, the name `open_pair_stream` had (a function named like a class), is exported by `ivt_hf.data`:
    scripts that call it get the same stream, and one `FutureWarning` per process that says the new name. The state
    keeps its format name, which checkpoints written before the rename hold."""
    import ivt_hf.data.pairs as pairs_module
    from ivt_hf.data import PairStream

    folder, _ = shards
    monkeypatch.setattr(pairs_module, "_warned_of_old_name", False)
    with pytest.warns(FutureWarning) as caught:
        old = PairStream(folder, rank=1, world_size=2, seed=3)
        PairStream(folder, seed=3)
    assert [str(warning.message) for warning in caught if warning.category is FutureWarning] == [
        "ivt_hf.data.PairStream is now ivt_hf.data.open_pair_stream (a function, not a class); the old name will be "
        "removed"
    ]
    new = open_pair_stream(folder, rank=1, world_size=2, seed=3)
    assert type(old) is type(new) and old.shards_for_epoch(0) == new.shards_for_epoch(0)
    first = _take(iter(old), 3)
    state = old.state_dict()
    assert state["format"] == "ivt_hf.PairStream"
    new.load_state_dict(state)
    assert [pair["key"] for pair in _take(iter(new), 2)] == [pair["key"] for pair in _take(iter(old), 2)]
    assert [pair["key"] for pair in first] == [
        pair["key"] for pair in _take(iter(open_pair_stream(folder, rank=1, world_size=2, seed=3)), 3)
    ]


# ----- WebDataset shards -----


def test_one_process_reads_every_pair_once_per_epoch_and_the_epoch_advances(shards, no_network):
    folder, images = shards
    stream = open_pair_stream(folder)
    assert stream.num_shards == 6 and stream.epoch == 0
    assert stream.shards == tuple(f"pairs-{index:05d}.tar" for index in range(6))
    pairs = _take(iter(stream), 3 * NUM_PAIRS)
    for epoch in range(3):
        part = pairs[epoch * NUM_PAIRS : (epoch + 1) * NUM_PAIRS]
        assert {pair["epoch"] for pair in part} == {epoch}
        assert sorted(pair["key"] for pair in part) == sorted(images)  # every pair, once
    first = pairs[0]
    assert set(first) == {"key", "image", "caption", "epoch"}
    assert isinstance(first["image"], bytes) and first["image"] == images[first["key"]]  # encoded, not decoded
    assert first["caption"] == _caption(int(first["key"].rsplit("/", 1)[1]))  # as written: the caller cleans it
    assert stream.epoch == 2
    orders = [
        [pair["key"].split("/")[0] for pair in pairs[epoch * NUM_PAIRS :: PAIRS_PER_SHARD]][:6] for epoch in range(2)
    ]
    assert orders[0] != orders[1] and sorted(orders[0]) == sorted(orders[1])  # a new shard order each epoch


def test_two_processes_read_disjoint_shards_that_together_hold_every_pair(shards, no_network):
    folder, images = shards
    ranks = [open_pair_stream(folder, rank=rank, world_size=2, seed=3) for rank in (0, 1)]
    per_rank = [_take(iter(stream), 3 * NUM_PAIRS // 2) for stream in ranks]  # 3 shards of 4 pairs a process
    for epoch in range(3):
        keys = [{pair["key"] for pair in pairs if pair["epoch"] == epoch} for pairs in per_rank]
        assert len(keys[0]) == len(keys[1]) == NUM_PAIRS // 2
        assert not keys[0] & keys[1] and keys[0] | keys[1] == set(images)
    shard_orders = [ranks[0].shards_for_epoch(epoch) + ranks[1].shards_for_epoch(epoch) for epoch in (0, 1)]
    assert shard_orders[0] != shard_orders[1] and sorted(shard_orders[0]) == sorted(shard_orders[1])
    assert [pair["key"].split("/")[0] for pair in per_rank[1][:12:4]] == ranks[1].shards_for_epoch(0)
    again = open_pair_stream(folder, rank=1, world_size=2, seed=3)  # the order depends on the seed and epoch only
    assert [pair["key"] for pair in _take(iter(again), 12)] == [pair["key"] for pair in per_rank[1][:12]]
    assert open_pair_stream(folder, rank=1, world_size=2, seed=4).shards_for_epoch(0) != ranks[1].shards_for_epoch(0)


@pytest.mark.parametrize(("world_size", "rank", "taken"), [(1, 0, 7), (1, 0, 24), (2, 1, 5), (2, 0, 11)])
def test_resuming_from_a_state_continues_with_exactly_the_next_pair(shards, no_network, world_size, rank, taken):
    """7 and 5 land inside a shard, 24 at the end of the single process's epoch, 11 inside its last shard; the 30
    pairs that follow cross at least one epoch boundary."""
    folder, _ = shards
    original = open_pair_stream(folder, rank=rank, world_size=world_size, seed=11)
    iterator = iter(original)
    _take(iterator, taken)
    state = json.loads(json.dumps(original.state_dict()))  # JSON-serialisable, and read back from JSON
    expected = _take(iterator, 30)
    assert len({pair["epoch"] for pair in expected}) >= 2

    resumed = open_pair_stream(folder, rank=rank, world_size=world_size, seed=11)
    resumed.load_state_dict(state)
    assert resumed.epoch == state["epoch"]
    got = _take(iter(resumed), 30)
    assert [(p["key"], p["image"], p["caption"], p["epoch"]) for p in got] == [
        (p["key"], p["image"], p["caption"], p["epoch"]) for p in expected
    ]
    assert resumed.state_dict() == original.state_dict()


def test_the_state_names_its_settings_and_a_state_of_other_settings_is_refused(shards):
    folder, _ = shards
    stream = open_pair_stream(folder, rank=1, world_size=2, seed=5)
    _take(iter(stream), 6)
    state = stream.state_dict()
    settings = ("route", "num_shards", "world_size", "rank", "seed", "epoch", "skipped")
    assert [state[name] for name in settings] == ["webdataset", 6, 2, 1, 5, 0, 0]
    assert state["position"]["shard"] == 1 and state["position"]["example"] == 2
    assert state["position"]["shard_name"] == stream.shards_for_epoch(0)[1]
    assert state["position"]["datasets_state"]["examples_iterable"]["shard_example_idx"] == 2  # datasets' own
    for other, message in [
        (dict(seed=6, rank=1, world_size=2), "seed 5 there, 6 here"),
        (dict(seed=5, rank=0, world_size=3), "world_size 2 there, 3 here"),
        (dict(seed=5, rank=0, world_size=2), "rank 1 there, 0 here"),
    ]:
        with pytest.raises(PairDataError, match=message):
            open_pair_stream(folder, **other).load_state_dict(state)
    write_webdataset_shards(_pairs(), folder.parent / "fewer", 6)  # 4 shards
    with pytest.raises(PairDataError, match="num_shards 6 there, 4 here"):
        open_pair_stream(folder.parent / "fewer", rank=1, world_size=2, seed=5).load_state_dict(state)
    with pytest.raises(PairDataError, match="not a pair stream's state"):
        open_pair_stream(folder).load_state_dict({"epoch": 0})

    iterator = iter(stream)  # loading a state ends the running iterator: two positions cannot both be current
    next(iterator)
    stream.load_state_dict(state)
    with pytest.raises(RuntimeError, match="replaced by a newer one"):
        next(iterator)
    assert stream.state_dict() == state


def test_on_invalid_is_error_or_skip_and_raise_is_its_old_spelling(shards, caplog, no_network):
    """The pair streams take `on_invalid` in the words of every reader, `error` (the default) or `skip`, checked by
    the one check (`ivt_hf.data.arguments.check_on_invalid`); pre-training's old `raise` is read as `error`, with one
    line naming it, and anything else is refused with the same message as a benchmark reader's."""
    folder, _ = shards
    caplog.set_level("WARNING", logger="ivt_hf.data.arguments")
    assert open_pair_stream(folder).on_invalid == "error"
    assert caplog.messages == []
    assert open_pair_stream(folder, on_invalid="raise").on_invalid == "error"
    assert caplog.messages == ["on_invalid 'raise' is now 'error' (the old spelling still works, for now)"]
    with pytest.raises(ValueError, match="^on_invalid must be 'error' or 'skip', got 'ignore'$"):
        open_pair_stream(folder, on_invalid="ignore")


def test_fewer_shards_than_processes_is_refused(shards):
    folder, _ = shards
    with pytest.raises(PairDataError, match="has 6 shards for 8 processes.*write more, smaller shards"):
        open_pair_stream(folder, rank=0, world_size=8)
    with pytest.raises(ValueError, match="rank"):
        open_pair_stream(folder, rank=2, world_size=2)


def _write_tar(path, members: dict[str, bytes]) -> None:
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_a_sample_without_caption_is_an_error_naming_shard_and_key_or_skipped_and_counted(tmp_path, caplog):
    rng = random.Random(1)
    folder = tmp_path / "broken"
    folder.mkdir()
    for shard in range(3):
        members = {}
        for index in range(4):
            key = f"s{shard}-{index}"
            members[f"{key}.jpg"] = _jpeg(rng)
            if (shard, index) != (1, 2):  # s1-2 has no .txt
                members[f"{key}.txt"] = b"a red coat" if (shard, index) != (2, 0) else b" !? "  # s2-0: empty caption
        _write_tar(folder / f"part-{shard}.tar", members)
    stream = open_pair_stream(folder, seed=0)
    with pytest.raises(PairDataError) as raised:
        _take(iter(stream), 12)
    shard = {"s1-2": "part-1.tar", "s2-0": "part-2.tar"}[raised.value.key.split("/")[1]]
    assert raised.value.key == f"{shard}/{raised.value.key.split('/')[1]}"
    message = str(raised.value)
    assert message.startswith(f"{folder / shard}: sample '{raised.value.key}': ")
    assert (
        "no caption (looked for 'txt' or 'text' or 'caption')" in message
        or "is empty once punctuation is removed" in message
    )

    skipping = open_pair_stream(folder, seed=0, on_invalid="skip")
    with caplog.at_level("WARNING", logger="ivt_hf.data.pairs"):
        iterator = iter(skipping)
        pairs = _take(iterator, 10)  # the 10 valid pairs of epoch 0
        assert skipping.skipped == 2 and skipping.state_dict()["skipped"] == 2
        assert {pair["epoch"] for pair in _take(iterator, 10)} == {1} and skipping.skipped == 4  # counted each epoch
    assert sorted(pair["key"] for pair in pairs) == sorted(
        f"part-{shard}.tar/s{shard}-{index}"
        for shard in range(3)
        for index in range(4)
        if (shard, index) not in ((1, 2), (2, 0))
    )
    warnings = [record.getMessage() for record in caplog.records]
    assert any("part-1.tar/s1-2" in text and "no caption" in text for text in warnings)
    assert any("part-2.tar/s2-0" in text and "empty once punctuation" in text for text in warnings)


def test_other_member_names_and_extra_members_of_a_sample(tmp_path, no_network):
    """PNG images, a `.caption` member (not decoded by datasets: bytes, read as UTF-8) and members nobody asked for
    (`.json`, `.cls`) with the default column names; then a named caption member (`caption_column=`)."""
    rng = random.Random(6)
    png = io.BytesIO()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(png, "PNG")
    members = {}
    for index in range(3):
        members |= {
            f"k{index}.png": png.getvalue(),
            f"k{index}.caption": f"Café n°{index}!".encode(),
            f"k{index}.json": b'{"a": 1}',
            f"k{index}.cls": b"7",
            f"k{index}.desc.txt": b"Other words",
        }
    (tmp_path / "odd").mkdir()
    _write_tar(tmp_path / "odd" / "one.tar", members)
    _write_tar(tmp_path / "odd" / "two.tar", {"k9.webp": _jpeg(rng), "k9.text": b"A webp, really."})
    pairs = _take(iter(open_pair_stream(tmp_path / "odd")), 4)
    assert sorted((pair["key"], pair["caption"]) for pair in pairs) == [
        ("one.tar/k0", "Café n°0!"),
        ("one.tar/k1", "Café n°1!"),
        ("one.tar/k2", "Café n°2!"),
        ("two.tar/k9", "A webp, really."),
    ]
    assert {pair["image"] for pair in pairs[:3] if pair["key"].startswith("one")} == {png.getvalue()}
    named = _take(iter(open_pair_stream(tmp_path / "odd", caption_column="desc.txt", on_invalid="skip")), 3)
    assert [pair["caption"] for pair in named] == ["Other words"] * 3


# ----- damaged shards -----

DAMAGES = ["mid-header", "mid-data", "bad checksum", "no end marker", "data after the end marker"]


def _damage(folder, how: str) -> tuple[str, int]:
    """Damage `pairs-00002.tar` (samples 8-11) of `folder` for real, as an interrupted download or a bad disk does;
    returns what the error must say (with its byte offset) and how many of the shard's samples come before it."""
    path = folder / "pairs-00002.tar"
    data = path.read_bytes()
    with tarfile.open(path) as tar:
        members = {member.name: member for member in tar.getmembers()}
    jpg, last = members["000010.jpg"], members["000011.txt"]
    end = last.offset_data + 512  # the last member's data, padded to a block
    if how == "mid-header":
        path.write_bytes(data[: jpg.offset + 100])
        return f"holds no valid header at byte {jpg.offset}, after '000009.txt' (truncated header)", 2
    if how == "mid-data":
        path.write_bytes(data[: jpg.offset_data + 100])
        return f"ends at byte {jpg.offset_data + 100}, inside member '000010.jpg' (its data runs to byte", 2
    if how == "bad checksum":
        damaged = bytearray(data)
        damaged[jpg.offset] ^= 1  # the name's first character: the header's checksum no longer matches
        path.write_bytes(bytes(damaged))
        return f"holds no valid header at byte {jpg.offset}, after '000009.txt' (bad checksum)", 2
    if how == "no end marker":  # every member complete, the two zero blocks that end a tar missing
        path.write_bytes(data[:end])
        return f"ends at byte {end} without the end-of-archive marker (two zero blocks) after '000011.txt'", 4
    assert how == "data after the end marker"  # a second archive appended: tar readers stop at the first's end
    (folder / "extra").mkdir()
    write_webdataset_shards(_pairs(2, seed=5), folder / "extra", 2)
    path.write_bytes(data + (folder / "extra" / "pairs-00000.tar").read_bytes())
    shutil.rmtree(folder / "extra")
    return f"holds data after its end-of-archive marker at byte {end}", 4


@pytest.mark.parametrize("how", DAMAGES)
def test_a_damaged_shard_raises_naming_it_and_the_byte(shards, no_network, how):
    """A tar cut short or damaged used to end early in silence (22 of 24 pairs, skipped 0, every epoch)."""
    folder, _ = shards
    reason, _ = _damage(folder, how)
    with pytest.raises(PairDataError) as raised:
        _take(iter(open_pair_stream(folder)), NUM_PAIRS)
    assert str(raised.value).startswith(f"{folder / 'pairs-00002.tar'}: {reason}")


@pytest.mark.parametrize("how", DAMAGES)
def test_with_skip_a_damaged_shard_gives_its_pairs_before_the_damage_and_is_counted_and_logged(
    shards, no_network, caplog, how
):
    folder, images = shards
    reason, intact = _damage(folder, how)
    per_epoch = NUM_PAIRS - PAIRS_PER_SHARD + intact
    expected = sorted(key for key in images if not key.startswith("pairs-00002.tar/") or int(key[-2:]) < 8 + intact)
    stream = open_pair_stream(folder, on_invalid="skip")
    with caplog.at_level("WARNING", logger="ivt_hf.data.pairs"):
        pairs = _take(iter(stream), 2 * per_epoch + 1)
    for epoch in (0, 1):
        assert sorted(pair["key"] for pair in pairs if pair["epoch"] == epoch) == expected
    assert all(pair["image"] == images[pair["key"]] for pair in pairs)
    assert stream.skipped == 2  # once in each epoch read to its end
    warning = f"skipped the rest of a damaged shard: {folder / 'pairs-00002.tar'}: {reason}"
    assert [record.getMessage().startswith(warning) for record in caplog.records] == [True, True]


@pytest.mark.parametrize("how", ["mid-data", "no end marker"])
def test_a_stream_with_a_damaged_shard_resumes_exactly(shards, no_network, how):
    """States saved inside the damaged shard, and just after its last good pair (before the damage is counted)."""
    folder, _ = shards
    _damage(folder, how)
    first = _take(iter(open_pair_stream(folder, seed=2, on_invalid="skip")), NUM_PAIRS)
    last_good = max(index for index, pair in enumerate(first) if pair["key"].startswith("pairs-00002.tar/"))
    for taken in (last_good, last_good + 1):
        original = open_pair_stream(folder, seed=2, on_invalid="skip")
        iterator = iter(original)
        _take(iterator, taken)
        state = json.loads(json.dumps(original.state_dict()))
        expected = _take(iterator, 30)
        resumed = open_pair_stream(folder, seed=2, on_invalid="skip")
        resumed.load_state_dict(state)
        assert [(p["key"], p["epoch"]) for p in _take(iter(resumed), 30)] == [(p["key"], p["epoch"]) for p in expected]
        assert resumed.state_dict() == original.state_dict() and resumed.skipped == original.skipped >= 1


def test_a_member_name_leading_outside_is_refused_naming_shard_and_member_or_skipped(tmp_path, no_network, caplog):
    rng = random.Random(9)
    folder = tmp_path / "names"
    folder.mkdir()
    members = {"k0.jpg": _jpeg(rng), "k0.txt": b"a man", "../x.jpg": _jpeg(rng), "../x.txt": b"up"}
    members |= {"/abs/y.jpg": _jpeg(rng), "/abs/y.txt": b"absolute", "k1.jpg": _jpeg(rng), "k1.txt": b"a woman"}
    _write_tar(folder / "one.tar", members)
    with pytest.raises(PairDataError) as raised:
        _take(iter(open_pair_stream(folder)), 2)
    assert str(raised.value) == (
        f"{folder / 'one.tar'}: sample 'one.tar/../x': member '../x.jpg' leads outside the shard's folder "
        "(absolute or '..')"
    )
    skipping = open_pair_stream(folder, on_invalid="skip")
    with caplog.at_level("WARNING", logger="ivt_hf.data.pairs"):
        assert [pair["key"] for pair in _take(iter(skipping), 2)] == ["one.tar/k0", "one.tar/k1"]
    assert skipping.skipped == 2
    assert any("member '/abs/y.jpg' leads outside" in record.getMessage() for record in caplog.records)


def test_a_missing_source_and_a_folder_without_pairs_are_errors_naming_them(tmp_path, no_network):
    with pytest.raises(PairDataError, match=f"{tmp_path / 'nowhere'}: no such folder, and not a Hub dataset id"):
        open_pair_stream(tmp_path / "nowhere")
    with pytest.raises(PairDataError, match="nowhere/at/all: no such folder"):
        open_pair_stream("nowhere/at/all")  # not ORG/NAME: never looked up on the Hub
    (tmp_path / "empty").mkdir()
    with pytest.raises(PairDataError, match=f"{tmp_path / 'empty'}: is neither a folder written by save_to_disk"):
        open_pair_stream(tmp_path / "empty")


# ----- map-style sources: an image folder and a save_to_disk folder -----


def _image_folder(root, count: int = 10):
    rng = random.Random(2)
    (root / "images").mkdir(parents=True)
    rows = []
    for index in range(count):
        (root / "images" / f"{index}.jpg").write_bytes(_jpeg(rng))
        rows.append({"file_name": f"images/{index}.jpg", "text": _caption(index)})
    (root / "metadata.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return {f"row {index}": (root / "images" / f"{index}.jpg").read_bytes() for index in range(count)}


def _saved_folder(root, count: int = 10):
    import datasets

    rng = random.Random(3)
    images = [_jpeg(rng) for _ in range(count)]
    features = datasets.Features({"picture": datasets.Image(), "description": datasets.Value("string")})
    table = datasets.Dataset.from_dict(
        {
            "picture": [{"bytes": image, "path": None} for image in images],
            "description": [_caption(index) for index in range(count)],
        },
        features=features,
    )
    datasets.DatasetDict({"train": table}).save_to_disk(str(root))
    return {f"row {index}": image for index, image in enumerate(images)}


@pytest.mark.parametrize("kind", ["imagefolder", "save_to_disk"])
@pytest.mark.compat
def test_map_style_sources_read_every_row_once_per_epoch_and_resume_exactly(tmp_path, datasets_cache, no_network, kind):
    folder = tmp_path / kind
    images = _image_folder(folder) if kind == "imagefolder" else _saved_folder(folder)
    columns = {} if kind == "imagefolder" else {"image_column": "picture", "caption_column": "description"}
    stream = open_pair_stream(folder, **columns)
    assert stream.num_shards == 10 and stream.shards == ()
    pairs = _take(iter(stream), 30)
    for epoch in range(3):
        part = pairs[epoch * 10 : (epoch + 1) * 10]
        assert sorted(pair["key"] for pair in part) == sorted(images) and {pair["epoch"] for pair in part} == {epoch}
    assert all(pair["image"] == images[pair["key"]] for pair in pairs)
    assert all(pair["caption"] == _caption(int(pair["key"].split()[1])) for pair in pairs)
    assert [pair["key"] for pair in pairs[:10]] != [pair["key"] for pair in pairs[10:20]]  # rows re-permuted

    ranks = [open_pair_stream(folder, rank=rank, world_size=2, seed=1, **columns) for rank in (0, 1)]
    halves = [{pair["key"] for pair in _take(iter(stream), 5)} for stream in ranks]
    assert not halves[0] & halves[1] and halves[0] | halves[1] == set(images)

    original = open_pair_stream(folder, rank=1, world_size=2, seed=1, **columns)
    iterator = iter(original)
    _take(iterator, 3)
    state = json.loads(json.dumps(original.state_dict()))
    assert state["route"] == "rows" and state["position"] == {"row": 3}
    expected = _take(iterator, 12)
    resumed = open_pair_stream(folder, rank=1, world_size=2, seed=1, **columns)
    resumed.load_state_dict(state)
    assert [(p["key"], p["image"], p["epoch"]) for p in _take(iter(resumed), 12)] == [
        (p["key"], p["image"], p["epoch"]) for p in expected
    ]
    with pytest.raises(PairDataError, match="has 10 rows for 11 processes"):
        open_pair_stream(folder, rank=0, world_size=11, **columns)
    if kind == "save_to_disk":
        with pytest.raises(
            PairDataError,
            match="no image column: looked for 'jpg' or .*the columns are picture, "
            "description \\(name yours with image_column=\\)",
        ):
            open_pair_stream(folder)


def test_image_paths_of_a_saved_dataset_are_read_relative_to_it_and_a_missing_file_names_the_row(tmp_path):
    import datasets

    rng = random.Random(7)
    folder = tmp_path / "saved"
    (folder / "imgs").mkdir(parents=True)
    for index in range(2):
        (folder / "imgs" / f"{index}.jpg").write_bytes(_jpeg(rng))
    paths = ["imgs/0.jpg", "imgs/1.jpg", "imgs/missing.jpg"]
    datasets.Dataset.from_dict({"image": paths, "caption": ["A man.", "A woman.", "A child."]}).save_to_disk(folder)
    with pytest.raises(PairDataError, match=r"saved: sample 'row 2': image file '.*imgs/missing.jpg' cannot be read"):
        _take(iter(open_pair_stream(folder)), 3)
    skipping = open_pair_stream(folder, on_invalid="skip")
    pairs = _take(iter(skipping), 4)  # epochs 0 and 1
    assert sorted({pair["key"] for pair in pairs}) == ["row 0", "row 1"] and skipping.epoch == 1
    rows_read_in_epoch_1 = skipping.state_dict()["position"]["row"]  # 2, or 3 when row 2 came before the second
    assert skipping.skipped == 1 + rows_read_in_epoch_1 - 2  # once in epoch 0, and in epoch 1 if it was read
    assert {pair["image"] for pair in pairs if pair["key"] == "row 1"} == {(folder / "imgs" / "1.jpg").read_bytes()}


def test_image_paths_leading_outside_a_map_style_source_are_never_read(tmp_path, datasets_cache, no_network):
    """A `save_to_disk` folder naming `../secret.jpg`, an absolute path or a symbolic link out of it, and an image
    folder holding such a link (datasets' image folder itself refuses `..` and absolute rows): an error naming the
    row, or skipped and counted; the secret's bytes are never yielded."""
    import datasets

    rng = random.Random(10)
    secret = tmp_path / "secret.jpg"
    secret.write_bytes(_jpeg(rng))
    folder = tmp_path / "saved"
    (folder / "imgs").mkdir(parents=True)
    (folder / "imgs" / "0.jpg").write_bytes(_jpeg(rng))
    (folder / "imgs" / "link.jpg").symlink_to(secret)
    paths = ["imgs/0.jpg", "../secret.jpg", str(secret), "imgs/link.jpg"]
    datasets.Dataset.from_dict({"image": paths, "caption": ["A man."] * 4}).save_to_disk(folder)
    stream = open_pair_stream(folder, on_invalid="skip")
    pairs = _take(iter(stream), 3)  # row 0 of epochs 0, 1 and 2
    assert [pair["key"] for pair in pairs] == ["row 0"] * 3
    assert {pair["image"] for pair in pairs} == {(folder / "imgs" / "0.jpg").read_bytes()}
    assert stream.skipped == 6 + stream.state_dict()["position"]["row"] - 1  # and those read before row 0 in epoch 2
    refused = set()
    for seed in range(20):  # each escaping row comes first in some epoch order: the first one read is refused
        with pytest.raises(PairDataError) as raised:
            _take(iter(open_pair_stream(folder, seed=seed)), 4)
        refused.add(str(raised.value))
    assert refused == {
        f"{folder}: sample 'row 1': the image path: '../secret.jpg' leads outside {str(folder)!r}; paths in data "
        "must stay inside its folder",
        f"{folder}: sample 'row 2': the image path: {str(secret)!r} leads outside {str(folder)!r}; paths in data "
        "must stay inside its folder",
        f"{folder}: sample 'row 3': the image path: 'imgs/link.jpg' leads through a symbolic link outside "
        f"{str(folder)!r}; paths in data must stay inside its folder",
    }

    images = tmp_path / "imagefolder"
    (images / "imgs").mkdir(parents=True)
    (images / "imgs" / "0.jpg").write_bytes(_jpeg(rng))
    (images / "imgs" / "link.jpg").symlink_to(secret)
    rows = [{"file_name": "imgs/0.jpg", "text": "A man."}, {"file_name": "imgs/link.jpg", "text": "Not yours."}]
    (images / "metadata.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    skipping = open_pair_stream(images, on_invalid="skip")
    assert {pair["image"] for pair in _take(iter(skipping), 4)} == {(images / "imgs" / "0.jpg").read_bytes()}
    assert skipping.skipped == 3 + skipping.state_dict()["position"]["row"] - 1
    (images / "metadata.jsonl").write_text(json.dumps({"file_name": "../secret.jpg", "text": "Up."}) + "\n")
    with pytest.raises(PairDataError, match=r"Invalid metadata file_name '\.\./secret\.jpg'"):
        open_pair_stream(images)


def test_a_saved_folder_is_read_without_its_empty_splits_and_a_lone_dataset_whatever_split_it_names(
    tmp_path, no_network
):
    """`save_to_disk` folders are read by `hf_datasets.read_saved_dataset`, as `load_data` reads them: an empty split
    (which `datasets.load_from_disk` cannot read back) is no split, and a lone `Dataset` is read for any `split`."""
    import datasets

    rng = random.Random(8)
    table = datasets.Dataset.from_dict(
        {"image": [{"bytes": _jpeg(rng), "path": None} for _ in range(3)], "caption": [_caption(i) for i in range(3)]},
        features=datasets.Features({"image": datasets.Image(), "caption": datasets.Value("string")}),
        split=datasets.Split.TEST,
    )
    datasets.DatasetDict({"train": table.select([]), "test": table}).save_to_disk(str(tmp_path / "test-only"))
    with pytest.raises(PairDataError, match="test-only: has no split 'train'; its splits are test$"):
        open_pair_stream(tmp_path / "test-only")
    assert open_pair_stream(tmp_path / "test-only", split="test").num_shards == 3
    table.save_to_disk(str(tmp_path / "lone"))
    stream = open_pair_stream(tmp_path / "lone")  # split "train": ignored for a lone Dataset, which names "test"
    assert sorted(pair["key"] for pair in _take(iter(stream), 3)) == ["row 0", "row 1", "row 2"]


# ----- parquet shards -----


@pytest.mark.compat
def test_a_folder_of_parquet_files_streams_every_row_once_and_resumes_inside_a_file(tmp_path, no_network):
    import datasets

    rng = random.Random(4)
    (tmp_path / "pq").mkdir()
    images = {}
    for part in range(3):
        rows = [(_jpeg(rng), _caption(part * 5 + index)) for index in range(5)]
        table = datasets.Dataset.from_dict(
            {"image": [{"bytes": image, "path": None} for image, _ in rows], "caption": [text for _, text in rows]},
            features=datasets.Features({"image": datasets.Image(), "caption": datasets.Value("string")}),
        )
        table.to_parquet(str(tmp_path / "pq" / f"part-{part}.parquet"))
        images |= {f"part-{part}.parquet/row {index}": image for index, (image, _) in enumerate(rows)}
    stream = open_pair_stream(tmp_path / "pq", seed=2)
    pairs = _take(iter(stream), 15)
    assert sorted(pair["key"] for pair in pairs) == sorted(images)
    assert all(pair["image"] == images[pair["key"]] for pair in pairs)

    original = open_pair_stream(tmp_path / "pq", seed=2)
    iterator = iter(original)
    _take(iterator, 7)
    state = json.loads(json.dumps(original.state_dict()))
    expected = _take(iterator, 12)
    resumed = open_pair_stream(tmp_path / "pq", seed=2)
    resumed.load_state_dict(state)
    assert [(p["key"], p["image"]) for p in _take(iter(resumed), 12)] == [(p["key"], p["image"]) for p in expected]


# ----- a Hub dataset, through the local Hub-protocol server -----

HUB_SCRIPT = r"""
import json, sys
from itertools import islice
from ivt_hf.data import PairDataError, open_pair_stream

single = open_pair_stream("people-org/pairs", seed=1)
epoch_keys = [pair["key"] for pair in islice(iter(single), 12)]
ranks = [open_pair_stream("people-org/pairs", rank=rank, world_size=2, seed=1) for rank in (0, 1)]
rank_keys = [[pair["key"] for pair in islice(iter(stream), 6)] for stream in ranks]
original = open_pair_stream("people-org/pairs", seed=1)
iterator = iter(original)
list(islice(iterator, 5))
state = json.loads(json.dumps(original.state_dict()))
expected = [pair["key"] for pair in islice(iterator, 10)]
resumed = open_pair_stream("people-org/pairs", seed=1)
resumed.load_state_dict(state)
got = [pair["key"] for pair in islice(iter(resumed), 10)]
parquet = open_pair_stream("people-org/pairs-parquet", split="train")
parquet_keys = [pair["key"] for pair in islice(iter(parquet), 6)]
try:
    open_pair_stream("people-org/no-such")
    missing = None
except PairDataError as error:
    missing = str(error)
print(json.dumps({"shards": list(single.shards), "epoch_keys": epoch_keys, "rank_keys": rank_keys,
                  "expected": expected, "got": got, "parquet_keys": parquet_keys, "missing": missing}))
"""


@pytest.mark.compat
def test_a_hub_dataset_of_tar_shards_is_streamed_through_the_hub_protocol(tmp_path):
    """`open_pair_stream("ORG/NAME")` resolves the repo's data files with `datasets.load_dataset_builder` and streams
    each tar shard from the package's local Hub server (the real clients, in a subprocess with `HF_ENDPOINT` pointing at
    it; LFS files are served through the storage redirect, as on the Hub); a repo of parquet files too. Not covered:
    auth, Xet storage, and Range requests (the local server answers every read with the whole file, which is what a
    client reading these small files asks for; large parquet files would be read in ranges)."""
    import subprocess
    import sys

    import datasets
    from helpers.hub_access import TOKEN, hub_env
    from helpers.hub_access import load_local_hub as _load_local_hub

    pairs = _pairs(12, seed=5)
    paths = write_webdataset_shards(pairs, tmp_path / "shards", 3)  # 4 shards
    files = {f"data/{path.name}": path.read_bytes() for path in paths}
    parquet_files = {}
    for part in range(2):
        rows = pairs[part * 3 : part * 3 + 3]
        buffer = io.BytesIO()
        datasets.Dataset.from_dict(
            {"image": [{"bytes": image, "path": None} for _, image, _ in rows], "text": [text for *_, text in rows]},
            features=datasets.Features({"image": datasets.Image(), "text": datasets.Value("string")}),
        ).to_parquet(buffer)
        parquet_files[f"data/train-{part:05d}-of-00002.parquet"] = buffer.getvalue()
    with _load_local_hub().LocalHub(token=TOKEN) as hub:
        hub.seed_repo("people-org/pairs", files, repo_type="dataset")
        hub.seed_repo("people-org/pairs-parquet", parquet_files, repo_type="dataset")
        env = hub_env(hub, tmp_path)
        completed = subprocess.run(
            [sys.executable, "-c", HUB_SCRIPT], capture_output=True, text=True, timeout=300, env=env
        )
        # the user's path: `ivt pretrain` on the Hub id
        pretrained = subprocess.run(
            [
                sys.executable,
                *f"-m ivt_hf pretrain --dataset_name people-org/pairs --output_dir {tmp_path / 'pretrain'}".split(),
                *"--model_preset tiny --max_steps 2 --per_device_train_batch_size 4 --shuffle_buffer_size 4".split(),
                *"--dataloader_num_workers 1".split(),
            ],
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
        )
        assert hub.unhandled == [], hub.unhandled
        assert any(path.endswith("/data/pairs-00003.tar") for _, _, path, _ in hub.requests)
    assert completed.returncode == 0, completed.stderr[-4000:]
    assert pretrained.returncode == 0, pretrained.stderr[-4000:]
    assert json.loads((tmp_path / "pretrain" / "pretrain_results.json").read_text())["pairs_seen"] == 8
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    everything = sorted(f"data/pairs-{index // 3:05d}.tar/{key}" for index, (key, _, _) in enumerate(pairs))
    assert result["shards"] == [f"data/pairs-{index:05d}.tar" for index in range(4)]
    assert sorted(result["epoch_keys"]) == everything
    assert not set(result["rank_keys"][0]) & set(result["rank_keys"][1])
    assert sorted(result["rank_keys"][0] + result["rank_keys"][1]) == everything
    assert result["got"] == result["expected"] and len(result["got"]) == 10
    assert sorted(result["parquet_keys"]) == [
        f"data/train-{part:05d}-of-00002.parquet/row {row}" for part in range(2) for row in range(3)
    ]
    assert result["missing"].startswith("people-org/no-such: cannot be read from the Hub: ")

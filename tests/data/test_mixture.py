"""`ivt_hf.data.mixture`: several pair sources in one stream by weight (`ivt pretrain --train_data A B --mix_weights
0.7 0.3`), deterministic and exactly resumable in one process (two real processes: tests/training/
test_mixture_pretraining.py)."""

from __future__ import annotations

import json
from collections import Counter
from itertools import islice
from pathlib import Path

import pytest
from helpers.corpus_fixtures import jpeg_bytes, make_mals

from ivt_hf.data import PairDataError, write_webdataset_shards
from ivt_hf.data.mixture import PairMixture, mix_weights, open_pretraining_pairs
from ivt_hf.errors import IVTInputError
from ivt_hf.training.pretraining import parse_pretraining_args


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("mixture")
    pairs = [(f"{n:03d}", jpeg_bytes(n), f"A person in coat {n}.") for n in range(30)]
    write_webdataset_shards(pairs, root / "shards", pairs_per_shard=5)
    return [root / "shards", make_mals(root / "mals")]


def test_weights_are_checked_and_normalised():
    assert mix_weights(["a", "b"], [0.7, 0.3]) == [0.7, 0.3]
    assert mix_weights(["a", "b", "c"], None) == [1 / 3] * 3
    assert mix_weights(["a", "b"], [3, 1]) == [0.75, 0.25]
    with pytest.raises(IVTInputError, match=r"^--mix_weights gives 1 weight\(s\) for 2 source\(s\); give one per"):
        mix_weights(["a", "b"], [1.0])
    for bad in (0, -1.0, float("nan"), float("inf"), True):
        with pytest.raises(IVTInputError, match=f"^--mix_weights must be positive numbers, got {bad!r}$"):
            mix_weights(["a", "b"], [1.0, bad])


def test_each_source_gives_its_weights_share_of_the_pairs_in_a_seeded_order(sources):
    mixture = open_pretraining_pairs(sources, [0.7, 0.3], seed=1)
    assert isinstance(mixture, PairMixture)
    keys = [pair["key"] for pair in islice(iter(mixture), 1000)]
    shares = Counter(key.split(":", 1)[0] for key in keys)
    assert 650 <= shares["0"] <= 750 and shares["0"] + shares["1"] == 1000
    again = open_pretraining_pairs(sources, [0.7, 0.3], seed=1)
    assert [pair["key"] for pair in islice(iter(again), 1000)] == keys  # the same seed, the same order
    other = open_pretraining_pairs(sources, [0.7, 0.3], seed=2)
    assert [pair["key"] for pair in islice(iter(other), 50)] != keys[:50]
    # each source runs through its own epochs: MALS's two pairs many times, the shards' 30 fewer
    mals = [key for key in keys if key.startswith("1:")]
    assert set(mals) == {"1:gene_crop/c_g_a_0/000000.jpg#1", "1:gene_crop/i_g_a_0/000000.jpg#1"}
    assert mixture.streams[1].epoch > mixture.streams[0].epoch > 0 and mixture.epoch == mixture.streams[0].epoch
    assert mixture.skipped == 0


@pytest.mark.parametrize("taken", [0, 1, 7, 64])
def test_a_mixture_resumes_with_exactly_the_next_pairs(sources, taken):
    mixture = open_pretraining_pairs(sources, [0.6, 0.4], seed=0)
    pairs = iter(mixture)
    list(islice(pairs, taken))
    state = json.loads(json.dumps(mixture.state_dict()))
    assert state["draws"] == taken and state["sources"] == [str(source) for source in sources]
    following = [(pair["key"], pair["epoch"], pair.get("attributes")) for pair in islice(pairs, 40)]
    resumed = open_pretraining_pairs(sources, [0.6, 0.4], seed=0)
    resumed.load_state_dict(state)
    assert [(pair["key"], pair["epoch"], pair.get("attributes")) for pair in islice(iter(resumed), 40)] == following


def test_a_state_of_other_sources_or_weights_is_refused_naming_what_differs(sources):
    mixture = open_pretraining_pairs(sources, [0.6, 0.4])
    list(islice(iter(mixture), 3))
    state = mixture.state_dict()
    other = open_pretraining_pairs(sources, [0.5, 0.5])
    with pytest.raises(PairDataError, match=r"weights \[0\.6, 0\.4\] there, \[0\.5, 0\.5\] here"):
        other.load_state_dict(state)
    single = open_pretraining_pairs(sources[0])
    with pytest.raises(PairDataError, match="is not a pair stream's state"):
        single.load_state_dict(state)
    with pytest.raises(PairDataError, match="is not a mixture's state"):
        mixture.load_state_dict(single.state_dict())


def test_ivt_pretrain_takes_several_sources_and_their_weights(tmp_path):
    common = f"--output_dir {tmp_path} --max_steps 1 --use_cpu true".split()
    _, data_args, _ = parse_pretraining_args(["--train_data", "a", "b", "--mix_weights", "0.7", "0.3", *common])
    assert (data_args.dataset_name, data_args.mix_weights, data_args.name) == (["a", "b"], [0.7, 0.3], "a + b")
    _, data_args, _ = parse_pretraining_args(["--dataset_name", "a", *common])
    assert (data_args.dataset_name, data_args.mix_weights) == (["a"], None)
    with pytest.raises(IVTInputError, match=r"--mix_weights gives 1 weight\(s\) for 2 source\(s\)"):
        parse_pretraining_args(["--dataset_name", "a", "b", "--mix_weights", "1", *common])
    with pytest.raises(IVTInputError, match="^--data_dir does not apply to ivt pretrain"):
        parse_pretraining_args(["--dataset_name", "a", "--data_dir", "x", *common])

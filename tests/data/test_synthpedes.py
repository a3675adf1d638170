"""SynthPEDES: determinism, the raw layouts read by the real loader, hard siblings, captions, floor and ceiling."""

from __future__ import annotations

import json
from collections import Counter

import pytest
import torch
from PIL import Image

from ivt_hf.data import BENCHMARKS, caption_view, load_benchmark
from ivt_hf.data import synthpedes as synth
from ivt_hf.data.synthpedes.captions import _COLOR_WORDS

FIXTURE_IDS = {"train": 8, "validation": 2, "test": 2}
FIXTURE_SIZE = (128, 64)


def run_cli(argv: list[str]) -> int:
    from ivt_hf.cli import main

    return main(argv)


@pytest.fixture(scope="module")
def fixture_folder(tmp_path_factory):
    """The 12-identity unit-test fixture (its generation time is `benchmarks/bench_data.py`'s to measure: a test
    must not depend on an idle machine)."""
    folder = tmp_path_factory.mktemp("synth") / "cuhk"
    synth_plan = synth.generate(folder, split_ids=FIXTURE_IDS, image_size=FIXTURE_SIZE, seed=7, progress=False)
    return folder, synth_plan


def test_fixture_has_twelve_people_with_two_to_four_images_each(fixture_folder):
    _, synth_plan = fixture_folder
    assert len(synth_plan.identities) == 12 and 24 <= len(synth_plan.images) <= 48


def test_same_seed_gives_byte_identical_files(tmp_path, fixture_folder):
    folder, _ = fixture_folder
    again = tmp_path / "again"
    synth.generate(again, split_ids=FIXTURE_IDS, image_size=FIXTURE_SIZE, seed=7, progress=False)
    for name in ("reid_raw.json", synth.META_FILE):
        assert (again / name).read_bytes() == (folder / name).read_bytes()
    images = sorted(path.relative_to(folder) for path in (folder / "imgs").rglob("*.jpg"))
    assert images == sorted(path.relative_to(again) for path in (again / "imgs").rglob("*.jpg"))
    assert all((again / path).read_bytes() == (folder / path).read_bytes() for path in images)

    other = tmp_path / "other"
    synth.generate(other, split_ids=FIXTURE_IDS, image_size=FIXTURE_SIZE, seed=8, progress=False)
    assert (other / "reid_raw.json").read_bytes() != (folder / "reid_raw.json").read_bytes()


@pytest.mark.parametrize("layout", ["cuhk-pedes", "icfg-pedes", "rstpreid"])
def test_each_layout_is_read_by_the_real_loader(tmp_path, layout):
    spec = BENCHMARKS[layout]
    split_ids = {split: FIXTURE_IDS[split] for split in spec.splits}
    synth_plan = synth.generate(tmp_path, split_ids=split_ids, image_size=(96, 48), seed=1, layout=layout)

    records = json.loads((tmp_path / spec.annotation_files[0]).read_text())
    assert min(record["id"] for record in records) == spec.id_base  # CUHK-PEDES 1-based, the others 0-based
    assert {record["split"] for record in records} == set(spec.split_names)
    assert all(spec.path_field in record for record in records)
    assert tuple(records[0]) == spec.record_fields  # the real file's fields, in its order
    assert {len(record["captions"]) for record in records} == {spec.captions_per_record or 2}
    if spec.synth_subfolders:
        assert {record["file_path"].split("/")[0] for record in records} <= set(spec.synth_subfolders)

    dataset = load_benchmark("synthpedes", tmp_path)
    assert list(dataset) == list(spec.splits)
    for split, ids in split_ids.items():
        split_dataset = dataset[split]
        assert set(split_dataset["source"]) == {"synthpedes"} and set(split_dataset["split"]) == {split}
        assert sorted(set(split_dataset["person_id"])) == list(range(ids))
        assert len(split_dataset) == sum(image.identity.split == split for image in synth_plan.images)
    image = dataset["train"][0]["image"]
    assert image.size == (48, 96) and image.mode == "RGB"


def test_families_never_straddle_splits_and_siblings_are_hard():
    synth_plan = synth.plan(synth.make_config(split_ids={"train": 300, "validation": 50, "test": 100}, seed=3))
    families: dict[int, set[str]] = {}
    for identity in synth_plan.identities:
        families.setdefault(identity.family, set()).add(identity.split)
    assert all(len(splits) == 1 for splits in families.values())
    assert Counter(identity.split for identity in synth_plan.identities) == {
        "train": 300,
        "validation": 50,
        "test": 100,
    }

    described = [tuple(identity.attributes[key] for key in synth.ATTRIBUTE_KEYS) for identity in synth_plan.identities]
    assert len(set(described)) == len(described)  # every described tuple is unique
    bases = {identity.family: identity.attributes for identity in synth_plan.identities if identity.kind == "base"}
    kinds = Counter(identity.kind for identity in synth_plan.identities)
    assert kinds["colour_swap"] > 20 and kinds["one_attribute"] > 40 and kinds["base"] > 100
    for identity in synth_plan.identities:
        base = bases[identity.family]
        changed = [key for key in synth.ATTRIBUTE_KEYS if identity.attributes[key] != base[key]]
        if identity.kind == "colour_swap":  # two garments swapped colours: same words, different binding
            assert len(changed) == 2 and all(key in synth.COLOR_KEYS for key in changed)
            assert Counter(identity.attributes[k] for k in changed) == Counter(base[k] for k in changed)
        elif identity.kind == "one_attribute":  # one attribute, plus what appears or disappears with it
            assert 1 <= len(changed) <= 3
            assert len([key for key in changed if identity.attributes[key] is not None and base[key] is not None]) <= 1


def test_captions_mention_what_they_say():
    synth_plan = synth.plan(synth.make_config(num_ids=200, seed=5))
    captions = [
        (image, text, keys) for image in synth_plan.images for text, keys in zip(image.captions, image.mentions)
    ]
    assert len({text for _, text, _ in captions}) > 0.95 * len(captions)  # the grammar varies
    for image, text, keys in captions:
        attributes = image.identity.attributes
        lowered = text.lower()
        assert "gender" in keys and text[0].isupper() and text.endswith(".")
        for key in keys:
            if key.endswith("_color") and key != "hair_color":
                words = _COLOR_WORDS.get(attributes[key], (attributes[key],))
                assert any(word in lowered for word in words), (key, attributes[key], text)
        if image.nuisance.view == "back":
            assert "glasses" not in keys and "glasses" not in lowered  # hidden from behind
        if "glasses" not in keys:
            assert "glasses" not in lowered
    mentioned = Counter(key for _, _, keys in captions for key in keys)
    assert mentioned["upper_color"] == len(captions) and 0 < mentioned["shoes_type"] < len(captions)


def test_meta_records_attributes_and_mentions(fixture_folder):
    folder, synth_plan = fixture_folder
    meta = synth.read_meta(folder)
    assert meta["attribute_keys"] == list(synth.ATTRIBUTE_KEYS)
    assert synth.SynthConfig.from_json(meta["config"]) == synth_plan.config
    records = json.loads((folder / "reid_raw.json").read_text())
    for record in records:
        entry = meta["images"]["imgs/" + record["file_path"]]
        assert entry["person_id"] == record["id"]
        assert [caption["text"] for caption in entry["captions"]] == record["captions"]
        attributes = meta["identities"][str(record["id"])]["attributes"]
        assert all(key in attributes for caption in entry["captions"] for key in caption["mentions"])


def test_render_is_deterministic_and_sized(fixture_folder):
    _, synth_plan = fixture_folder
    image = synth_plan.images[0]
    first = synth.render_image(image.identity, image.nuisance, (384, 128))
    second = synth.render_image(image.identity, image.nuisance, (384, 128))
    assert first.size == (128, 384) and first.mode == "RGB" and first.tobytes() == second.tobytes()


def test_cache_generates_once_and_reuses(tmp_path, monkeypatch, caplog):
    kwargs = {"split_ids": FIXTURE_IDS, "image_size": (64, 32), "seed": 2}
    with caplog.at_level("WARNING", logger="ivt_hf.data.synthpedes.storage"):
        first = load_benchmark("synthpedes", tmp_path, **kwargs)
    folders = [path.name for path in tmp_path.iterdir() if path.is_dir()]  # (beside it: its hidden lock file)
    assert len(folders) == 1 and "ids8-2-2_64x32" in folders[0] and "seed2" in folders[0]
    assert f"generated SynthPEDES ({folders[0]}) in {tmp_path / folders[0]}" in caplog.text  # never silently

    def no_rendering(*args, **kwargs):
        raise AssertionError("a matching cache must be reused")

    monkeypatch.setattr("ivt_hf.data.synthpedes.storage.write_plan", no_rendering)  # where ensure_generated looks
    second = load_benchmark("synthpedes", tmp_path, **kwargs)
    assert second["test"]["captions"] == first["test"]["captions"]
    with pytest.raises(AssertionError, match="must be reused"):  # another seed is another folder
        load_benchmark("synthpedes", tmp_path, **{**kwargs, "seed": 3})
    (tmp_path / "reid_raw.json").write_text("[]")  # a folder holding anything else is no place to generate into
    with pytest.raises(FileExistsError, match=r"is not a SynthPEDES folder \(it holds reid_raw.json\)"):
        load_benchmark("synthpedes", tmp_path, **{**kwargs, "seed": 4})


def test_sizes_from_num_ids_and_fractions():
    assert synth.make_config().split_ids == {"train": 1000, "validation": 100, "test": 200}  # the demo
    assert synth.make_config(layout="icfg-pedes").split_ids == {"train": 1100, "test": 200}  # no validation
    assert synth.make_config(num_ids=12).split_ids == {"train": 9, "validation": 1, "test": 2}
    with pytest.raises(ValueError, match="either split_ids or num_ids"):
        synth.make_config(num_ids=5, split_ids={"train": 5})
    with pytest.raises(ValueError, match="has splits"):
        synth.make_config(split_ids={"train": 5, "validation": 1}, layout="icfg-pedes")
    with pytest.raises(ValueError, match="image_size"):
        synth.make_config(image_size=(8, 8))


def test_synth_command(tmp_path, capsys):
    output = tmp_path / "rstp"
    argv = ["data", "synth", "--num_ids", "12", "--image_size", "64", "32", "--seed", "3", "--layout", "rstpreid"]
    assert run_cli([*argv, "--output", str(output)]) == 0
    assert "12 identities" in capsys.readouterr().out
    assert (output / "data_captions.json").is_file() and (output / synth.META_FILE).is_file()
    with Image.open(next((output / "imgs").glob("*.jpg"))) as image:
        assert image.size == (32, 64)
    assert run_cli([*argv[:-1], "icfg-pedes", "--output", str(output)]) == 2  # not silently replaced
    assert "not empty" in capsys.readouterr().err
    assert run_cli([*argv[:-1], "icfg-pedes", "--output", str(output), "--overwrite"]) == 0
    assert (output / "ICFG-PEDES.json").is_file() and not (output / "data_captions.json").exists()


# ------------------------------------------------------------------------------------------------------------------
# floor and ceiling
# ------------------------------------------------------------------------------------------------------------------


def recall_at_1(similarity: torch.Tensor, query_pids: torch.Tensor, gallery_pids: torch.Tensor) -> float:
    """Brute-force R@1 in percent (the package metric lives in ivt_hf.evaluation.metrics)."""
    return 100.0 * (gallery_pids[similarity.argmax(dim=1)] == query_pids).float().mean().item()


def planned_test_split(num_test_ids: int, seed: int) -> dict:
    """Baseline inputs of a planned (not rendered) test split: the oracle needs attributes, not pixels."""
    synth_plan = synth.plan(synth.make_config(split_ids={"train": 1, "validation": 1, "test": num_test_ids}, seed=seed))
    inputs = synth.planned_baseline_inputs([image for image in synth_plan.images if image.identity.split == "test"])
    return {
        **inputs,
        "query_pids": torch.tensor(inputs["query_pids"]),
        "gallery_pids": torch.tensor(inputs["gallery_pids"]),
    }


def test_random_is_at_chance_and_oracle_near_its_ceiling():
    num_test_ids = 200
    inputs = planned_test_split(num_test_ids, seed=0)
    num_queries, num_gallery = len(inputs["query_pids"]), len(inputs["gallery_pids"])
    query_pids, gallery_pids = inputs["query_pids"], inputs["gallery_pids"]

    random_r1 = [
        recall_at_1(synth.random_similarity(num_queries, num_gallery, seed=seed), query_pids, gallery_pids)
        for seed in range(5)
    ]
    # chance: the share of the gallery a query's identity owns, about 1/200 (a little more: ids with more images
    # also have more queries)
    chance = 100.0 * (gallery_pids[None, :] == query_pids[:, None]).float().mean().item()
    assert abs(chance - 100.0 / num_test_ids) < 0.1
    assert abs(sum(random_r1) / len(random_r1) - chance) < 0.3, (random_r1, chance)

    oracle = synth.oracle_similarity(inputs["query_attributes"], inputs["gallery_attributes"], seed=0)
    oracle_r1 = recall_at_1(oracle, query_pids, gallery_pids)
    # Captions that omit the one attribute telling siblings apart keep the ceiling below 100 (ties are broken at
    # random). the design's prototype measured 91.6%; this generator gives 88.5% on average over seeds 0-7
    # (84.6 to 91.0) at 200 test ids, and 90.0% for this seed.
    assert 82.0 <= oracle_r1 <= 96.0, oracle_r1


def test_oracle_scores_agreement_on_mentioned_attributes_only():
    red = {key: None for key in synth.ATTRIBUTE_KEYS} | {"upper_color": "red", "lower_color": "blue"}
    swapped = red | {"upper_color": "blue", "lower_color": "red"}
    scores = synth.oracle_similarity([{"upper_color": "red", "lower_color": "blue"}, {}], [red, swapped, red])
    assert scores.shape == (2, 3)
    assert 2.0 <= scores[0, 0] < 2.5 and 0.0 <= scores[0, 1] < 0.5 and 2.0 <= scores[0, 2] < 2.5
    assert (scores[1] < 0.5).all()  # nothing mentioned: pure chance
    assert torch.equal(synth.random_similarity(3, 4, seed=1), synth.random_similarity(3, 4, seed=1))


def test_baselines_rebuild_attributes_from_a_loaded_dataset(fixture_folder):
    folder, synth_plan = fixture_folder
    dataset = load_benchmark("synthpedes", folder)
    test = dataset["test"].select(list(range(len(dataset["test"])))[::-1])  # any row order
    inputs = synth.baseline_inputs(test)
    queries = caption_view(test)
    planned = {f"imgs/{image.raw_path}": image for image in synth_plan.images}
    rows = test.select_columns(["image_path", "original_person_id"]).to_list()
    assert inputs["gallery_pids"] == [row["original_person_id"] for row in rows]
    assert inputs["gallery_attributes"] == [planned[row["image_path"]].identity.attributes for row in rows]
    assert len(inputs["query_attributes"]) == len(queries)
    for query, query_attributes in zip(queries, inputs["query_attributes"]):  # aligned with caption_view
        image = planned[rows[query["image_index"]]["image_path"]]
        position = image.captions.index(query["caption"])
        assert query_attributes == {key: image.identity.attributes[key] for key in image.mentions[position]}

    from ivt_hf.evaluation.floor_and_ceiling import synthpedes_baselines

    results = synthpedes_baselines(folder)
    assert set(results) == {"random", "oracle"}
    assert set(results["oracle"]) >= {"R1", "R5", "R10", "mAP", "mINP"}
    assert results["oracle"]["R1"] >= results["random"]["R1"]
    assert synthpedes_baselines(dataset) == results  # a loaded DatasetDict or its folder: the same numbers


def test_baselines_refuse_other_data():
    import datasets

    plain = datasets.Dataset.from_dict({"image_path": ["imgs/a.jpg"], "person_id": [0], "captions": [["A man."]]})
    with pytest.raises(ValueError, match="need a SynthPEDES dataset"):
        synth.baseline_inputs(plain)

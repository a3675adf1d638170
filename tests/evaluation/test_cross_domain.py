"""The cross-domain table of `ivt evaluate --model M... --dataset_name A B C --data_dir a b c` (issue 31): its shape,
its cells equal to single evaluations run one at a time, the zero-shot row of a pre-training folder, the model card's
`model-index` rows written from the records, and the errors."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from helpers.commands import error_lines, run_cli, save_tiny_model_folder
from PIL import Image

from ivt_hf import IVTConfig, IVTForPreTraining, IVTProcessor
from ivt_hf.data.specs import BENCHMARK_NAMES, get_spec
from ivt_hf.evaluation.record import EvaluationRecord
from ivt_hf.hub import save_model_folder
from ivt_hf.hub.facts import model_card_for_folder, read_folder_facts

HELD = ("cuhk-pedes", "icfg-pedes", "rstpreid")
PEOPLE = {"train": 2, "validation": 1, "test": 6}  # two images each
# one block at patch stride 16, and weights drawn wide enough that captions rank images differently (at the preset's
# 0.02 every caption of a micro model ranks the gallery alike, and different models give the same numbers)
SPREAD = "--patch_stride 16 --num_hidden_layers 1 --initializer_range 0.5"
COLOURS = ("red", "blue", "green", "black", "white", "yellow", "grey", "brown")


def write_copy(root: Path, name: str) -> Path:
    """A tiny raw copy of benchmark `name` as its spec lays it out (annotation file, field names, id base, split
    names, image folder, captions per record): each person two images, each image its captions."""
    spec = get_spec(name)
    records, person = [], spec.id_base
    for split in spec.splits:
        for _ in range(PEOPLE[split]):
            for image in range(2):
                path = f"{split}/{person:04d}_{image}.png"
                target = root / spec.image_dir / path
                target.parent.mkdir(parents=True, exist_ok=True)
                pixels = np.random.default_rng([len(name), person, image]).integers(0, 255, (24, 12, 3), np.uint8)
                Image.fromarray(pixels).save(target)
                captions = [
                    f"a person in a {COLOURS[(person + line) % 8]} coat and {COLOURS[(3 * person + image) % 8]} shoes"
                    for line in range(spec.captions_per_record or 2)
                ]
                values = {
                    "split": spec.raw_split_name(split),
                    "captions": captions,
                    spec.path_field: path,
                    "processed_tokens": [caption.split() for caption in captions],
                    spec.id_field: person,
                }
                records.append({field: values[field] for field in spec.record_fields})
            person += 1
    (root / spec.annotation_files[0]).write_text(json.dumps(records))
    return root


@pytest.fixture(scope="module")
def copies(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("copies")
    return {name: write_copy(root / name, name) for name in HELD}


@pytest.fixture(scope="module")
def cuhk_model(copies, tmp_path_factory) -> Path:
    """A micro model trained one step on the CUHK-PEDES copy by `ivt train`, which records what it was trained on."""
    from ivt_hf.cli import main

    output = tmp_path_factory.mktemp("runs") / "cuhk"
    argv = (
        f"train --dataset_name cuhk-pedes --data_dir {copies['cuhk-pedes']} --output_dir {output} "
        f"--model_preset micro {SPREAD} --max_steps 1 --per_device_train_batch_size 4 --images_per_id 2 "
        "--eval_strategy no --use_cpu --report_to none --disable_tqdm true --seed 0"
    ).split()
    assert main(argv) == 0
    return output


@pytest.fixture
def trained(cuhk_model, tmp_path) -> Path:
    """A copy of the trained folder for one test, which writes its records into it."""
    return Path(shutil.copytree(cuhk_model, tmp_path / "cuhk"))


@pytest.fixture(scope="module")
def pretraining_folder(tmp_path_factory) -> Path:
    torch.manual_seed(1)
    config = IVTConfig.from_preset(
        "micro", num_hidden_layers=1, patch_stride=16, initializer_range=0.5, fusion_num_hidden_layers=1
    )
    folder = tmp_path_factory.mktemp("pretrained") / "pretrain"
    return save_model_folder(IVTForPreTraining(config), IVTProcessor.from_config(config), folder)


def _flags(copies: dict[str, Path], names=HELD) -> str:
    return f"--dataset_name {' '.join(names)} --data_dir {' '.join(str(copies[name]) for name in names)}"


def _single(model: Path, name: str, folder: Path, output: Path, capsys, *extra: str) -> dict:
    argv = f"evaluate --model {model} --dataset_name {name} --data_dir {folder} --output {output}".split()
    code, _, err = run_cli([*argv, *extra], capsys)
    assert code == 0, err[-3000:]
    return json.loads(output.read_text())


def test_the_table_holds_the_single_evaluations_and_marks_the_diagonal(copies, trained, tmp_path, capsys):
    """One model, three test sets: one row named by what `ivt train` recorded (CUHK-PEDES), a column per test set,
    the in-domain cell in bold; every cell equals `ivt evaluate` of that pair alone, and each pair's record is in the
    model folder, as a single evaluation writes it."""
    assert json.loads((trained / "training_facts.json").read_text()) == {"dataset": "cuhk-pedes"}
    code, out, err = run_cli(f"evaluate --model {trained} {_flags(copies)}".split(), capsys)
    assert code == 0, err[-3000:]
    table = json.loads((trained / "cross_domain_test.json").read_text())
    assert (table["split"], table["protocol"], table["test_sets"]) == ("test", "standard", list(HELD))
    (row,) = table["rows"]
    assert (row["model"], row["trained_on"], row["zero_shot"], row["label"]) == (
        str(trained),
        "cuhk-pedes",
        False,
        "CUHK-PEDES",
    )
    assert {name: cell["setting"] for name, cell in row["results"].items()} == {
        "cuhk-pedes": "in-domain",
        "icfg-pedes": "cross-domain",
        "rstpreid": "cross-domain",
    }
    assert len({json.dumps(row["results"][name]["metrics"]) for name in HELD}) == 3  # a mixed-up column would show
    for name in HELD:
        single = _single(trained, name, copies[name], tmp_path / f"{name}.json", capsys)
        assert row["results"][name]["metrics"] == single["metrics"]  # exact
        assert row["results"][name]["num_queries"] == single["facts"]["num_queries"]
        record = json.loads((trained / f"eval_{name}_test.json").read_text())
        assert row["results"][name]["record"] == str(trained / f"eval_{name}_test.json")
        assert record["metrics"] == single["metrics"] and record["benchmark"] == name
        assert record["facts"]["trained_on"] == single["facts"]["trained_on"] == "cuhk-pedes"

    r1 = {name: f"{row['results'][name]['metrics']['R1']:.2f}" for name in HELD}
    tables = out[out.index("R@1 (%)") :]
    assert f"| CUHK-PEDES | {trained} | **{r1['cuhk-pedes']}** | {r1['icfg-pedes']} | {r1['rstpreid']} |" in tables
    assert "| trained on | model | CUHK-PEDES | ICFG-PEDES | RSTPReid |\n|---|---|---:|---:|---:|" in tables
    maps = {name: f"{row['results'][name]['metrics']['mAP']:.2f}" for name in HELD}
    assert tables.index("mAP (%)") > tables.index("R@1 (%)")
    assert (
        f"| CUHK-PEDES | {trained} | **{maps['cuhk-pedes']}** | {maps['icfg-pedes']} | {maps['rstpreid']} |"
        in (tables[tables.index("mAP (%)") :])
    )
    assert f"wrote {trained / 'cross_domain_test.json'}" in out


def test_a_pretraining_folder_gives_the_zero_shot_row(copies, trained, pretraining_folder, tmp_path, capsys):
    """Three models, three rows in their order: the fine-tuned one (its diagonal in bold), the pre-training output,
    evaluated through its encoder (the `IVTModel` of its `ivt.*` weights) as a zero-shot row, and a folder that records
    nothing, which says so; no cell of the last two is in bold."""
    from ivt_hf.conversion import encoder_from_pretraining
    from ivt_hf.data import load_benchmark
    from ivt_hf.evaluation import evaluate_split

    untrained = save_tiny_model_folder(tmp_path / "untrained")
    output = tmp_path / "table.json"
    argv = f"evaluate --model {trained} {pretraining_folder} {untrained} {_flags(copies)} --output {output}".split()
    code, out, err = run_cli(argv, capsys)
    assert code == 0, err[-3000:]
    fine_tuned, zero_shot, unrecorded = json.loads(output.read_text())["rows"]
    assert [row["model"] for row in (fine_tuned, zero_shot, unrecorded)] == list(map(str, argv[2:5]))
    assert fine_tuned["label"] == "CUHK-PEDES" and fine_tuned["results"]["cuhk-pedes"]["setting"] == "in-domain"
    assert (zero_shot["label"], zero_shot["zero_shot"], zero_shot["trained_on"]) == (
        "zero-shot (pre-training)",
        True,
        None,
    )
    assert {cell["setting"] for cell in zero_shot["results"].values()} == {"zero-shot"}
    assert (unrecorded["label"], {cell["setting"] for cell in unrecorded["results"].values()}) == (
        "not recorded",
        {None},
    )
    encoder, _ = encoder_from_pretraining(pretraining_folder)
    processor = IVTProcessor.from_pretrained(pretraining_folder)
    for name in HELD:
        test_split = load_benchmark(name, copies[name])["test"]
        expected = evaluate_split(encoder.eval(), processor, test_split, progress=False).metrics
        assert zero_shot["results"][name]["metrics"] == expected
        assert fine_tuned["results"][name]["metrics"] != expected  # another model: other numbers
        assert EvaluationRecord.load(pretraining_folder / f"eval_{name}_test.json").setting == "zero-shot"
    rows = [line for line in out.splitlines() if line.startswith(("| zero-shot (pre-training) |", "| not recorded |"))]
    assert len(rows) == 4 and not any("**" in line for line in rows)  # two rows in each table, nothing in-domain


def test_the_card_gets_one_model_index_row_per_pair_and_a_second_evaluation_replaces_it(
    copies, trained, tmp_path, capsys
):
    """`ivt push`'s card (`model_card_for_folder`, no network): one `model-index` result per test set, the test set as
    `dataset`, its split and metrics; the cross-domain ones name the training set in the task. Evaluating a pair again
    (with --overwrite: without it, one error line and nothing evaluated) replaces its row."""
    code, _, err = run_cli(f"evaluate --model {trained} {_flags(copies)}".split(), capsys)
    assert code == 0, err[-3000:]
    config = IVTConfig.from_pretrained(trained)
    results = _model_index(model_card_for_folder(trained, "someone/ivt-cuhk", config))
    assert [(result["dataset"]["type"], result["dataset"]["split"]) for result in results] == [
        (name, "test") for name in HELD
    ]
    assert [result["task"]["name"] for result in results] == [
        "Text-based person retrieval",
        "Text-based person retrieval (cross-domain: trained on CUHK-PEDES)",
        "Text-based person retrieval (cross-domain: trained on CUHK-PEDES)",
    ]
    assert [result["dataset"]["name"] for result in results] == ["CUHK-PEDES", "ICFG-PEDES", "RSTPReid"]
    for name, result in zip(HELD, results):
        record = EvaluationRecord.load(trained / f"eval_{name}_test.json")
        assert {metric["type"]: metric["value"] for metric in result["metrics"]} == {
            key.lower(): round(value, 2) for key, value in record.metrics.items()
        }

    flags = f"evaluate --model {trained} --dataset_name rstpreid --data_dir {copies['rstpreid']} --max_queries 2"
    code, _, err = run_cli(flags.split(), capsys)
    assert code == 2 and error_lines(err) == [
        f"error: {trained / 'eval_rstpreid_test.json'} exists; pass --overwrite to replace it"
    ]
    assert run_cli([*flags.split(), "--overwrite"], capsys)[0] == 0
    again = EvaluationRecord.load(trained / "eval_rstpreid_test.json")
    assert again.facts["num_queries"] == 2
    results = _model_index(model_card_for_folder(trained, "someone/ivt-cuhk", config))
    assert len(results) == 3 and results[2]["dataset"]["type"] == "rstpreid"
    assert {metric["type"]: metric["value"] for metric in results[2]["metrics"]} == {
        key.lower(): round(value, 2) for key, value in again.metrics.items()
    }


def test_a_later_record_of_the_same_evaluation_replaces_the_earlier_on_the_card(tmp_path, tiny_config):
    """The demo's `evaluation.json` and an `ivt evaluate` record of the same data set, split and protocol: one row,
    the later file's numbers, in the first one's place."""
    demo = {"benchmark": "synthpedes", "split": "test", "protocol": "standard", "metrics": {"R1": 10.0, "mAP": 12.0}}
    (tmp_path / "evaluation.json").write_text(json.dumps(demo))
    (tmp_path / "eval_rstpreid_test.json").write_text(json.dumps({**demo, "benchmark": "rstpreid"}))
    (tmp_path / "eval_synthpedes_test.json").write_text(json.dumps({**demo, "metrics": {"R1": 20.0, "mAP": 22.0}}))
    facts = read_folder_facts(tmp_path)
    assert list(facts.card_evaluations) == ["eval_synthpedes_test.json", "eval_rstpreid_test.json"]
    results = _model_index(model_card_for_folder(tmp_path, "someone/ivt", tiny_config, facts=facts))
    assert [(result["dataset"]["type"], result["metrics"][0]["value"]) for result in results] == [
        ("synthpedes", 20.0),
        ("rstpreid", 10.0),
    ]


@pytest.mark.skipif("ufine6926" not in BENCHMARK_NAMES, reason="UFine6926 is not among the benchmarks yet")
def test_any_benchmark_name_is_a_column(trained, copies, tmp_path, capsys):
    """Not a list of three: UFine6926 (another layout, two captions a record) is a column like the others."""
    names = ("rstpreid", "ufine6926")
    folders = {**copies, "ufine6926": write_copy(tmp_path / "ufine6926", "ufine6926")}
    output = tmp_path / "table.json"
    code, out, err = run_cli(f"evaluate --model {trained} {_flags(folders, names)} --output {output}".split(), capsys)
    assert code == 0, err[-3000:]
    (row,) = json.loads(output.read_text())["rows"]
    single = _single(trained, "ufine6926", folders["ufine6926"], tmp_path / "single.json", capsys)
    assert row["results"]["ufine6926"]["metrics"] == single["metrics"]
    assert "| trained on | model | RSTPReid | UFine6926 |" in out


def test_the_errors_are_one_line_each(copies, tmp_path, capsys, caplog):
    """A name/folder count mismatch names both flags (the old spellings too); `--show` with several sets, a name
    given twice and a model given twice (two pairs, one record file) are refused before anything loads; nothing is
    written."""
    model = save_tiny_model_folder(tmp_path / "model")
    before = sorted(path.name for path in model.iterdir())
    cuhk, icfg = copies["cuhk-pedes"], copies["icfg-pedes"]
    cases = {
        f"--dataset_name cuhk-pedes icfg-pedes --data_dir {cuhk}": "error: --dataset_name names 2 data set(s) but "
        "--data_dir gives 1 folder(s): give one --data_dir folder per --dataset_name, in the same order",
        f"--benchmark cuhk-pedes --root {cuhk} {icfg}": "error: --dataset_name names 1 data set(s) but --data_dir "
        "gives 2 folder(s): give one --data_dir folder per --dataset_name, in the same order",
        f"--dataset_name cuhk-pedes icfg-pedes --data_dir {cuhk} {icfg} --show {tmp_path / 'a.png'}": "error: --show "
        "draws one model on one data set: give one --model and one --dataset_name with it",
        f"--dataset_name cuhk-pedes cuhk-pedes --data_dir {cuhk} {cuhk}": "error: --dataset_name names cuhk-pedes "
        "twice; evaluate each data set once",
        f"--dataset_name cuhk-pedes rstpreid --data_dir {cuhk}": "error: --dataset_name names 2 data set(s) but "
        "--data_dir gives 1 folder(s): give one --data_dir folder per --dataset_name, in the same order",
        f"{model} --dataset_name cuhk-pedes --data_dir {cuhk}": f"error: {model} on cuhk-pedes and {model} on "
        f"cuhk-pedes would both write {model / 'eval_cuhk-pedes_test.json'}: give each --model and --dataset_name "
        "once, and folders of different names",
    }
    for flags, line in cases.items():
        code, _, err = run_cli(f"evaluate --model {model} {flags}".split(), capsys)
        assert code == 2 and error_lines(err) == [line], (flags, err[-2000:])
    assert sorted(path.name for path in model.iterdir()) == before and not (tmp_path / "a.png").exists()


def test_the_old_spellings_take_several_values(copies, capsys):
    from ivt_hf.cli import build_parser
    from ivt_hf.cli.evaluation import data_sources

    old = build_parser().parse_args("evaluate --model m --benchmark cuhk-pedes rstpreid --root a b".split())
    new = build_parser().parse_args("evaluate --model m --dataset_name cuhk-pedes rstpreid --data_dir a b".split())
    assert data_sources(old) == data_sources(new)
    assert [(source.dataset_name, source.data_dir) for source in data_sources(new)] == [
        ("cuhk-pedes", "a"),
        ("rstpreid", "b"),
    ]


def _model_index(card: str) -> list[dict]:
    match = re.match(r"---\n(.*?)\n---\n", card, re.S)
    assert match, "card has no YAML front matter"
    (index,) = yaml.safe_load(match.group(1))["model-index"]
    return index["results"]

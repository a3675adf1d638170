"""One CLI: every command's bad input ends in one `error:` line on stderr and exit code 2, never a traceback; one flag
style (underscores, dashed aliases); `python -m ivt_hf` and the scripts are the same command."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.commands import save_tiny_model_folder

from ivt_hf.cli import build_parser, main
from ivt_hf.data import BENCHMARK_NAMES

ROOT = Path(__file__).resolve().parents[2]


def _run(argv: list[str], capsys) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse (and HfArgumentParser) exit on malformed flags
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _make_bad_files(tmp: Path) -> None:
    (tmp / "not_json.json").write_text("{nope")
    (tmp / "recipe_typo.json").write_text(json.dumps({"per_device_train_batchsize": 8}))
    (tmp / "pretrain_typo.json").write_text(json.dumps({"dataset_name": "x", "mlm_probabilty": 0.2}))
    (tmp / "empty").mkdir()
    (tmp / "bert").mkdir()
    (tmp / "bert" / "config.json").write_text(json.dumps({"model_type": "bert"}))
    (tmp / "index").mkdir()
    (tmp / "index" / "manifest.json").write_text("[]")
    (tmp / "index" / "embeddings.safetensors").write_bytes(b"")
    (tmp / "broken.pth").write_bytes(b"not a checkpoint")
    import torch

    save_tiny_model_folder(tmp / "model")
    (tmp / "unreadable_images").mkdir()
    (tmp / "unreadable_images" / "a.jpg").write_bytes(b"not a jpeg")
    for name, manifest, embeddings in [
        ("index_no_paths", {"format_version": 1}, None),
        ("index_corrupt", {"format_version": 1, "paths": ["a.jpg"]}, b"garbage"),
    ]:
        (tmp / name).mkdir()
        (tmp / name / "manifest.json").write_text(json.dumps(manifest))
        (tmp / name / "embeddings.safetensors").write_bytes(embeddings or b"")
    state = torch.load(Path(__file__).parents[1] / "fixtures" / "ivt_tiny_s16.pth", weights_only=True)
    state["state_dict"].pop("encoder_vl.embeddings.position_embeddings.weight")
    torch.save(state, tmp / "no_positions.pth")
    _make_bad_datasets(tmp)
    from ivt_hf.search import GalleryIndex

    manifest = {
        "format_version": 1,
        "root": str(tmp),
        "model": "someone/another-model",
        "model_fingerprint": "0123456789abcdef",
    }
    GalleryIndex(torch.nn.functional.normalize(torch.randn(2, 32), dim=1), ["a.jpg", "b.jpg"], manifest).save(
        tmp / "index_of_another_model"
    )


def _make_bad_datasets(tmp: Path) -> None:
    """A `save_to_disk` folder with its own column names and one whose person ids are words; an image folder in
    which a training identity has a single image."""
    import datasets
    from PIL import Image

    for name, person_ids in [("named_otherwise", [0, 0]), ("word_ids", ["anna", "anna"])]:
        images = []
        for shade in (0, 255):
            Image.new("RGB", (8, 16), (shade, 0, 0)).save(tmp / f"{name}_{shade}.png")
            images.append(str(tmp / f"{name}_{shade}.png"))
        columns = {"img": images, "text": ["a man", "a man again"], "pid": person_ids}
        features = datasets.Features(
            {
                "img": datasets.Image(),
                "text": datasets.Value("string"),
                "pid": datasets.Value("int64" if name == "named_otherwise" else "string"),
            }
        )
        datasets.Dataset.from_dict(columns, features=features).save_to_disk(str(tmp / name))
    (tmp / "single").mkdir()
    rows = [
        {"file_name": f"{shade}.png", "person_id": person, "caption": "a person"}
        for shade, person in ((0, 1), (100, 1), (200, 2))
    ]  # person 2 has one image
    for row in rows:
        Image.new("RGB", (8, 16), (int(row["file_name"][:-4]), 0, 0)).save(tmp / "single" / row["file_name"])
    (tmp / "single" / "metadata.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))


def _bad_inputs(tmp: Path) -> dict[str, tuple[list[str], str]]:
    """name -> (argv, text the error line must contain); the files are made by `_make_bad_files`."""
    missing = str(tmp / "missing")
    return {
        "evaluate: no model folder": (
            f"evaluate --model {missing} --dataset_name synthpedes --data_dir {missing}".split(),
            "model folder not found",
        ),
        "evaluate: another model type": (
            ["evaluate", "--model", str(tmp / "bert"), "--dataset_name", "synthpedes", "--data_dir", missing],
            "bert",
        ),
        "evaluate: unknown benchmark": (
            f"evaluate --model {tmp / 'model'} --dataset_name market --data_dir {missing}".split(),
            "market: no such folder, and not a Hub dataset id (ORG/NAME)",
        ),
        "index build: no model folder": (
            ["index", "build", "--model", missing, "--images", missing, "--output_dir", str(tmp / "out")],
            "model folder not found",
        ),
        "search: no index": (["search", "--index", missing, "a man"], "not a gallery index folder"),
        "search: manifest not an object": (
            ["search", "--index", str(tmp / "index"), "a man"],
            "must hold a JSON object",
        ),
        "search: manifest without paths": (
            ["search", "--index", str(tmp / "index_no_paths"), "a man"],
            "has no 'paths' list",
        ),
        "search: corrupt embeddings": (
            ["search", "--index", str(tmp / "index_corrupt"), "a man"],
            "embeddings.safetensors is not a readable safetensors file",
        ),
        "index build: no image readable, skip": (
            [
                *f"index build --model {tmp / 'model'} --images {tmp / 'unreadable_images'} --output_dir".split(),
                *f"{tmp / 'i'} --on_invalid skip".split(),
            ],
            "none of the 1 images could be read",
        ),
        "convert: checkpoint without text positions": (
            ["convert", "--checkpoint_path", str(tmp / "no_positions.pth"), "--output_dir", str(tmp / "c")],
            "missing encoder_vl.embeddings.position_embeddings.weight",
        ),
        "train: bad option for a pretrained model": (
            [
                *f"train --model_name_or_path {tmp / 'model'} --token_drop_mode sideways --output_dir".split(),
                *f"{tmp / 't'} --use_cpu true --report_to none".split(),
            ],
            "token_drop_mode must be one of",
        ),
        "data prepare: no benchmark folder": (
            ["data", "prepare", "--dataset_name", "rstpreid", "--data_dir", missing, "--output_dir", str(tmp / "p")],
            "does not exist",
        ),
        "data prepare: no annotation file": (
            [*f"data prepare --benchmark cuhk-pedes --root {tmp / 'empty'} --output_dir {tmp / 'p'}".split()],
            "no cuhk-pedes annotation file",
        ),
        "data stats: not prepared": (["data", "stats", str(tmp / "empty")], "is not a prepared folder"),
        "data synth: two size flags": (
            ["data", "synth", "--num_ids", "9", "--split_ids", "3", "3", "3", "--output_dir", str(tmp / "s")],
            "give --num_ids or --split_ids, not both",
        ),
        "convert: not a checkpoint": (
            ["convert", "--checkpoint_path", str(tmp / "broken.pth"), "--output_dir", str(tmp / "c")],
            "could not be read as a tensors-only torch checkpoint",
        ),
        "push: no model folder": (["push", "--model_dir", missing, "--repo_id", "a/b"], "model folder not found"),
        "push: bad repo id": (["push", "--model_dir", str(tmp / "bert"), "--repo_id", "a/b/c"], "invalid repo id"),
        "train: recipe not found": (["train", str(tmp / "missing.json")], "recipe not found"),
        "train: recipe not JSON": (["train", str(tmp / "not_json.json")], "is not valid JSON"),
        "train: unknown recipe setting": (
            ["train", str(tmp / "recipe_typo.json")],
            "unknown setting(s) per_device_train_batchsize",
        ),
        "train: unknown dataset": (
            [*f"train --dataset_name market-1501 --output_dir {tmp / 't'} --use_cpu true --report_to none".split()],
            "market-1501: no such folder, and not a Hub dataset id (ORG/NAME)",
        ),
        "train: mistyped benchmark": (
            [
                *"train --dataset_name cuhk-pedse --data_dir".split(),
                missing,
                *f"--output_dir {tmp / 't'} --use_cpu true --report_to none".split(),
            ],
            "did you mean cuhk-pedes?",
        ),
        "train: a Hub option for a benchmark": (
            [
                *"train --dataset_name rstpreid --data_dir".split(),
                missing,
                *f"--dataset_config_name x --output_dir {tmp / 't'} --use_cpu true --report_to none".split(),
            ],
            "config apply to a save_to_disk folder or a Hub dataset, not to rstpreid",
        ),
        "train: identity with one training image": (
            [
                *f"train --dataset_name {tmp / 'single'} --output_dir {tmp / 't'}".split(),
                *"--use_cpu true --report_to none".split(),
            ],
            "record 2 (image '200.png'): person id 2 has 1 image(s) in the train split",
        ),
        "data prepare: columns named otherwise": (
            ["data", "prepare", "--dataset_name", str(tmp / "named_otherwise"), "--output_dir", str(tmp / "p")],
            "split 'train': no image column: looked for a column 'image'; the columns are img, text, pid (name "
            "yours with --image_column)",
        ),
        "data prepare: a mapped column that is not there": (
            [
                *f"data prepare --dataset_name {tmp / 'named_otherwise'} --image_column img --caption_column".split(),
                *f"caption --output_dir {tmp / 'p'}".split(),
            ],
            "looked for column 'caption'",
        ),
        "data prepare: person ids that are not integers": (
            [
                *f"data prepare --dataset_name {tmp / 'word_ids'} --image_column img --caption_column text".split(),
                *f"--person_id_column pid --output_dir {tmp / 'p'}".split(),
            ],
            "word_ids split 'train': record 0 (image 'word_ids_0.png'): 'pid' should be an integer person id, found "
            "str 'anna'",
        ),
        "data prepare: a folder that holds no data": (
            ["data", "prepare", "--dataset_name", str(tmp / "empty"), "--output_dir", str(tmp / "p")],
            "is neither a folder written by save_to_disk / ivt data prepare nor an image folder",
        ),
        "data prepare: --data_dir with a folder": (
            f"data prepare --dataset_name {tmp / 'single'} --data_dir {missing} --output_dir {tmp / 'p'}".split(),
            f"--data_dir goes with a benchmark name ({', '.join(BENCHMARK_NAMES)}), not with '{tmp / 'single'}': a "
            "folder or a Hub id is itself --dataset_name",
        ),
        "evaluate: a benchmark without --data_dir": (
            f"evaluate --model {tmp / 'model'} --dataset_name rstpreid".split(),
            "--dataset_name rstpreid needs --data_dir: the folder of your copy",
        ),
        "evaluate: no data named": (
            f"evaluate --model {tmp / 'model'}".split(),
            "give --dataset_name: a benchmark name (with --data_dir), a folder or a Hub id",
        ),
        "train: wrong --data_dir": (
            [
                *"train --dataset_name rstpreid --data_dir".split(),
                missing,
                *f"--output_dir {tmp / 't'} --use_cpu true --report_to none".split(),
            ],
            "does not exist",
        ),
        "train: synthpedes into a folder holding other data": (
            [
                *f"train --dataset_name synthpedes --data_dir {tmp / 'bert'} --output_dir {tmp / 't'}".split(),
                *"--use_cpu true --report_to none".split(),
            ],
            "is not a SynthPEDES folder (it holds config.json)",
        ),
        "train: fp16 on a CPU": (
            ["train", "--output_dir", str(tmp / "t"), "--use_cpu", "true", "--fp16", "true", "--report_to", "none"],
            "--fp16 needs a GPU",
        ),
        "train: a backbone that is not there": (
            [
                *f"train --output_dir {tmp / 't'} --use_cpu true --report_to none --vit_checkpoint".split(),
                *"./vit.safetensors".split(),
            ],
            "backbone not found: ./vit.safetensors",
        ),
        "search: an index made by another model": (
            ["search", "--index", str(tmp / "index_of_another_model"), "--model", str(tmp / "model"), "a man"],
            "the index was built by another model (someone/another-model, fingerprint 0123456789abcdef",
        ),
        "app: an index made by another model": (
            ["app", "--model", str(tmp / "model"), "--index", str(tmp / "index_of_another_model")],
            "the index was built by another model (someone/another-model",
        ),
        "app: a Space without an index": (
            ["app", "--model", str(tmp / "model"), "--images", str(tmp / "empty"), "--export_space", str(tmp / "s")],
            "--export_space needs --index",
        ),
        "app: port out of range": (
            ["app", "--model", str(tmp / "model"), "--index", str(tmp / "index"), "--port", "70000"],
            "--port must be from 1 to 65535",
        ),
        "index build: into an index ivt_hf did not write, even with --overwrite": (
            [
                *f"index build --model {tmp / 'model'} --images {tmp / 'single'} --output_dir".split(),
                *f"{tmp / 'index_of_another_model'} --overwrite".split(),
            ],
            "index_of_another_model is not empty and was not written by ivt_hf (no .ivt_hf-output.json), so it is "
            "never replaced, even with --overwrite",
        ),
        "convert: into a folder that is not empty": (
            ["convert", "--checkpoint_path", str(tmp / "broken.pth"), "--output_dir", str(tmp / "bert")],
            "bert is not empty and was not written by ivt_hf",
        ),
        "data prepare: into a folder ivt_hf did not write, even with --overwrite": (
            [
                "data",
                "prepare",
                "--dataset_name",
                str(tmp / "single"),
                "--output_dir",
                str(tmp / "bert"),
                "--overwrite",
            ],
            "bert is not empty and was not written by ivt_hf",
        ),
        "pretrain: a batch of one pair": (
            [
                *f"pretrain --dataset_name {tmp / 'empty'} --output_dir {tmp / 'p'} --max_steps 2".split(),
                *"--per_device_train_batch_size 1".split(),
            ],
            "ITM draws its negatives from the batch",
        ),
        "pretrain: no step count": (
            ["pretrain", "--dataset_name", str(tmp / "empty"), "--output_dir", str(tmp / "p")],
            "--max_steps must be >= 1 (a stream has no length)",
        ),
        "pretrain: fp16 on a CPU": (
            [
                *f"pretrain --dataset_name {tmp / 'empty'} --output_dir {tmp / 'p'} --use_cpu true".split(),
                *"--max_steps 2 --fp16 true".split(),
            ],
            "--fp16 needs a GPU",
        ),
        "pretrain: recipe typo": (
            ["pretrain", str(tmp / "pretrain_typo.json"), "--output_dir", str(tmp / "p")],
            "unknown setting(s) mlm_probabilty",
        ),
        "pretrain: unknown preset": (
            [
                *f"pretrain --dataset_name {tmp / 'empty'} --output_dir {tmp / 'p'} --max_steps 2".split(),
                *"--model_preset huge".split(),
            ],
            "--model_preset must be one of ['base', 'micro', 'tiny']",
        ),
        "unknown flag": (["demo", "--max_step", "3"], "unrecognized arguments: --max_step"),
    }


BAD_INPUT_NAMES = list(_bad_inputs(Path("/nonexistent")))


@pytest.mark.parametrize("name", BAD_INPUT_NAMES)
def test_bad_input_is_one_error_line_and_exit_code_2(name, tmp_path, capsys):
    _make_bad_files(tmp_path)
    argv, expected = _bad_inputs(tmp_path)[name]
    code, out, err = _run(argv, capsys)
    error_lines = [line for line in err.splitlines() if "error:" in line]
    assert code == 2, (code, err[-2000:])
    assert len(error_lines) == 1, err[-2000:]
    assert expected in error_lines[0], err[-2000:]
    assert "Traceback" not in err + out


def test_one_flag_style_with_dashed_aliases():
    """Every long option is spelled with underscores (as HfArgumentParser spells `ivt train`'s), and its dashed
    spelling, when different, is an alias of the same option."""
    parser = build_parser()
    seen = []

    def walk(current):
        for action in current._actions:
            if action.option_strings and action.dest != "help":
                long = [option for option in action.option_strings if option.startswith("--")]
                if not long:  # a one-letter option such as `-k`
                    continue
                canonical = [option for option in long if "-" not in option[2:]]
                assert canonical, f"{current.prog}: {action.option_strings} has no underscore spelling"
                for option in canonical:
                    if "_" in option:
                        assert "--" + option[2:].replace("_", "-") in long, f"{current.prog}: {option} lacks its alias"
                seen.extend(long)
            if isinstance(action, argparse._SubParsersAction):
                for subparser in action.choices.values():
                    walk(subparser)

    walk(parser)
    assert "--output_dir" in seen and "--batch_size" in seen and "--batch-size" in seen
    argv = ["evaluate", "--model", "m", "--dataset_name", "rstpreid", "--data_dir", "r", "--batch-size", "8"]
    args = parser.parse_args(argv)
    assert args.batch_size == 8
    args = parser.parse_args(["index", "build", "--model", "m", "--images", "i", "--output", "o"])  # the old spelling
    assert args.output_dir == "o"


# family -> (argv with the old spellings, the same with the vocabulary's, the one line each old spelling gives)
OLD_AND_NEW_SPELLINGS = {
    "evaluate": (
        "evaluate --model m --benchmark rstpreid --root r --dataset-config c",
        "evaluate --model m --dataset_name rstpreid --data_dir r --dataset_config_name c",
        [
            "--benchmark is now --dataset_name",
            "--root is now --data_dir",
            "--dataset-config is now --dataset_config_name",
        ],
    ),
    "data prepare": (
        "data prepare --benchmark cuhk-pedes --root r --on_invalid raise --output_dir o",
        "data prepare --dataset_name cuhk-pedes --data_dir r --on_invalid error --output_dir o",
        ["--benchmark is now --dataset_name", "--root is now --data_dir", "on_invalid 'raise' is now 'error'"],
    ),
    "data stats": ("data stats p --benchmark rstpreid", "data stats p --dataset_name rstpreid", ["--benchmark is now"]),
    "data synth": (
        "data synth --images_per_id 1 3 --output_dir o",
        "data synth --images_per_id_range 1 3 --output_dir o",
        ["--images_per_id is now --images_per_id_range"],
    ),
    "train": (
        "--data_root r --dataset_config c --output_dir o --use_cpu true --report_to none",
        "--data_dir r --dataset_config_name c --output_dir o --use_cpu true --report_to none",
        ["--data_root is now --data_dir", "--dataset_config is now --dataset_config_name"],
    ),
    "pretrain": (
        "--train_data pairs --on_invalid raise --output_dir o --max_steps 2 --use_cpu true",
        "--dataset_name pairs --on_invalid error --output_dir o --max_steps 2 --use_cpu true",
        ["--train_data is now --dataset_name", "on_invalid 'raise' is now 'error'"],
    ),
}


def _parsed(family: str, argv: list[str]):
    """What the command is told: its `DataArguments` (train, pretrain, evaluate, data prepare) or its flags."""
    from ivt_hf.cli.data import source_arguments
    from ivt_hf.training.finetuning.arguments import parse_args
    from ivt_hf.training.pretraining import parse_pretraining_args

    if family in ("train", "pretrain"):
        return (parse_args if family == "train" else parse_pretraining_args)(argv)[1]
    args = build_parser().parse_args(argv)
    if family == "evaluate":  # one `DataArguments` per --dataset_name (the cross-domain table takes several)
        from ivt_hf.cli.evaluation import data_sources

        return data_sources(args)
    return source_arguments(args) if family == "data prepare" else vars(args)


@pytest.mark.parametrize("family", list(OLD_AND_NEW_SPELLINGS))
def test_the_old_data_flags_still_work_and_each_says_its_new_name_in_one_line(family, caplog):
    """One data vocabulary (`ivt_hf.data.arguments`): `--dataset_name`, `--dataset_config_name`, `--data_dir`,
    `--on_invalid error|skip`, `--images_per_id_range`. The spellings users have (`--benchmark`, `--root`,
    `--data_root`, `--train_data`, `--dataset_config`, `raise`, `ivt data synth --images_per_id MIN MAX`) are read as
    the new ones, and each says so in one warning line; the new spellings say nothing."""
    old, new, lines = OLD_AND_NEW_SPELLINGS[family]
    caplog.set_level("WARNING", logger="ivt_hf.data.arguments")
    from_new = _parsed(family, new.split())
    assert caplog.messages == []
    assert _parsed(family, old.split()) == from_new
    assert len(caplog.messages) == len(lines)
    assert all(message.startswith(line) and "\n" not in message for message, line in zip(caplog.messages, lines))


def test_a_recipe_with_an_old_setting_name_still_trains_the_same(tmp_path, caplog):
    """A recipe JSON written with `data_root` (or passed to `recipe_arguments`) is read as `data_dir`, with one line
    naming the recipe; an old name beside its new one in the same recipe is refused (an override replaces either)."""
    from ivt_hf.errors import IVTInputError
    from ivt_hf.training.finetuning.arguments import parse_args, recipe_arguments

    recipe = tmp_path / "old.json"
    recipe.write_text(json.dumps({"dataset_name": "synthpedes", "data_root": "d", "output_dir": str(tmp_path)}))
    caplog.set_level("WARNING", logger="ivt_hf.data.arguments")
    data_args = parse_args([str(recipe), "--use_cpu", "true", "--report_to", "none"])[1]
    assert (data_args.dataset_name, data_args.data_dir) == ("synthpedes", "d")
    assert caplog.messages == [f"{recipe}: data_root is now data_dir (the old spelling still works, for now)"]
    assert recipe_arguments({"output_dir": str(tmp_path)}, data_root="e")[1].data_dir == "e"
    with pytest.raises(IVTInputError, match="give data_dir once \\(data_root is its old name\\)"):
        recipe_arguments({"output_dir": str(tmp_path), "data_dir": "d", "data_root": "e"})


def test_images_per_id_range_sets_the_generators_range(tmp_path, capsys, caplog):
    """`ivt data synth --images_per_id_range MIN MAX` (the old `--images_per_id MIN MAX` too, with one line) is the
    range the generator draws each identity's image count from; `images_per_id` stays K of the P x K sampler."""
    caplog.set_level("WARNING", logger="ivt_hf.data.arguments")
    for flag_name in ("--images_per_id_range", "--images_per_id"):
        folder = tmp_path / flag_name.strip("-")
        argv = f"data synth --num_ids 4 --image_size 32 16 {flag_name} 3 3 --output_dir {folder}".split()
        assert main(argv) == 0
        meta = json.loads((folder / "synthpedes_meta.json").read_text())
        assert meta["config"]["images_per_id"] == [3, 3]
        assert "4 identities, 12 images" in capsys.readouterr().out
    assert caplog.messages == ["--images_per_id is now --images_per_id_range (the old spelling still works, for now)"]


def test_scripts_and_python_dash_m_run_the_same_command(tmp_path):
    """`scripts/*.py` and `python -m ivt_hf` are the `ivt` command, with its guard."""
    missing = str(tmp_path / "missing")
    runs = {
        "module": [sys.executable, "-m", "ivt_hf", "push", "--model_dir", missing, "--repo_id", "a/b"],
        "push script": [
            sys.executable,
            str(ROOT / "scripts" / "push_to_hub.py"),
            "--model_dir",
            missing,
            "--repo_id",
            "a/b",
        ],
        "convert script": [
            sys.executable,
            str(ROOT / "scripts" / "convert_ivt_original_checkpoint.py"),
            "--checkpoint_path",
            missing,
            "--output_dir",
            str(tmp_path / "c"),
        ],
        "train script": [sys.executable, str(ROOT / "scripts" / "train.py"), str(tmp_path / "missing.json")],
    }
    for name, command in runs.items():
        result = subprocess.run(command, capture_output=True, text=True, timeout=180)
        assert result.returncode == 2, (name, result.stderr[-2000:])
        assert result.stderr.strip().splitlines()[-1].startswith("error: "), (name, result.stderr[-2000:])
        assert "Traceback" not in result.stderr, name


def _api_calls(tmp: Path) -> dict[str, tuple[object, type[BaseException]]]:
    """CLI case name -> (the Python call behind that command, the typed error it must raise)."""
    from ivt_hf.conversion.original_checkpoint import CheckpointConversionError, convert_to_folder
    from ivt_hf.data import BenchmarkFormatError, ColumnMapping, load_data
    from ivt_hf.hub.folder import NotAnIVTModelError, load_model_and_processor
    from ivt_hf.hub.push import InvalidRepoIdError, push_model_folder
    from ivt_hf.search import GalleryIndex, GalleryIndexError, IndexNotFoundError, ModelMismatchError

    def index_build():
        GalleryIndex.build(
            *load_model_and_processor(tmp / "model"), tmp / "unreadable_images", on_invalid="skip", progress=False
        )

    return {
        "search: no index": (lambda: GalleryIndex.load(tmp / "missing"), IndexNotFoundError),
        "search: manifest not an object": (lambda: GalleryIndex.load(tmp / "index"), GalleryIndexError),
        "search: manifest without paths": (lambda: GalleryIndex.load(tmp / "index_no_paths"), GalleryIndexError),
        "search: corrupt embeddings": (lambda: GalleryIndex.load(tmp / "index_corrupt"), GalleryIndexError),
        "index build: no image readable, skip": (index_build, GalleryIndexError),
        "evaluate: another model type": (lambda: load_model_and_processor(tmp / "bert"), NotAnIVTModelError),
        "convert: checkpoint without text positions": (
            lambda: convert_to_folder(tmp / "no_positions.pth", tmp / "c"),
            CheckpointConversionError,
        ),
        "data prepare: no annotation file": (lambda: load_data("cuhk-pedes", tmp / "empty"), BenchmarkFormatError),
        "data prepare: columns named otherwise": (
            lambda: load_data(str(tmp / "named_otherwise")),
            BenchmarkFormatError,
        ),
        "data prepare: person ids that are not integers": (
            lambda: load_data(str(tmp / "word_ids"), columns=ColumnMapping("img", "text", "pid")),
            BenchmarkFormatError,
        ),
        "train: identity with one training image": (lambda: load_data(str(tmp / "single")), BenchmarkFormatError),
        "push: bad repo id": (lambda: push_model_folder(tmp / "bert", "a/b/c"), InvalidRepoIdError),
        "search: an index made by another model": (
            lambda: GalleryIndex.load(tmp / "index_of_another_model").search(
                "a man", *load_model_and_processor(tmp / "model")
            ),
            ModelMismatchError,
        ),
    }


def test_the_python_api_raises_typed_errors_with_the_cli_messages(tmp_path, capsys):
    """What `ivt` prints after `error:` is the message of a typed exception the Python call raises."""
    _make_bad_files(tmp_path)
    bad_inputs = _bad_inputs(tmp_path)
    for name, (call, error_type) in _api_calls(tmp_path).items():
        with pytest.raises(error_type) as raised:
            call()
        code, _, err = _run(bad_inputs[name][0], capsys)
        line = next(line for line in err.splitlines() if line.startswith("error: "))
        assert code == 2 and line == "error: " + " ".join(str(raised.value).split()), name

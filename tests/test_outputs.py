"""Output folders (`ivt_hf.outputs`): complete or absent, replaced by `--overwrite` only when ivt_hf wrote them, and
checked for emptiness under the lock that every writer of the folder takes.

Every command that writes an output folder is driven through `ivt_hf.cli.main`: `data prepare`, `data synth`,
`index build`, `convert` and `app --export_space`.
"""

from __future__ import annotations

import errno
import json
import os
import threading
import time
from pathlib import Path

import pytest
import torch
from filelock import FileLock
from helpers.commands import error_lines, run_cli, save_tiny_model_folder

from ivt_hf.cli import main

FIXTURES = Path(__file__).parent / "fixtures"
MARKER = ".ivt_hf-output.json"


def _siblings(folder: Path) -> list[str]:
    """What lies beside `folder` in its parent (the lock file aside)."""
    return sorted(path.name for path in folder.parent.iterdir() if not path.name.endswith(".lock"))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """A tiny SynthPEDES raw copy, a tiny model folder, a few images and their index."""
    from PIL import Image

    from ivt_hf.search import GalleryIndex

    root = tmp_path_factory.mktemp("inputs")
    assert (
        main(["data", "synth", "--num_ids", "13", "--image_size", "32", "16", "--output_dir", str(root / "synth")]) == 0
    )
    save_tiny_model_folder(root / "model")
    (root / "images").mkdir()
    for shade in (0, 120, 240):
        Image.new("RGB", (16, 32), (shade, 0, 0)).save(root / "images" / f"{shade}.png")
    embeddings = torch.nn.functional.normalize(torch.randn(3, 32), dim=1)
    manifest = {"format_version": 1, "root": str(root / "images"), "model": str(root / "model")}
    GalleryIndex(embeddings, ["0.png", "120.png", "240.png"], manifest).save(root / "index")
    return root


def _commands(inputs: Path, output: Path) -> dict[str, list[str]]:
    """Each command that writes an output folder, writing into `output`."""
    return {
        "data prepare": [
            *f"data prepare --benchmark synthpedes --root {inputs / 'synth'} --output_dir {output}".split()
        ],
        "data synth": [*f"data synth --num_ids 13 --image_size 32 16 --seed 1 --output_dir {output}".split()],
        "index build": [
            *f"index build --model {inputs / 'model'} --images {inputs / 'images'}".split(),
            *f"--output_dir {output} --chunk_size 2".split(),
        ],
        "convert": [
            "convert",
            "--checkpoint_path",
            str(FIXTURES / "ivt_tiny_s16.pth"),
            "--output_dir",
            str(output),
            "--num_attention_heads",
            "2",
        ],
        "app --export_space": [
            "app",
            "--model",
            str(inputs / "model"),
            "--index",
            str(inputs / "index"),
            "--export_space",
            str(output),
        ],
    }


def _complete(command: str, output: Path) -> bool:
    """Whether `output` holds what `command` writes."""
    files = {
        "data prepare": "dataset_dict.json",
        "data synth": "synthpedes_meta.json",
        "index build": "manifest.json",
        "convert": "model.safetensors",
        "app --export_space": "app.py",
    }
    return (output / files[command]).is_file()


COMMANDS = list(_commands(Path("/inputs"), Path("/output")))


@pytest.mark.parametrize("command", COMMANDS)
def test_overwrite_never_deletes_a_folder_ivt_hf_did_not_write(command, inputs, tmp_path, capsys):
    output = tmp_path / "mine"
    output.mkdir()
    (output / "thesis.tex").write_text("two years of work")
    code, _, err = run_cli([*_commands(inputs, output)[command], "--overwrite"], capsys)
    assert code == 2, err[-3000:]
    assert error_lines(err) == [
        f"error: {output} is not empty and was not written by ivt_hf (no {MARKER}), so it is never replaced, even "
        "with --overwrite: remove it yourself or choose another output folder"
    ], err[-3000:]
    assert sorted(path.name for path in output.iterdir()) == ["thesis.tex"]
    assert (output / "thesis.tex").read_text() == "two years of work"


@pytest.mark.parametrize("command", COMMANDS)
def test_a_folder_ivt_hf_wrote_is_refused_without_overwrite_and_replaced_with_it(command, inputs, tmp_path, capsys):
    output = tmp_path / "out"
    argv = _commands(inputs, output)[command]
    code, _, err = run_cli(argv, capsys)
    assert code == 0, err[-3000:]
    marker = json.loads((output / MARKER).read_text())
    assert marker["command"] == f"ivt {command}" and marker["written_by"] == "ivt_hf", marker
    assert _complete(command, output)
    assert sorted(marker["files"]) == _files_below(output) and marker["claims"] == []  # every file it wrote
    first_marker = (output / MARKER).open()  # tells the folders apart: held open, its inode is not reused
    first_inode = os.fstat(first_marker.fileno()).st_ino

    other_settings = ["--seed", "2"] if command == "data synth" else []  # the same synth settings keep the folder
    code, _, err = run_cli([*argv, *other_settings], capsys)
    held = "already holds an index" if command == "index build" else "is not empty"
    assert code == 2 and error_lines(err) == [f"error: {output} {held}; pass --overwrite to replace it"], err
    assert (output / MARKER).stat().st_ino == first_inode

    code, _, err = run_cli([*argv, "--overwrite"], capsys)
    assert code == 0, err[-3000:]
    assert _complete(command, output) and (output / MARKER).stat().st_ino != first_inode
    assert _siblings(output) == ["out"]  # no staging or replaced folder left beside it
    first_marker.close()


def _files_below(folder: Path) -> list[str]:
    """Every file below `folder` but the marker and its lock, relative."""
    files = (path for path in folder.rglob("*") if path.is_file() and not path.name.startswith(MARKER))
    return sorted(str(path.relative_to(folder)) for path in files)


def _press_ctrl_c() -> None:
    raise KeyboardInterrupt


def _write_to_a_full_disk() -> None:
    with open("/dev/full", "w") as full:  # a real write that the kernel refuses with ENOSPC, as on a full disk
        full.write("x" * 65536)


def _interrupt_synth_midway(monkeypatch, fail) -> list[int]:
    """`ivt data synth` renders its images, then `fail()` is called where the annotation file would be written."""
    from ivt_hf.data.synthpedes import storage

    images_written = []  # how many images were there when the failure came

    def write_text_then_fail(self, *args, **kwargs):
        images_written.append(len(list(self.parent.rglob("*.jpg"))))
        fail()

    real_write_plan = storage.write_plan

    def write_plan(synth_plan, output_dir, **kwargs):
        monkeypatch.setattr(Path, "write_text", write_text_then_fail)
        try:
            real_write_plan(synth_plan, output_dir, **kwargs)
        finally:
            monkeypatch.undo()

    monkeypatch.setattr(storage, "write_plan", write_plan)
    return images_written


@pytest.mark.parametrize(
    ("failure", "code", "line"),
    [
        (_press_ctrl_c, 130, "error: interrupted (Ctrl-C)"),
        (
            _write_to_a_full_disk,
            3,
            "error: no space left on device: {output} (free some space or choose another folder)",
        ),
    ],
    ids=["ctrl-c", "disk-full"],
)
def test_an_interrupted_write_leaves_neither_the_folder_nor_its_staging(
    failure, code, line, tmp_path, capsys, monkeypatch
):
    output = tmp_path / "synth"
    images_written = _interrupt_synth_midway(monkeypatch, failure)
    result, _, err = run_cli(
        ["data", "synth", "--num_ids", "13", "--image_size", "32", "16", "--output_dir", str(output)], capsys
    )
    assert images_written and images_written[0] > 0, "the failure came before any image was written"
    assert result == code, err[-3000:]
    assert error_lines(err) == [line.format(output=output)], err[-3000:]
    assert not output.exists()
    assert _siblings(output) == []  # no staging folder either


def test_an_interrupted_overwrite_keeps_the_folder_it_was_replacing(tmp_path, capsys, monkeypatch):
    output = tmp_path / "synth"
    argv = ["data", "synth", "--num_ids", "13", "--image_size", "32", "16", "--output_dir", str(output)]
    assert run_cli(argv, capsys)[0] == 0
    before = sorted(str(path.relative_to(output)) for path in output.rglob("*"))
    _interrupt_synth_midway(monkeypatch, _press_ctrl_c)
    result, _, err = run_cli([*argv, "--seed", "3", "--overwrite"], capsys)
    assert result == 130, err[-3000:]
    assert sorted(str(path.relative_to(output)) for path in output.rglob("*")) == before
    assert json.loads((output / "synthpedes_meta.json").read_text())["config"]["seed"] == 0
    assert _siblings(output) == ["synth"]


@pytest.fixture(scope="module")
def prepared_source(inputs):
    from ivt_hf.data import load_data

    return load_data("synthpedes", inputs / "synth", verify_images=False)


def test_the_emptiness_check_happens_under_the_lock(prepared_source, tmp_path):
    """A prepare that waits for the lock (another writer holds it) checks the folder only once it has the lock: a
    file that appeared meanwhile is refused and kept, not deleted."""
    from ivt_hf.data.prepared import prepare_benchmark
    from ivt_hf.errors import OutputExistsError

    output = tmp_path / "prepared"
    outcome = {}

    def prepare():
        try:
            outcome["result"] = prepare_benchmark(prepared_source, output)
        except BaseException as error:  # noqa: BLE001 - reported to the test thread
            outcome["error"] = error

    lock = FileLock(str(tmp_path / ".prepared.lock"))  # the lock every writer of `output` takes
    with lock:
        waiting = threading.Thread(target=prepare)
        waiting.start()
        time.sleep(1.0)
        assert waiting.is_alive() and not output.exists(), "the second writer did not wait for the lock"
        output.mkdir()  # what the lock holder wrote meanwhile
        (output / "notes.txt").write_text("written while the other waited")
    waiting.join(timeout=120)
    assert isinstance(outcome.get("error"), OutputExistsError), outcome
    assert str(output) in str(outcome["error"])
    assert (output / "notes.txt").read_text() == "written while the other waited"


def test_two_writers_into_one_folder_one_writes_the_other_refuses(tmp_path):
    from ivt_hf.errors import OutputExistsError
    from ivt_hf.outputs import writing_output_dir

    output = tmp_path / "out"
    entered, outcomes = threading.Event(), {}

    def first():
        with writing_output_dir(output, overwrite=False, command="test") as staging:
            entered.set()
            time.sleep(1.0)
            (staging / "first.txt").write_text("first")
        outcomes["first"] = "written"

    def second():
        entered.wait()
        try:
            with writing_output_dir(output, overwrite=False, command="test") as staging:
                (staging / "second.txt").write_text("second")
            outcomes["second"] = "written"
        except OutputExistsError as error:
            outcomes["second"] = error

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert outcomes["first"] == "written" and isinstance(outcomes["second"], OutputExistsError), outcomes
    assert sorted(path.name for path in output.iterdir()) == [MARKER, "first.txt"]


def test_writing_output_dir_writes_the_marker_and_cleans_up_after_a_killed_writer(tmp_path):
    from ivt_hf import __version__
    from ivt_hf.outputs import is_package_output, writing_output_dir

    output = tmp_path / "out"
    killed = tmp_path / f".out.staging-{99999999}"  # a writer killed with SIGKILL leaves its staging folder
    killed.mkdir()
    (killed / "half.bin").write_bytes(b"\0" * 10)
    with writing_output_dir(output, overwrite=False, command="ivt test") as staging:
        assert staging.parent == tmp_path and staging.name.startswith(".out.staging-")
        assert not output.exists()  # nothing at the output until the block ends
        (staging / "result.txt").write_text("done")
    assert is_package_output(output)
    marker = json.loads((output / MARKER).read_text())
    assert marker["command"] == "ivt test" and marker["ivt_hf_version"] == __version__
    assert time.time() - time.mktime(time.strptime(marker["written_at"], "%Y-%m-%dT%H:%M:%SZ")) < 24 * 3600
    assert sorted(path.name for path in tmp_path.iterdir()) == [".out.lock", "out"]


def test_a_disk_full_error_without_a_file_name_names_the_output_folder(tmp_path):
    from ivt_hf.outputs import writing_output_dir

    output = tmp_path / "out"
    with pytest.raises(OSError) as raised:
        with writing_output_dir(output, overwrite=False, command="ivt test") as staging:
            (staging / "a.txt").write_text("a")
            with open("/dev/full", "w") as full:  # a real write that the kernel refuses with ENOSPC
                full.write("x" * 65536)
    assert raised.value.errno == errno.ENOSPC and raised.value.filename == str(output)
    assert sorted(path.name for path in tmp_path.iterdir()) == [".out.lock"]


def test_an_empty_folder_may_be_written_and_a_file_may_not(tmp_path):
    from ivt_hf.errors import OutputExistsError
    from ivt_hf.outputs import writing_output_dir

    (tmp_path / "empty").mkdir()
    with writing_output_dir(tmp_path / "empty", overwrite=False, command="ivt test") as staging:
        (staging / "a.txt").write_text("a")
    assert sorted(path.name for path in (tmp_path / "empty").iterdir()) == [MARKER, "a.txt"]
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(OutputExistsError, match="is a file, not a folder"):
        with writing_output_dir(tmp_path / "file", overwrite=True, command="ivt test"):
            pass
    assert (tmp_path / "file").read_text() == "not a folder"


def test_a_folder_moved_aside_by_a_killed_writer_comes_back(tmp_path):
    """Killed between moving the old folder aside and renaming the new one into place: the next writer restores the
    old folder before it checks, so nothing that was there is lost."""
    from ivt_hf.errors import OutputExistsError
    from ivt_hf.outputs import writing_output_dir

    aside = tmp_path / ".out.replaced-99999999"
    aside.mkdir()
    (aside / MARKER).write_text(json.dumps({"written_by": "ivt_hf", "files": ["result.txt"]}))
    (aside / "result.txt").write_text("the earlier run")
    with pytest.raises(OutputExistsError, match="is not empty; pass --overwrite to replace it"):
        with writing_output_dir(tmp_path / "out", overwrite=False, command="ivt test"):
            pass
    assert (tmp_path / "out" / "result.txt").read_text() == "the earlier run" and not aside.exists()


# ----------------------------------------------------------------------------------------------------------------
# what a user added to a folder ivt_hf wrote, and the commands that write over time (train, pretrain, demo) or one
# file (evaluate)


def _snapshot(folder: Path) -> dict[str, bytes]:
    """Every file below `folder` with its bytes."""
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


@pytest.mark.parametrize("command", COMMANDS)
def test_overwrite_never_deletes_a_file_the_user_added_to_a_copied_output(command, inputs, tmp_path, capsys):
    """The marker is not enough: a copy of an output folder with the user's notes added is refused by --overwrite,
    naming the notes, and nothing in it is deleted."""
    import shutil

    output = tmp_path / "out"
    assert run_cli(_commands(inputs, output)[command], capsys)[0] == 0
    copy = tmp_path / "copy"
    shutil.copytree(output, copy)
    (copy / "notes.txt").write_text("what I found with this output")
    before = _snapshot(copy)
    code, _, err = run_cli([*_commands(inputs, copy)[command], "--overwrite"], capsys)
    assert code == 2, err[-3000:]
    assert error_lines(err) == [
        f"error: {copy} holds files that ivt_hf did not write (notes.txt), so it is never replaced, even with "
        "--overwrite: move them out or choose another output folder"
    ], err[-3000:]
    assert _snapshot(copy) == before


def test_a_user_file_deep_inside_a_copied_output_is_found_too(inputs, tmp_path, capsys):
    import shutil

    copy = tmp_path / "synth"
    shutil.copytree(inputs / "synth", copy)
    (copy / "imgs" / "mine").mkdir(parents=True)
    for number in range(7):  # the error names five and counts the rest
        (copy / "imgs" / "mine" / f"crop{number}.jpg").write_bytes(b"my photo")
    before = _snapshot(copy)
    code, _, err = run_cli(["data", "synth", "--num_ids", "13", "--image_size", "32", "16", "--output_dir", str(copy),
                            "--seed", "5", "--overwrite"], capsys)  # fmt: skip
    assert code == 2 and error_lines(err) == [
        f"error: {copy} holds files that ivt_hf did not write (imgs/mine/crop0.jpg, imgs/mine/crop1.jpg, "
        "imgs/mine/crop2.jpg, imgs/mine/crop3.jpg, imgs/mine/crop4.jpg and 2 more), so it is never replaced, even "
        "with --overwrite: move them out or choose another output folder"
    ], err[-3000:]
    assert _snapshot(copy) == before


def _train_flags(data_root: Path, output: Path, *extra: str) -> list[str]:
    """`ivt train` of the tiny preset for 2 steps, a checkpoint at each, at most one kept."""
    return [
        *f"train --dataset_name synthpedes --data_root {data_root} --model_preset tiny".split(),
        *"--image_height 64 --image_width 32 --per_device_train_batch_size 8 --images_per_id 2 --max_steps 2".split(),
        *"--save_steps 1 --save_total_limit 1 --eval_strategy no --use_cpu --report_to none".split(),
        *f"--disable_tqdm true --output_dir {output}".split(),
        *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> dict[str, Path]:
    """A small SynthPEDES at 64x32 and a finished `ivt train` run on it (checkpoint-2 kept)."""
    root = tmp_path_factory.mktemp("training")
    data = root / "synth"
    assert main(["data", "synth", "--num_ids", "13", "--image_size", "64", "32", "--output_dir", str(data)]) == 0
    assert main(_train_flags(data, root / "run")) == 0
    assert sorted(path.name for path in (root / "run").glob("checkpoint-*")) == ["checkpoint-2"]
    return {"data": data, "run": root / "run"}


def _users_folder(folder: Path) -> dict[str, bytes]:
    """A folder of the user's that looks like a training run: their config and notes in a checkpoint folder."""
    (folder / "checkpoint-1").mkdir(parents=True)
    (folder / "config.json").write_text('{"my": "experiment settings"}')
    (folder / "checkpoint-1" / "my_notes.txt").write_text("the run that worked")
    return _snapshot(folder)


@pytest.mark.parametrize(
    "flags",
    [[], ["--overwrite_output_dir"], ["--resume_from_checkpoint", "CHECKPOINT"]],
    ids=["plain", "overwrite", "resume-from-elsewhere"],
)
def test_train_never_writes_into_a_folder_of_the_user(flags, finished_run, tmp_path, capsys):
    """`ivt train` into the user's folder (a config.json, notes in checkpoint-1) with save_total_limit 1: refused, exit
    2, naming the folder, and nothing in it changes (no overwritten config, no checkpoint rotated away), whatever the
    flags, resuming from a checkpoint elsewhere included."""
    mine = tmp_path / "mine"
    before = _users_folder(mine)
    flags = [str(finished_run["run"] / "checkpoint-2") if flag == "CHECKPOINT" else flag for flag in flags]
    code, _, err = run_cli(_train_flags(finished_run["data"], mine, *flags), capsys)
    assert code == 2, err[-3000:]
    assert error_lines(err) == [
        f"error: {mine} is not empty and was not written by ivt_hf (no {MARKER}), so it is never replaced, even with "
        "--overwrite_output_dir: remove it yourself or choose another output folder"
    ], err[-3000:]
    assert _snapshot(mine) == before and sorted(path.name for path in mine.iterdir()) == ["checkpoint-1", "config.json"]


def test_train_continues_or_replaces_only_a_run_folder_wholly_its_own(finished_run, tmp_path, capsys):
    """A copy of a finished run with the user's notes added to its checkpoint is neither resumed nor replaced (the
    notes are named); the run's own folder is refused without a flag, replaced with --overwrite_output_dir; resuming
    from a checkpoint elsewhere into a new folder is fine."""
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(finished_run["run"], copy)
    (copy / "checkpoint-2" / "my_notes.txt").write_text("the best checkpoint so far")
    before = _snapshot(copy)
    for flags in (["--resume_from_checkpoint", "latest"], ["--overwrite_output_dir"]):
        code, _, err = run_cli(_train_flags(finished_run["data"], copy, *flags), capsys)
        assert code == 2 and error_lines(err) == [
            f"error: {copy} holds files that ivt_hf did not write (checkpoint-2/my_notes.txt), so it is never "
            "replaced, even with --overwrite_output_dir: move them out or choose another output folder"
        ], (flags, err[-3000:])
        assert _snapshot(copy) == before

    own = tmp_path / "own"
    shutil.copytree(finished_run["run"], own)
    code, _, err = run_cli(_train_flags(finished_run["data"], own), capsys)
    assert code == 2 and error_lines(err) == [
        f"error: {own} is not empty; pass --resume_from_checkpoint latest to continue the run in it, or "
        "--overwrite_output_dir to start again"
    ], err[-3000:]
    first_model = (own / "model.safetensors").open("rb")  # held open, its inode is not reused
    code, _, err = run_cli(_train_flags(finished_run["data"], own, "--overwrite_output_dir"), capsys)
    assert code == 0, err[-3000:]
    assert (own / "model.safetensors").stat().st_ino != os.fstat(first_model.fileno()).st_ino
    first_model.close()
    marker = json.loads((own / MARKER).read_text())
    assert marker["command"] == "ivt train" and marker["claims"] == [] and marker["files"] == _files_below(own)

    elsewhere = tmp_path / "elsewhere"
    resumed = _train_flags(finished_run["data"], elsewhere, "--resume_from_checkpoint", str(own / "checkpoint-2"))
    code, _, err = run_cli(resumed, capsys)
    assert code == 0, err[-3000:]
    assert (elsewhere / "model.safetensors").is_file() and json.loads((elsewhere / MARKER).read_text())["files"]


def test_a_refused_or_failed_run_leaves_nothing_behind(finished_run, tmp_path, capsys):
    """Resuming `latest` where there is no checkpoint: one error line, and no folder or marker is left."""
    output = tmp_path / "new"
    code, _, err = run_cli(_train_flags(finished_run["data"], output, "--resume_from_checkpoint", "latest"), capsys)
    assert code == 2 and error_lines(err) == [f"error: --resume_from_checkpoint latest: no checkpoint in {output}"]
    assert not output.exists() and _siblings(output) == []


def _evaluate(inputs: Path, model: Path, *extra: str) -> list[str]:
    return ["evaluate", "--model", str(model), "--benchmark", "synthpedes", "--root", str(inputs / "synth"),
            "--split", "test", *extra]  # fmt: skip


def test_evaluate_replaces_only_a_file_ivt_hf_wrote(inputs, tmp_path, capsys):
    """--output: the user's file there is never replaced (not even with --overwrite); a record ivt_hf wrote is
    replaced only with --overwrite. The default record, written into a folder ivt_hf wrote, keeps it wholly ivt_hf's
    (its marker records the new file)."""
    import shutil

    from ivt_hf.outputs import is_package_output, writing_output_dir

    results = tmp_path / "results"
    results.mkdir()
    (results / "cuhk.json").write_text("my own numbers")
    for flags in ([], ["--overwrite"]):
        argv = _evaluate(inputs, inputs / "model", "--output", str(results / "cuhk.json"), *flags)
        code, _, err = run_cli(argv, capsys)
        assert code == 2 and error_lines(err) == [
            f"error: {results / 'cuhk.json'} exists and was not written by ivt_hf, so it is never replaced, even with "
            "--overwrite: move it or choose another file name"
        ], err[-3000:]
        assert (results / "cuhk.json").read_text() == "my own numbers"

    output = results / "tiny.json"
    assert run_cli(_evaluate(inputs, inputs / "model", "--output", str(output)), capsys)[0] == 0
    first = output.open()  # held open, its inode is not reused
    code, _, err = run_cli(_evaluate(inputs, inputs / "model", "--output", str(output)), capsys)
    assert code == 2 and error_lines(err) == [f"error: {output} exists; pass --overwrite to replace it"], err
    assert run_cli(_evaluate(inputs, inputs / "model", "--output", str(output), "--overwrite"), capsys)[0] == 0
    assert output.stat().st_ino != os.fstat(first.fileno()).st_ino
    assert json.loads(output.read_text())["benchmark"] == "synthpedes"
    first.close()
    assert (results / "cuhk.json").read_text() == "my own numbers"
    assert not [path.name for path in results.iterdir() if ".partial-" in path.name]

    model = tmp_path / "model"  # a model folder that ivt_hf wrote
    with writing_output_dir(model, overwrite=False, command="ivt test") as staging:
        shutil.copytree(inputs / "model", staging, dirs_exist_ok=True)
    assert run_cli(_evaluate(inputs, model), capsys)[0] == 0
    assert "eval_synthpedes_test.json" in json.loads((model / MARKER).read_text())["files"]
    assert is_package_output(model)


def test_demo_never_writes_into_a_folder_of_the_user(tmp_path, capsys):
    from ivt_hf.demo import run_demo
    from ivt_hf.errors import OutputExistsError

    mine = tmp_path / "demo"
    mine.mkdir()
    (mine / "summary.json").write_text("my summary")
    (mine / "model").mkdir()
    (mine / "model" / "weights_i_trained.safetensors").write_bytes(b"\0" * 64)
    before = _snapshot(mine)
    settings = {"image_height": 64, "image_width": 32, "per_device_train_batch_size": 8, "disable_tqdm": True}
    with pytest.raises(OutputExistsError, match="was not written by ivt_hf"):
        run_demo(mine, max_steps=2, split_ids={"train": 24, "validation": 6, "test": 6}, overrides=settings)
    code, _, err = run_cli(["demo", "--output_dir", str(mine), "--overwrite"], capsys)
    assert code == 2 and error_lines(err) == [
        f"error: {mine} is not empty and was not written by ivt_hf (no {MARKER}), so it is never replaced, even with "
        "--overwrite: remove it yourself or choose another output folder"
    ], err[-3000:]
    assert _snapshot(mine) == before and sorted(path.name for path in mine.iterdir()) == ["model", "summary.json"]

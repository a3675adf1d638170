"""The `ivt` error guard (`ivt_hf.cli.run_guarded`): what each kind of failure prints and which exit code it ends in.

    1   a remote failure: the Hub answered with an error (404, 401/403, gated, 5xx) or could not be reached
    2   bad input: the package's typed errors (`ivt_hf.errors.IVTInputError` and its subclasses, `CommandError`)
    3   the machine refused: no space left on the device (or quota), permission denied, read-only file system
    130 interrupted (Ctrl-C)

Each of these is ONE `error: ...` line; anything else (a plain `ValueError` from torch or numpy, say) is a bug and
keeps its traceback. The Hub cases run the real `ivt push` / model loading against the package's Hub-protocol server
on 127.0.0.1 (`tests/helpers/local_hub.py`). The disk cases write with the real writers (safetensors, torch.save,
FAISS, JSON, the index build's chunks and plan) onto a real full file system (conftest's `small_tmpfs`), and the
permission cases read files the kernel refuses to read (`helpers.permissions.permissions_enforced`, also for root).
The hostile-value table runs every command with values and files it must refuse in one line.
"""

from __future__ import annotations

import errno
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.commands import error_lines, run_cli, save_tiny_model_folder
from helpers.launchers import free_port
from helpers.permissions import permissions_enforced
from helpers.tmpfs import FILLER, fill, free

from ivt_hf.cli import main
from ivt_hf.model.processing_ivt import PACKAGED_VOCAB

FIXTURES = Path(__file__).parents[1] / "fixtures"

TOKEN = "hf_testtoken123"  # fake; only the local server knows it


def _errors(err: str) -> list[str]:
    """The `error:` lines of stderr, from `error:` on (a progress bar without its newline may share the line)."""
    return [line[line.index("error: ") :] for line in error_lines(err)]


def _load_local_hub():
    spec = importlib.util.spec_from_file_location("local_hub", Path(__file__).parents[1] / "helpers" / "local_hub.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["local_hub"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


local_hub = sys.modules.get("local_hub") or _load_local_hub()


def _fail_stats_with(monkeypatch, raise_it) -> None:
    """`ivt data stats` runs `raise_it()` instead of its work."""

    def run_stats(args):
        raise_it()

    monkeypatch.setattr("ivt_hf.cli.data.run_stats", run_stats)


def test_disk_full_during_a_real_write_is_one_line_naming_the_output_and_exit_3(small_tmpfs, capsys):
    """`ivt data synth` onto a real full disk: its JPEG and JSON writes are refused by the kernel (ENOSPC)."""
    disk = small_tmpfs("300k")
    fill(disk)
    code, out, err = run_cli(
        ["data", "synth", "--num_ids", "5", "--image_size", "64", "32", "--output_dir", str(disk / "synth")], capsys
    )
    assert (code, err) == (
        3,
        f"error: no space left on device: {disk / 'synth'} (free some space or choose another folder)\n",
    )
    assert sorted(path.name for path in disk.iterdir()) == [FILLER, ".synth.lock"]


@pytest.mark.parametrize(
    ("number", "line"),
    [
        (errno.ENOSPC, "error: no space left on device: {path} (free some space or choose another folder)"),
        (errno.EDQUOT, "error: disk quota exceeded: {path} (free some space or choose another folder)"),
        (errno.EROFS, "error: read-only file system: {path} (choose a writable folder)"),
        (errno.EACCES, "error: permission denied: {path} (check its permissions or choose another folder)"),
        (errno.EPERM, "error: operation not permitted: {path} (check its permissions or choose another folder)"),
    ],
)
def test_the_machine_refusing_is_one_line_naming_the_path_and_exit_3(number, line, tmp_path, capsys, monkeypatch):
    path = tmp_path / "out" / "model.safetensors"

    def refuse():
        raise OSError(number, os.strerror(number), str(path))  # PermissionError for EACCES / EPERM

    _fail_stats_with(monkeypatch, refuse)
    code, out, err = run_cli(["data", "stats", str(tmp_path)], capsys)
    assert (code, err) == (3, line.format(path=path) + "\n")


def test_a_read_only_folder_is_one_line_naming_the_path_and_exit_3(tmp_path, capsys):
    """`ivt data synth` into a folder it may not write: the real chmod, which the kernel enforces for root too inside
    `permissions_enforced`."""
    read_only = tmp_path / "read_only"
    read_only.mkdir()
    read_only.chmod(0o555)
    try:
        with permissions_enforced():
            code, out, err = run_cli(
                [*f"data synth --num_ids 13 --image_size 32 16 --output_dir {read_only / 'synth'}".split()],
                capsys,
            )
    finally:
        read_only.chmod(0o755)
    assert (code, err) == (
        3,
        f"error: permission denied: {read_only}/.synth.lock (check its permissions or choose another folder)\n",
    )
    assert list(read_only.iterdir()) == []


def test_ctrl_c_is_one_line_and_exit_130(tmp_path, capsys, monkeypatch):
    def interrupt():
        raise KeyboardInterrupt

    _fail_stats_with(monkeypatch, interrupt)
    assert run_cli(["data", "stats", str(tmp_path)], capsys) == (130, "", "error: interrupted (Ctrl-C)\n")


def test_typed_bad_input_is_exit_2(tmp_path, capsys, monkeypatch):
    from ivt_hf.errors import InputNotFoundError

    def missing():
        raise InputNotFoundError(f"model folder not found: {tmp_path}")

    _fail_stats_with(monkeypatch, missing)
    assert run_cli(["data", "stats", str(tmp_path)], capsys) == (2, "", f"error: model folder not found: {tmp_path}\n")


@pytest.mark.parametrize("error", [ValueError("operands could not be broadcast together"), FileNotFoundError(2, "x")])
def test_an_unexpected_error_keeps_its_traceback(error, tmp_path, capsys, monkeypatch):
    """A plain ValueError (torch, numpy, a bug of ours) is not bad input: it reaches Python, which prints the
    traceback and exits 1 (checked in a subprocess below)."""

    def fail():
        raise error

    _fail_stats_with(monkeypatch, fail)
    with pytest.raises(type(error)):
        main(["data", "stats", str(tmp_path)])
    assert "error:" not in capsys.readouterr().err


def test_an_unexpected_value_error_exits_with_a_traceback_not_2(tmp_path):
    script = (
        "import sys, ivt_hf.cli, ivt_hf.cli.data\n"
        "def run_stats(args):\n"
        "    raise ValueError('operands could not be broadcast together')\n"
        "ivt_hf.cli.data.run_stats = run_stats\n"
        f"sys.exit(ivt_hf.cli.main(['data', 'stats', {str(tmp_path)!r}]))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stderr
    assert "Traceback (most recent call last)" in result.stderr
    assert result.stderr.strip().splitlines()[-1] == "ValueError: operands could not be broadcast together"


def test_exit_codes_are_documented_in_help(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = " ".join(capsys.readouterr().out.split())
    for code, meaning in (
        ("1", "remote failure"),
        ("2", "bad input"),
        ("3", "the machine refused"),
        ("130", "interrupted"),
    ):
        assert f"{code} {meaning}" in out, out


# ---------------------------------------------------------------------------------------------------- the Hub


@pytest.fixture
def hub(monkeypatch):
    """The local Hub-protocol server, with huggingface_hub pointed at it in this process (`HfApi` and the file URLs
    read these constants at call time) and no Xet."""
    from huggingface_hub import constants

    with local_hub.LocalHub(token=TOKEN) as server:
        monkeypatch.setattr(constants, "ENDPOINT", server.url)
        monkeypatch.setattr(
            constants, "HUGGINGFACE_CO_URL_TEMPLATE", server.url + "/{repo_id}/resolve/{revision}/{filename}"
        )
        monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setenv("HF_TOKEN", TOKEN)
        yield server


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return save_tiny_model_folder(tmp_path_factory.mktemp("m") / "m")


def _answer(server, route: str, status: int, message: str, code: str | None = None) -> None:
    def refuse(**_):
        raise local_hub.HubError(status, message, code)

    setattr(server, f"_{route}", refuse)


@pytest.mark.parametrize(
    ("status", "message", "code", "expected"),
    [
        (404, "Repository ivt-tests/x not found", "RepoNotFound", "404 Client Error. Repository Not Found for url"),
        (
            403,
            "You don't have the rights to create a model under the namespace ivt-tests",
            None,
            "403 Forbidden: You don't have the rights",
        ),
        (500, "the Hub is down", None, "Server error '500 Internal Server Error' for url"),
    ],
)
def test_push_refused_by_the_hub_is_one_line_and_exit_1(status, message, code, expected, model_dir, hub, capsys):
    _answer(hub, "create_repo", status, message, code)
    result, out, err = run_cli(["push", "--model_dir", str(model_dir), "--repo_id", "ivt-tests/x"], capsys)
    lines = error_lines(err)
    assert result == 1 and len(lines) == 1 and "Traceback" not in err, err[-3000:]
    assert lines[0].startswith("error: the Hub refused the upload: ") and expected in lines[0], lines
    assert f"{hub.url}/api/repos/create" in lines[0] and message in lines[0], lines
    assert TOKEN not in err + out


def test_push_to_a_hub_that_cannot_be_reached_is_one_line_and_exit_1(model_dir, hub, capsys, monkeypatch):
    from huggingface_hub import constants

    unreachable = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    monkeypatch.setattr(constants, "ENDPOINT", unreachable)
    result, out, err = run_cli(["push", "--model_dir", str(model_dir), "--repo_id", "ivt-tests/x"], capsys)
    lines = error_lines(err)
    assert result == 1 and len(lines) == 1 and "Traceback" not in err, err[-3000:]
    assert lines[0].startswith(f"error: could not reach {unreachable}/api/repos/create: "), lines


def _index_build(model: str, tmp_path: Path) -> list[str]:
    """`ivt index build` of the (empty) folder `tmp_path` with `model`: the model is loaded first."""
    return ["index", "build", "--model", model, "--images", str(tmp_path), "--output_dir", str(tmp_path / "index")]


def test_loading_a_model_from_a_failing_hub_is_a_remote_failure_not_bad_input(tmp_path, hub, capsys):
    """A 5xx while resolving a repo id is the Hub's failure (exit 1), not 'model not found' (exit 2)."""
    _answer(hub, "resolve", 500, "the Hub is down")
    _answer(hub, "model_info", 500, "the Hub is down")
    result, out, err = run_cli(_index_build("ivt-tests/some-model", tmp_path), capsys)
    lines = error_lines(err)
    assert result == 1 and len(lines) == 1, err[-3000:]
    assert lines[0].startswith("error: Hub request failed: Server error '500 Internal Server Error' for url "), lines
    assert lines[0].endswith("the Hub is down"), lines


def test_a_repo_the_hub_does_not_have_is_still_bad_input(tmp_path, hub, capsys):
    result, out, err = run_cli(_index_build("ivt-tests/no-such-model", tmp_path), capsys)
    lines = error_lines(err)
    assert result == 2 and len(lines) == 1, err[-3000:]
    assert lines[0].startswith("error: model not found: ivt-tests/no-such-model"), lines


# ---------------------------------------------------------------------------------------------------- train / pretrain


@pytest.mark.parametrize(
    ("command", "argv", "message"),
    [
        (
            "train",
            ["--output_dir", "OUT", "--use_cpu", "true", "--report_to", "none", "--warmup_steps", "-1"],
            "Expected value warmup_steps >= 0",
        ),  # TrainingArguments.__post_init__
        (
            "train",
            ["--output_dir", "OUT", "--use_cpu", "true", "--report_to", "none", "--no_such_flag", "1"],
            "Some specified arguments are not used by the HfArgumentParser: ['--no_such_flag', '1']",
        ),
        (
            "pretrain",
            [*"--dataset_name DATA --output_dir OUT --max_steps 2 --use_cpu true --no_such_flag 1".split()],
            "Some specified arguments are not used by the HfArgumentParser: ['--no_such_flag', '1']",
        ),
    ],
)
def test_a_value_error_while_parsing_training_arguments_is_bad_input(command, argv, message, tmp_path, capsys):
    import argparse

    from ivt_hf.cli.pretrain import run_pretrain
    from ivt_hf.cli.train import run_train
    from ivt_hf.errors import IVTInputError

    argv = [str(tmp_path / value) if value in ("OUT", "DATA") else value for value in argv]
    handler = {"train": run_train, "pretrain": run_pretrain}[command]
    with pytest.raises(IVTInputError) as raised:
        handler(argparse.Namespace(extra=argv))
    assert message in str(raised.value)
    code, _, err = run_cli([command, *argv], capsys)
    assert code == 2 and err.splitlines()[-1].startswith("error: ") and message in err.splitlines()[-1], err[-3000:]


# ---------------------------------------------------------------------------------------------------- a full disk


def test_convert_onto_a_full_disk_is_one_line_naming_the_output_and_exit_3(small_tmpfs, capsys):
    """`save_pretrained` writes the weights with safetensors, whose `SafetensorError` ("... (os error 28)") is no
    `OSError` and names no file: the line names the output folder, and nothing is left there."""
    disk = small_tmpfs("300k")  # the converted weights are larger
    argv = ["convert", "--checkpoint_path", str(FIXTURES / "ivt_tiny_s16.pth"), "--num_attention_heads", "2"]
    code, out, err = run_cli([*argv, "--output_dir", str(disk / "out")], capsys)
    assert (code, _errors(err)) == (
        3,
        [f"error: no space left on device: {disk / 'out'} (free some space or choose another folder)"],
    ), err[-3000:]
    assert "Traceback" not in err and sorted(path.name for path in disk.iterdir()) == [".out.lock"]


def _build_index_argv(images: Path, output: Path, *extra: str) -> list[str]:
    return [*f"index build --model {images.parent / 'model'} --images {images} --output_dir {output}".split(), *extra]


@pytest.fixture(scope="module")
def gallery(tmp_path_factory) -> Path:
    """Three images (and the tiny model beside them, in `../model`)."""
    from PIL import Image

    root = tmp_path_factory.mktemp("gallery")
    save_tiny_model_folder(root / "model")
    (root / "images").mkdir()
    for number in range(3):
        Image.new("RGB", (32, 64), (80 * number, 10, 200)).save(root / "images" / f"{number}.png")
    return root / "images"


def test_an_index_build_on_a_full_disk_leaves_no_empty_plan_and_the_rerun_builds(gallery, small_tmpfs, capsys):
    """The plan (build.json) is refused by a full disk: one line naming it, no 0-byte plan left behind; once space
    is freed, the same command builds the index (before: a 0-byte build.json, and the rerun a JSONDecodeError)."""
    disk = small_tmpfs("300k")
    fill(disk)
    code, out, err = run_cli(_build_index_argv(gallery, disk / "index"), capsys)
    plan = disk / "index" / "build.json"
    assert (code, _errors(err)) == (
        3,
        [f"error: no space left on device: {plan} (free some space or choose another folder)"],
    ), err[-3000:]
    assert list((disk / "index").iterdir()) == []  # neither a 0-byte plan nor a temporary file
    free(disk)
    code, out, err = run_cli(_build_index_argv(gallery, disk / "index"), capsys)
    assert code == 0 and "indexed 3 images (0 skipped)" in out, err[-3000:]


def test_an_index_build_stopped_by_a_full_disk_between_chunks_resumes(gallery, small_tmpfs, capsys):
    """Room for the plan and a few chunk files (one page each): the chunk that does not fit is refused naming it, the
    chunks written before are whole, and the rerun after freeing space resumes from them."""
    disk = small_tmpfs("300k")
    fill(disk, leave=4 * 4096)  # the plan and three chunk files: the second chunk's record does not fit
    code, out, err = run_cli(_build_index_argv(gallery, disk / "index", "--chunk_size", "1"), capsys)
    chunks = disk / "index" / "chunks"
    assert code == 3, err[-3000:]
    assert _errors(err) == [
        f"error: no space left on device: {chunks / '000001.json'} (free some space or choose another folder)"
    ]
    assert sorted(path.name for path in chunks.iterdir()) == ["000000.json", "000000.safetensors", "000001.safetensors"]
    assert all(path.stat().st_size > 0 for path in chunks.iterdir())
    free(disk)
    code, out, err = run_cli(_build_index_argv(gallery, disk / "index", "--chunk_size", "1"), capsys)
    assert code == 0 and "indexed 3 images (0 skipped)" in out and "1 of 3 chunks from an earlier run" in out, err


def _write_with(writer: str, path: Path) -> None:
    """Write about 800 kB to `path` with a real writer."""
    import torch

    tensors = {"embeddings": torch.ones(200_000)}
    if writer == "torch.save to a path":
        torch.save(tensors, path)
    elif writer == "torch.save to a file":
        with open(path, "wb") as handle:
            torch.save(tensors, handle)
    elif writer == "safetensors":
        from safetensors.torch import save_file

        save_file(tensors, str(path))
    elif writer == "FAISS":
        faiss = pytest.importorskip("faiss")
        index = faiss.IndexFlatIP(64)
        index.add(torch.ones(4000, 64).numpy())
        faiss.write_index(index, str(path))
    elif writer == "JSON":
        path.write_text(json.dumps(list(range(200_000))))
    else:
        from ivt_hf.atomic import atomic_write_json

        atomic_write_json(path, list(range(200_000)))


@pytest.mark.parametrize(
    ("writer", "named"),
    [
        ("torch.save to a path", "output"),  # RuntimeError "unexpected pos ...": the errno is lost in torch
        ("torch.save to a file", "output"),  # RuntimeError, its context the file's OSError (28)
        ("safetensors", "output"),  # SafetensorError "... (os error 28)"
        ("FAISS", "file"),  # RuntimeError "write error in PATH: ... (No space left on device)"
        ("JSON", "output"),  # OSError 28 without a file name
        ("ivt_hf.atomic", "file"),  # OSError 28 naming the file
    ],
)
def test_a_full_disk_at_a_real_writer_is_one_line_naming_the_path_and_exit_3(writer, named, small_tmpfs, capsys):
    """Each writer's own report of the refused write becomes the one line: naming the file when the library names
    it, else the command's output (`--output_dir`)."""
    import argparse

    from ivt_hf.cli import run_guarded

    disk = small_tmpfs("300k")
    output = disk / "out"
    output.mkdir()
    target = output / "written.bin"
    code = run_guarded(lambda args: _write_with(writer, target), argparse.Namespace(output_dir=str(output)))
    line = capsys.readouterr().err
    path = target if named == "file" else output
    assert code == 3, line
    if writer == "torch.save to a path":
        assert line.startswith("error: the write failed ([enforce fail at inline_container.cc"), line
        assert line.endswith(f"the disk is full or refused it: {path} (free some space or choose another folder)\n")
    else:
        assert line == f"error: no space left on device: {path} (free some space or choose another folder)\n"


# ---------------------------------------------------------------------------------------------------- permissions


def test_an_error_raised_while_handling_a_refusal_is_not_that_refusal(tmp_path, capsys):
    """A FileNotFoundError raised in the `except` block of a real PermissionError is a bug of its own: it keeps its
    traceback instead of being reported as "permission denied" (the guard follows `raise ... from`, not the error
    being handled)."""
    from ivt_hf.cli import run_guarded

    secret = tmp_path / "secret"
    secret.write_text("x")
    secret.chmod(0)

    def handle_badly(args):
        try:
            secret.read_text()
        except PermissionError:
            (tmp_path / "missing").stat()  # an unrelated error while handling it

    def wrap(args):
        try:
            secret.read_text()
        except PermissionError as error:
            raise OSError(f"could not load {secret}") from error

    with permissions_enforced():
        with pytest.raises(FileNotFoundError):
            run_guarded(handle_badly, None)
        assert capsys.readouterr().err == ""
        assert run_guarded(wrap, None) == 3  # raised *from* it: the refusal it reports
    assert capsys.readouterr().err == (
        f"error: permission denied: {secret} (check its permissions or choose another folder)\n"
    )


def _readable_files(root: Path, gallery: Path) -> dict[str, Path]:
    """Copies of good inputs, by the name the table uses."""
    import shutil

    from ivt_hf.cli import main

    files = {}
    shutil.copy(FIXTURES / "ivt_tiny_s16.pth", root / "checkpoint.pth")
    files["checkpoint"] = root / "checkpoint.pth"
    shutil.copy(PACKAGED_VOCAB, root / "vocab.txt")
    files["vocab"] = root / "vocab.txt"
    shutil.copytree(gallery.parent / "model", root / "model")
    files["weights"] = root / "model" / "model.safetensors"
    assert (
        main([*f"index build --model {root / 'model'} --images {gallery} --output_dir {root / 'index'}".split()]) == 0
    )
    files["embeddings"] = root / "index" / "embeddings.safetensors"
    shutil.copytree(gallery, root / "images")
    files["image"] = root / "images" / "1.png"
    (root / "recipe.json").write_text("{}")
    files["recipe"] = root / "recipe.json"
    return files


UNREADABLE = {
    "convert: the checkpoint": (
        "checkpoint",
        ["convert", "--checkpoint_path", "{checkpoint}", "--num_attention_heads", "2", "--output_dir", "{out}"],
    ),
    "convert: the vocabulary": (
        "vocab",
        [
            *f"convert --checkpoint_path {FIXTURES / 'ivt_tiny_s16.pth'} --num_attention_heads 2 --vocab_file".split(),
            "{vocab}",
            "--output_dir",
            "{out}",
        ],
    ),
    "search: the model's weights": (
        "weights",
        ["search", "--index", "{root}/index", "--model", "{root}/model", "a man"],
    ),
    "search: the index's embeddings": ("embeddings", ["search", "--index", "{root}/index", "a man"]),
    "index build: an image": (
        "image",
        ["index", "build", "--model", "{gallery}/../model", "--images", "{root}/images", "--output_dir", "{out}"],
    ),
    "train: the recipe": ("recipe", ["train", "{recipe}"]),
}


@pytest.mark.parametrize("name", list(UNREADABLE))
def test_a_file_the_user_may_not_read_is_the_machine_refusing_exit_3(name, gallery, tmp_path, capsys):
    """The kernel refuses the read (mode 000, enforced for root too): one line naming the file and exit 3, not "not a
    checkpoint" (exit 2), a FileNotFoundError or safetensors' "No such file or directory"."""
    files = _readable_files(tmp_path, gallery)
    which, argv = UNREADABLE[name]
    files[which].chmod(0)
    values = {
        **{key: str(path) for key, path in files.items()},
        "root": str(tmp_path),
        "out": str(tmp_path / "out"),
        "gallery": str(gallery),
    }
    argv = [_fill(value, values) for value in argv]
    with permissions_enforced():
        code, out, err = run_cli(argv, capsys)
    assert (code, _errors(err)) == (
        3,
        [f"error: permission denied: {files[which]} (check its permissions or choose another folder)"],
    ), err[-3000:]


# ---------------------------------------------------------------------------------------------------- hostile values


@pytest.fixture(scope="module")
def hostile(gallery, tmp_path_factory) -> dict[str, str]:
    """Good and bad inputs for the table: the tiny model and an index of `gallery`; a model folder whose weights are a
    pickle, one whose safetensors is cut short, one whose tokenizer.json is empty; a JSON list; an empty file; a
    folder."""
    import shutil

    import torch
    from safetensors.torch import load_file

    root = tmp_path_factory.mktemp("hostile")
    model = gallery.parent / "model"
    assert (
        main(["index", "build", "--model", str(model), "--images", str(gallery), "--output_dir", str(root / "index")])
        == 0
    )
    for name in ("pickle_model", "cut_model", "tokenizer_model"):
        shutil.copytree(model, root / name)
    weights = (model / "model.safetensors").read_bytes()
    (root / "pickle_model" / "model.safetensors").unlink()
    torch.save(load_file(model / "model.safetensors"), root / "pickle_model" / "pytorch_model.bin")
    (root / "cut_model" / "model.safetensors").write_bytes(weights[: len(weights) // 2])
    (root / "tokenizer_model" / "tokenizer.json").write_text("")
    (root / "list.json").write_text("[]")
    (root / "empty").write_bytes(b"")
    (root / "folder").mkdir()
    paths = {
        name: str(root / name)
        for name in ("index", "pickle_model", "cut_model", "tokenizer_model", "list.json", "empty", "folder")
    }
    return {
        **paths,
        "model": str(model),
        "images": str(gallery),
        "out": str(root / "out"),
        "missing": str(root / "missing"),
    }


CHECKPOINT = str(FIXTURES / "ivt_tiny_s16.pth")
TRAIN = ["train", "--dataset_name", "{missing}", "--output_dir", "{out}", "--use_cpu", "true", "--report_to", "none"]
PRETRAIN = ["pretrain", "--dataset_name", "{missing}", "--output_dir", "{out}", "--max_steps", "2", "--use_cpu", "true"]
# name -> (argv, the text the one error line holds); every row exits 2. Before: a traceback, a run that went ahead
# (exit 0: a pickle loaded, a negative weight decay trained, an empty vocabulary written), or another message.
HOSTILE = {
    "search: -k 0": (["search", "--index", "{index}", "-k", "0", "a man"], "argument -k: must be >= 1, got 0"),
    "search: --nprobe nan": (
        ["search", "--index", "{index}", "--faiss", "ivf", "--nprobe", "nan", "a man"],
        "argument --nprobe: must be an integer, got 'nan'",
    ),
    "search: --nlist above the gallery": (
        ["search", "--index", "{index}", "--faiss", "ivf", "--nlist", "100", "a man"],
        "--nlist 100 is more centroids than the gallery has images (3)",
    ),
    "search: --show a folder": (
        ["search", "--index", "{index}", "--show", "{folder}", "a man"],
        "argument --show: must be a picture file name ending in .png, got '{folder}'",
    ),
    "search: --show a .txt": (
        ["search", "--index", "{index}", "--show", "{out}.txt", "a man"],
        "argument --show: must be a picture file name ending in .png",
    ),
    "search: weights that are a pickle": (
        ["search", "--index", "{index}", "--model", "{pickle_model}", "a man"],
        "{pickle_model}/pytorch_model.bin: the weights are a pickle, which ivt_hf never loads",
    ),
    "search: weights cut short": (
        ["search", "--index", "{index}", "--model", "{cut_model}", "a man"],
        "{cut_model}/model.safetensors is not a readable safetensors file (Error while deserializing header",
    ),
    "search: an empty tokenizer.json": (
        ["search", "--index", "{index}", "--model", "{tokenizer_model}", "a man"],
        "{tokenizer_model}: its processor files cannot be read (JSONDecodeError",
    ),
    "index build: weights that are a pickle": (
        ["index", "build", "--model", "{pickle_model}", "--images", "{images}", "--output_dir", "{out}"],
        "pytorch_model.bin: the weights are a pickle, which ivt_hf never loads",
    ),
    "index build: --batch_size 0": (
        ["index", "build", "--model", "{model}", "--images", "{images}", "--output_dir", "{out}", "--batch_size", "0"],
        "argument --batch_size/--batch-size: must be >= 1, got 0",
    ),
    "push: weights that are a pickle": (
        ["push", "--model_dir", "{pickle_model}", "--repo_id", "someone/model"],
        "pytorch_model.bin: the weights are a pickle, which ivt_hf never loads",
    ),
    "evaluate: --batch_size 0": (
        ["evaluate", "--model", "{model}", "--dataset_name", "synthpedes", "--batch_size", "0"],
        "argument --batch_size/--batch-size: must be >= 1, got 0",
    ),
    "evaluate: --max_queries 0": (
        ["evaluate", "--model", "{model}", "--dataset_name", "synthpedes", "--max_queries", "0"],
        "argument --max_queries/--max-queries: must be >= 1, got 0",
    ),
    "evaluate: --threads -1": (
        ["evaluate", "--model", "{model}", "--dataset_name", "synthpedes", "--threads", "-1"],
        "argument --threads: must be >= 1, got -1",
    ),
    "evaluate: --num_show 0": (
        ["evaluate", "--model", "{model}", "--dataset_name", "synthpedes", "--num_show", "0"],
        "argument --num_show/--num-show: must be >= 1, got 0",
    ),
    "data prepare: --min_images_per_id 0": (
        ["data", "prepare", "--dataset_name", "{missing}", "--output_dir", "{out}", "--min_images_per_id", "0"],
        "--min_images_per_id must be >= 1, got 0",
    ),
    "data synth: --seed -1": (
        ["data", "synth", "--num_ids", "5", "--seed", "-1", "--output_dir", "{out}"],
        "argument --seed: must be >= 0, got -1",
    ),
    "convert: --vocab_file a folder": (
        ["convert", "--checkpoint_path", CHECKPOINT, "--vocab_file", "{folder}", "--output_dir", "{out}"],
        "vocab file not found: {folder}",
    ),
    "convert: --vocab_file empty": (
        ["convert", "--checkpoint_path", CHECKPOINT, "--vocab_file", "{empty}", "--output_dir", "{out}"],
        "{empty} is not a BERT WordPiece vocabulary: it lacks [PAD], [UNK], [CLS], [SEP], [MASK]",
    ),
    "convert: --image_size 0 0": (
        ["convert", "--checkpoint_path", CHECKPOINT, "--image_size", "0", "0", "--output_dir", "{out}"],
        "argument --image_size/--image-size: must be >= 1, got 0",
    ),
    "app: --max_upload_mb inf": (
        ["app", "--model", "{model}", "--index", "{index}", "--max_upload_mb", "inf"],
        "--max_upload_mb must be a finite number above 0, got inf",
    ),
    "demo: --max_steps 0": (["demo", "--max_steps", "0", "--output_dir", "{out}"], "must be >= 1, got 0"),
    "demo: --time_budget_minutes nan": (
        ["demo", "--time_budget_minutes", "nan", "--output_dir", "{out}"],
        "argument --time_budget_minutes/--time-budget-minutes: must be a finite number above 0, got nan",
    ),
    "demo: --threads -1": (["demo", "--threads", "-1", "--output_dir", "{out}"], "argument --threads: must be >= 1"),
    "train: a negative learning rate": (
        [*TRAIN, "--learning_rate", "-1"],
        "--learning_rate must be a finite number >= 0, got -1.0",
    ),
    "train: a negative weight decay": (
        [*TRAIN, "--weight_decay", "-0.1"],
        "--weight_decay must be a finite number >= 0, got -0.1",
    ),
    "train: lr_scheduler_kwargs the schedule does not take": (
        [*TRAIN, "--lr_scheduler_kwargs", '{"bogus": 1}'],
        "--lr_scheduler_kwargs {'bogus': 1} do not fit --lr_scheduler_type linear: get_linear_schedule_with_warmup() "
        "got an unexpected keyword argument 'bogus'",
    ),
    "train: lr_scheduler_kwargs of the wrong type": (
        [*TRAIN, "--lr_scheduler_type", "cosine_with_restarts", "--lr_scheduler_kwargs", '{"num_cycles": "x"}'],
        "do not fit --lr_scheduler_type cosine_with_restarts: could not convert string to float: 'x'",
    ),
    "train: --adam_beta1 1.5": ([*TRAIN, "--adam_beta1", "1.5"], "--adam_beta1 must be in [0, 1), got 1.5"),
    "train: --seed -1": ([*TRAIN, "--seed", "-1"], "--seed must be from 0 to 2**32 - 1, got -1"),
    "train: --images_per_id 0": ([*TRAIN, "--images_per_id", "0"], "--images_per_id must be >= 1, got 0"),
    "train: --num_train_epochs nan": ([*TRAIN, "--num_train_epochs", "nan"], "--num_train_epochs must be a finite"),
    "train: --max_grad_norm nan": ([*TRAIN, "--max_grad_norm", "nan"], "--max_grad_norm must be >= 0, got nan"),
    "train: --save_steps 0": ([*TRAIN, "--save_steps", "0"], "--save_steps must be above 0"),
    "train: --dataloader_num_workers -1": (
        [*TRAIN, "--dataloader_num_workers", "-1"],
        "--dataloader_num_workers must be >= 0, got -1",
    ),
    "train: --max_text_length 0": ([*TRAIN, "--max_text_length", "0"], "--max_text_length must be >= 2, got 0"),
    "train: --config_path a JSON list": (
        [*TRAIN, "--config_path", "{list.json}"],
        "--config_path {list.json} must hold one JSON object of IVTConfig settings, found list",
    ),
    "train: --config_path empty": ([*TRAIN, "--config_path", "{empty}"], "--config_path {empty} is not valid JSON"),
    "train: --model_name_or_path weights that are a pickle": (
        [*TRAIN, "--model_name_or_path", "{pickle_model}"],
        "{pickle_model}/pytorch_model.bin: the weights are a pickle, which ivt_hf never loads",
    ),
    "pretrain: a negative learning rate": (
        [*PRETRAIN, "--learning_rate", "-1"],
        "--learning_rate must be a finite number >= 0, got -1.0",
    ),
    "pretrain: lr_scheduler_kwargs the schedule does not take": (
        [*PRETRAIN, "--lr_scheduler_kwargs", '{"bogus": 1}'],
        "--lr_scheduler_kwargs {'bogus': 1} do not fit --lr_scheduler_type linear",
    ),
    "pretrain: --mlm_probability 2": ([*PRETRAIN, "--mlm_probability", "2"], "--mlm_probability must be in [0, 1]"),
    "pretrain: --mlm_max_predictions 0": (
        [*PRETRAIN, "--mlm_max_predictions", "0"],
        "--mlm_max_predictions must be >= 1, got 0",
    ),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_a_hostile_value_or_file_is_one_error_line_and_exit_2(name, hostile, capsys):
    argv, expected = HOSTILE[name]
    argv = [_fill(value, hostile) for value in argv]
    try:
        code, out, err = run_cli(argv, capsys)
    except SystemExit as exit_:  # argparse's own refusal of a flag's value
        code, err = exit_.code, capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err[-3000:]
    assert len(_errors(err)) == 1 and _fill(expected, hostile) in _errors(err)[0], err[-3000:]


def _fill(text: str, values: dict[str, str]) -> str:
    """`text` with each `{name}` replaced by `values[name]` (JSON braces stay as they are)."""
    for name, value in values.items():
        text = text.replace("{" + name + "}", value)
    return text


# ---------------------------------------------------------------------------------------------------- one meaning


def test_max_steps_has_one_meaning_in_both_stages(tmp_path, capsys):
    """-1 (the default) trains by epochs, as transformers' TrainingArguments; 0 and other negative values are refused
    by both stages, and pre-training, whose stream has no epochs, refuses -1 too. Both flag helps say so."""
    from ivt_hf.errors import IVTInputError
    from ivt_hf.training.finetuning.arguments import parse_args
    from ivt_hf.training.pretraining import parse_pretraining_args

    common = ["--output_dir", str(tmp_path / "out"), "--use_cpu", "true", "--report_to", "none"]
    assert parse_args([*common])[2].max_steps == -1  # by epochs
    assert parse_args([*common, "--max_steps", "-1"])[2].max_steps == -1
    assert parse_args([*common, "--max_steps", "3"])[2].max_steps == 3
    pretrain = [*common, "--dataset_name", str(tmp_path)]
    assert parse_pretraining_args([*pretrain, "--max_steps", "3"])[2].max_steps == 3
    for steps in ("0", "-2"):
        with pytest.raises(IVTInputError, match=rf"--max_steps must be >= 1, or -1 \(the default\) .*, got {steps}$"):
            parse_args([*common, "--max_steps", steps])
    for steps in ("0", "-1", "-2"):
        with pytest.raises(IVTInputError, match=rf"--max_steps must be >= 1 \(a stream has no length\), got {steps};"):
            parse_pretraining_args([*pretrain, "--max_steps", steps])
    for command, meaning in (
        ("train", "-1 (the default) trains by epochs (--num_train_epochs), as transformers does. 0 and other negative"),
        ("pretrain", "-1 would mean 'by epochs', which a stream of pairs does not have; 0 and negative"),
    ):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert meaning in " ".join(capsys.readouterr().out.split()), command


def test_convert_warns_when_the_tokenizer_outgrows_the_word_embeddings(tmp_path, capsys, caplog):
    """The fixture checkpoint's word-embedding table has 500 rows; the packaged vocabulary has 30522 tokens, so ids
    500 to 30521 have no embedding: `ivt convert` says so naming both sizes (before: the folder was written without
    a word from the converter). A vocabulary of exactly 500 tokens converts without the warning."""
    import logging

    from ivt_hf.conversion.original_checkpoint import convert_to_folder

    argv = ["convert", "--checkpoint_path", str(FIXTURES / "ivt_tiny_s16.pth"), "--num_attention_heads", "2"]
    with caplog.at_level(logging.WARNING, logger="ivt_hf.conversion.original_checkpoint"):
        code, out, err = run_cli([*argv, "--output_dir", str(tmp_path / "big_vocabulary")], capsys)
    assert code == 0, err[-3000:]
    expected = (
        f"{FIXTURES / 'ivt_tiny_s16.pth'}'s word-embedding table has 500 rows but the packaged bert-base-uncased "
        "vocabulary has 30522 tokens: token ids 500 to 30521 have no embedding, and a text that uses one fails in the "
        "model; pass --vocab_file with the vocabulary the checkpoint was trained with"
    )
    assert [record.getMessage() for record in caplog.records] == [expected]
    vocabulary = tmp_path / "vocab500.txt"
    vocabulary.write_text("".join(PACKAGED_VOCAB.read_text().splitlines(keepends=True)[:500]))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="ivt_hf.conversion.original_checkpoint"):
        report = convert_to_folder(
            FIXTURES / "ivt_tiny_s16.pth", tmp_path / "own_vocabulary", num_attention_heads=2, vocab_file=vocabulary
        )
    assert (report.warnings, caplog.records) == ([], [])

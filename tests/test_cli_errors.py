"""The `ivt` error guard (`ivt_hf.cli.run_guarded`): what each kind of failure prints and which exit code it ends in.

    1   a remote failure: the Hub answered with an error (404, 401/403, gated, 5xx) or could not be reached
    2   bad input: the package's typed errors (`ivt_hf.errors.IVTInputError` and its subclasses, `CommandError`)
    3   the machine refused: no space left on the device (or quota), permission denied, read-only file system
    130 interrupted (Ctrl-C)

Each of these is ONE `error: ...` line; anything else (a plain `ValueError` from torch or numpy, say) is a bug and
keeps its traceback. The Hub cases run the real `ivt push` / model loading against the package's Hub-protocol server
on 127.0.0.1 (`tests/helpers/local_hub.py`); the disk case writes to `/dev/full`, whose writes the kernel refuses
with ENOSPC.
"""

from __future__ import annotations

import errno
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.commands import error_lines, run_cli, save_tiny_model_folder
from helpers.launchers import free_port

from ivt_hf.cli import main

TOKEN = "hf_testtoken123"  # fake; only the local server knows it


def _load_local_hub():
    spec = importlib.util.spec_from_file_location("local_hub", Path(__file__).parent / "helpers" / "local_hub.py")
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


def test_disk_full_during_a_real_write_is_one_line_and_exit_3(tmp_path, capsys, monkeypatch):
    def write_to_a_full_disk():
        with open("/dev/full", "w") as full:  # the kernel answers ENOSPC, as on a full disk
            full.write("x" * 65536)

    _fail_stats_with(monkeypatch, write_to_a_full_disk)
    code, out, err = run_cli(["data", "stats", str(tmp_path)], capsys)
    assert (code, err) == (3, "error: no space left on device (free some space or choose another folder)\n")


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


def test_a_read_only_folder_is_one_line_naming_the_path_and_exit_3(tmp_path, capsys, monkeypatch):
    """`ivt data synth` into a folder it may not write: the real chmod, and for root (whom the kernel lets write
    anyway) the same refusal from `os.open` / `os.mkdir`."""
    read_only = tmp_path / "read_only"
    read_only.mkdir()
    read_only.chmod(0o555)
    if os.geteuid() == 0:
        real_open, real_mkdir = os.open, os.mkdir

        def inside(path) -> bool:
            return Path(os.fsdecode(path)).parent == read_only

        def refusing_open(path, flags, *args, **kwargs):
            if flags & os.O_CREAT and inside(path):
                raise PermissionError(errno.EACCES, "Permission denied", os.fsdecode(path))
            return real_open(path, flags, *args, **kwargs)

        def refusing_mkdir(path, *args, **kwargs):
            if inside(path):
                raise PermissionError(errno.EACCES, "Permission denied", os.fsdecode(path))
            return real_mkdir(path, *args, **kwargs)

        monkeypatch.setattr(os, "open", refusing_open)
        monkeypatch.setattr(os, "mkdir", refusing_mkdir)
    try:
        code, out, err = run_cli(
            ["data", "synth", "--num_ids", "13", "--image_size", "32", "16", "--output_dir", str(read_only / "synth")],
            capsys,
        )
    finally:
        read_only.chmod(0o755)
    lines = err.splitlines()
    assert code == 3 and len(lines) == 1, err[-3000:]
    assert lines[0].startswith(f"error: permission denied: {read_only}/"), lines
    assert lines[0].endswith(" (check its permissions or choose another folder)"), lines
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
            [
                "--train_data",
                "DATA",
                "--output_dir",
                "OUT",
                "--max_steps",
                "2",
                "--use_cpu",
                "true",
                "--no_such_flag",
                "1",
            ],
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

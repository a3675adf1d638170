"""The README's commands, as a user copies them: every `ivt` / `scripts/train.py` / launcher command parses, the
files it names from the repository exist, and the quick ones run as written (in a scratch folder that holds the
`outputs/demo/` a demo run leaves, with a small random model instead of a trained one)."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ivt_hf.cli import build_parser
from ivt_hf.training import parse_args
from ivt_hf.training.pretraining import parse_pretraining_args

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
VENV_BIN = Path(sys.executable).parent


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def _shell_commands() -> list[str]:
    """Every command line of the README's bash blocks and `# or: ...` comments, continuation lines joined."""
    commands = []
    for block in _blocks("bash"):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.strip()
            if line.startswith("# or:"):
                line = line.removeprefix("# or:").strip()
            if line and not line.startswith("#"):
                commands.extend(part.strip() for part in line.split("&&"))
    return commands


COMMANDS = _shell_commands()


def _ivt_argv(command: str) -> list[str] | None:
    """The `ivt` argv of a command that runs the ivt CLI (directly, via a launcher, or via scripts/train.py)."""
    words = [word for word in shlex.split(command) if word != "..."]
    if words[0] == ".venv/bin/ivt":
        return words[1:]
    if "-m" in words and "ivt_hf" in words:
        return words[words.index("ivt_hf") + 1 :]
    for script in ("train", "pretrain"):
        if f"scripts/{script}.py" in words:
            return [script, *words[words.index(f"scripts/{script}.py") + 1 :]]
    return None


def test_the_readme_is_for_users():
    assert len(README.encode()) <= 11_500  # about 11 kB: evidence lives in docs/ and benchmarks/README.md
    assert len(COMMANDS) >= 12


@pytest.mark.parametrize("command", [command for command in COMMANDS if _ivt_argv(command) is not None])
def test_every_ivt_command_parses(command):
    argv = _ivt_argv(command)
    args, extra = build_parser().parse_known_args(argv)
    if args.command == "train":
        recipe = extra[0]
        assert (ROOT / recipe).is_file(), recipe
        model_args, data_args, training_args = parse_args([str(ROOT / recipe), *extra[1:]])
        if "--data_dir" in extra:  # "# or: ... train RECIPE ..." stands for the same flags
            assert data_args.data_dir == extra[extra.index("--data_dir") + 1]
    elif args.command == "pretrain":
        recipe = extra[0]
        assert (ROOT / recipe).is_file(), recipe
        _, data_args, _ = parse_pretraining_args([str(ROOT / recipe), *extra[1:]])
        assert data_args.dataset_name == [extra[extra.index("--dataset_name") + 1]]  # pre-training's: a list
    else:
        assert extra == [], extra


def test_repository_paths_in_the_readme_exist():
    named = set(re.findall(r"(?:scripts|src/ivt_hf|docs|benchmarks|experiments|model_cards)/[\w./-]+", README))
    missing = sorted(path.rstrip(".") for path in named if not (ROOT / path.rstrip(".")).exists())
    assert missing == []


@pytest.fixture
def demo_outputs(tmp_path, tiny_config):
    """A folder laid out as `ivt demo` leaves it: `outputs/demo/model` (here a random tiny model) and images."""
    from ivt_hf import IVTModel, IVTProcessor
    from ivt_hf.hub import save_model_folder

    save_model_folder(IVTModel(tiny_config), IVTProcessor.from_config(tiny_config), tmp_path / "outputs/demo/model")
    rng = np.random.default_rng(0)
    images = tmp_path / "outputs/demo/data/synth/imgs"
    images.mkdir(parents=True)
    for index in range(6):
        Image.fromarray(rng.integers(0, 256, (96, 40, 3), dtype=np.uint8)).save(images / f"{index:02d}.jpg")
    return tmp_path


def _run_as_written(command: str, cwd: Path) -> subprocess.CompletedProcess:
    command = command.replace(".venv/bin/", f"{VENV_BIN}/")
    return subprocess.run(command, shell=True, cwd=cwd, capture_output=True, text=True, timeout=300)


def test_using_a_trained_model_and_search_run_as_written(demo_outputs):
    (snippet,) = [block for block in _blocks("python") if "AutoModel" in block]
    snippet += "\nassert outputs.logits_per_text.shape == (1, 2)\nprint('snippet OK')\n"
    result = subprocess.run(
        [sys.executable, "-c", snippet], cwd=demo_outputs, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0 and "snippet OK" in result.stdout, result.stderr[-3000:]

    quick = (
        ".venv/bin/ivt index build",
        ".venv/bin/ivt search",
        ".venv/bin/ivt app --model outputs/demo/model --index outputs/index --export_space",
        ".venv/bin/ivt export onnx",
        ".venv/bin/ivt search --runtime onnx",
    )
    runnable = [command for command in COMMANDS if command.startswith(quick)]
    assert len(runnable) == 5
    outputs = []
    for command in runnable:
        result = _run_as_written(command, demo_outputs)
        assert result.returncode == 0, (command, result.stderr[-3000:])
        outputs.append(result.stdout)
    assert outputs[0].startswith("indexed 6 images (0 skipped) into outputs/index")
    assert (demo_outputs / "results.png").is_file() and (demo_outputs / "outputs/space/app.py").is_file()
    by_torch = _run_as_written(runnable[4].replace(" --runtime onnx --model outputs/onnx", ""), demo_outputs)
    assert by_torch.returncode == 0 and by_torch.stdout == outputs[4]  # the ONNX folder finds the same, same scores
    again = _run_as_written(runnable[0], demo_outputs)  # a second build into the same folder: a clear refusal
    assert again.returncode == 2 and "already holds an index; pass --overwrite" in again.stderr


def test_commands_without_their_data_fail_clearly(demo_outputs):
    """The commands that need a user's own files (a checkpoint, a licensed benchmark) say what is missing."""
    for command in COMMANDS:
        if " convert " in command or " data stats " in command:
            result = _run_as_written(command, demo_outputs)
            assert result.returncode == 2 and result.stderr.startswith("error: "), (command, result.stderr[-2000:])

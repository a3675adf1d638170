"""Galleries of any size: `ivt index build` under 2 real processes (torchrun and accelerate launch) gives the index a
single process gives, an interrupted build resumes from its chunks (with any number of processes), and an index
refuses to be searched with a model other than the one that made it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.commands import save_tiny_model_folder
from helpers.launchers import ENV, launcher
from PIL import Image

from ivt_hf import IVTModel, IVTProcessor
from ivt_hf.cli import main
from ivt_hf.search import GalleryIndex, ModelMismatchError

HELPER = Path(__file__).parents[1] / "helpers" / "index_kill_worker.py"
NUM_IMAGES, CHUNK = 23, 4  # 6 chunks, the last one short


def _model(folder: Path, seed: int) -> Path:
    return save_tiny_model_folder(folder, seed=seed, num_hidden_layers=2)


@pytest.fixture(scope="module")
def setting(tmp_path_factory):
    root = tmp_path_factory.mktemp("index_building")
    rng = np.random.default_rng(0)
    gallery = root / "gallery"
    for number in range(NUM_IMAGES):
        path = gallery / f"cam{number % 3}" / f"{number:03d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (80, 40, 3), dtype=np.uint8)).save(path)
    (gallery / "cam1" / "010.png").write_bytes(b"not a png")  # one unreadable file: skipped and listed
    model = _model(root / "model", seed=0)
    reference = root / "one_process"
    assert (
        main(
            [
                *f"index build --model {model} --images {gallery} --output_dir {reference} --chunk_size".split(),
                *f"{CHUNK} --on_invalid skip --batch_size 3".split(),
            ]
        )
        == 0
    )
    return {"root": root, "gallery": gallery, "model": model, "reference": GalleryIndex.load(reference)}


def _assert_same_index(folder: Path, reference: GalleryIndex) -> None:
    index = GalleryIndex.load(folder)
    assert index.paths == reference.paths and len(index) == NUM_IMAGES - 1
    torch.testing.assert_close(index.embeddings, reference.embeddings, rtol=0, atol=1e-6)
    assert index.skipped == reference.skipped and [item["path"][-12:] for item in index.skipped] == ["cam1/010.png"]
    assert index.manifest["model_fingerprint"] == reference.manifest["model_fingerprint"]
    # no chunks left; the marker says ivt_hf wrote the folder (`--overwrite` may replace it)
    expected = [".ivt_hf-output.json", "embeddings.safetensors", "manifest.json"]
    assert sorted(path.name for path in folder.iterdir()) == expected


def _build_flags(setting, output: Path) -> list[str]:
    """`ivt index build` of the setting's gallery into `output`, in chunks of CHUNK, skipping the broken image."""
    where = ["--model", str(setting["model"]), "--images", str(setting["gallery"]), "--output_dir", str(output)]
    return ["index", "build", *where, "--chunk_size", str(CHUNK), "--on_invalid", "skip"]


@pytest.mark.parametrize("launcher_name", ["torchrun", pytest.param("accelerate", marks=pytest.mark.compat)])
def test_two_processes_build_the_one_process_index(setting, launcher_name, tmp_path):
    output = tmp_path / "index"
    command = [*launcher(launcher_name), "-m", "ivt_hf", *_build_flags(setting, output)]
    result = subprocess.run(command, capture_output=True, text=True, env=ENV, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    _assert_same_index(output, setting["reference"])
    summaries = [line for line in result.stdout.splitlines() if line.startswith("indexed ")]
    assert summaries == [
        f"indexed {NUM_IMAGES - 1} images (1 skipped) into {output} in "
        f"{summaries[0].split(' in ')[-1].split(' s ')[0]} s on 2 process(es)"
    ]


def test_a_killed_build_resumes_from_its_chunks_with_any_number_of_processes(setting, tmp_path, capsys):
    output = tmp_path / "index"
    flags = _build_flags(setting, output)
    # two processes; each dies hard when it starts its second chunk: chunks 0 and 1 are written, 2 to 5 are not
    killed = subprocess.run(
        [*launcher("torchrun"), str(HELPER), "2", *flags], capture_output=True, text=True, env=ENV, timeout=600
    )
    assert killed.returncode != 0
    left = sorted(path.name for path in (output / "chunks").iterdir() if not path.name.startswith("."))
    assert left == ["000000.json", "000000.safetensors", "000001.json", "000001.safetensors"]
    assert not (output / "manifest.json").exists()

    # a different model cannot finish it; the same model, in one process, encodes only the 4 missing chunks
    other = _model(tmp_path / "other_model", seed=1)
    assert main([*flags[:3], str(other), *flags[4:]]) == 2
    assert "holds an unfinished build of another index (different model_fingerprint)" in capsys.readouterr().err
    assert main(flags) == 0
    assert "2 of 6 chunks from an earlier run" in capsys.readouterr().out
    _assert_same_index(output, setting["reference"])

    # a second build into the finished folder is refused, and replaces it when asked to
    assert main(flags) == 2
    assert "already holds an index; pass --overwrite" in capsys.readouterr().err
    assert main([*flags, "--overwrite"]) == 0
    _assert_same_index(output, setting["reference"])

    # the index knows its model: searching it with another one is a clear error
    index = GalleryIndex.load(output)
    other_model, other_processor = IVTModel.from_pretrained(other), IVTProcessor.from_pretrained(other)
    with pytest.raises(ModelMismatchError, match="the index was built by another model"):
        index.search("a man in a red coat", other_model, other_processor)
    assert main(["search", "--index", str(output), "--model", str(other), "a man"]) == 2
    error = capsys.readouterr().err
    assert error.count("error: ") == 1 and "built by another model" in error
    manifest = json.loads((output / "manifest.json").read_text())
    assert manifest["model"] == str(setting["model"].resolve())


def test_a_model_that_passed_the_check_is_not_hashed_again(setting, monkeypatch):
    """The page searches once per query: the model's fingerprint (a hash of every weight) is computed once."""
    import ivt_hf.search.index as index_module

    calls = []
    real = index_module.model_fingerprint
    monkeypatch.setattr(index_module, "model_fingerprint", lambda model: calls.append(model) or real(model))
    index = GalleryIndex.load(setting["root"] / "one_process")
    model, processor = IVTModel.from_pretrained(setting["model"]), IVTProcessor.from_pretrained(setting["model"])
    for query in ("a man", "a woman", "a child"):
        assert len(index.search(query, model, processor, k=2)[0]) == 2
    assert len(calls) == 1
    other_copy = IVTModel.from_pretrained(setting["model"])  # another object: checked again (and passes)
    index.search("a man", other_copy, processor, k=2)
    assert len(calls) == 2

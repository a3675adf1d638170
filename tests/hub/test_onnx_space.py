"""`ivt app --export_space --runtime onnx`: a Space whose requirements hold onnxruntime and no torch, with ivt_hf's
source beside `app.py`; its page, run from the Space folder where torch cannot be imported, shows what the PyTorch
page shows (same top-10 and scores within 1e-5, for descriptions and an example crop). The slow test installs the
Space's requirements into a fresh virtual environment and serves it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from helpers.commands import error_lines, run_cli, save_tiny_model_folder
from helpers.launchers import free_port
from helpers.space_search import page_results

pytest.importorskip("optimum.exporters.onnx", reason="the onnx extra is not installed")
pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
pytest.importorskip("gradio", reason="the app extra is not installed")

ROOT = Path(__file__).resolve().parents[2]
HELPER = ROOT / "tests" / "helpers" / "space_search.py"
QUERIES = [
    "a man in a red coat",
    "a woman with a black backpack and blue jeans",
    "a person in a white top with a yellow bag",
    "an old man walking with a stick",
]
CROP = "07.png"
# what the page needs without torch (ivt_hf.hub.space.ONNX_SPACE_PACKAGES), gradio and onnxruntime: nothing else
ONNX_SPACE_NAMES = [
    "transformers",
    "safetensors",
    "tokenizers",
    "huggingface-hub",
    "numpy",
    "pillow",
    "tqdm",
    "gradio",
    "onnxruntime",
]


@pytest.fixture(scope="module")
def onnx_space(tmp_path_factory):
    """A tiny model folder, its ONNX export, 24 crops indexed by the PyTorch model, and the Space exported for
    onnxruntime from the export and that index."""
    from PIL import Image

    from ivt_hf.onnx.export import export_onnx

    root = tmp_path_factory.mktemp("onnx_space")
    save_tiny_model_folder(root / "model")
    export_onnx(root / "model", root / "onnx")
    rng = np.random.default_rng(1)
    (root / "images").mkdir()
    for number in range(24):
        Image.fromarray(rng.integers(0, 256, (96, 48, 3), dtype=np.uint8)).save(root / "images" / f"{number:02d}.png")
    from ivt_hf.cli import main

    build = f"index build --model {root / 'model'} --images {root / 'images'} --output_dir {root / 'index'}"
    assert main(build.split()) == 0
    space = f"app --runtime onnx --model {root / 'onnx'} --index {root / 'index'} --export_space {root / 'space'}"
    assert main(space.split()) == 0
    return root


def torch_page_results(root: Path, cache: Path) -> dict:
    """The PyTorch page's results on the model folder and the index it built (the reference)."""
    from ivt_hf.app import load_page

    page = load_page(str(root / "model"), root / "index", cache_root=cache, runtime="torch")
    return page_results(page, QUERIES, str(root / "images" / CROP))


def run_in_space(python: str | Path, space: Path, cache: Path, *extra: str) -> dict:
    """The helper script's report, run by `python` inside the Space folder as the Space runs (no PYTHONPATH)."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    crop = str(space / "index" / "gallery" / CROP)
    result = subprocess.run(
        [str(python), str(HELPER), json.dumps(QUERIES), crop, str(cache), *extra],
        cwd=space,
        env={**env, "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def assert_same_results(found: dict, reference: dict) -> None:
    """Same messages and shown captions, same top-10 paths in order, scores within 1e-5, for every query."""
    assert list(found) == list(reference) == [*QUERIES, "crop"]
    for query, expected in reference.items():
        got = found[query]
        assert got["message"] == expected["message"] and got["shown"] == expected["shown"], query
        assert [path for path, _ in got["hits"]] == [path for path, _ in expected["hits"]], query
        assert len(got["hits"]) == 10
        differences = [abs(score - other) for (_, score), (_, other) in zip(got["hits"], expected["hits"])]
        assert max(differences) < 1e-5, (query, differences)


def test_the_onnx_space_has_no_torch_and_its_page_searches_as_the_torch_page(onnx_space, tmp_path):
    space = onnx_space / "space"
    assert sorted(path.name for path in space.iterdir() if not path.name.startswith(".")) == [
        "README.md",
        "app.py",
        "index",
        "ivt_hf",
        "model",
        "requirements.txt",
    ]
    requirements = (space / "requirements.txt").read_text().splitlines()
    names = [line.split("<")[0].split(">")[0].split("=")[0] for line in requirements]
    assert names == ONNX_SPACE_NAMES, requirements  # no torch, datasets, accelerate, evaluate, optimum, onnx, wheel
    assert 'runtime="onnx")' in (space / "app.py").read_text() and (space / "model" / "ivt_onnx.json").is_file()
    assert (space / "ivt_hf" / "app.py").read_bytes() == (ROOT / "src" / "ivt_hf" / "app.py").read_bytes()
    assert not list((space / "ivt_hf").rglob("__pycache__"))
    assert "without torch" in (space / "README.md").read_text()

    report = run_in_space(sys.executable, space, tmp_path / "space-cache", "--block_torch")
    assert report["ivt_hf"] == str(space / "ivt_hf" / "__init__.py")  # the Space's own copy, not this tree's
    assert (report["torch_findable"], report["torch_modules"], report["embeddings"]) == (False, [], "numpy")
    reference = torch_page_results(onnx_space, tmp_path / "torch-cache")
    assert_same_results(report["results"], reference)


def test_an_onnx_space_export_refuses_a_pytorch_folder_and_a_package(onnx_space, tmp_path, capsys):
    """The model must be an ONNX export, checked before anything is written; `--package` (a published ivt_hf, which
    requires torch) does not apply. Each is one error line."""
    base = f"app --runtime onnx --index {onnx_space / 'index'} --export_space {tmp_path / 's'}"
    code, _, err = run_cli([*base.split(), "--model", str(onnx_space / "model")], capsys)
    assert code == 2 and error_lines(err) == [
        f"error: {onnx_space / 'model'} is not an ONNX export of ivt_hf: it has no ivt_onnx.json (a PyTorch model "
        "folder: pass --runtime torch, or export it with ivt export onnx)"
    ]
    code, _, err = run_cli([*base.split(), "--model", str(onnx_space / "onnx"), "--package", "ivt_hf"], capsys)
    assert code == 2 and error_lines(err) == [
        "error: a Space for onnxruntime ships an ONNX folder (ivt export onnx) and ivt_hf's source, not a package "
        "requirement (--package; a published ivt_hf requires torch)"
    ]
    assert not (tmp_path / "s").exists()


@pytest.mark.slow
def test_the_onnx_space_installs_into_a_fresh_environment_and_serves(onnx_space, tmp_path):
    """`pip install -r requirements.txt` (the versions of constraints.txt) in a new virtual environment: no torch is
    installed, the page's search gives the PyTorch page's results, and `python app.py` serves the page. A few
    minutes (about 600 MB of packages, from the local wheel cache or the package index)."""
    space, venv = onnx_space / "space", tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    install = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    result = subprocess.run(
        [*install, "-r", "requirements.txt", "-c", str(ROOT / "constraints.txt")],
        cwd=space,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    listed = subprocess.run([str(python), "-m", "pip", "list", "--format", "json"], capture_output=True, text=True)
    installed = {entry["name"].lower() for entry in json.loads(listed.stdout)}
    assert "onnxruntime" in installed and not installed & {"torch", "datasets", "accelerate", "evaluate", "ivt-hf"}

    report = run_in_space(python, space, tmp_path / "space-cache")  # nothing blocked: torch is not there
    assert report["ivt_hf"] == str(space / "ivt_hf" / "__init__.py")
    assert (report["torch_findable"], report["embeddings"]) == (False, "numpy")
    assert_same_results(report["results"], torch_page_results(onnx_space, tmp_path / "torch-cache"))

    port = free_port()
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env.update(PORT=str(port), GRADIO_TEMP_DIR=str(tmp_path / "gradio"), HF_HUB_OFFLINE="1")
    process = subprocess.Popen(
        [str(python), "app.py"], cwd=space, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline, html = time.monotonic() + 180, ""
        while time.monotonic() < deadline and process.poll() is None and "IVT person search" not in html:
            try:
                html = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read().decode()
            except OSError:
                time.sleep(0.5)
        assert "IVT person search" in html, process.stdout.read() if process.poll() is not None else html[:500]
        from gradio_client import Client

        gallery, message = Client(f"http://127.0.0.1:{port}/", verbose=False).predict(
            QUERIES[0], 10, api_name="/search_text"
        )
        assert message == f"Top 10 of 24 images for: {QUERIES[0]}" and len(gallery) == 10
    finally:
        process.terminate()
        process.wait(timeout=30)

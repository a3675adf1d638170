"""`ivt export onnx` and `--runtime onnx` through the command: the same top-10 as the PyTorch folder it came from,
indexes that move between runtimes but refuse another model, and bad input as one error line naming what is wrong."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("optimum.exporters.onnx", reason="the onnx extra is not installed")
pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")

from helpers.commands import error_lines, run_cli, save_tiny_model_folder  # noqa: E402

QUERIES = ["a man in a red coat", "a woman with a black backpack and blue jeans", "a person"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny model folder, its fp32 ONNX export, and a gallery of 24 crops."""
    from PIL import Image

    from ivt_hf.onnx.export import export_onnx

    root = tmp_path_factory.mktemp("onnx_cli")
    model = save_tiny_model_folder(root / "model")
    export_onnx(model, root / "onnx")
    rng = np.random.default_rng(0)
    (root / "images").mkdir()
    for index in range(24):
        pixels = rng.integers(0, 256, (96, 48, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / "images" / f"{index:02d}.png")
    return root


def search_hits(index: Path, runtime_args: str, capsys) -> list[list[str]]:
    code, out, err = run_cli(["search", "--index", str(index), *runtime_args.split(), *QUERIES, "-k", "10"], capsys)
    assert code == 0, err
    blocks = out.strip().split("\n\n")
    return [[line.split()[-1] for line in block.splitlines()[1:]] for block in blocks]


@pytest.mark.compat
def test_an_exported_folder_gives_search_the_same_top10(exported, capsys):
    """Indexes built by each runtime hold the same embeddings; every query gets the same 10 images in the same order,
    whichever runtime built the index and whichever searches it."""
    from ivt_hf.search import GalleryIndex

    for runtime, model in (("torch", "model"), ("onnx", "onnx")):
        argv = f"index build --runtime {runtime} --model {exported / model} --images {exported / 'images'}"
        code, _, err = run_cli([*argv.split(), "--output_dir", str(exported / f"index-{runtime}")], capsys)
        assert code == 0, err
    by_torch, by_onnx = (GalleryIndex.load(exported / f"index-{runtime}") for runtime in ("torch", "onnx"))
    assert by_torch.paths == by_onnx.paths and len(by_torch) == 24
    assert float((by_torch.embeddings - by_onnx.embeddings).abs().max()) < 1e-5
    assert by_torch.manifest["model_fingerprint"] == by_onnx.manifest["model_fingerprint"]
    reference = search_hits(exported / "index-torch", "", capsys)
    assert len(reference) == 3 and all(len(hits) == 10 for hits in reference)
    onnx = f"--runtime onnx --model {exported / 'onnx'}"
    assert search_hits(exported / "index-onnx", "--runtime onnx", capsys) == reference
    assert search_hits(exported / "index-torch", onnx, capsys) == reference
    assert search_hits(exported / "index-onnx", f"--model {exported / 'model'}", capsys) == reference


def test_an_index_built_through_onnx_refuses_another_model(exported, tmp_path, capsys):
    import torch

    from ivt_hf import IVTConfig, IVTModel, IVTProcessor
    from ivt_hf.hub import save_model_folder

    torch.manual_seed(1)
    config = IVTConfig.from_preset("micro", num_hidden_layers=1, patch_stride=16)
    other = save_model_folder(IVTModel(config), IVTProcessor.from_config(config), tmp_path / "other")
    argv = f"index build --runtime onnx --model {exported / 'onnx'} --images {exported / 'images'}"
    assert run_cli([*argv.split(), "--output_dir", str(tmp_path / "index")], capsys)[0] == 0
    code, _, err = run_cli(["search", "--index", str(tmp_path / "index"), "--model", str(other), "a man"], capsys)
    assert code == 2 and len(error_lines(err)) == 1
    assert "the index was built by another model" in err


def test_onnx_embeddings_of_int8_stay_close_and_keep_the_fingerprint(exported, tmp_path):
    from ivt_hf.evaluation.encoding import encode_texts, model_fingerprint
    from ivt_hf.hub.folder import load_model_and_processor
    from ivt_hf.onnx.export import export_onnx
    from ivt_hf.onnx.runtime import load_onnx_model_and_processor

    export_onnx(exported / "model", tmp_path / "int8", dtype="int8")
    manifest = json.loads((tmp_path / "int8" / "ivt_onnx.json").read_text())
    assert manifest["dtype"] == "int8"
    encoder, processor = load_onnx_model_and_processor(tmp_path / "int8")
    model, _ = load_model_and_processor(exported / "model")
    assert model_fingerprint(encoder) == model_fingerprint(model) == manifest["model_fingerprint"]
    cosine = (encode_texts(encoder, processor, QUERIES) * encode_texts(model, processor, QUERIES)).sum(-1)
    assert float(cosine.min()) > 0.99


def expect_one_error(argv: list[str], capsys, *needles: str) -> str:
    code, _, err = run_cli(argv, capsys)
    lines = error_lines(err)
    assert code == 2 and len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def test_exporting_a_pretraining_or_foreign_folder_is_one_error_naming_it(tmp_path, capsys):
    import torch

    from ivt_hf import IVTConfig, IVTForPreTraining, IVTProcessor
    from ivt_hf.hub import save_model_folder

    torch.manual_seed(0)
    config = IVTConfig.from_preset("micro", fusion_num_hidden_layers=1)
    save_model_folder(IVTForPreTraining(config), IVTProcessor.from_config(config), tmp_path / "pretraining")
    out = ["--output_dir", str(tmp_path / "out")]
    expect_one_error(["export", "onnx", "--model", str(tmp_path / "pretraining"), *out], capsys, "pre-training")
    (tmp_path / "bert").mkdir()
    (tmp_path / "bert" / "config.json").write_text(json.dumps({"model_type": "bert"}))
    expect_one_error(["export", "onnx", "--model", str(tmp_path / "bert"), *out], capsys, "bert", "not an IVT model")
    (tmp_path / "empty").mkdir()
    expect_one_error(["export", "onnx", "--model", str(tmp_path / "empty"), *out], capsys, str(tmp_path / "empty"))
    assert not (tmp_path / "out").exists()


def test_a_missing_onnxruntime_names_the_extra(exported, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if not installed: find_spec finds nothing
    extra = "pip install 'ivt_hf[onnx]'"
    argv = ["export", "onnx", "--model", str(exported / "model"), "--output_dir", str(tmp_path / "out")]
    expect_one_error(argv, capsys, "onnx extra", extra)
    search = ["search", "--index", str(tmp_path), "--runtime", "onnx", "--model", str(exported / "onnx"), "a man"]
    index_args = f"index build --runtime onnx --model {exported / 'onnx'} --images {exported / 'images'}".split()
    expect_one_error([*index_args, "--output_dir", str(tmp_path / "index")], capsys, extra)
    assert "not a gallery index" in expect_one_error(search, capsys)  # the index is read first
    monkeypatch.setitem(sys.modules, "optimum", None)
    monkeypatch.delitem(sys.modules, "onnxruntime")
    expect_one_error(argv, capsys, "optimum.exporters.onnx", extra)


def test_a_runtime_that_does_not_fit_the_folder_is_one_error(exported, tmp_path, capsys):
    from ivt_hf.onnx.export import export_onnx

    images, out = ["--images", str(exported / "images")], ["--output_dir", str(tmp_path / "index")]
    line = expect_one_error(["index", "build", "--model", str(exported / "onnx"), *images, *out], capsys)
    assert line == f"error: {exported / 'onnx'} is an ONNX export (ivt export onnx): pass --runtime onnx to use it"
    argv = ["index", "build", "--runtime", "onnx", "--model", str(exported / "model"), *images, *out]
    expect_one_error(argv, capsys, str(exported / "model"), "not an ONNX export", "--runtime torch")
    argv = ["index", "build", "--runtime", "onnx", "--model", str(exported / "onnx"), "--dtype", "int8", *images, *out]
    expect_one_error(argv, capsys, "--dtype int8 is for the PyTorch runtime", "ivt export onnx --dtype")
    export_onnx(exported / "model", tmp_path / "fp16", dtype="fp16")
    argv = ["index", "build", "--runtime", "onnx", "--model", str(tmp_path / "fp16"), *images, *out]
    expect_one_error(argv, capsys, str(tmp_path / "fp16"), "CUDAExecutionProvider", "fp16 export runs on a GPU")
    assert not (tmp_path / "index").exists()


@pytest.mark.parametrize("damage", ["truncated", "corrupted", "unloadable"])
def test_a_damaged_onnx_file_is_one_error_naming_it(exported, tmp_path, damage, capsys):
    folder = Path(shutil.copytree(exported / "onnx", tmp_path / "onnx"))
    target = folder / "text_encoder.onnx"
    data = target.read_bytes()
    if damage == "truncated":
        target.write_bytes(data[: len(data) // 2])
        needles = ("is 1", "truncated")
    elif damage == "corrupted":  # same size, some bytes changed
        target.write_bytes(data[:1000] + bytes(255 - byte for byte in data[1000:1100]) + data[1100:])
        needles = ("SHA-256 differs", "corrupted")
    else:  # not ONNX at all, and a manifest that vouches for it: onnxruntime's refusal, naming the file
        from ivt_hf.onnx.runtime import ONNX_MANIFEST, _sha256

        target.write_bytes(b"not an onnx model\n" * 100)
        manifest = json.loads((folder / ONNX_MANIFEST).read_text())
        manifest["files"]["text_encoder.onnx"] = {"bytes": target.stat().st_size, "sha256": _sha256(target)}
        (folder / ONNX_MANIFEST).write_text(json.dumps(manifest))
        needles = ("is not a loadable ONNX model",)
    argv = f"index build --runtime onnx --model {folder} --images {exported / 'images'}".split()
    line = expect_one_error([*argv, "--output_dir", str(tmp_path / "index")], capsys, str(target), *needles)
    assert "Traceback" not in line


def test_evaluate_gives_the_same_metrics_through_onnx(exported, tmp_path, capsys):
    """`ivt evaluate --runtime onnx` on a folder of your own data: the PyTorch folder's metrics, to 1e-4 points."""
    data = tmp_path / "data"
    data.mkdir()
    rows = []
    for index, image in enumerate(sorted((exported / "images").glob("*.png"))[:12]):
        shutil.copy(image, data / image.name)
        caption = f"a person in a {['red', 'blue', 'green'][index % 3]} coat number {index}"
        rows.append({"file_name": image.name, "person_id": index // 2, "caption": caption, "split": "test"})
    (data / "metadata.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    metrics = {}
    for runtime, model in (("torch", "model"), ("onnx", "onnx")):
        output = tmp_path / f"eval-{runtime}.json"
        argv = f"evaluate --runtime {runtime} --model {exported / model} --dataset_name {data} --output {output}"
        code, _, err = run_cli(argv.split(), capsys)
        assert code == 0, err
        metrics[runtime] = json.loads(output.read_text())["metrics"]
    assert metrics["torch"].keys() == metrics["onnx"].keys()
    assert all(abs(metrics["torch"][key] - metrics["onnx"][key]) < 1e-4 for key in metrics["torch"]), metrics


def test_the_search_page_runs_on_an_onnx_folder(exported, tmp_path, capsys):
    """`ivt app --runtime onnx`'s page (`load_page`, no browser): the same results as on the PyTorch folder, for a
    description and for an example crop (the Space for onnxruntime: tests/hub/test_onnx_space.py)."""
    from ivt_hf.app import load_page

    argv = f"index build --model {exported / 'model'} --images {exported / 'images'} --output_dir {tmp_path / 'i'}"
    assert run_cli(argv.split(), capsys)[0] == 0
    pages = {
        runtime: load_page(str(exported / model), tmp_path / "i", cache_root=tmp_path / runtime, runtime=runtime)
        for runtime, model in (("torch", "model"), ("onnx", "onnx"))
    }
    crop = str(exported / "images" / "03.png")
    found = {
        runtime: ([caption for _, caption in page.search_text(QUERIES[0], 5)[0]], page.search_image(crop, 5)[0])
        for runtime, page in pages.items()
    }
    assert len(found["torch"][0]) == 5 and found["torch"][0] == found["onnx"][0]
    assert [caption for _, caption in found["torch"][1]] == [caption for _, caption in found["onnx"][1]]


@pytest.mark.slow
def test_optimum_cli_cannot_make_the_folder(exported, tmp_path):
    """What the README says of `optimum-cli export onnx`: even with the model's code trusted, optimum's CLI stops at
    IVT's model type (it exports the types its TasksManager knows; a package has no hook to add one)."""
    command = [str(Path(sys.executable).parent / "optimum-cli"), "export", "onnx", "--model", str(exported / "model")]
    command += ["--task", "feature-extraction", "--trust-remote-code", str(tmp_path / "out")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode != 0
    assert "Trying to export a ivt model, that is a custom or unsupported architecture" in result.stderr
    assert not list(tmp_path.rglob("*.onnx"))


def test_a_hub_repo_id_exports_like_its_folder(exported, tmp_path):
    """`--model ORG/NAME`: the repo is downloaded (a Hub-protocol server on 127.0.0.1, `tests/helpers/local_hub.py`)
    and exported like the folder it was pushed from: the same fingerprint and the same image encoder bytes."""
    import importlib.util
    import os

    spec = importlib.util.spec_from_file_location("local_hub", Path(__file__).parents[1] / "helpers" / "local_hub.py")
    local_hub = importlib.util.module_from_spec(spec)
    sys.modules["local_hub"] = local_hub  # dataclasses look their module up by name
    spec.loader.exec_module(local_hub)
    files = {path.name: path.read_bytes() for path in (exported / "model").iterdir() if path.is_file()}
    with local_hub.LocalHub(token="hf_test") as hub:
        hub.seed_repo("someone/ivt-tiny", files)
        env = os.environ | {"HF_ENDPOINT": hub.url, "HF_HUB_DISABLE_XET": "1", "HF_HOME": str(tmp_path / "home")}
        command = [sys.executable, "-m", "ivt_hf", "export", "onnx", "--model", "someone/ivt-tiny"]
        result = subprocess.run(
            [*command, "--output_dir", str(tmp_path / "onnx")], env=env, capture_output=True, text=True, timeout=600
        )
    assert result.returncode == 0, result.stderr[-3000:]
    manifest, local = (
        json.loads((folder / "ivt_onnx.json").read_text()) for folder in (tmp_path / "onnx", exported / "onnx")
    )
    assert manifest["model"] == "someone/ivt-tiny"
    assert manifest["model_fingerprint"] == local["model_fingerprint"]
    assert manifest["files"]["image_encoder.onnx"] == local["files"]["image_encoder.onnx"]

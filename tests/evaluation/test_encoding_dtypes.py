"""Encoding precision (`--dtype`): bfloat16 and int8 dynamic quantisation give embeddings close to float32, keep the
model's fingerprint (an index encoded in int8 is searched with the float32 model), and the impossible ones say why."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from ivt_hf import IVTModel, IVTProcessor
from ivt_hf.cli import DTYPE_CHOICES
from ivt_hf.cli import main as ivt
from ivt_hf.evaluation.encoding import DTYPES, encode_images, encode_texts, model_fingerprint, prepare_for_inference
from ivt_hf.hub import save_model_folder
from ivt_hf.search import GalleryIndex


@pytest.fixture
def model_and_inputs(tiny_config):
    torch.manual_seed(0)
    model = IVTModel(tiny_config).eval()
    processor = IVTProcessor.from_config(tiny_config)
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (80, 40, 3), dtype=np.uint8)) for _ in range(6)]
    texts = ["a man in a red coat", "a woman with a black bag and white shoes", "a child in a yellow hat"]
    return model, processor, images, texts


def test_bfloat16_and_int8_embeddings_stay_close_to_float32_and_keep_the_fingerprint(model_and_inputs):
    model, processor, images, texts = model_and_inputs
    reference_images = encode_images(model, processor, images, progress=False)
    reference_texts = encode_texts(model, processor, texts, progress=False)
    fingerprint = model_fingerprint(model)
    assert prepare_for_inference(model, "float32") is model
    for dtype, least_cosine in (("bfloat16", 0.99), ("int8", 0.97)):
        prepared = prepare_for_inference(model, dtype)
        assert prepared is not model and model_fingerprint(prepared) == fingerprint
        image_embeddings = encode_images(prepared, processor, images, progress=False)
        text_embeddings = encode_texts(prepared, processor, texts, progress=False)
        assert image_embeddings.dtype == torch.float32  # normalised float32 out, whatever the precision inside
        assert (image_embeddings * reference_images).sum(1).min() > least_cosine, dtype
        assert (text_embeddings * reference_texts).sum(1).min() > least_cosine, dtype
    quantised = prepare_for_inference(model, "int8")
    assert any(type(module).__module__.startswith("torch.ao.nn.quantized.dynamic") for module in quantised.modules())
    assert next(model.parameters()).dtype == torch.float32  # the original is left as it was


def test_impossible_dtypes_are_clear_errors(model_and_inputs):
    model = model_and_inputs[0]
    assert DTYPE_CHOICES == DTYPES  # the CLI's spelling of the list (kept apart so `ivt --help` skips torch)
    with pytest.raises(ValueError, match="float16 encoding needs a GPU"):
        prepare_for_inference(model, "float16")
    with pytest.raises(ValueError, match="dtype must be one of float32, bfloat16, float16, int8"):
        prepare_for_inference(model, "fp8")


def test_an_int8_index_is_searched_with_the_float32_model(model_and_inputs, tmp_path, capsys):
    model, processor, images, _ = model_and_inputs
    save_model_folder(model, processor, tmp_path / "model")
    (tmp_path / "gallery").mkdir()
    for number, image in enumerate(images):
        image.save(tmp_path / "gallery" / f"{number}.png")
    for dtype in ("float32", "int8"):
        assert (
            ivt(
                [
                    *f"index build --model {tmp_path / 'model'} --images {tmp_path / 'gallery'} --output_dir".split(),
                    *f"{tmp_path / dtype} --dtype".split(),
                    dtype,
                ]
            )
            == 0
        )
    exact, quantised = GalleryIndex.load(tmp_path / "float32"), GalleryIndex.load(tmp_path / "int8")
    assert json.loads((tmp_path / "int8" / "manifest.json").read_text())["dtype"] == "int8"
    assert quantised.manifest["model_fingerprint"] == exact.manifest["model_fingerprint"]
    assert (quantised.embeddings * exact.embeddings).sum(1).min() > 0.97
    assert ivt(["search", "--index", str(tmp_path / "int8"), "a man in a red coat", "-k", "3"]) == 0
    assert " 3. " in capsys.readouterr().out
    assert ivt(["evaluate", "--model", str(tmp_path / "model"), "--benchmark", "synthpedes", "--dtype", "float16"]) == 2
    assert "float16 encoding needs a GPU" in capsys.readouterr().err

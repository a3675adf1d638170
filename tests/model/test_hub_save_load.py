"""save_pretrained / from_pretrained: bit-exact round trip, Auto classes, and trust_remote_code without ivt_hf."""

from __future__ import annotations

import json
import textwrap

import pytest
import torch
from helpers.remote_code import run_without_ivt_hf
from transformers import AutoConfig, AutoImageProcessor, AutoModel, AutoProcessor

from ivt_hf import IVTConfig, IVTImageProcessor, IVTModel, IVTProcessor
from ivt_hf.hub import save_model_folder

pytestmark = pytest.mark.compat  # third-party APIs most likely to move: docs/compatibility.md


def _saved_model(tmp_path, config):
    torch.manual_seed(0)
    model = IVTModel(config).eval()
    processor = IVTProcessor.from_config(config)
    save_model_folder(model, processor, tmp_path / "model")
    return model, processor, tmp_path / "model"


def _inputs(processor):
    images = [
        torch.randint(0, 256, (3, 90, 40), dtype=torch.uint8, generator=torch.Generator().manual_seed(i))
        for i in range(2)
    ]
    return processor(images=images, text=["a man in a blue shirt", "a woman with a red bag and black shoes"])


def test_round_trip_is_bit_exact_and_auto_classes_resolve(tmp_path, tiny_config):
    model, processor, folder = _saved_model(tmp_path, tiny_config)
    assert isinstance(AutoConfig.from_pretrained(folder), IVTConfig)
    loaded = AutoModel.from_pretrained(folder)
    loaded_processor = AutoProcessor.from_pretrained(folder)
    assert isinstance(loaded, IVTModel) and not loaded.training
    assert isinstance(loaded_processor, IVTProcessor)
    assert isinstance(AutoImageProcessor.from_pretrained(folder), IVTImageProcessor)
    inputs = _inputs(processor)
    reloaded_inputs = _inputs(loaded_processor)
    for key in inputs:
        assert torch.equal(inputs[key], reloaded_inputs[key]), key
    with torch.no_grad():
        before, after = model(**inputs), loaded(**reloaded_inputs)
    assert torch.equal(before.image_embeds, after.image_embeds)
    assert torch.equal(before.text_embeds, after.text_embeds)
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, loaded.state_dict()[name]), name
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "ivt" and config["auto_map"]["AutoModel"] == "modeling_ivt.IVTModel"


def test_trust_remote_code_loads_without_ivt_hf(tmp_path, tiny_config):
    model, processor, folder = _saved_model(tmp_path, tiny_config)
    inputs = _inputs(processor)
    with torch.no_grad():
        expected = model(**inputs)
    torch.save({"image": expected.image_embeds, "text": expected.text_embeds}, tmp_path / "expected.pt")
    script = textwrap.dedent(
        f"""
        import torch
        from transformers import AutoModel, AutoProcessor

        folder = {str(folder)!r}
        model = AutoModel.from_pretrained(folder, trust_remote_code=True)
        processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
        images = [torch.randint(0, 256, (3, 90, 40), dtype=torch.uint8, generator=torch.Generator().manual_seed(i))
                  for i in range(2)]
        inputs = processor(images=images, text=["a man in a blue shirt", "a woman with a red bag and black shoes"])
        with torch.no_grad():
            output = model(**inputs)
        expected = torch.load({str(tmp_path / "expected.pt")!r}, weights_only=True)
        assert torch.equal(output.image_embeds, expected["image"]), "image embeddings differ"
        assert torch.equal(output.text_embeds, expected["text"]), "text embeddings differ"
        assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
        assert not any(name.startswith("ivt_hf") for name in sys.modules)
        print("remote-code OK", type(model).__name__, type(processor).__name__)
        """
    )
    result = run_without_ivt_hf(script, tmp_path / "hf_home")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "remote-code OK IVTModel IVTProcessor" in result.stdout

"""ONNX parity: the exported encoders, run by onnxruntime in a process where torch cannot be imported, give the
PyTorch model's normalised embeddings within 1e-4 (fp32), for texts of 1 token, a typical caption and the model's
limit, at batch 1 and batch 7, and for images at batch 1 and 7. Each check can fail: the same comparison against a
model with one weight changed fails in every case."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("optimum.exporters.onnx", reason="the onnx extra is not installed")
pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
ATOL = 1e-4
TYPICAL = 14  # tokens of a typical caption ("[CLS] a woman in a red coat carrying a black backpack . [SEP]")

# onnxruntime alone: `import torch` fails here as where torch is not installed (find_spec says it is absent too)
ORT_SCRIPT = textwrap.dedent(
    """
    import sys

    sys.modules["torch"] = None
    import numpy as np

    from ivt_hf.onnx.runtime import IVTOnnxEncoder

    folder, inputs, outputs = sys.argv[1:4]
    encoder = IVTOnnxEncoder(folder, threads=2)
    data = np.load(inputs)
    found = {}
    for case in sorted({key.split(":")[0] for key in data.files}):
        if case.startswith("image"):
            found[case] = encoder.image_embeddings(data[case + ":pixel_values"])
        else:
            found[case] = encoder.text_embeddings(data[case + ":input_ids"], data[case + ":attention_mask"])
    np.savez(outputs, **found)
    loaded = [name for name, module in sys.modules.items() if module is not None and name.split(".")[0] == "torch"]
    assert not loaded, loaded
    print("ok")
    """
)


def parity_inputs(config, seed: int = 0) -> dict[str, np.ndarray]:
    """Images at batch 1 and 7; texts of 1 token, a typical caption and the limit at batch 1, a batch of 7 of mixed
    lengths padded to the limit, and a batch of 7 typical captions with no padding at all."""
    generator = torch.Generator().manual_seed(seed)
    limit, vocab = config.max_position_embeddings, config.vocab_size
    inputs = {}
    for batch in (1, 7):
        pixels = torch.rand(batch, config.num_channels, *config.image_size, generator=generator) * 2 - 1
        inputs[f"image_b{batch}:pixel_values"] = pixels.numpy()
    text_cases = {
        "text_1token_b1": [1],
        "text_typical_b1": [TYPICAL],
        "text_limit_b1": [limit],
        "text_mixed_b7": [1, TYPICAL, limit, 5, 20, 9, limit - 3],
        "text_typical_b7": [TYPICAL] * 7,
    }
    for case, lengths in text_cases.items():
        width = max(lengths)
        ids = torch.randint(1, vocab, (len(lengths), width), generator=generator)
        mask = (torch.arange(width)[None, :] < torch.tensor(lengths)[:, None]).long()
        inputs[f"{case}:input_ids"] = (ids * mask).numpy()  # padding is token 0, as the tokenizer pads
        inputs[f"{case}:attention_mask"] = mask.numpy()
    return inputs


def onnx_embeddings(folder: Path, inputs: dict[str, np.ndarray], work: Path) -> dict[str, np.ndarray]:
    """The embeddings of every case from onnxruntime alone, in a subprocess that cannot import torch."""
    np.savez(work / "inputs.npz", **inputs)
    result = subprocess.run(
        [sys.executable, "-c", ORT_SCRIPT, str(folder), str(work / "inputs.npz"), str(work / "outputs.npz")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-3000:]
    with np.load(work / "outputs.npz") as outputs:
        return {case: outputs[case] for case in outputs.files}


@torch.no_grad()
def torch_embeddings(model, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    found = {}
    for case in sorted({key.split(":")[0] for key in inputs}):
        if case.startswith("image"):
            features = model.get_image_features(torch.from_numpy(inputs[case + ":pixel_values"]))
        else:
            ids, mask = (torch.from_numpy(inputs[f"{case}:{name}"]) for name in ("input_ids", "attention_mask"))
            features = model.get_text_features(ids, mask)
        found[case] = torch.nn.functional.normalize(features, dim=-1).numpy()
    return found


def differences(model, inputs, onnx_found) -> dict[str, float]:
    reference = torch_embeddings(model, inputs)
    assert set(reference) == set(onnx_found) == {key.split(":")[0] for key in inputs}
    return {case: float(np.abs(reference[case] - onnx_found[case]).max()) for case in reference}


def change_one_weight(model) -> None:
    """One number of the final LayerNorm's gain, which both encoders share and every embedding passes through (a
    value weight of the first block moved a 512-token text of the full-size model by only 5e-5, a query or key
    weight does not reach a 1-token text at all)."""
    with torch.no_grad():
        model.post_layernorm.weight[0] += 0.5


def exported_pair(tmp_path: Path, model):
    from ivt_hf import IVTProcessor
    from ivt_hf.hub import save_model_folder
    from ivt_hf.onnx.export import export_onnx

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the converted fixture's 500-token vocabulary is not the tokenizer's
        processor = IVTProcessor.from_config(model.config)
    save_model_folder(model, processor, tmp_path / "model")
    export_onnx(tmp_path / "model", tmp_path / "onnx")
    return tmp_path / "onnx"


@pytest.fixture(scope="module")
def converted_fixture_parity(tmp_path_factory):
    """The authors' tiny checkpoint (stride 12: overlapping patches, 384x128, 128 text positions) converted,
    exported, and every case run through onnxruntime."""
    from ivt_hf.conversion import convert_original_checkpoint

    work = tmp_path_factory.mktemp("onnx_parity")
    model, _ = convert_original_checkpoint(FIXTURES / "ivt_tiny_s12_ddp.pth", num_attention_heads=2)
    folder = exported_pair(work, model.eval())
    inputs = parity_inputs(model.config)
    return model, inputs, onnx_embeddings(folder, inputs, work)


@pytest.mark.compat
def test_onnx_equals_pytorch_on_the_converted_fixture(converted_fixture_parity):
    model, inputs, onnx_found = converted_fixture_parity
    assert not model.training
    found = differences(model, inputs, onnx_found)
    assert all(diff <= ATOL for diff in found.values()), found


def test_the_parity_check_fails_when_one_weight_changes(converted_fixture_parity):
    model, inputs, onnx_found = converted_fixture_parity
    changed = type(model)(model.config).eval()
    changed.load_state_dict(model.state_dict())
    change_one_weight(changed)
    found = differences(changed, inputs, onnx_found)
    assert all(diff > ATOL for diff in found.values()), found


@pytest.mark.slow
def test_onnx_equals_pytorch_at_full_size(tmp_path):
    """The base preset (ViT-B/16 sized, 384x128, 512 text positions), random weights; then one weight changed."""
    from ivt_hf import IVTConfig, IVTModel

    torch.manual_seed(0)
    model = IVTModel(IVTConfig.from_preset("base")).eval()
    folder = exported_pair(tmp_path, model)
    inputs = parity_inputs(model.config)
    onnx_found = onnx_embeddings(folder, inputs, tmp_path)
    found = differences(model, inputs, onnx_found)
    assert all(diff <= ATOL for diff in found.values()), found
    change_one_weight(model)
    found = differences(model, inputs, onnx_found)
    assert all(diff > ATOL for diff in found.values()), found

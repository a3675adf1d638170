"""Conversion of the authors' checkpoints, against the outputs of the authors' code."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from ivt_hf.conversion import (
    CheckpointConversionError,
    convert_original_checkpoint,
)


@pytest.fixture(scope="module")
def reference_io(fixtures_dir_module):
    io = load_file(fixtures_dir_module / "ivt_tiny_io.safetensors")
    io["pixel_values"] = (io["pixel_values_uint8"].float() / 255 - 0.5) / 0.5
    return io


@pytest.fixture(scope="module")
def fixtures_dir_module():
    from conftest import FIXTURES

    return FIXTURES


@pytest.mark.parametrize("attn_implementation", ["eager", "sdpa"])
@pytest.mark.parametrize(
    "checkpoint, suffix, stride, has_prefix",
    [("ivt_tiny_s12_ddp.pth", "s12", 12, True), ("ivt_tiny_s16.pth", "s16", 16, False)],
)
def test_converted_checkpoint_reproduces_reference_embeddings(
    fixtures_dir, reference_io, checkpoint, suffix, stride, has_prefix, attn_implementation
):
    model, report = convert_original_checkpoint(fixtures_dir / checkpoint, num_attention_heads=2)
    model.config._attn_implementation = attn_implementation
    assert model.config.patch_stride == stride and not model.training
    assert ("module." in report.source_format) == has_prefix
    reference = json.loads((fixtures_dir / "reference.json").read_text())["config"]
    for field in ("hidden_size", "num_hidden_layers", "intermediate_size", "vocab_size", "max_position_embeddings"):
        assert getattr(model.config, field) == reference[field]
    assert report.dropped_keys == [
        *"bottleneck_img.bias bottleneck_img.num_batches_tracked".split(),
        *"bottleneck_img.running_mean bottleneck_img.running_var".split(),
        *"bottleneck_img.weight classifier_img.weight".split(),
        *"encoder_vl.embeddings.position_ids temp".split(),
    ]
    with torch.no_grad():
        image_embeds = model.get_image_features(reference_io["pixel_values"])
        text_embeds = model.get_text_features(reference_io["input_ids"], reference_io["attention_mask"])
    torch.testing.assert_close(image_embeds, reference_io[f"image_embeds_{suffix}"], atol=1e-5, rtol=0)
    torch.testing.assert_close(text_embeds, reference_io[f"text_embeds_{suffix}"], atol=1e-5, rtol=0)


def _reference_state(fixtures_dir, name="ivt_tiny_s16.pth"):
    return torch.load(fixtures_dir / name, weights_only=True)


def test_bare_state_dict_and_pretrain_keys_are_accepted(fixtures_dir, tmp_path, reference_io):
    state = _reference_state(fixtures_dir)["state_dict"]
    state["encoder_fusion.layer.0.weight"] = torch.zeros(2)  # pre-training checkpoints carry these
    state["itm.weight"] = torch.zeros(2, 32)
    torch.save(state, tmp_path / "bare.pth")
    model, report = convert_original_checkpoint(tmp_path / "bare.pth", num_attention_heads=2)
    assert report.source_format == "bare state dict"
    assert "itm.weight" in report.dropped_keys and "encoder_fusion.layer.0.weight" in report.dropped_keys
    with torch.no_grad():
        torch.testing.assert_close(
            model.get_image_features(reference_io["pixel_values"]), reference_io["image_embeds_s16"], atol=1e-5, rtol=0
        )


def test_unexpected_keys_are_an_error(fixtures_dir, tmp_path):
    checkpoint = _reference_state(fixtures_dir)
    checkpoint["state_dict"]["encoder_vl.blocks.0.attn.extra.weight"] = torch.zeros(1)
    checkpoint["state_dict"]["somebody_else.weight"] = torch.zeros(1)
    torch.save(checkpoint, tmp_path / "foreign.pth")
    with pytest.raises(CheckpointConversionError, match="unexpected keys.*encoder_vl.blocks.0.attn.extra.weight"):
        convert_original_checkpoint(tmp_path / "foreign.pth", num_attention_heads=2)


def test_stride_that_fits_no_grid_is_an_error(fixtures_dir, tmp_path):
    checkpoint = _reference_state(fixtures_dir)
    for key in ("encoder_vl.pos_embed", "encoder_vl.type_embed"):
        checkpoint["state_dict"][key] = torch.zeros(1, 200, 32)
    torch.save(checkpoint, tmp_path / "odd.pth")
    with pytest.raises(CheckpointConversionError, match="200 positions, which fits no patch stride"):
        convert_original_checkpoint(tmp_path / "odd.pth", num_attention_heads=2)


def test_missing_tensor_and_non_checkpoint_files_are_errors(fixtures_dir, tmp_path):
    checkpoint = _reference_state(fixtures_dir)
    del checkpoint["state_dict"]["encoder_vl.blocks.1.mlp_txt.fc2.bias"]
    torch.save(checkpoint, tmp_path / "partial.pth")
    with pytest.raises(CheckpointConversionError, match="lacks encoder tensors for encoder.layers.1.text_mlp.fc2.bias"):
        convert_original_checkpoint(tmp_path / "partial.pth", num_attention_heads=2)
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointConversionError, match="junk.pth could not be read"):
        convert_original_checkpoint(tmp_path / "junk.pth")
    with pytest.raises(FileNotFoundError):
        convert_original_checkpoint(tmp_path / "absent.pth")


def test_arbitrary_objects_are_never_unpickled(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"state_dict": {"x": Evil()}}, tmp_path / "evil.pth")
    with pytest.raises(CheckpointConversionError, match="weights_only=True"):
        convert_original_checkpoint(tmp_path / "evil.pth")


def test_head_count_must_be_given_when_not_inferable(fixtures_dir):
    with pytest.raises(CheckpointConversionError, match="num_attention_heads"):
        convert_original_checkpoint(fixtures_dir / "ivt_tiny_s16.pth")


def test_convert_script_writes_a_loadable_folder(fixtures_dir, tmp_path, reference_io):
    import subprocess
    import sys
    from pathlib import Path

    from transformers import AutoModel, AutoProcessor

    script = Path(__file__).parents[2] / "scripts" / "convert_ivt_original_checkpoint.py"
    result = subprocess.run(
        [
            sys.executable,
            *f"{script} --checkpoint_path {fixtures_dir / 'ivt_tiny_s12_ddp.pth'} --output_dir".split(),
            *f"{tmp_path / 'out'} --num_attention_heads 2".split(),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "stride 12" in result.stdout and "dropped 8 unused keys" in result.stdout
    model = AutoModel.from_pretrained(tmp_path / "out").eval()
    processor = AutoProcessor.from_pretrained(tmp_path / "out")
    assert type(model).__name__ == "IVTModel" and type(processor).__name__ == "IVTProcessor"
    with torch.no_grad():
        torch.testing.assert_close(
            model.get_image_features(reference_io["pixel_values"]), reference_io["image_embeds_s12"], atol=1e-5, rtol=0
        )

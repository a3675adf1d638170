"""The pre-training model and the weights around it: the authors' pre-training checkpoints -> `IVTForPreTraining`,
its fusion encoder and MLM head from a BERT, and the `IVTModel` encoder of a pre-training output for fine-tuning.

The authors' checkpoint is written here from a random tiny `IVTForPreTraining` with a key map inverted by hand from
the spec's key list (not the converter's tables), in their legacy pickle format, so a wrong mapping cannot pass."""

from __future__ import annotations

import json
import logging
import math
import re

import pytest
import torch

from ivt_hf import IVTConfig, IVTModel
from ivt_hf.conversion import (
    CheckpointConversionError,
    PretrainingTransferError,
    convert_original_checkpoint,
    convert_original_pretraining_checkpoint,
    encoder_from_pretraining,
    is_pretraining_folder,
    load_backbones,
)
from ivt_hf.conversion.original_checkpoint import exact_log
from ivt_hf.model import IVTForPreTraining

HIDDEN, VOCAB, TEXT_POSITIONS = 32, 120, 64
TEMP = 0.37


def _config(**overrides) -> IVTConfig:
    kwargs = dict(
        hidden_size=HIDDEN,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        vocab_size=VOCAB,
        max_position_embeddings=TEXT_POSITIONS,
        image_size=(384, 128),
        patch_size=16,
        patch_stride=16,
        fusion_num_hidden_layers=2,
    )
    return IVTConfig(**(kwargs | overrides))


def _authors_config(**overrides) -> IVTConfig:
    """The config the converter must infer for the authors' pre-training."""
    return _config(
        tie_word_embeddings=False, itc_normalize=False, itc_temperature=TEMP, itc_temperature_range=None, **overrides
    )


def _randomise(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Every parameter random (LayerNorms too), so that no mapping error hides behind a 1/0 initialisation."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name == "log_temperature":
                parameter.fill_(math.log(TEMP))
            else:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.2)
    return model.eval()


# ---- the authors' layout, written from the spec (sections 7 and 9) -------------------------------------------------

ENCODER_NAMES = {
    "image_embeddings.class_embedding": "cls_token",
    "image_embeddings.position_embedding": "pos_embed",
    "image_embeddings.modality_embedding": "type_embed",
    "image_embeddings.patch_embedding.weight": "patch_embed.proj.weight",
    "image_embeddings.patch_embedding.bias": "patch_embed.proj.bias",
    "text_embeddings.word_embeddings.weight": "embeddings.word_embeddings.weight",
    "text_embeddings.position_embeddings.weight": "embeddings.position_embeddings.weight",
    "text_embeddings.token_type_embeddings.weight": "embeddings.token_type_embeddings.weight",
    "text_embeddings.layer_norm.weight": "embeddings.LayerNorm.weight",
    "text_embeddings.layer_norm.bias": "embeddings.LayerNorm.bias",
    "post_layernorm.weight": "norm.weight",
    "post_layernorm.bias": "norm.bias",
}
BLOCK_NAMES = {
    "layer_norm1": "norm1",
    "self_attn.qkv": "attn.qkv",
    "self_attn.out_proj": "attn.proj",
    "layer_norm2": "norm2",
    "vision_mlp.fc1": "mlp_vis.fc1",
    "vision_mlp.fc2": "mlp_vis.fc2",
    "text_mlp.fc1": "mlp_txt.fc1",
    "text_mlp.fc2": "mlp_txt.fc2",
}
HEAD_NAMES = {
    "mlm_head.transform.dense.weight": "encoder_fusion.cls.predictions.transform.dense.weight",
    "mlm_head.transform.dense.bias": "encoder_fusion.cls.predictions.transform.dense.bias",
    "mlm_head.transform.LayerNorm.weight": "encoder_fusion.cls.predictions.transform.LayerNorm.weight",
    "mlm_head.transform.LayerNorm.bias": "encoder_fusion.cls.predictions.transform.LayerNorm.bias",
    "mlm_head.decoder.weight": "encoder_fusion.cls.predictions.decoder.weight",
    "mlm_head.decoder.bias": "encoder_fusion.cls.predictions.bias",
    "itm_head.weight": "itm.weight",
    "itm_head.bias": "itm.bias",
    "log_temperature": "temp",
}
UNUSED_FUSION_EMBEDDINGS = [
    "encoder_fusion.bert.embeddings.LayerNorm.bias",
    "encoder_fusion.bert.embeddings.LayerNorm.weight",
    "encoder_fusion.bert.embeddings.position_embeddings.weight",
    "encoder_fusion.bert.embeddings.position_ids",
    "encoder_fusion.bert.embeddings.token_type_embeddings.weight",
]


def _authors_key(name: str) -> str:
    if name.startswith("ivt."):
        name = name[len("ivt.") :]
        if name in ENCODER_NAMES:
            return "encoder_vl." + ENCODER_NAMES[name]
        index, part, kind = re.fullmatch(r"encoder\.layers\.(\d+)\.(.+)\.(weight|bias)", name).groups()
        return f"encoder_vl.blocks.{index}.{BLOCK_NAMES[part]}.{kind}"
    if name.startswith("fusion.layer."):
        return "encoder_fusion.bert.encoder.layer." + name[len("fusion.layer.") :]
    return HEAD_NAMES[name]


def _authors_state(model: IVTForPreTraining) -> dict[str, torch.Tensor]:
    """The state dict the authors' pre-training code saves, with DDP's `module.` prefix."""
    generator = torch.Generator().manual_seed(7)
    state = {_authors_key(name): tensor.clone() for name, tensor in model.state_dict().items()}
    state["temp"] = model.current_temperature().detach().clone()  # the authors keep the temperature itself
    # BERT ties the decoder to the fusion BERT's word embeddings, and `predictions.bias` to `decoder.bias`
    state["encoder_fusion.bert.embeddings.word_embeddings.weight"] = state[
        "encoder_fusion.cls.predictions.decoder.weight"
    ]
    state["encoder_fusion.cls.predictions.decoder.bias"] = state["encoder_fusion.cls.predictions.bias"]
    state["encoder_vl.embeddings.position_ids"] = torch.arange(TEXT_POSITIONS).unsqueeze(0)
    state["encoder_fusion.bert.embeddings.position_ids"] = torch.arange(TEXT_POSITIONS).unsqueeze(0)
    state["encoder_fusion.bert.embeddings.position_embeddings.weight"] = torch.randn(
        TEXT_POSITIONS, HIDDEN, generator=generator
    )
    state["encoder_fusion.bert.embeddings.token_type_embeddings.weight"] = torch.randn(2, HIDDEN, generator=generator)
    state["encoder_fusion.bert.embeddings.LayerNorm.weight"] = torch.randn(HIDDEN, generator=generator)
    state["encoder_fusion.bert.embeddings.LayerNorm.bias"] = torch.randn(HIDDEN, generator=generator)
    return {f"module.{key}": value for key, value in state.items()}


def _save_legacy(state: dict, path) -> None:
    checkpoint = {"state_dict": state, "optimizer": {}, "epoch": 3, "best_acc": 0.0}
    torch.save(checkpoint, path, _use_new_zipfile_serialization=False)


@pytest.fixture(scope="module")
def source_model() -> IVTForPreTraining:
    torch.manual_seed(0)
    return _randomise(IVTForPreTraining(_authors_config()), seed=1)


@pytest.fixture(scope="module")
def authors_checkpoint(source_model, tmp_path_factory):
    path = tmp_path_factory.mktemp("authors") / "pretrain.pth"
    _save_legacy(_authors_state(source_model), path)
    return path


def _inputs(seed: int = 3, batch: int = 3, seq: int = 9):
    generator = torch.Generator().manual_seed(seed)
    pixel_values = torch.randn(batch, 3, 384, 128, generator=generator)
    input_ids = torch.randint(1, VOCAB, (batch, seq), generator=generator)
    attention_mask = torch.ones(batch, seq, dtype=torch.long)
    attention_mask[1, 6:] = 0
    input_ids[attention_mask == 0] = 0
    mlm_labels = torch.full_like(input_ids, -100)
    mlm_labels[:, 2] = input_ids[:, 2]
    mlm_input_ids = input_ids.clone()
    mlm_input_ids[:, 2] = 5
    return dict(
        pixel_values=pixel_values,
        input_ids=input_ids,
        attention_mask=attention_mask,
        mlm_input_ids=mlm_input_ids,
        mlm_labels=mlm_labels,
    )


def _forward(model: IVTForPreTraining, inputs: dict):
    torch.manual_seed(11)  # the ITM hard negatives are drawn at random
    with torch.no_grad():
        return model(**inputs)


# ---- the authors' pre-training checkpoint -> IVTForPreTraining ------------------------------------------------------


def test_authors_layout_has_the_spec_key_count(source_model):
    """Spec: 377 keys at 12 blocks and 6 fusion layers = 16 per block + 13 encoder + temp/itm 3 + 26 per fusion
    layer + 13 (fusion embeddings 6, MLM head 7); the tiny model has 2 and 2."""
    assert len(_authors_state(source_model)) == 16 * 2 + 13 + 3 + 26 * 2 + 13
    assert 16 * 12 + 13 + 3 + 26 * 6 + 13 == 377


def test_pretraining_checkpoint_converts_exactly(source_model, authors_checkpoint):
    model, report = convert_original_pretraining_checkpoint(authors_checkpoint, num_attention_heads=2)
    assert isinstance(model, IVTForPreTraining) and not model.training
    assert report.architecture == "IVTForPreTraining" and "module." in report.source_format
    config = model.config
    assert (config.fusion_num_hidden_layers, config.tie_word_embeddings, config.itc_normalize) == (2, False, False)
    assert config.itc_temperature == pytest.approx(TEMP) and config.itc_temperature_range is None
    assert config.fusion_layer_norm_eps == 1e-12 and config.patch_stride == 16
    assert report.dropped_keys == sorted(UNUSED_FUSION_EMBEDDINGS + ["encoder_vl.embeddings.position_ids"])
    assert "fusion encoder 2 layers" in report.summary()

    expected, converted = source_model.state_dict(), model.state_dict()
    assert set(converted) == set(expected)
    for name, tensor in expected.items():
        assert converted[name].dtype == tensor.dtype and torch.equal(converted[name], tensor), name
    # untied: the decoder has its own matrix, not the shared encoder's word embeddings
    assert model.mlm_head.decoder.weight.data_ptr() != model.ivt.text_embeddings.word_embeddings.weight.data_ptr()

    inputs = _inputs()
    ours, theirs = _forward(model, inputs), _forward(source_model, inputs)
    for field in (
        "loss",
        "loss_itc",
        "loss_itm",
        "loss_mlm",
        "image_embeds",
        "text_embeds",
        "itm_logits",
        "mlm_logits",
        "temperature",
    ):
        assert torch.equal(getattr(ours, field), getattr(theirs, field)), field


def test_decoder_falls_back_to_the_tied_embedding_table(source_model, tmp_path):
    state = _authors_state(source_model)
    decoder = state.pop("module.encoder_fusion.cls.predictions.decoder.weight")
    state["module.encoder_fusion.bert.embeddings.word_embeddings.weight"] = decoder.clone()
    del state["module.encoder_fusion.cls.predictions.decoder.bias"]  # `predictions.bias` alone is enough
    _save_legacy(state, tmp_path / "no_decoder.pth")
    model, report = convert_original_pretraining_checkpoint(tmp_path / "no_decoder.pth", num_attention_heads=2)
    assert torch.equal(model.mlm_head.decoder.weight, source_model.mlm_head.decoder.weight)
    assert torch.equal(model.mlm_head.decoder.bias, source_model.mlm_head.decoder.bias)
    assert "encoder_fusion.bert.embeddings.word_embeddings.weight" not in report.dropped_keys


def _altered(state: dict, change: str) -> dict:
    prefix = "module.encoder_fusion."
    if change == "decoder bias":
        state[prefix + "cls.predictions.decoder.bias"] = state[prefix + "cls.predictions.bias"] + 1.0
    elif change == "missing":
        del state[prefix + "bert.encoder.layer.1.crossattention.output.LayerNorm.bias"]
    elif change == "shape":
        state["module.itm.weight"] = torch.zeros(3, HIDDEN)
    elif change == "unknown":
        state[prefix + "bert.pooler.dense.weight"] = torch.zeros(HIDDEN, HIDDEN)
    return state


@pytest.mark.parametrize(
    "change, message",
    [
        ("decoder bias", "cls.predictions.decoder.bias differs from encoder_fusion.cls.predictions.bias"),
        (
            "missing",
            "lacks tensors for fusion.layer.1.crossattention.output.LayerNorm.bias "
            r"\(from encoder_fusion.bert.encoder.layer.1.crossattention.output.LayerNorm.bias\)",
        ),
        ("shape", r"itm_head.weight \(from itm.weight\) has shape \(3, 32\), expected \(2, 32\)"),
        ("unknown", "unexpected keys.*encoder_fusion.bert.pooler.dense.weight"),
    ],
)
def test_altered_pretraining_checkpoints_are_clear_errors(source_model, tmp_path, change, message):
    _save_legacy(_altered(_authors_state(source_model), change), tmp_path / "altered.pth")
    with pytest.raises(CheckpointConversionError, match=message):
        convert_original_pretraining_checkpoint(tmp_path / "altered.pth", num_attention_heads=2)


def test_fine_tuning_checkpoint_is_refused_by_the_pretraining_converter(fixtures_dir):
    with pytest.raises(CheckpointConversionError, match="holds no pre-training heads.*fine-tuning conversion"):
        convert_original_pretraining_checkpoint(fixtures_dir / "ivt_tiny_s16.pth", num_attention_heads=2)


def test_fine_tuning_conversion_of_a_pretraining_checkpoint_gives_the_encoder(source_model, authors_checkpoint):
    model, report = convert_original_checkpoint(authors_checkpoint, num_attention_heads=2)
    assert type(model) is IVTModel
    encoder = source_model.ivt.state_dict()
    assert set(model.state_dict()) == set(encoder)
    assert all(torch.equal(tensor, encoder[name]) for name, tensor in model.state_dict().items())
    heads = {key.removeprefix("module.") for key in _authors_state(source_model)} - {
        _authors_key("ivt." + name) for name in encoder
    }
    assert set(report.dropped_keys) == heads  # every pre-training head and the unused buffers, nothing else


def test_pretraining_cli_writes_a_folder_for_both_auto_classes(source_model, authors_checkpoint, tmp_path, capsys):
    from transformers import AutoModel, AutoModelForPreTraining

    from ivt_hf.cli import main

    folder = tmp_path / "pretrained"
    vocab = tmp_path / "vocab.txt"  # as many tokens as the tiny model's vocabulary
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(VOCAB - 5)]))
    args = [
        *f"convert --checkpoint_path {authors_checkpoint} --output_dir {folder} --num_attention_heads".split(),
        *f"2 --vocab_file {vocab}".split(),
    ]
    assert main([*args, "--pretraining"]) == 0
    assert "pre-training heads: fusion encoder 2 layers" in capsys.readouterr().out
    auto_map = json.loads((folder / "config.json").read_text())["auto_map"]
    assert auto_map["AutoModelForPreTraining"] == "modeling_ivt.IVTForPreTraining"
    assert auto_map["AutoModel"] == "modeling_ivt.IVTModel"

    whole = AutoModelForPreTraining.from_pretrained(folder).eval()
    assert type(whole) is IVTForPreTraining
    assert all(torch.equal(tensor, whole.state_dict()[name]) for name, tensor in source_model.state_dict().items())
    encoder = AutoModel.from_pretrained(folder).eval()
    assert type(encoder) is IVTModel
    assert all(
        torch.equal(tensor, encoder.state_dict()[name]) for name, tensor in source_model.ivt.state_dict().items()
    )
    assert is_pretraining_folder(folder)

    assert main([*args[:4], str(tmp_path / "encoder"), *args[5:]]) == 0  # without --pretraining: the encoder only
    assert not is_pretraining_folder(tmp_path / "encoder")
    assert "AutoModelForPreTraining" not in json.loads((tmp_path / "encoder" / "config.json").read_text())["auto_map"]
    with pytest.raises(PretrainingTransferError, match="does not hold an IVTForPreTraining"):
        encoder_from_pretraining(tmp_path / "encoder")

    fine_tune, report = encoder_from_pretraining(folder, patch_stride=12)  # from the folder, as a user would
    assert fine_tune.config.patch_stride == 12 and len(report.resized) == 2


# ---- the fusion encoder and MLM head from a BERT ----------------------------------------------------------------


@pytest.mark.parametrize("tie", [True, False])
def test_fusion_encoder_and_mlm_head_from_bert(tie):
    from transformers import BertConfig, BertForMaskedLM

    torch.manual_seed(0)
    bert_config = BertConfig(
        vocab_size=VOCAB,
        hidden_size=HIDDEN,
        num_hidden_layers=3,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=TEXT_POSITIONS,
    )
    bert = _randomise(BertForMaskedLM(bert_config), seed=5).state_dict()
    model = IVTForPreTraining(_config(tie_word_embeddings=tie))
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    loaded = load_backbones(model, bert_state_dict=bert)
    state = model.state_dict()

    parts = [
        *"attention.self.query attention.self.key attention.self.value attention.output.dense".split(),
        *"attention.output.LayerNorm intermediate.dense output.dense output.LayerNorm".split(),
    ]
    for index in range(2):  # the fusion encoder's 2 layers from BERT's first 2
        for part in parts:
            for kind in ("weight", "bias"):
                name = f"fusion.layer.{index}.{part}.{kind}"
                assert torch.equal(state[name], bert[f"bert.encoder.layer.{index}.{part}.{kind}"]), name
                assert name in loaded
    crossattention = [name for name in state if ".crossattention." in name]
    assert len(crossattention) == 2 * 10
    assert all(torch.equal(state[name], before[name]) and name not in loaded for name in crossattention)
    head = {
        f"transform.{part}.{kind}": f"transform.{part}.{kind}"
        for part in ("dense", "LayerNorm")
        for kind in ("weight", "bias")
    } | {"decoder.bias": "bias"}
    for ours, theirs in head.items():
        assert torch.equal(state[f"mlm_head.{ours}"], bert[f"cls.predictions.{theirs}"]), ours
        assert f"mlm_head.{ours}" in loaded
    word_embeddings = bert["bert.embeddings.word_embeddings.weight"]
    assert torch.equal(state["ivt.text_embeddings.word_embeddings.weight"], word_embeddings)
    assert torch.equal(state["mlm_head.decoder.weight"], word_embeddings)
    assert ("mlm_head.decoder.weight" in loaded) is not tie  # tied: it is the encoder's table, filled as such
    same_storage = (
        model.mlm_head.decoder.weight.data_ptr() == model.ivt.text_embeddings.word_embeddings.weight.data_ptr()
    )
    assert same_storage is tie
    # the encoder part is what load_backbones gives an IVTModel, under `ivt.`
    encoder = IVTModel(_config())
    assert {f"ivt.{key}" for key in load_backbones(encoder, bert_state_dict=bert)} == {
        key for key in loaded if key.startswith("ivt.")
    }
    assert all(
        torch.equal(tensor, state[f"ivt.{name}"])
        for name, tensor in encoder.state_dict().items()
        if f"ivt.{name}" in loaded
    )
    assert not any(key.startswith(("itm_head.", "log_temperature")) for key in loaded)

    # google-bert/bert-base-uncased's own files spell the LayerNorms `gamma` / `beta` (its TensorFlow port's names)
    legacy = {
        key.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"): value
        for key, value in bert.items()
        if key != "cls.predictions.decoder.bias"
    }
    assert any(key.endswith("LayerNorm.gamma") for key in legacy)
    from_legacy = IVTForPreTraining(_config(tie_word_embeddings=tie))
    assert load_backbones(from_legacy, bert_state_dict=legacy) == loaded
    assert all(torch.equal(tensor, state[name]) for name, tensor in from_legacy.state_dict().items() if name in loaded)


# ---- the IVTModel encoder of a pre-training output ---------------------------------------------------------------


@pytest.fixture(scope="module")
def pretrained_default() -> IVTForPreTraining:
    """Our own pre-training config (tied decoder, normalised ITC), at the authors' pre-training stride 16."""
    torch.manual_seed(0)
    return _randomise(IVTForPreTraining(_config()), seed=2)


def test_encoder_from_pretraining_at_the_same_stride_is_exact(pretrained_default):
    model, report = encoder_from_pretraining(pretrained_default)
    assert type(model) is IVTModel and not model.training and report.resized == {}
    source = pretrained_default.ivt.state_dict()
    assert sorted(report.copied) == sorted(source)
    assert all(torch.equal(tensor, model.state_dict()[name]) for name, tensor in source.items())
    assert set(report.dropped) == {name for name in pretrained_default.state_dict() if not name.startswith("ivt.")}
    ignored = {"architectures", "auto_map"}
    ours = {key: value for key, value in model.config.to_dict().items() if key not in ignored}
    theirs = {key: value for key, value in pretrained_default.config.to_dict().items() if key not in ignored}
    assert ours == theirs
    inputs = _inputs()
    pixel_values, input_ids, attention_mask = inputs["pixel_values"], inputs["input_ids"], inputs["attention_mask"]
    with torch.no_grad():
        assert torch.equal(
            model.get_image_features(pixel_values), pretrained_default.ivt.get_image_features(pixel_values)
        )
        assert torch.equal(
            model.get_text_features(input_ids, attention_mask),
            pretrained_default.ivt.get_text_features(input_ids, attention_mask),
        )


def test_encoder_from_pretraining_resizes_the_grid_from_stride_16_to_12(pretrained_default, caplog):
    with caplog.at_level(logging.INFO, logger="ivt_hf.conversion.pretraining_transfer"):
        model, report = encoder_from_pretraining(pretrained_default, patch_stride=12, token_drop_ratio=0.1)
    assert model.config.patch_stride == 12 and model.config.grid_size == (31, 10)
    assert model.config.token_drop_ratio == 0.1
    messages = [record.getMessage() for record in caplog.records]
    dropped_lines = [line for line in messages if "dropped" in line]
    assert len(dropped_lines) == 1
    assert "fusion encoder (2 layers), itm_head, mlm_head, temperature" in dropped_lines[0]
    source, state = pretrained_default.ivt.state_dict(), model.state_dict()
    for name in ("image_embeddings.position_embedding", "image_embeddings.modality_embedding"):
        old = source[name]
        assert old.shape == (1, 193, HIDDEN) and state[name].shape == (1, 311, HIDDEN)
        assert torch.equal(state[name][:, :1], old[:, :1])  # CLS position kept
        grid = old[:, 1:].reshape(1, 24, 8, HIDDEN).permute(0, 3, 1, 2)
        grid = torch.nn.functional.interpolate(grid, size=(31, 10), mode="bilinear", align_corners=False)
        torch.testing.assert_close(state[name][:, 1:], grid.permute(0, 2, 3, 1).reshape(1, 310, HIDDEN), rtol=0, atol=0)
        assert report.resized[name] == ((24, 8), (31, 10))
        assert sum(f"resized {name} from the 24 x 8 grid to 31 x 10" in line for line in messages) == 1
    assert all(torch.equal(state[name], tensor) for name, tensor in source.items() if name in report.copied)
    assert len(report.copied) + 2 == len(source)
    with torch.no_grad():  # the stride-12 encoder runs on the fine-tuning images
        assert model.get_image_features(_inputs(batch=2)["pixel_values"]).shape == (2, HIDDEN)


def test_encoder_from_pretraining_refuses_what_it_cannot_transfer(pretrained_default):
    with pytest.raises(PretrainingTransferError, match="hidden_size|shape"):
        encoder_from_pretraining(pretrained_default, hidden_size=64, num_attention_heads=2)
    with pytest.raises(PretrainingTransferError, match="not IVTConfig fields: patch_strid"):
        encoder_from_pretraining(pretrained_default, patch_strid=12)
    with pytest.raises(PretrainingTransferError, match="already the encoder"):
        encoder_from_pretraining(pretrained_default.ivt)


def test_is_pretraining_folder_reads_only_config_json_from_the_hub(monkeypatch, tmp_path):
    import huggingface_hub

    requested = []

    def fake_download(repo_id, filename, **kwargs):
        requested.append((repo_id, filename))
        path = tmp_path / repo_id.replace("/", "--") / filename
        path.parent.mkdir(parents=True, exist_ok=True)
        architectures = ["IVTForPreTraining"] if repo_id.endswith("pretrained") else ["IVTModel"]
        path.write_text(json.dumps({"model_type": "ivt", "architectures": architectures}))
        return str(path)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    assert is_pretraining_folder("someone/ivt-pretrained")
    assert not is_pretraining_folder("someone/ivt-cuhk")
    assert requested == [("someone/ivt-pretrained", "config.json"), ("someone/ivt-cuhk", "config.json")]
    assert not is_pretraining_folder(tmp_path)  # a local folder without config.json


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[1, 2]", "config.json must hold a JSON object, found list"),
        ('{"model_type": ', "config.json is not valid JSON"),
    ],
)
def test_a_config_json_that_is_not_one_object_is_named_not_taken_for_another_model(tmp_path, text, message):
    """`is_pretraining_folder` reads config.json with the package's one JSON reader: a list used to count as "not a
    pre-training folder" without a word, so the folder went on to fail later, elsewhere."""
    (tmp_path / "config.json").write_text(text)
    with pytest.raises(PretrainingTransferError, match=rf"^{re.escape(str(tmp_path))}: {message}"):
        is_pretraining_folder(tmp_path)


def test_exact_log_gives_the_authors_temperature_back():
    """The model learns log(temperature); `exact_log` picks a float32 logarithm whose exp is the authors' `temp` bit
    for bit whenever one exists, and otherwise the closest (relative error below one float32 step of the log)."""
    values = torch.rand(3000, generator=torch.Generator().manual_seed(0)) * 0.999 + 0.001
    exact = 0
    for value in values:
        back = exact_log(value).exp()
        exact += torch.equal(back, value)
        step_of_log = torch.nextafter(value.log(), torch.tensor(0.0)).item() - value.log().item()
        assert abs(back.item() - value.item()) <= abs(step_of_log) * value.item()
    plain = sum(torch.equal(value.log().exp(), value) for value in values)
    assert exact > plain  # the search finds exact logarithms that plain log misses
    assert torch.equal(exact_log(torch.tensor(TEMP)).exp(), torch.tensor(TEMP))

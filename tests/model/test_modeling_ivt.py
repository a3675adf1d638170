"""IVTModel: reference sizes, presets, attention back-ends, gradient checkpointing, gradients, BMM token dropping, bad
input."""

from __future__ import annotations

import copy

import pytest
import torch

from ivt_hf import IVTConfig, IVTModel, IVTOutput
from ivt_hf.errors import IVTInputError
from ivt_hf.model.configuration_ivt import PRESETS
from ivt_hf.model.modeling_ivt import drop_tokens


def _inputs(config, image_batch=2, text_batch=3, seq=9, seed=0):
    generator = torch.Generator().manual_seed(seed)
    pixel_values = torch.randn(image_batch, 3, *config.image_size, generator=generator)
    input_ids = torch.randint(1000, 2000, (text_batch, seq), generator=generator)
    input_ids[:, 0] = 101
    attention_mask = torch.ones(text_batch, seq, dtype=torch.long)
    attention_mask[1, 5:] = 0  # padded text
    input_ids[1, 5:] = 0
    return pixel_values, input_ids, attention_mask


@pytest.mark.parametrize("stride, expected", [(12, 166_631_424), (16, 166_450_176)])
def test_reference_parameter_count(stride, expected):
    with torch.device("meta"):
        model = IVTModel(IVTConfig(patch_stride=stride))
    assert sum(parameter.numel() for parameter in model.parameters()) == expected


def test_default_config_is_reference_vit_b16():
    config = IVTConfig()
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads) == (768, 12, 12)
    assert config.image_size == [384, 128] and config.patch_stride == 16 and config.grid_size == (24, 8)
    assert IVTConfig(patch_stride=12).grid_size == (31, 10)
    assert (config.layer_norm_eps, config.text_layer_norm_eps) == (1e-6, 1e-12)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"hidden_size": 30, "num_attention_heads": 4}, "divisible"),
        ({"image_size": (8, 8)}, "smaller than patch_size"),
        ({"token_drop_mode": "random"}, "token_drop_mode"),
        ({"token_drop_ratio": 1.5}, "token_drop_ratio"),
        ({"num_hidden_layers": 0}, "num_hidden_layers"),
        ({"image_size": (384,)}, "image_size"),
    ],
)
def test_config_validation(overrides, message):
    with pytest.raises(ValueError, match=message):
        IVTConfig(**overrides)


# what tests/conftest.py's tiny_config_kwargs() built by hand before the `micro` preset replaced it
TESTS_TINY_CONFIG = dict(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=64,
    vocab_size=30522,
    max_position_embeddings=64,
    image_size=(64, 32),
    patch_size=16,
    patch_stride=12,
    drop_path_rate=0.0,
    text_embedding_dropout=0.0,
)


def test_micro_preset_is_the_tests_old_tiny_config(tiny_config):
    assert dict(PRESETS["micro"]) == TESTS_TINY_CONFIG
    assert tiny_config.to_dict() == IVTConfig(**TESTS_TINY_CONFIG).to_dict()


OVERRIDDEN = {"num_hidden_layers": 1, "image_size": (32, 16), "hidden_act": "relu"}


@pytest.mark.parametrize("name", ["base", "micro", "tiny"])
def test_every_preset_is_a_working_config_and_overrides_win(name):
    """Each preset builds a model (on the meta device: no memory) with its own settings; an override replaces the
    preset's value (or the default) and leaves the rest, and cannot change the preset for the next caller."""
    assert sorted(PRESETS) == ["base", "micro", "tiny"]
    config = IVTConfig.from_preset(name)
    for key, value in PRESETS[name].items():
        assert getattr(config, key) == (list(value) if isinstance(value, tuple) else value), key
    with torch.device("meta"):
        model = IVTModel(config)
    assert model.text_embeddings.word_embeddings.weight.shape == (config.vocab_size, config.hidden_size)
    overridden = IVTConfig.from_preset(name, **OVERRIDDEN)
    assert (overridden.num_hidden_layers, overridden.image_size, overridden.hidden_act) == (1, [32, 16], "relu")
    unchanged = {key: value for key, value in config.to_dict().items() if key not in OVERRIDDEN}
    assert {key: value for key, value in overridden.to_dict().items() if key not in OVERRIDDEN} == unchanged
    assert IVTConfig.from_preset(name).to_dict() == config.to_dict()
    with pytest.raises(TypeError):
        PRESETS[name]["hidden_size"] = 8  # read-only: one caller cannot change a preset for the others


def test_an_unknown_preset_or_bad_override_is_one_error_naming_it():
    with pytest.raises(IVTInputError, match=r"^unknown IVTConfig preset 'huge'; the presets are base, micro, tiny$"):
        IVTConfig.from_preset("huge")
    with pytest.raises(IVTInputError, match=r"^unknown IVTConfig preset None; the presets are base, micro, tiny$"):
        IVTConfig.from_preset(None)
    with pytest.raises(IVTInputError, match=r"hidden_size \(32\) must be divisible by num_attention_heads \(3\)"):
        IVTConfig.from_preset("micro", num_attention_heads=3)


def test_forward_shapes_and_cosine_logits(tiny_config):
    model = IVTModel(tiny_config).eval()
    pixel_values, input_ids, attention_mask = _inputs(tiny_config)
    with torch.no_grad():
        output = model(pixel_values=pixel_values, input_ids=input_ids, attention_mask=attention_mask)
    assert output.image_embeds.shape == (2, 32) and output.text_embeds.shape == (3, 32)
    assert output.logits_per_text.shape == (3, 2) and torch.equal(output.logits_per_image, output.logits_per_text.t())
    expected = torch.nn.functional.cosine_similarity(output.text_embeds[:, None], output.image_embeds[None], dim=-1)
    torch.testing.assert_close(output.logits_per_text, expected)
    torch.testing.assert_close(model.get_image_features(pixel_values), output.image_embeds)
    torch.testing.assert_close(model.get_text_features(input_ids, attention_mask), output.text_embeds)
    assert output.image_last_hidden_state.shape == (2, 1 + tiny_config.num_patches, 32)


def test_return_dict_false_gives_the_fields_as_a_tuple_in_order(tiny_config):
    """`return_dict=False`, or `config.return_dict` False, gives the output's fields that are not None as a tuple in
    `IVTOutput`'s order (transformers' `can_return_tuple`); `return_dict=True` wins over the config. A fourth
    positional argument, once `return_dict`, is refused rather than taken for another parameter."""
    model = IVTModel(tiny_config).eval()
    pixel_values, input_ids, attention_mask = _inputs(tiny_config)
    inputs = {"pixel_values": pixel_values, "input_ids": input_ids, "attention_mask": attention_mask}
    with torch.no_grad():
        output = model(**inputs)
        as_tuple = model(**inputs, return_dict=False)
        images_only = model(pixel_values=pixel_values, return_dict=False)
        model.config.return_dict = False
        by_config = model(**inputs)
        overridden = model(**inputs, return_dict=True)
    fields = [
        "logits_per_text",
        "logits_per_image",
        "text_embeds",
        "image_embeds",
        "text_last_hidden_state",
        "image_last_hidden_state",
    ]
    assert list(output.keys()) == fields
    for got in (as_tuple, by_config):
        assert type(got) is tuple and len(got) == len(fields)
        assert all(torch.equal(value, output[name]) for value, name in zip(got, fields))
    assert type(overridden) is IVTOutput and torch.equal(overridden.text_embeds, output.text_embeds)
    assert type(images_only) is tuple and len(images_only) == 2  # the text fields and logits are None: left out
    assert torch.equal(images_only[0], output.image_embeds)
    assert torch.equal(images_only[1], output.image_last_hidden_state)
    with pytest.raises(TypeError):
        model(pixel_values, input_ids, attention_mask, False)


def test_padding_does_not_change_text_embedding(tiny_config):
    model = IVTModel(tiny_config).eval()
    _, input_ids, attention_mask = _inputs(tiny_config)
    with torch.no_grad():
        padded = model.get_text_features(input_ids[1:2], attention_mask[1:2])
        unpadded = model.get_text_features(input_ids[1:2, :5], attention_mask[1:2, :5])
    torch.testing.assert_close(padded, unpadded, atol=1e-5, rtol=1e-5)


def test_text_length_buckets_give_the_same_embeddings_and_gradients(tiny_config):
    model = IVTModel(tiny_config).eval()
    generator = torch.Generator().manual_seed(0)
    lengths = [3, 12, 5, 9, 2, 12, 7]
    input_ids = torch.zeros(len(lengths), 12, dtype=torch.long)
    attention_mask = torch.zeros_like(input_ids)
    for row, length in enumerate(lengths):
        input_ids[row, :length] = torch.randint(1000, 2000, (length,), generator=generator)
        input_ids[row, 0], input_ids[row, length - 1] = 101, 102
        attention_mask[row, :length] = 1
    whole = model(input_ids=input_ids, attention_mask=attention_mask)
    bucketed = model(input_ids=input_ids, attention_mask=attention_mask, text_length_buckets=3)
    torch.testing.assert_close(bucketed.text_embeds, whole.text_embeds, atol=1e-5, rtol=1e-5)
    assert bucketed.text_last_hidden_state is None  # the groups have different lengths
    grads = []
    for buckets in (1, 3):
        model.zero_grad()
        output = model(input_ids=input_ids, attention_mask=attention_mask, text_length_buckets=buckets)
        output.text_embeds.sum().backward()
        grads.append(model.text_embeddings.word_embeddings.weight.grad.clone())
    torch.testing.assert_close(grads[1], grads[0], atol=1e-5, rtol=1e-4)
    # more groups than texts: one text per group
    many = model(input_ids=input_ids[:2], attention_mask=attention_mask[:2], text_length_buckets=5).text_embeds
    torch.testing.assert_close(many, whole.text_embeds[:2], atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="right-padded"):
        model(input_ids=input_ids, attention_mask=attention_mask.flip(1), text_length_buckets=3)
    with pytest.raises(ValueError, match="text_length_buckets must be >= 1"):
        model(input_ids=input_ids, attention_mask=attention_mask, text_length_buckets=0)


@pytest.mark.compat
def test_sdpa_equals_eager(tiny_config):
    pixel_values, input_ids, attention_mask = _inputs(tiny_config)
    torch.manual_seed(0)
    sdpa = IVTModel._from_config(copy.deepcopy(tiny_config), attn_implementation="sdpa").eval()
    eager = IVTModel._from_config(copy.deepcopy(tiny_config), attn_implementation="eager").eval()
    eager.load_state_dict(sdpa.state_dict())
    assert sdpa.config._attn_implementation == "sdpa" and eager.config._attn_implementation == "eager"
    with torch.no_grad():
        out_sdpa = sdpa(pixel_values=pixel_values, input_ids=input_ids, attention_mask=attention_mask)
        out_eager = eager(pixel_values=pixel_values, input_ids=input_ids, attention_mask=attention_mask)
    torch.testing.assert_close(out_sdpa.image_embeds, out_eager.image_embeds, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out_sdpa.text_embeds, out_eager.text_embeds, atol=1e-5, rtol=1e-5)


@pytest.mark.compat
def test_gradient_checkpointing_keeps_outputs_and_gradients(tiny_config):
    pixel_values, input_ids, attention_mask = _inputs(tiny_config)
    config = IVTConfig.from_preset("micro", token_drop_ratio=0.0)
    torch.manual_seed(0)
    model = IVTModel(config).train()
    results = []
    for checkpointing in (False, True):
        if checkpointing:
            model.gradient_checkpointing_enable()
        model.zero_grad()
        output = model(pixel_values=pixel_values, input_ids=input_ids, attention_mask=attention_mask)
        (output.image_embeds.square().sum() + output.text_embeds.square().sum()).backward()
        results.append(
            (
                output.image_embeds.detach(),
                output.text_embeds.detach(),
                model.encoder.layers[0].self_attn.qkv.weight.grad.clone(),
            )
        )
    assert model.is_gradient_checkpointing
    for plain, checkpointed in zip(results[0], results[1]):
        torch.testing.assert_close(plain, checkpointed)


def test_every_parameter_gets_a_gradient(tiny_config):
    model = IVTModel(tiny_config).train()
    pixel_values, input_ids, attention_mask = _inputs(tiny_config)
    output = model(pixel_values=pixel_values, input_ids=input_ids, attention_mask=attention_mask)
    # a random projection: the plain sum of a LayerNorm output has zero gradient
    weights = torch.randn(tiny_config.hidden_size, generator=torch.Generator().manual_seed(0))
    ((output.image_embeds * weights).sum() + (output.text_embeds * weights).sum()).backward()
    missing = [name for name, parameter in model.named_parameters() if parameter.grad is None]
    assert missing == []
    assert model.image_embeddings.modality_embedding.grad.abs().sum() > 0
    assert model.encoder.layers[0].vision_mlp.fc1.weight.grad.abs().sum() > 0
    assert model.encoder.layers[0].text_mlp.fc1.weight.grad.abs().sum() > 0


def test_image_pass_uses_only_vision_ffn_and_text_pass_only_text_ffn(tiny_config):
    model = IVTModel(tiny_config).train()
    pixel_values, input_ids, attention_mask = _inputs(tiny_config)
    model.get_image_features(pixel_values).square().sum().backward()
    assert model.encoder.layers[1].text_mlp.fc1.weight.grad is None
    assert model.text_embeddings.word_embeddings.weight.grad is None
    assert model.encoder.layers[1].vision_mlp.fc1.weight.grad is not None


def test_bmm_drops_tokens_only_in_training(tiny_config):
    config = IVTConfig.from_preset("micro", token_drop_ratio=0.5)
    model = IVTModel(config)
    pixel_values, input_ids, attention_mask = _inputs(config, seq=20)
    full_length = 1 + config.num_patches
    model.eval()
    with torch.no_grad():
        assert model.image_hidden_states(pixel_values).shape[1] == full_length
        first = model.get_image_features(pixel_values)
        assert torch.equal(first, model.get_image_features(pixel_values))  # eval is deterministic
    model.train()
    torch.manual_seed(1)
    lengths = {model.image_hidden_states(pixel_values).shape[1] for _ in range(30)}
    assert min(lengths) >= full_length - int(0.5 * full_length) and max(lengths) <= full_length
    assert len(lengths) > 3  # k varies between calls
    text_lengths = {model.text_hidden_states(input_ids, attention_mask).shape[1] for _ in range(30)}
    assert min(text_lengths) < 20


@pytest.mark.parametrize("mode", ["batch", "per_sample"])
def test_drop_tokens_never_drops_cls(mode):
    torch.manual_seed(0)
    batch, seq = 4, 12
    # token value = its position, so the surviving positions can be read back
    hidden = torch.arange(seq, dtype=torch.float32)[None, :, None].expand(batch, seq, 3).clone()
    hidden[:, 0] = -1.0  # CLS
    mask = torch.ones(batch, seq, dtype=torch.long)
    mask[1, 7:] = 0
    seen_drop = False
    for _ in range(50):
        kept, kept_mask = drop_tokens(hidden, mask, 0.5, mode)
        assert torch.all(kept[:, 0, 0] == -1.0)
        assert kept.shape[1] >= seq - int(0.5 * seq)
        seen_drop |= kept.shape[1] < seq or bool((kept_mask == 0).sum() > (mask == 0).sum())
        positions = kept[..., 0]
        real = kept_mask.bool()
        for row in range(batch):
            order = positions[row][real[row]]
            assert torch.all(order[1:] > order[:-1])  # kept tokens stay in their order
        if mode == "per_sample":
            assert torch.all(positions[1][real[1]] < 7)  # only real tokens survive as real
            assert real[1].sum() >= 7 - int(0.5 * 7)
    assert seen_drop


def test_drop_tokens_batch_mode_shares_positions():
    torch.manual_seed(3)
    hidden = torch.arange(10, dtype=torch.float32)[None, :, None].expand(3, 10, 1).clone()
    for _ in range(20):
        kept, _ = drop_tokens(hidden, None, 0.3, "batch")
        assert torch.equal(kept[0], kept[1]) and torch.equal(kept[1], kept[2])


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda model: model.get_image_features(torch.zeros(1, 3, 32, 32)), "pixel_values must have shape"),
        (lambda model: model.get_image_features(torch.zeros(3, 64, 32)), "pixel_values must have shape"),
        (lambda model: model.get_text_features(torch.tensor([[101, 40000, 102]])), "input_ids must lie"),
        (lambda model: model.get_text_features(torch.ones(1, 100, dtype=torch.long)), "text positions"),
        (lambda model: model.get_text_features(torch.ones(2, 5, dtype=torch.long), torch.ones(2, 4)), "attention_mask"),
        (lambda model: model(), "needs pixel_values"),
    ],
)
def test_bad_input_is_a_clear_error(tiny_config, call, message):
    model = IVTModel(tiny_config).eval()
    with pytest.raises(ValueError, match=message):
        call(model)

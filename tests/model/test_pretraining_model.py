"""IVTForPreTraining: each loss against a brute-force reference, hard negatives, the fusion layer against hand-written
BERT arithmetic, whole-word masking rules, save/load, Auto classes and remote code."""

from __future__ import annotations

import json
import math
import random

import pytest
import torch
from helpers.itc_setting import tiny_pretraining_config
from helpers.remote_code import run_without_ivt_hf
from torch import nn
from transformers import AutoModel, AutoModelForPreTraining

from ivt_hf import IVTConfig, IVTModel, IVTProcessor
from ivt_hf.hub import save_model_folder
from ivt_hf.model.modeling_ivt import IVTForPreTraining, image_text_contrastive_loss, sample_hard_negatives
from ivt_hf.model.processing_ivt import default_tokenizer
from ivt_hf.training.pretraining.masking import IGNORE_INDEX, MaskingRules, whole_word_mask, word_spans


def _config(**overrides) -> IVTConfig:
    return tiny_pretraining_config(**({"fusion_num_hidden_layers": 2} | overrides))


def _batch(batch_size=4, seq=10, vocab=120, seed=0):
    generator = torch.Generator().manual_seed(seed)
    pixels = torch.randn(batch_size, 3, 64, 32, generator=generator)
    ids = torch.randint(5, vocab, (batch_size, seq), generator=generator)
    ids[:, 0] = 2
    mask = torch.ones(batch_size, seq, dtype=torch.long)
    mask[0, 7:] = 0
    ids[0, 7:] = 0
    labels = torch.full_like(ids, IGNORE_INDEX)
    labels[:, 3] = ids[:, 3]
    labels[1, 5] = ids[1, 5]
    masked = ids.clone()
    masked[labels != IGNORE_INDEX] = 4
    return pixels, ids, mask, masked, labels


def _brute_force_itc(images, texts, temperature):
    total = 0.0
    n = images.shape[0]
    for i in range(n):
        row = [float(images[i] @ texts[j]) / temperature for j in range(n)]
        total += -(row[i] - math.log(sum(math.exp(value) for value in row)))
        column = [float(texts[i] @ images[j]) / temperature for j in range(n)]
        total += -(column[i] - math.log(sum(math.exp(value) for value in column)))
    return total / (2 * n)


def test_itc_loss_matches_a_brute_force_sum():
    generator = torch.Generator().manual_seed(1)
    images, texts = torch.randn(5, 8, generator=generator), torch.randn(5, 8, generator=generator)
    loss = image_text_contrastive_loss(images, texts, 0.7)
    assert loss.item() == pytest.approx(_brute_force_itc(images, texts, 0.7), rel=1e-5)


def test_with_a_gather_function_the_itc_is_that_of_the_gathered_batch():
    torch.manual_seed(0)
    model = IVTForPreTraining(_config()).eval()
    pixels, ids, mask, _, _ = _batch()
    others = torch.randn(3, 2, 32, generator=torch.Generator().manual_seed(5))
    others = nn.functional.normalize(others, dim=-1)  # another process's 3 (image, text) features
    seen = []

    def gather(rows):  # stands in for all_gather_with_grad: this process's pairs, then another process's 3 pairs
        seen.append(tuple(rows.shape))
        return torch.cat([rows, others.flatten(1)])

    with torch.no_grad():
        out = model(pixels, ids, mask, itc_gather=gather)
        images = nn.functional.normalize(model.ivt.get_image_features(pixels), dim=-1)
        texts = nn.functional.normalize(model.ivt.get_text_features(ids, mask), dim=-1)
    expected = _brute_force_itc(torch.cat([images, others[:, 0]]), torch.cat([texts, others[:, 1]]), 0.07)
    assert seen == [(4, 64)]  # one collective for both modalities
    assert out.loss_itc.item() == pytest.approx(expected, rel=1e-5)


def test_hard_negatives_never_pick_the_positive_and_follow_the_softmax():
    similarity = torch.tensor([[9.0, 1.0, 2.0, 0.0], [0.5, 9.0, 0.0, 3.0], [1.0, 1.0, 9.0, 1.0], [0.0, 2.0, 0.0, 9.0]])
    generator = torch.Generator().manual_seed(0)
    draws = 4000
    counts = torch.zeros(4, 4)
    counts_t = torch.zeros(4, 4)
    for _ in range(draws):
        negative_text, negative_image = sample_hard_negatives(similarity, generator)
        counts[torch.arange(4), negative_text] += 1
        counts_t[torch.arange(4), negative_image] += 1
    assert counts.diagonal().sum() == 0 and counts_t.diagonal().sum() == 0
    for observed, sims in ((counts, similarity), (counts_t, similarity.t())):
        expected = sims.softmax(dim=1) + 1e-4
        expected.fill_diagonal_(0)
        expected = expected / expected.sum(dim=1, keepdim=True)
        assert torch.allclose(observed / draws, expected, atol=0.03)


def test_hard_negatives_refuse_a_batch_of_one():
    with pytest.raises(ValueError, match="at least 2 pairs"):
        sample_hard_negatives(torch.ones(1, 1))


def test_forward_losses_equal_their_pieces_recomputed_by_hand():
    torch.manual_seed(0)
    model = IVTForPreTraining(_config()).eval()
    pixels, ids, mask, masked, labels = _batch(batch_size=2)  # two pairs: each negative is the other pair
    with torch.no_grad():
        out = model(pixels, ids, mask, masked, labels)
        image_states = model.ivt.image_hidden_states(pixels)
        text_states = model.ivt.text_hidden_states(ids, mask)
        images = nn.functional.normalize(image_states[:, 0], dim=-1)
        texts = nn.functional.normalize(text_states[:, 0], dim=-1)
        itc = _brute_force_itc(images, texts, 0.07)
        order_text, order_image = [0, 1, 1, 0, 0, 1], [0, 1, 0, 1, 1, 0]
        fused = model.fuse(text_states[order_text], mask[order_text], image_states[order_image])
        itm_logits = model.itm_head(fused[:, 0])
        itm = nn.functional.cross_entropy(itm_logits, torch.tensor([1, 1, 0, 0, 0, 0]))
        masked_states = model.ivt.text_hidden_states(masked, mask)
        fused_masked = model.fuse(masked_states, mask, image_states)
        positions = labels != IGNORE_INDEX
        mlm = nn.functional.cross_entropy(model.mlm_head(fused_masked[positions]), labels[positions])
    assert out.loss_itc.item() == pytest.approx(itc, rel=1e-5)
    assert torch.allclose(out.itm_logits, itm_logits, atol=1e-6)
    assert out.loss_itm.item() == pytest.approx(itm.item(), rel=1e-6)
    assert out.loss_mlm.item() == pytest.approx(mlm.item(), rel=1e-6)
    assert out.loss.item() == pytest.approx(itc + itm.item() + mlm.item(), rel=1e-5)
    assert out.mlm_logits.shape == (int(positions.sum()), 120)


def test_return_dict_false_gives_the_losses_and_outputs_as_a_tuple_in_order():
    """`return_dict=False`, or `config.return_dict` False, gives `IVTForPreTrainingOutput`'s fields that are not None
    as a tuple in its order (transformers' `can_return_tuple`): without MLM inputs `loss_mlm` and `mlm_logits` are
    left out. An eighth positional argument, once `return_dict`, is refused."""
    model = IVTForPreTraining(_config()).eval()
    pixels, ids, mask, masked, labels = _batch()
    fields = ["loss", "loss_itc", "loss_itm", "loss_mlm", "image_embeds", "text_embeds", "itm_logits", "mlm_logits"]
    fields.append("temperature")

    def run(*args, **kwargs):
        torch.manual_seed(0)  # the same hard negatives in every call
        with torch.no_grad():
            return model(*args, **kwargs)

    output = run(pixels, ids, mask, masked, labels)
    assert list(output.keys()) == fields
    as_tuple = run(pixels, ids, mask, masked, labels, return_dict=False)
    assert type(as_tuple) is tuple and len(as_tuple) == len(fields)
    assert all(torch.equal(value, output[name]) for value, name in zip(as_tuple, fields))
    without_mlm = run(pixels, ids, mask, return_dict=False)
    assert len(without_mlm) == len(fields) - 2  # loss_mlm and mlm_logits are None
    model.config.return_dict = False
    by_config = run(pixels, ids, mask, masked, labels)
    assert type(by_config) is tuple and all(torch.equal(a, b) for a, b in zip(by_config, as_tuple))
    assert type(run(pixels, ids, mask, return_dict=True)).__name__ == "IVTForPreTrainingOutput"
    with pytest.raises(TypeError):
        run(pixels, ids, mask, masked, labels, None, False)


def test_the_authors_itc_uses_raw_vectors_and_an_unclamped_temperature():
    torch.manual_seed(0)
    model = IVTForPreTraining(_config(itc_normalize=False, itc_temperature=0.5, itc_temperature_range=None)).eval()
    pixels, ids, mask, _, _ = _batch()
    with torch.no_grad():
        out = model(pixels, ids, mask)
        images = model.ivt.get_image_features(pixels)
        texts = model.ivt.get_text_features(ids, mask)
        model.log_temperature.fill_(math.log(5.0))  # outside the default range: left as it is
        model(pixels, ids, mask)
        assert model.current_temperature().item() == pytest.approx(5.0)
    assert out.temperature.item() == 0.5
    assert out.loss_itc.item() == pytest.approx(_brute_force_itc(images, texts, 0.5), rel=1e-5)
    assert out.loss_mlm is None and out.mlm_logits is None


def test_the_default_temperature_is_clamped_in_place_and_keeps_its_gradient():
    """The bug this guards: a clamp inside the graph has zero gradient outside the range, so a temperature that left
    it (SGD did within 5 steps) stayed frozen at the bound. Clamped in place, the value is in range AND the
    gradient of the loss reaches it."""
    model = IVTForPreTraining(_config()).train()
    pixels, ids, mask, masked, labels = _batch()
    for outside, bound in ((1e-6, 0.001), (3.0, 0.5)):
        with torch.no_grad():
            model.log_temperature.fill_(math.log(outside))
        model.zero_grad()
        out = model(pixels, ids, mask)
        assert out.temperature.item() == pytest.approx(bound, rel=1e-6)  # used at the bound...
        assert model.current_temperature().item() == pytest.approx(bound, rel=1e-6)  # ...and stored there
        out.loss_itc.backward()
        assert model.log_temperature.grad is not None and model.log_temperature.grad.abs().item() > 0


def test_sgd_moves_the_log_temperature_by_relative_steps():
    """One SGD step at the recipe's rate changes the temperature by a factor close to 1 (log-space gradient is T times
    the raw one), where the raw parameter moved by more than the whole range in a few steps."""
    torch.manual_seed(0)
    model = IVTForPreTraining(_config()).train()
    pixels, ids, mask, _, _ = _batch()
    optimizer = torch.optim.SGD([model.log_temperature], lr=5e-3, momentum=0.9)
    before = model.current_temperature().item()
    for _ in range(5):
        optimizer.zero_grad()
        model(pixels, ids, mask).loss_itc.backward()
        optimizer.step()
    after = model.current_temperature().item()
    assert 0.5 < after / before < 2.0, (before, after)


def test_pretraining_decays_only_matrices_and_fine_tuning_decays_all_as_the_reference():
    """Pre-training's optimiser leaves the ITC temperature, LayerNorm scales and shifts and every bias without weight
    decay (decay would pull the temperature towards zero); fine-tuning keeps the reference's decay of everything."""
    from ivt_hf.training.optim import build_optimizer

    model = IVTForPreTraining(_config())
    names = {id(parameter): name for name, parameter in model.named_parameters()}
    optimizer = build_optimizer(model, "sgd", lr=5e-3, weight_decay=1e-4, bias_lr_multiplier=2.0, decay_all=False)
    decay = {names[id(p)]: group["weight_decay"] for group in optimizer.param_groups for p in group["params"]}
    assert len(decay) == len(names)  # every parameter in exactly one group
    assert decay["log_temperature"] == 0.0
    norms = [name for name in names.values() if "LayerNorm" in name or ".norm" in name or "layernorm" in name]
    assert norms and all(decay[name] == 0.0 for name in norms)
    assert all(decay[name] == 0.0 for name in names.values() if name.endswith(".bias"))
    matrices = [name for name, p in model.named_parameters() if p.ndim >= 2]
    assert matrices and all(decay[name] == 1e-4 for name in matrices)
    lr = {names[id(p)]: group["lr"] for group in optimizer.param_groups for p in group["params"]}
    assert lr["log_temperature"] == 5e-3 and all(lr[n] == 1e-2 for n in names.values() if n.endswith(".bias"))
    reference = build_optimizer(model, "sgd", lr=5e-3, weight_decay=1e-4, decay_all=True)
    assert {group["weight_decay"] for group in reference.param_groups} == {1e-4}


def test_pretraining_never_drops_tokens_and_every_parameter_gets_a_gradient():
    torch.manual_seed(0)
    model = IVTForPreTraining(_config(token_drop_ratio=0.5)).train()
    pixels, ids, mask, masked, labels = _batch()
    out = model(pixels, ids, mask, masked, labels)
    out.loss.backward()
    assert [name for name, parameter in model.named_parameters() if parameter.grad is None] == []
    states = model.ivt.image_hidden_states(pixels, token_drop=False)
    assert states.shape[1] == 1 + model.config.num_patches


def test_fusion_layer_is_bert_arithmetic():
    torch.manual_seed(0)
    config = _config()
    layer = IVTForPreTraining(config).fusion.layer[0].eval()
    text = torch.randn(2, 5, 32)
    image = torch.randn(2, 7, 32)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])

    def attention(block, queries, context, key_mask):
        q, k, v = block.self.query(queries), block.self.key(context), block.self.value(context)
        out = torch.zeros_like(queries)
        for b in range(queries.shape[0]):
            for h in range(2):
                cols = slice(16 * h, 16 * h + 16)
                scores = q[b, :, cols] @ k[b, :, cols].t() / 4.0
                if key_mask is not None:
                    scores = scores.masked_fill(key_mask[b][None, :] == 0, float("-inf"))
                out[b, :, cols] = scores.softmax(dim=-1) @ v[b, :, cols]
        return block.output.LayerNorm(block.output.dense(out) + queries)

    with torch.no_grad():
        expected = attention(layer.attention, text, text, mask)
        expected = attention(layer.crossattention, expected, image, None)
        hidden = nn.functional.gelu(layer.intermediate.dense(expected))
        expected = layer.output.LayerNorm(layer.output.dense(hidden) + expected)
        additive = (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
        got = layer(text, additive, image, None)
    assert torch.allclose(got, expected, atol=1e-5)


def test_mlm_decoder_tying_follows_the_config():
    tied = IVTForPreTraining(_config())
    assert tied.mlm_head.decoder.weight is tied.ivt.text_embeddings.word_embeddings.weight
    untied = IVTForPreTraining(_config(tie_word_embeddings=False))
    assert untied.mlm_head.decoder.weight is not untied.ivt.text_embeddings.word_embeddings.weight


@pytest.mark.filterwarnings("ignore:the tokenizer has 30522 tokens")  # a tiny vocabulary keeps the model small
@pytest.mark.parametrize("tie", [True, False])
@pytest.mark.compat
def test_save_load_is_bit_exact_and_auto_classes_pick_the_right_model(tmp_path, tie):
    torch.manual_seed(0)
    model = IVTForPreTraining(_config(tie_word_embeddings=tie)).eval()
    save_model_folder(model, IVTProcessor.from_config(model.config), tmp_path / "pre")
    loaded = AutoModelForPreTraining.from_pretrained(tmp_path / "pre")
    assert type(loaded) is IVTForPreTraining
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, loaded.state_dict()[name]), name
    assert (loaded.mlm_head.decoder.weight is loaded.ivt.text_embeddings.word_embeddings.weight) == tie
    encoder = AutoModel.from_pretrained(tmp_path / "pre")
    assert type(encoder) is IVTModel
    for name, tensor in encoder.state_dict().items():
        assert torch.equal(tensor, model.state_dict()["ivt." + name]), name
    config = json.loads((tmp_path / "pre" / "config.json").read_text())
    assert config["architectures"] == ["IVTForPreTraining"]
    assert config["auto_map"]["AutoModelForPreTraining"] == "modeling_ivt.IVTForPreTraining"


@pytest.mark.filterwarnings("ignore:the tokenizer has 30522 tokens")
def test_remote_code_loads_the_pretraining_model_without_ivt_hf(tmp_path):
    torch.manual_seed(0)
    model = IVTForPreTraining(_config()).eval()
    save_model_folder(model, IVTProcessor.from_config(model.config), tmp_path / "pre")
    pixels, ids, mask, masked, labels = _batch(batch_size=2)  # two pairs: the negatives are fixed
    with torch.no_grad():
        expected = model(pixels, ids, mask, masked, labels)
    torch.save(
        {"pixels": pixels, "ids": ids, "mask": mask, "masked": masked, "labels": labels, "loss": expected.loss},
        tmp_path / "io.pt",
    )
    script = f"""
        import torch
        from transformers import AutoModelForPreTraining

        model = AutoModelForPreTraining.from_pretrained({str(tmp_path / "pre")!r}, trust_remote_code=True).eval()
        io = torch.load({str(tmp_path / "io.pt")!r}, weights_only=True)
        with torch.no_grad():
            out = model(io["pixels"], io["ids"], io["mask"], io["masked"], io["labels"])
        assert torch.equal(out.loss, io["loss"]), (out.loss, io["loss"])
        assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
        print("remote-code OK", type(model).__name__)
        """
    result = run_without_ivt_hf(script, tmp_path / "hf")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "remote-code OK IVTForPreTraining" in result.stdout


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("fusion_num_hidden_layers", -1, "fusion_num_hidden_layers"),
        ("itc_temperature", 0.0, "itc_temperature"),
        ("itc_temperature_range", (0.5, 0.1), "itc_temperature_range"),
        ("fusion_hidden_dropout", 1.0, "fusion_hidden_dropout"),
    ],
)
def test_bad_pretraining_config_values_are_named(field, value, message):
    with pytest.raises(ValueError, match=message):
        _config(**{field: value})


def test_mismatched_pretraining_inputs_are_refused():
    model = IVTForPreTraining(_config())
    pixels, ids, mask, masked, labels = _batch()
    with pytest.raises(ValueError, match="pre-training takes pairs"):
        model(pixels[:3], ids, mask)
    with pytest.raises(ValueError, match="both mlm_input_ids and mlm_labels"):
        model(pixels, ids, mask, masked)


# --------------------------------------------------------------------------------------------- whole-word masking

TOKENIZER = default_tokenizer()
CAPTION = "a pedestrian wearing sunglasses and a backpack walks across the crosswalk beside skateboarders"


def _caption_ids(caption=CAPTION):
    ids = [TOKENIZER.cls_token_id, *TOKENIZER.convert_tokens_to_ids(TOKENIZER.tokenize(caption))]
    return ids, TOKENIZER.convert_ids_to_tokens(ids)


def test_word_spans_join_wordpieces():
    assert word_spans(["[CLS]", "skate", "##board", "##ers", "walk"]) == [(1, 4), (4, 5)]


def test_masking_rules_hold_on_a_fixed_seed():
    ids, tokens = _caption_ids()
    assert any(token.startswith("##") for token in tokens)  # the caption has multi-piece words
    words = word_spans(tokens)
    budget = min(8, max(1, round(0.25 * (len(ids) - 1))))
    counts = {"mask": 0, "random": 0, "kept": 0}
    rng = random.Random(1234)
    for _ in range(3000):
        masked, labels = whole_word_mask(
            ids, tokens, mask_token_id=TOKENIZER.mask_token_id, random_token_ids=(999, len(TOKENIZER)), rng=rng
        )
        chosen = [position for position, label in enumerate(labels) if label != IGNORE_INDEX]
        assert 0 not in chosen  # [CLS] is never masked
        assert 1 <= len(chosen) <= budget
        for begin, end in words:  # whole words: all of a word's pieces or none
            assert len({labels[p] != IGNORE_INDEX for p in range(begin, end)}) == 1
        for position in range(len(ids)):
            if position in chosen:
                assert labels[position] == ids[position]
                kind = (
                    "mask"
                    if masked[position] == TOKENIZER.mask_token_id
                    else ("kept" if masked[position] == ids[position] else "random")
                )
                counts[kind] += 1
                if kind == "random":
                    assert 999 <= masked[position] < len(TOKENIZER)
            else:
                assert masked[position] == ids[position]
    total = sum(counts.values())
    assert counts["mask"] / total == pytest.approx(0.8, abs=0.02)
    assert counts["random"] / total == pytest.approx(0.1, abs=0.015)  # a random draw can equal the original: rare
    assert counts["kept"] / total == pytest.approx(0.1, abs=0.015)


def test_masking_is_a_function_of_the_seed_and_caps_at_eight():
    ids, tokens = _caption_ids(" ".join(["red"] * 60))
    first = whole_word_mask(ids, tokens, mask_token_id=103, random_token_ids=(999, 30522), rng=random.Random(7))
    second = whole_word_mask(ids, tokens, mask_token_id=103, random_token_ids=(999, 30522), rng=random.Random(7))
    assert first == second
    assert sum(label != IGNORE_INDEX for label in first[1]) == 8  # 0.25 x 60 = 15 > the cap of 8
    third = whole_word_mask(ids, tokens, mask_token_id=103, random_token_ids=(999, 30522), rng=random.Random(8))
    assert third != first


def test_spans_mask_neighbouring_words_together():
    ids, tokens = _caption_ids(" ".join(["blue"] * 40))
    rules = MaskingRules(span_probability=1.0, max_span_words=3, max_predictions=3)
    _, labels = whole_word_mask(
        ids, tokens, mask_token_id=103, random_token_ids=(999, 30522), rng=random.Random(3), rules=rules
    )
    chosen = [position for position, label in enumerate(labels) if label != IGNORE_INDEX]
    assert len(chosen) >= 2 and chosen == list(range(chosen[0], chosen[0] + len(chosen)))


def test_masking_rules_refuse_nonsense():
    with pytest.raises(ValueError, match="mask_probability"):
        MaskingRules(mask_probability=0.0)
    with pytest.raises(ValueError, match="ids but"):
        whole_word_mask([1, 2], ["[CLS]"], mask_token_id=103, random_token_ids=(0, 5), rng=random.Random(0))


@pytest.mark.compat
def test_a_new_pretraining_model_starts_its_fusion_encoder_from_bert(tmp_path):
    from safetensors.torch import save_file
    from transformers import BertConfig, BertForMaskedLM

    from ivt_hf.model import IVTForPreTraining
    from ivt_hf.training import ModelArguments, build_model

    torch.manual_seed(0)
    bert = BertForMaskedLM(
        BertConfig(
            hidden_size=128,
            num_hidden_layers=4,
            num_attention_heads=4,
            intermediate_size=256,
            max_position_embeddings=128,
        )
    )
    state = {name: tensor.clone() for name, tensor in bert.state_dict().items()}
    state.pop("cls.predictions.decoder.weight")  # tied to the word embeddings in the file, as on the Hub
    save_file(state, tmp_path / "bert.safetensors")
    model = build_model(IVTForPreTraining, ModelArguments(bert_checkpoint=str(tmp_path / "bert.safetensors")))
    assert model.config.fusion_num_hidden_layers == 2
    for index in range(2):
        ours, theirs = model.fusion.layer[index], bert.bert.encoder.layer[index]
        assert torch.equal(ours.attention.self.query.weight, theirs.attention.self.query.weight)
        assert torch.equal(ours.output.LayerNorm.weight, theirs.output.LayerNorm.weight)
        assert torch.equal(ours.intermediate.dense.bias, theirs.intermediate.dense.bias)
    assert torch.equal(model.mlm_head.transform.dense.weight, bert.cls.predictions.transform.dense.weight)
    assert torch.equal(model.ivt.text_embeddings.word_embeddings.weight, bert.bert.embeddings.word_embeddings.weight)
    assert model.mlm_head.decoder.weight is model.ivt.text_embeddings.word_embeddings.weight
    assert not torch.equal(
        model.fusion.layer[0].crossattention.self.query.weight[:4, :4], torch.zeros(4, 4)
    )  # cross-attention: its own random start


def test_the_base_model_has_the_authors_parameter_count():
    """The authors' pre-training model has 247,622,205 parameters. Ours with its own MLM decoder matrix (as their
    checkpoints convert) plus what only theirs has, the fusion BERT's unused position / token-type embeddings and
    embedding LayerNorm, is exactly that; tying the decoder to the shared word embeddings saves 30522 x 768."""
    with torch.device("meta"):
        untied = IVTForPreTraining(IVTConfig(tie_word_embeddings=False))
        tied = IVTForPreTraining(IVTConfig())
    unused_in_theirs = 512 * 768 + 2 * 768 + 2 * 768
    assert sum(p.numel() for p in untied.parameters()) + unused_in_theirs == 247_622_205
    assert sum(p.numel() for p in untied.parameters()) - sum(p.numel() for p in tied.parameters()) == 30522 * 768


# ----- folders and checkpoints saved before the temperature was learnt as its logarithm -----

OLD_TEMPERATURE = 0.05


def _with_old_temperature_key(weights_file, temperature: float = OLD_TEMPERATURE) -> None:
    """Rewrite a real safetensors file as the model saved it before `log_temperature`: the key `temperature`, holding
    the temperature itself."""
    from safetensors.torch import load_file, save_file

    state = load_file(weights_file)
    del state["log_temperature"]
    state["temperature"] = torch.tensor(temperature)
    save_file(state, weights_file, metadata={"format": "pt"})


@pytest.mark.filterwarnings("ignore:the tokenizer has 30522 tokens")
def test_a_folder_saved_with_the_old_temperature_key_loads_its_temperature(tmp_path):
    """`temperature` converts to `log_temperature` at load (not reset to the config's 0.07 as a missing weight), in
    ivt_hf and with trust_remote_code; saving again writes the current key; the encoder alone ignores it."""
    from ivt_hf.model.modeling_ivt import exact_log

    torch.manual_seed(0)
    model = IVTForPreTraining(_config()).eval()
    save_model_folder(model, IVTProcessor.from_config(model.config), tmp_path / "old")
    _with_old_temperature_key(tmp_path / "old" / "model.safetensors")
    loaded, info = AutoModelForPreTraining.from_pretrained(tmp_path / "old", output_loading_info=True)
    assert info["missing_keys"] == set() and info["unexpected_keys"] == set()  # no "newly initialized" weight
    assert torch.equal(loaded.log_temperature.detach(), exact_log(torch.tensor(OLD_TEMPERATURE)))
    assert abs(loaded.log_temperature.exp().item() - OLD_TEMPERATURE) <= 4e-9  # 0.05 to a float32 ulp (3.7e-9)
    for name, tensor in model.state_dict().items():
        if name != "log_temperature":
            assert torch.equal(tensor, loaded.state_dict()[name]), name
    loaded.save_pretrained(tmp_path / "again")
    again = IVTForPreTraining.from_pretrained(tmp_path / "again")
    assert torch.equal(again.log_temperature, loaded.log_temperature)  # saved as log_temperature, bit for bit
    _, info = IVTModel.from_pretrained(tmp_path / "old", output_loading_info=True)
    assert info["unexpected_keys"] == set() and info["missing_keys"] == set()

    strict = IVTForPreTraining(_config())  # a plain `load_state_dict` (what resuming a checkpoint does)
    state = dict(model.state_dict())
    state["temperature"] = torch.tensor(OLD_TEMPERATURE)
    del state["log_temperature"]
    strict.load_state_dict(state, strict=True)
    assert torch.equal(strict.log_temperature.detach(), exact_log(torch.tensor(OLD_TEMPERATURE)))

    script = f"""
        import torch
        from transformers import AutoModelForPreTraining

        model, info = AutoModelForPreTraining.from_pretrained(
            {str(tmp_path / "old")!r}, trust_remote_code=True, output_loading_info=True
        )
        assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
        assert info["missing_keys"] == set() and info["unexpected_keys"] == set(), info
        print("temperature", repr(model.log_temperature.exp().item()))
        """
    result = run_without_ivt_hf(script, tmp_path / "hf")
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"temperature {loaded.log_temperature.exp().item()!r}" in result.stdout


@pytest.mark.filterwarnings("ignore:the tokenizer has 30522 tokens")
def test_a_pretraining_checkpoint_with_the_old_temperature_key_resumes(tmp_path, caplog):
    """`ivt pretrain --resume_from_checkpoint latest` on a checkpoint holding `temperature`: the run goes on with its
    temperature (its optimizer momentum restarting, said in one warning naming the folder)."""
    import io

    from PIL import Image
    from safetensors.torch import load_file

    from ivt_hf.cli import main
    from ivt_hf.data import write_webdataset_shards

    pairs = []
    for index in range(8):
        buffer = io.BytesIO()
        Image.new("RGB", (16, 32), (30 * index, 90, 200 - 20 * index)).save(buffer, "JPEG")
        pairs.append((f"{index:04d}", buffer.getvalue(), f"a person in a coat of colour {index}"))
    write_webdataset_shards(pairs, tmp_path / "shards", 4)
    output = tmp_path / "run"
    flags = ["pretrain", "--train_data", str(tmp_path / "shards"), "--output_dir", str(output)]
    flags += ["--model_preset", "tiny", "--per_device_train_batch_size", "4", "--shuffle_buffer_size", "4"]
    flags += ["--dataloader_num_workers", "0", "--save_steps", "1", "--seed", "0"]
    assert main([*flags, "--max_steps", "1"]) == 0
    _with_old_temperature_key(output / "checkpoint-1" / "model.safetensors")
    with caplog.at_level("WARNING", logger="ivt_hf.training.pretraining.loop"):
        assert main([*flags, "--max_steps", "2", "--resume_from_checkpoint", "latest"]) == 0
    assert [record.getMessage() for record in caplog.records if "temperature" in record.getMessage()] == [
        f"{output / 'checkpoint-1'}: saved with the ITC temperature itself; resumed with its logarithm"
    ]
    resumed = load_file(output / "checkpoint-2" / "model.safetensors")
    assert "temperature" not in resumed
    assert resumed["log_temperature"].exp().item() == pytest.approx(OLD_TEMPERATURE, rel=0.02)  # one step from 0.05

"""GradCache (`ivt_hf.training.gradcache`) and activation checkpointing in both stages.

The equivalence: a GradCache step's parameter gradients equal the full-batch step's, within 1e-5, with dropout,
drop-path and BMM on (the second encoding of each chunk reproduces its masks); without randomness, equal to the
Trainer's own plain step. Checked to fail when a chunk's gradient is wrong. Also: pre-training's cached step (ITC over
the batch, ITM and MLM per chunk), two real processes under DDP with gathered losses, and both stages' flags.
"""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

import pytest
import torch
from helpers.gradcache_reference import finetuning_reference, pretraining_reference
from helpers.itc_setting import tiny_pretraining_config
from helpers.launchers import ENV, launcher

from ivt_hf import IVTConfig, IVTModel
from ivt_hf.errors import IVTInputError
from ivt_hf.model.modeling_ivt import IVTForPreTraining
from ivt_hf.training import gradcache
from ivt_hf.training.finetuning.arguments import IVTTrainingArguments
from ivt_hf.training.finetuning.losses import cmpm_loss, cmpm_loss_terms
from ivt_hf.training.finetuning.trainer import IVTTrainer
from ivt_hf.training.gradcache import ChunkRandomness, GradCache, chunk_slices
from ivt_hf.training.pretraining.loop import cached_pretraining_step

ROOT = Path(__file__).resolve().parents[2]
DDP_WORKER = ROOT / "tests" / "helpers" / "gradcache_ddp_worker.py"
RANDOM = {"drop_path_rate": 0.1, "text_embedding_dropout": 0.1, "token_drop_ratio": 0.3}
STILL = {"drop_path_rate": 0.0, "text_embedding_dropout": 0.0, "token_drop_ratio": 0.0}


def _model(dtype=torch.float64, **overrides) -> IVTModel:
    torch.manual_seed(0)
    return IVTModel(IVTConfig.from_preset("micro", **overrides)).to(dtype).train()


def _batch(pairs: int = 12, dtype=torch.float64, seed: int = 1) -> dict[str, torch.Tensor]:
    """MLA-shaped: pairs of 3 per image, 2 images per identity, word / phrase / sentence text lengths."""
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(1000, 20000, (pairs, 12), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[0::3, 4:] = 0
    attention_mask[1::3, 8:] = 0
    return {
        "pixel_values": torch.randn(pairs, 3, 64, 32, generator=generator, dtype=dtype),
        "input_ids": input_ids * attention_mask,
        "attention_mask": attention_mask,
        "labels": torch.arange(pairs) // 6,
    }


def _grads(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    grads = {name: parameter.grad.clone() for name, parameter in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    return grads


def _largest_difference(left: dict[str, torch.Tensor], right: dict[str, torch.Tensor]) -> float:
    assert left.keys() == right.keys()
    return max((left[name] - right[name]).abs().max().item() for name in left)


def _trainer(model: IVTModel, tmp_path: Path, chunk: int, **settings) -> IVTTrainer:
    args = IVTTrainingArguments(
        output_dir=str(tmp_path / f"run{chunk}"),
        use_cpu=True,
        report_to="none",
        grad_cache_chunk=chunk,
        **settings,
    )
    return IVTTrainer(model=model, args=args)


def _cached_step(model: IVTModel, batch: dict[str, torch.Tensor], chunk: int) -> torch.Tensor:
    """A GradCache CMPM step as the trainer runs it, without a trainer."""

    def encode_chunk(rows, with_graph):
        outputs = model(**{name: batch[name][rows] for name in ("pixel_values", "input_ids", "attention_mask")})
        return gradcache.ChunkOutput((outputs.image_embeds, outputs.text_embeds))

    def batch_loss(image, text):
        terms = cmpm_loss_terms(image, text, batch["labels"])
        return {"image_to_text": terms.image_to_text, "text_to_image": terms.text_to_image}

    return GradCache(chunk).step(batch["labels"].shape[0], encode_chunk, batch_loss).loss


def test_chunks_cover_the_batch_and_a_last_single_row_joins_the_one_before():
    assert chunk_slices(12, 5) == [slice(0, 5), slice(5, 10), slice(10, 12)]
    assert chunk_slices(11, 5) == [slice(0, 5), slice(5, 11)]
    assert chunk_slices(12, 12) == chunk_slices(12, 40) == [slice(0, 12)]
    assert chunk_slices(1, 1) == [slice(0, 1)]
    with pytest.raises(IVTInputError, match="--grad_cache_chunk must be >= 1"):
        chunk_slices(12, 0)
    with pytest.raises(IVTInputError, match="--grad_cache_chunk must be >= 0, got -1"):
        IVTTrainingArguments(output_dir="unused", grad_cache_chunk=-1)


def test_chunk_streams_are_independent_reproducible_and_leave_the_global_state_as_drawn():
    torch.manual_seed(5)
    randomness = ChunkRandomness(3)
    after_seeds = torch.get_rng_state()
    draws = []
    for index in range(3):
        with randomness.stream(index):
            draws.append(torch.rand(4))
    assert torch.equal(torch.get_rng_state(), after_seeds)  # the streams leave the global generator alone
    with randomness.stream(1):
        assert torch.equal(torch.rand(4), draws[1])
    assert not torch.equal(draws[0], draws[1]) and not torch.equal(draws[1], draws[2])
    torch.manual_seed(5)
    assert ChunkRandomness(3).seeds == randomness.seeds  # a function of the global state: resuming is exact


@pytest.mark.parametrize("accumulation", [1, 2])
def test_the_trainers_cached_step_equals_its_plain_step(tmp_path, accumulation):
    """No randomness (no dropout, drop-path or BMM), float32: IVTTrainer's GradCache step (5 pairs a chunk, 12
    pairs) gives the loss and, within 1e-5, the gradients of its own plain full-batch step."""
    model = _model(torch.float32, **STILL)
    batch = _batch(dtype=torch.float32)
    losses, grads = {}, {}
    for chunk in (0, 5):
        trainer = _trainer(model, tmp_path, chunk)
        trainer.current_gradient_accumulation_steps = accumulation
        losses[chunk] = trainer.training_step(model, dict(batch))
        grads[chunk] = _grads(model)
        assert trainer._loss_term_count == 1
    torch.testing.assert_close(losses[5], losses[0], rtol=1e-6, atol=1e-6)
    assert _largest_difference(grads[5], grads[0]) < 1e-5
    assert max(grad.abs().max().item() for grad in grads[0].values()) > 1e-2  # gradients that say something


@pytest.mark.parametrize("mode", ["batch", "per_sample"])
def test_the_cached_step_reproduces_dropout_drop_path_and_bmm(mode, caplog, monkeypatch):
    """Dropout, drop-path and BMM on: the cached step's gradients equal, within 1e-5, those of one graph over the
    whole batch whose chunks drew the same masks; and the masks matter (another draw moves the gradients by far
    more), so the second encoding reproduces the first's."""
    model = _model(token_drop_mode=mode, **RANDOM)
    batch = _batch()
    lengths = []
    hook = model.encoder.register_forward_pre_hook(lambda module, args: lengths.append(args[0].shape[1]))
    monkeypatch.setattr(gradcache, "_warned", False)
    torch.manual_seed(11)
    with caplog.at_level(logging.WARNING, logger=gradcache.__name__):
        loss = _cached_step(model, batch, chunk=5)
    assert not caplog.records  # its check found both encodings of every chunk equal
    cached = _grads(model)
    hook.remove()
    assert len(lengths) == 12  # 3 chunks x (image, text) x (no graph, graph)
    assert lengths[:6] == lengths[6:]  # each chunk's second encoding kept the tokens its first kept
    full_image, full_text = 1 + model.config.num_patches, batch["input_ids"].shape[1]
    if mode == "batch":
        assert any(length < full_image for length in lengths[0::2]) and any(n < full_text for n in lengths[1::2])
    torch.manual_seed(11)
    reference_loss = finetuning_reference(model, batch, chunk_size=5)
    full_batch = _grads(model)
    torch.testing.assert_close(loss, reference_loss, rtol=1e-10, atol=1e-10)
    assert _largest_difference(cached, full_batch) < 1e-5
    torch.manual_seed(12)  # other seeds: other masks
    finetuning_reference(model, batch, chunk_size=5)
    assert _largest_difference(_grads(model), full_batch) > 1e-3


def test_a_wrong_chunk_gradient_fails_the_equivalence(monkeypatch):
    """The check above is not blind: give each chunk's re-encoding its neighbour's rows of the loss gradient and the
    gradients part by far more than 1e-5."""
    model = _model(**RANDOM)
    batch = _batch()
    torch.manual_seed(11)
    finetuning_reference(model, batch, chunk_size=5)
    full_batch = _grads(model)
    original = gradcache._surrogate

    def shifted(representations, gradients):
        return original(representations, [gradient.roll(1, dims=0) for gradient in gradients])

    monkeypatch.setattr(gradcache, "_surrogate", shifted)
    torch.manual_seed(11)
    _cached_step(model, batch, chunk=5)
    assert _largest_difference(_grads(model), full_batch) > 1e-3


def test_a_second_encoding_that_is_not_the_first_is_said(caplog, monkeypatch):
    """A model that draws otherwise in its two passes (here: scaled in the second) gets one warning a process."""
    monkeypatch.setattr(gradcache, "_warned", False)
    model, batch = _model(**STILL), _batch()

    def encode_chunk(rows, with_graph):
        outputs = model(**{name: batch[name][rows] for name in ("pixel_values", "input_ids", "attention_mask")})
        return gradcache.ChunkOutput((outputs.image_embeds * (1.5 if with_graph else 1.0), outputs.text_embeds))

    def batch_loss(image, text):
        return {"loss": cmpm_loss(image, text, batch["labels"])}

    with caplog.at_level(logging.WARNING, logger=gradcache.__name__):
        GradCache(5).step(12, encode_chunk, batch_loss)
        GradCache(5).step(12, encode_chunk, batch_loss)
    assert [record.getMessage()[:60] for record in caplog.records] == [
        "GradCache: a chunk's second encoding differs from its first "
    ]


def _pretraining(dtype=torch.float64, **overrides) -> tuple[IVTForPreTraining, dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    settings = dict(fusion_hidden_dropout=0.1, fusion_attention_dropout=0.1, drop_path_rate=0.1)
    config = tiny_pretraining_config(text_embedding_dropout=0.1, **(settings | overrides))
    model = IVTForPreTraining(config).to(dtype).train()
    generator = torch.Generator().manual_seed(2)
    batch = 10
    input_ids = torch.randint(5, 120, (batch, 9), generator=generator)
    input_ids[:, 0] = 2
    attention_mask = torch.ones_like(input_ids)
    attention_mask[::2, 6:] = 0
    mlm_labels = torch.full_like(input_ids, -100)
    mlm_labels[:, 3] = input_ids[:, 3]
    mlm_labels[:4, 4] = input_ids[:4, 4]  # the first chunk holds more masked tokens than the others
    inputs = {
        "pixel_values": torch.randn(batch, 3, 64, 32, generator=generator, dtype=dtype),
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "mlm_input_ids": input_ids.masked_fill(mlm_labels != -100, 4),
        "mlm_labels": mlm_labels,
    }
    return model, inputs


def test_pretraining_cached_step_with_one_chunk_is_the_plain_step():
    """One chunk: ITC from the cache, ITM and MLM from the chunk, the temperature's gradient through its parameter
    term, together exactly the model's own forward and backward on the same random stream (dropout everywhere)."""
    model, inputs = _pretraining()
    torch.manual_seed(3)
    output = cached_pretraining_step(model, model, inputs, GradCache(10))
    cached = _grads(model)
    torch.manual_seed(3)
    with ChunkRandomness(1).stream(0):
        plain = model(**inputs)
    plain.loss.backward()
    for name in ("loss", "loss_itc", "loss_itm", "loss_mlm"):
        torch.testing.assert_close(getattr(output, name), getattr(plain, name).detach(), rtol=1e-10, atol=1e-10)
    assert _largest_difference(cached, _grads(model)) < 1e-5
    assert cached["log_temperature"].abs().item() > 1e-4


def test_pretraining_cached_step_is_itc_over_the_batch_plus_per_chunk_itm_and_mlm():
    model, inputs = _pretraining()
    torch.manual_seed(3)
    output = cached_pretraining_step(model, model, inputs, GradCache(4))  # chunks of 4, 4 and 2 pairs
    cached = _grads(model)
    torch.manual_seed(3)
    reference = pretraining_reference(model, inputs, chunk_size=4)
    for name, value in reference.items():
        torch.testing.assert_close(getattr(output, name), value, rtol=1e-10, atol=1e-10)
    assert _largest_difference(cached, _grads(model)) < 1e-5


def test_gradient_checkpointing_keeps_the_gradients_and_the_masks():
    """Checkpointing recomputes each layer in the backward with the forward's random state: the same gradients,
    randomness on, in a plain and a cached step."""
    model, batch = _model(**RANDOM), _batch()
    results = []
    for checkpointing in (False, True):
        if checkpointing:
            model.activation_checkpointing_enable()
        torch.manual_seed(4)
        finetuning_reference(model, batch, chunk_size=12)
        plain = _grads(model)
        torch.manual_seed(4)
        _cached_step(model, batch, chunk=5)
        results.append((plain, _grads(model)))
    assert all(layer.gradient_checkpointing for layer in model.encoder.layers)
    assert _largest_difference(results[0][0], results[1][0]) < 1e-10
    assert _largest_difference(results[0][1], results[1][1]) < 1e-10


def test_two_processes_under_ddp_equal_one_process_over_the_whole_batch(tmp_path):
    """torchrun, 2 gloo processes, DDP: fine-tuning (CMPM gathered, chunks of 4 of each process's 6 pairs) and
    pre-training (ITC gathered, the temperature's gradient in the last chunk) give what one process computes over
    the global batch, and DDP reduces once per step (the chunks before the last run under no_sync)."""
    completed = subprocess.run(
        [*launcher("torchrun"), str(DDP_WORKER), str(tmp_path)], capture_output=True, text=True, env=ENV, timeout=300
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    results = [torch.load(tmp_path / f"rank{rank}.pt", weights_only=True) for rank in (0, 1)]
    for result in results:
        assert result["world_size"] == 2 and result["finetuning_reductions"] == 1
        assert result["finetuning_difference"] < 1e-5 and result["finetuning_grad_size"] > 1e-2
        assert result["pretraining_difference"] < 1e-5 and result["pretraining_reductions"] == 1
    assert results[0]["finetuning_loss"] == pytest.approx(results[1]["finetuning_loss"], rel=1e-12)


# --------------------------------------------------------------------------------------------- the flags, end to end


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    from ivt_hf.data import load_benchmark

    root = tmp_path_factory.mktemp("synth")
    load_benchmark("synthpedes", root, split_ids={"train": 8, "validation": 2, "test": 2}, image_size=(64, 32), seed=0)
    return root


def _fine_tune(synth_root: Path, output_dir: Path, extra: str = "") -> IVTTrainer:
    from ivt_hf.training import build_trainer, parse_args

    flags = (
        f"--dataset_name synthpedes --data_root {synth_root} --output_dir {output_dir} --model_preset tiny "
        "--image_height 64 --image_width 32 --synth_train_ids 8 --synth_validation_ids 2 --synth_test_ids 2 "
        "--per_device_train_batch_size 8 --max_steps 2 --optim sgd --learning_rate 0.05 --token_drop_ratio 0 "
        "--eval_strategy no --save_strategy no --use_cpu --report_to none --disable_tqdm true --seed 3 " + extra
    )
    trainer = build_trainer(*parse_args(flags.split()))
    trainer.start = {name: parameter.detach().clone() for name, parameter in trainer.model.named_parameters()}
    trainer.result = trainer.train()
    return trainer


def test_ivt_train_with_checkpointing_and_grad_cache_trains_to_the_plain_runs_weights(
    synth_root, tmp_path, monkeypatch
):
    """`--gradient_checkpointing --grad_cache_chunk 7` (24 pairs a step: chunks of 7, 7, 10) reach the trainer and,
    without randomness, two SGD steps end at the plain run's weights."""
    steps = []
    original_step = GradCache.step
    monkeypatch.setattr(
        GradCache, "step", lambda self, *args, **kw: steps.append(self.chunk_size) or original_step(self, *args, **kw)
    )
    plain = _fine_tune(synth_root, tmp_path / "plain")
    assert steps == [] and not any(layer.gradient_checkpointing for layer in plain.model.encoder.layers)
    both = _fine_tune(synth_root, tmp_path / "both", "--gradient_checkpointing --grad_cache_chunk 7")
    assert steps == [7, 7] and all(layer.gradient_checkpointing for layer in both.model.encoder.layers)
    weights = dict(plain.model.named_parameters())
    moved = max((weights[name] - parameter).abs().max().item() for name, parameter in both.model.named_parameters())
    assert moved < 1e-5
    changed = max((weights[name] - start).abs().max().item() for name, start in plain.start.items())
    assert changed > 1e-3  # the two steps moved the weights by far more than the runs differ
    assert both.result.training_loss == pytest.approx(plain.result.training_loss, abs=1e-5)


def _pairs_shards(folder: Path) -> Path:
    import io
    import random

    from PIL import Image

    from ivt_hf.data.pair_writing import write_webdataset_shards

    rng = random.Random(0)
    colours = {"red": (220, 30, 30), "blue": (30, 30, 220), "green": (30, 200, 30), "black": (10, 10, 10)}

    def pairs():
        for number in range(24):
            top, bottom = rng.choice(list(colours)), rng.choice(list(colours))
            image = Image.new("RGB", (32, 96), colours[top])
            image.paste(Image.new("RGB", (32, 48), colours[bottom]), (0, 48))
            buffer = io.BytesIO()
            image.save(buffer, "JPEG")
            yield f"{number:06d}", buffer.getvalue(), f"A person in a {top} coat with {bottom} trousers."

    write_webdataset_shards(pairs(), folder, pairs_per_shard=12)
    return folder


def _pretrain(shards: Path, output_dir: Path, extra: str = ""):
    from ivt_hf.training.pretraining.arguments import parse_pretraining_args
    from ivt_hf.training.pretraining.loop import PretrainingRun

    flags = (
        f"--train_data {shards} --output_dir {output_dir} --model_preset tiny --image_height 64 --image_width 32 "
        "--max_steps 2 --per_device_train_batch_size 8 --logging_steps 1 --save_steps 100 --learning_rate 1e-3 "
        "--shuffle_buffer_size 0 --dataloader_num_workers 0 --use_cpu --seed 0 " + extra
    )
    run = PretrainingRun(*parse_pretraining_args(flags.split()))
    run.run()
    return run


def test_ivt_pretrain_honours_checkpointing_and_grad_cache(tmp_path, monkeypatch):
    """`ivt pretrain --gradient_checkpointing` checkpoints every encoder and fusion layer and ends at the plain run's
    weights (the recomputation replays the random state); with `--grad_cache_chunk 3` as well, each step is a
    cached step whose first ITC and MLM (the tiny preset has no dropout) are the plain run's, over the whole batch."""
    from ivt_hf.training.pretraining import loop

    shards = _pairs_shards(tmp_path / "shards")
    plain = _pretrain(shards, tmp_path / "plain")
    layers = lambda run: [*run.model.ivt.encoder.layers, *run.model.fusion.layer]  # noqa: E731
    assert not any(layer.gradient_checkpointing for layer in layers(plain))
    checkpointed = _pretrain(shards, tmp_path / "checkpointed", "--gradient_checkpointing")
    assert all(layer.gradient_checkpointing for layer in layers(checkpointed))
    weights = dict(plain.model.named_parameters())
    assert max((weights[n] - p).abs().max().item() for n, p in checkpointed.model.named_parameters()) < 1e-6
    calls = []
    monkeypatch.setattr(
        loop,
        "cached_pretraining_step",
        lambda *args: calls.append(args[3].chunk_size) or cached_pretraining_step(*args),
    )
    cached = _pretrain(shards, tmp_path / "cached", "--gradient_checkpointing --grad_cache_chunk 3")
    assert calls == [3, 3] and all(layer.gradient_checkpointing for layer in layers(cached))
    first_plain, first_cached = plain.log_history[0], cached.log_history[0]
    assert first_cached["loss_itc"] == pytest.approx(first_plain["loss_itc"], abs=1e-4)
    assert first_cached["loss_mlm"] == pytest.approx(first_plain["loss_mlm"], abs=1e-4)

"""The floor both training stages stand on (`ivt_hf.training.stage`): one helper each for what fine-tuning and
pre-training used to write twice."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from ivt_hf.errors import IVTInputError
from ivt_hf.training.arguments import ModelArguments
from ivt_hf.training.finetuning.arguments import IVTTrainingArguments
from ivt_hf.training.pretraining.arguments import PretrainingArguments, parse_pretraining_args
from ivt_hf.training.stage import (
    means_latest,
    random_states_restored,
    refuse_fp16_on_cpu,
    rng_state,
    seed_process,
    set_rng_state,
    stage_optimizer,
    train_transform,
)


def _draws() -> tuple:
    return (torch.rand(3).tolist(), random.random(), random.gauss(0, 1), np.random.rand(2).tolist())


def test_rng_state_round_trips_through_a_weights_only_checkpoint(tmp_path):
    seed_process(5)
    random.gauss(0, 1)  # leaves a cached Gaussian in Python's state: it must survive too
    saved = rng_state()
    torch.save(saved, tmp_path / "rng.pt")
    expected = _draws()
    seed_process(99)
    set_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True))
    assert _draws() == expected


def test_random_states_restored_puts_every_generator_back():
    seed_process(3)
    expected = _draws()
    seed_process(3)
    with random_states_restored():
        _draws()
        _draws()
    assert _draws() == expected


def test_seed_process_continues_from_seed_plus_rank():
    seed_process(7, 2)
    rank_two = _draws()
    seed_process(9)
    assert _draws() == rank_two
    seed_process(7)
    assert _draws() != rank_two


def test_the_resume_words_and_the_fp16_refusal():
    assert [means_latest(value) for value in ("latest", "true", "True", "out/checkpoint-5", None, True)] == [
        True,
        True,
        True,
        False,
        False,
        False,
    ]
    refuse_fp16_on_cpu(True, on_cpu=False)
    refuse_fp16_on_cpu(False, on_cpu=True)
    with pytest.raises(IVTInputError, match="--fp16 needs a GPU"):
        refuse_fp16_on_cpu(True, on_cpu=True)


def test_both_stages_build_their_optimiser_from_their_flags(tmp_path):
    """Pre-training's optimiser follows --adam_beta1/2 and --adam_epsilon too (it used to take torch's defaults)."""
    model = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.LayerNorm(3))
    pretraining = PretrainingArguments(
        output_dir=str(tmp_path),
        max_steps=1,
        per_device_train_batch_size=2,
        optim="adamw_torch",
        adam_beta1=0.8,
        adam_beta2=0.95,
        adam_epsilon=1e-6,
        learning_rate=0.1,
        weight_decay=0.01,
        bias_lr_multiplier=3.0,
        use_cpu=True,
    )
    optimizer = stage_optimizer(model, pretraining, decay_all=False)
    assert [(g["name"], g["lr"], g["weight_decay"], g["betas"], g["eps"]) for g in optimizer.param_groups] == [
        ("weights", 0.1, 0.01, (0.8, 0.95), 1e-6),
        ("biases", pytest.approx(0.3), 0.0, (0.8, 0.95), 1e-6),
        ("no_decay", 0.1, 0.0, (0.8, 0.95), 1e-6),
    ]
    fine_tuning = IVTTrainingArguments(output_dir=str(tmp_path), optim="sgd", learning_rate=0.2, weight_decay=0.1)
    optimizer = stage_optimizer(model, fine_tuning, decay_all=True)
    assert isinstance(optimizer, torch.optim.SGD)
    assert [(g["name"], g["weight_decay"], len(g["params"])) for g in optimizer.param_groups] == [
        ("weights", 0.1, 2),
        ("biases", 0.1, 2),
    ]


def test_train_transform_takes_the_stage_flags(tmp_path):
    args = IVTTrainingArguments(output_dir=str(tmp_path), random_erasing=0.25, train_interpolation="bilinear")
    transform = train_transform([32, 16], args)
    assert (transform.image_size, transform.erase_p, transform.interpolation) == ((32, 16), 0.25, "bilinear")


def test_a_recipe_is_checked_against_the_stage_it_is_for(tmp_path):
    recipe = tmp_path / "recipe.json"
    recipe.write_text(json.dumps({"_note": "x", "dataset_name": "pairs", "max_steps": 3, "output_dir": str(tmp_path)}))
    model_args, data_args, args = parse_pretraining_args([str(recipe), "--max_steps", "4", "--use_cpu", "true"])
    assert isinstance(model_args, ModelArguments) and (data_args.dataset_name, args.max_steps) == (["pairs"], 4)
    recipe.write_text(json.dumps({"images_per_id": 4}))  # fine-tuning's, not pre-training's
    with pytest.raises(IVTInputError, match="unknown setting\\(s\\) images_per_id"):
        parse_pretraining_args([str(recipe)])

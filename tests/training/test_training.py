"""IVTTrainer through the real entry point (scripts/train.py): loss, optimizer groups, resume after a kill,
two real processes, and that a tiny model learns on SynthPEDES."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers.launchers import free_port
from safetensors.torch import load_file

from ivt_hf import IVTConfig
from ivt_hf.training import build_trainer, parse_args
from ivt_hf.training.finetuning.losses import cmpm_loss

ROOT = Path(__file__).parents[2]
TRAIN_SCRIPT = ROOT / "scripts" / "train.py"
SMALL = ["--synth_train_ids", "24", "--synth_validation_ids", "6", "--synth_test_ids", "6"]
TINY_MODEL = ["--model_preset", "tiny", "--image_height", "64", "--image_width", "32"]


def _common(data_root, output_dir, *extra):
    return [
        *f"--dataset_name synthpedes --data_dir {data_root} --output_dir {output_dir}".split(),
        *TINY_MODEL,
        *SMALL,
        *"--per_device_train_batch_size 8 --use_cpu --report_to none --optim adamw_torch".split(),
        *"--learning_rate 1e-3 --disable_tqdm true --seed 3".split(),
        *extra,
    ]


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    """A small SynthPEDES at 64x32, generated once for this module."""
    from ivt_hf.data import load_benchmark

    root = tmp_path_factory.mktemp("synth")
    load_benchmark("synthpedes", root, split_ids={"train": 24, "validation": 6, "test": 6}, image_size=(64, 32), seed=0)
    return root


@pytest.mark.compat
def test_compute_loss_is_cmpm_over_the_three_pairs_and_biases_get_double_lr(synth_root, tmp_path):
    trainer = build_trainer(*parse_args(_common(synth_root, tmp_path / "out", "--eval_strategy", "no")))
    batch = next(iter(trainer.get_train_dataloader()))
    assert batch["pixel_values"].shape == (24, 3, 64, 32) and batch["labels"].shape == (24,)
    counts = torch.bincount(batch["labels"])
    assert set(counts[counts > 0].tolist()) == {12}  # P=2 identities x K=4 images x 3 pairs
    trainer.model.eval()  # no BMM, no dropout: the loss must equal CMPM on the model's own embeddings
    loss = trainer.compute_loss(trainer.model, batch)
    with torch.no_grad():
        output = trainer.model(**{k: v for k, v in batch.items() if k != "labels"})
    torch.testing.assert_close(loss, cmpm_loss(output.image_embeds, output.text_embeds, batch["labels"]))
    optimizer = trainer.create_optimizer()
    assert [group["lr"] for group in optimizer.param_groups] == [1e-3, 2e-3]
    assert all(
        name.endswith(".bias") == (id(p) in {id(q) for q in optimizer.param_groups[1]["params"]})
        for name, p in trainer.model.named_parameters()
    )
    assert optimizer.defaults["fused"]  # the fused AdamW kernel on CPU


def test_text_length_buckets_reach_the_model_and_keep_the_loss(synth_root, tmp_path):
    extra = [*"--eval_strategy no --text_length_buckets 3 --initializer_range 0.05 --num_hidden_layers 3".split()]
    trainer = build_trainer(*parse_args(_common(synth_root, tmp_path / "out", *extra)))
    assert trainer.args.text_length_buckets == 3 and trainer.model.config.initializer_range == 0.05
    assert trainer.model.config.num_hidden_layers == 3 and len(trainer.model.encoder.layers) == 3
    batch = next(iter(trainer.get_train_dataloader()))
    trainer.model.eval()
    seen = []
    handle = trainer.model.text_embeddings.register_forward_hook(lambda module, args, out: seen.append(out.shape[1]))
    bucketed = trainer.compute_loss(trainer.model, batch)
    handle.remove()
    assert len(seen) == 3 and max(seen) == batch["input_ids"].shape[1] and min(seen) < max(seen)
    trainer.args.text_length_buckets = 1
    torch.testing.assert_close(bucketed, trainer.compute_loss(trainer.model, batch), atol=1e-4, rtol=1e-5)


@pytest.mark.compat
def test_architecture_flags_may_restate_a_saved_model_but_not_change_it(tiny_config, tmp_path):
    """A recipe may state the architecture it was written for (`synthpedes-cpu.json` has `num_hidden_layers`): with
    --model_name_or_path an equal value is accepted, a different one refused naming both; a pre-training output
    accepts a new stride / image size (its grid is resized) but not a new depth."""
    from ivt_hf import IVTModel
    from ivt_hf.model import IVTForPreTraining
    from ivt_hf.training import ModelArguments, build_model

    IVTModel(tiny_config).save_pretrained(tmp_path / "encoder")
    pretraining_config = IVTConfig.from_preset("micro", fusion_num_hidden_layers=1)
    IVTForPreTraining(pretraining_config).save_pretrained(tmp_path / "pre")
    same = {"num_hidden_layers": 2, "patch_stride": 12, "image_height": 64, "image_width": 32}
    for folder in ("encoder", "pre"):
        model = build_model(IVTModel, ModelArguments(model_name_or_path=str(tmp_path / folder), **same))
        assert isinstance(model, IVTModel) and model.config.num_hidden_layers == 2
        with pytest.raises(ValueError, match=r"--num_hidden_layers 3 cannot change the architecture .*\(num_hidden_l"):
            build_model(IVTModel, ModelArguments(model_name_or_path=str(tmp_path / folder), num_hidden_layers=3))
    with pytest.raises(ValueError, match="--patch_stride 16 cannot change the architecture"):
        build_model(IVTModel, ModelArguments(model_name_or_path=str(tmp_path / "encoder"), patch_stride=16))
    resized = build_model(IVTModel, ModelArguments(model_name_or_path=str(tmp_path / "pre"), patch_stride=16))
    assert resized.config.patch_stride == 16  # a pre-training output's grid is resized

    recipe = json.loads((ROOT / "src/ivt_hf/recipes/synthpedes-cpu.json").read_text())
    model_args, _, _ = parse_args(
        [
            str(ROOT / "src/ivt_hf/recipes/synthpedes-cpu.json"),
            "--model_name_or_path",
            str(tmp_path / "encoder"),
            "--output_dir",
            str(tmp_path / "out"),
        ]
    )
    with pytest.raises(ValueError, match=f"--num_hidden_layers {recipe['num_hidden_layers']} cannot change"):
        build_model(IVTModel, model_args)  # the recipe's 3 layers against a 2-layer model: a real change


def test_the_cpu_fine_tuning_recipe_starts_from_a_pretraining_folder(tmp_path):
    """`finetune-cpu.json` states no architecture: it fine-tunes any saved model, a pre-training output included."""
    from ivt_hf.model import IVTForPreTraining, IVTModel
    from ivt_hf.training import build_model

    IVTForPreTraining(IVTConfig.from_preset("tiny")).save_pretrained(tmp_path / "pre")
    model_args, _, training_args = parse_args(
        [
            str(ROOT / "src/ivt_hf/recipes/finetune-cpu.json"),
            "--model_name_or_path",
            str(tmp_path / "pre"),
            "--output_dir",
            str(tmp_path / "out"),
        ]
    )
    model = build_model(IVTModel, model_args)
    assert model.config.num_hidden_layers == 4  # the tiny preset's
    assert training_args.use_cpu and training_args.max_steps > 0


def test_the_model_preset_flag_builds_the_named_preset_with_the_flags_on_top():
    """`--model_preset` goes through `IVTConfig.from_preset`: every preset is a choice, the flags override it, and an
    unknown name is one error naming the flag and the choices."""
    from ivt_hf import IVTModel
    from ivt_hf.training import ModelArguments, build_model

    model_args = ModelArguments(model_preset="micro", patch_stride=16, image_height=48, image_width=32)
    model = build_model(IVTModel, model_args)
    expected = IVTConfig.from_preset("micro", patch_stride=16, image_size=(48, 32))
    assert model.config.to_dict() == expected.to_dict()
    with pytest.raises(ValueError, match=r"^--model_preset must be one of \['base', 'micro', 'tiny'\], got 'huge'$"):
        build_model(IVTModel, ModelArguments(model_preset="huge"))


def test_both_stages_build_their_model_with_one_function(tmp_path):
    """`build_model(model_class, model_args)`: the same ModelArguments give fine-tuning's IVTModel and pre-training's
    IVTForPreTraining around the same encoder; pre-training continues from its own folder, starts its fusion encoder
    and heads afresh beside a retrieval model's encoder, and refuses a real architecture change like fine-tuning."""
    from ivt_hf import IVTModel
    from ivt_hf.model import IVTForPreTraining
    from ivt_hf.training import ModelArguments, build_model

    model_args = ModelArguments(model_preset="tiny", num_hidden_layers=3, patch_stride=12, attn_implementation="eager")
    torch.manual_seed(0)
    encoder = build_model(IVTModel, model_args)
    torch.manual_seed(0)
    pretraining = build_model(IVTForPreTraining, model_args, itc_temperature=0.2)
    assert isinstance(encoder, IVTModel) and isinstance(pretraining, IVTForPreTraining)
    for key in ("num_hidden_layers", "patch_stride", "hidden_size", "image_size"):
        assert getattr(encoder.config, key) == getattr(pretraining.config, key), key
    assert pretraining.config.fusion_num_hidden_layers == 2 and pretraining.config.itc_temperature == 0.2
    assert pretraining.config._attn_implementation == encoder.config._attn_implementation == "eager"

    pretraining.save_pretrained(tmp_path / "pre")
    encoder.save_pretrained(tmp_path / "encoder")
    continued = build_model(
        IVTForPreTraining, ModelArguments(model_name_or_path=str(tmp_path / "pre"), num_hidden_layers=3)
    )
    for name, tensor in pretraining.state_dict().items():
        assert torch.equal(continued.state_dict()[name], tensor), name
    beside = build_model(IVTForPreTraining, ModelArguments(model_name_or_path=str(tmp_path / "encoder")))
    for name, tensor in encoder.state_dict().items():
        assert torch.equal(beside.ivt.state_dict()[name], tensor), name
    with pytest.raises(ValueError, match="--num_hidden_layers 4 cannot change the architecture"):
        build_model(IVTForPreTraining, ModelArguments(model_name_or_path=str(tmp_path / "pre"), num_hidden_layers=4))


def test_attn_implementation_flag():
    from ivt_hf import IVTModel
    from ivt_hf.training import ModelArguments, build_model

    assert build_model(IVTModel, ModelArguments(attn_implementation="eager")).config._attn_implementation == "eager"
    assert build_model(IVTModel, ModelArguments()).config._attn_implementation == "sdpa"
    with pytest.raises(ValueError, match="--attn_implementation must be 'eager' or 'sdpa', got 'flash'"):
        build_model(IVTModel, ModelArguments(attn_implementation="flash"))


def test_build_optimizer_groups_and_bad_name(tiny_config):
    from ivt_hf import IVTModel
    from ivt_hf.training import build_optimizer

    model = IVTModel(tiny_config)
    sgd = build_optimizer(model, "sgd", lr=0.1, weight_decay=1e-4, bias_lr_multiplier=2.0)
    assert [g["lr"] for g in sgd.param_groups] == [0.1, 0.2] and sgd.defaults["momentum"] == 0.9
    assert {g["weight_decay"] for g in sgd.param_groups} == {1e-4}
    assert sum(len(g["params"]) for g in sgd.param_groups) == len(list(model.parameters()))
    with pytest.raises(ValueError, match="optim must be 'sgd' or 'adamw_torch'"):
        build_optimizer(model, "adafactor", lr=0.1, weight_decay=0.0)


def test_batch_must_be_whole_identities(synth_root, tmp_path):
    trainer = build_trainer(*parse_args(_common(synth_root, tmp_path / "o", "--per_device_train_batch_size", "6")))
    with pytest.raises(ValueError, match="multiple of images_per_id"):
        trainer.get_train_dataloader()


def test_no_validation_split_means_no_model_selection_on_test(tmp_path):
    """ICFG-PEDES has no validation split: asking for evaluation during training is refused (the test split is never
    used to select), and without it the trainer has no eval split at all."""
    from ivt_hf.data.synthpedes import generate

    root = tmp_path / "icfg"
    generate(root, split_ids={"train": 8, "test": 4}, image_size=(64, 32), layout="icfg-pedes", progress=False)
    common = [
        *f"--dataset_name icfg-pedes --data_dir {root} --output_dir {tmp_path / 'o'}".split(),
        *TINY_MODEL,
        *"--per_device_train_batch_size 8 --use_cpu --report_to none".split(),
    ]
    with pytest.raises(ValueError, match="icfg-pedes has no validation split; set --eval_strategy no"):
        build_trainer(*parse_args([*common, "--eval_strategy", "steps"]))
    trainer = build_trainer(*parse_args([*common, "--eval_strategy", "no"]))
    assert trainer.eval_dataset is None and len(trainer.train_dataset) > 0


def _run(args, **kwargs):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.run([sys.executable, str(TRAIN_SCRIPT), *args], capture_output=True, text=True, env=env, **kwargs)


@pytest.mark.compat
def test_resume_after_kill_matches_uninterrupted_run(synth_root, tmp_path):
    steps = ["--max_steps", "10", "--save_steps", "4", "--eval_strategy", "no", "--logging_steps", "1"]
    straight = _run(_common(synth_root, tmp_path / "straight", *steps), timeout=600)
    assert straight.returncode == 0, straight.stderr[-3000:]

    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    killed_dir = tmp_path / "killed"
    process = subprocess.Popen(
        [sys.executable, str(TRAIN_SCRIPT), *_common(synth_root, killed_dir, *steps)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    deadline = time.time() + 600
    checkpoint = killed_dir / "checkpoint-4"
    while not (checkpoint / "trainer_state.json").is_file() and process.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "training ended before it could be killed"
    assert (checkpoint / "model.safetensors").is_file() and not (killed_dir / "model.safetensors").exists()
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    assert state["global_step"] == 4

    resumed = _run(_common(synth_root, killed_dir, *steps, "--resume_from_checkpoint", "latest"), timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    final_straight = load_file(tmp_path / "straight" / "model.safetensors")
    final_resumed = load_file(killed_dir / "model.safetensors")
    assert final_straight.keys() == final_resumed.keys()
    for name in final_straight:
        torch.testing.assert_close(final_resumed[name], final_straight[name], atol=1e-6, rtol=1e-5, msg=name)
    # and the run did change the weights (a no-op would also "match")
    start = load_file(checkpoint / "model.safetensors")
    assert any(not torch.equal(start[name], final_straight[name]) for name in start)


@pytest.mark.parametrize("entry", ["scripts/train.py", "-m ivt_hf train"])
def test_two_processes_with_torchrun(synth_root, tmp_path, entry):
    """Real data parallelism on CPU (gloo): world size 2, global-negative loss, and the checkpoint is written once;
    through the train script and through the package's command (`torchrun -m ivt_hf train`)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    target = [str(TRAIN_SCRIPT)] if entry == "scripts/train.py" else ["-m", "ivt_hf", "train"]
    command = [
        sys.executable,
        *f"-m torch.distributed.run --nproc_per_node 2 --master_port {free_port()}".split(),
        *target,
        *_common(
            synth_root,
            tmp_path / "ddp",
            "--max_steps",
            "3",
            "--eval_strategy",
            "no",
            "--gather_loss",
            "true",
            "--logging_steps",
            "1",
        ),
    ]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    results = json.loads((tmp_path / "ddp" / "train_results.json").read_text())
    assert results["world_size"] == 2
    assert (tmp_path / "ddp" / "model.safetensors").is_file()
    assert "training on 2 process(es)" in result.stderr


def test_it_learns_on_synthpedes(trained_tiny_run):
    """About two minutes of CPU training of the tiny preset (see conftest): text-to-image R@1 far above chance on
    held-out people."""
    from transformers import AutoModel, AutoProcessor

    from ivt_hf.evaluation import evaluate_split

    model = AutoModel.from_pretrained(trained_tiny_run.model_dir).eval()
    processor = AutoProcessor.from_pretrained(trained_tiny_run.model_dir)
    test_split = trained_tiny_run.data["test"]
    evaluation = evaluate_split(model, processor, test_split, progress=False)
    print(f"trained fixture, test metrics: {evaluation.metrics}")
    chance = 100.0 / len(set(test_split["person_id"]))  # about 1% with 100 test identities
    # the tiny transformer learns slowly from scratch: after 400 steps R@1 is about 7x chance (measured 7.7%) and
    # R@10 about 4x (42%); a model that learned nothing stays at 1x (learning curves: experiments/README.md)
    assert evaluation.metrics["R1"] > 4 * chance, evaluation.metrics
    assert evaluation.metrics["R10"] > 20, evaluation.metrics  # chance R@10 is about 10% here
    assert trained_tiny_run.train_results["world_size"] == 1


PRECISION_RUN = """
import json, math, sys
from ivt_hf.training import parse_args, prepare_training
trainer, _ = prepare_training(*parse_args(sys.argv[1:]))
dtypes = []  # (training?, dtype of the first block's vision FFN output) at every forward
layer = trainer.model.encoder.layers[0].vision_mlp.fc1
layer.register_forward_hook(lambda module, args, output: dtypes.append([module.training, str(output.dtype)]))
trainer.train()
history = trainer.state.log_history
print(json.dumps({"losses": [entry["loss"] for entry in history if "loss" in entry],
                  "eval": [entry for entry in history if "eval_R1" in entry],
                  "weights": str(next(trainer.model.parameters()).dtype),
                  "loss_scaler": trainer.accelerator.scaler is not None,
                  "train_dtypes": sorted({dtype for training, dtype in dtypes if training}),
                  "eval_dtypes": sorted({dtype for training, dtype in dtypes if not training})}))
"""
ACTIVATION_DTYPE = {"fp32": "torch.float32", "bf16": "torch.bfloat16", "fp16": "torch.float16"}


def _precision_runs(synth_root, tmp_path, precisions, *extra_flags):
    results = {}
    for precision in precisions:
        extra = [
            *"--max_steps 3 --logging_steps 1 --eval_strategy steps --eval_steps 3 --save_strategy no".split(),
            *([f"--{precision}", "true"] if precision != "fp32" else []),
            *extra_flags,
        ]
        completed = subprocess.run(
            [sys.executable, "-c", PRECISION_RUN, *_common(synth_root, tmp_path / precision, *extra)],
            capture_output=True,
            text=True,
            timeout=600,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        assert completed.returncode == 0, completed.stderr[-3000:]
        results[precision] = json.loads(completed.stdout.strip().splitlines()[-1])
    return results


def _check_mixed_precision(results, precision):
    fp32, run = results["fp32"], results[precision]
    assert fp32["train_dtypes"] == fp32["eval_dtypes"] == ["torch.float32"]
    # autocast was on: the layers computed in the low precision, in training and in validation
    assert run["train_dtypes"] == run["eval_dtypes"] == [ACTIVATION_DTYPE[precision]], run
    assert len(run["losses"]) == 3 and all(math.isfinite(loss) for loss in run["losses"]), run
    assert abs(run["losses"][0] - fp32["losses"][0]) <= 0.03 * abs(fp32["losses"][0]), (precision, run, fp32)
    assert run["weights"] == "torch.float32"  # float32 master weights
    (evaluation,) = run["eval"]
    assert all(math.isfinite(evaluation[f"eval_{key}"]) for key in ("R1", "R5", "R10", "mAP", "mINP"))


@pytest.mark.compat
def test_mixed_precision_trains_with_the_loss_of_float32(synth_root, tmp_path):
    """`--bf16` on CPU: the layers really run in bfloat16 (a hook records the dtype of an activation, in training
    and in validation), finite losses, the first step's loss close to float32's (same batch, same weights), float32
    master weights, finite validation metrics. (CMPM itself runs in float32: `test_losses.py`.)"""
    _check_mixed_precision(_precision_runs(synth_root, tmp_path, ("fp32", "bf16")), "bf16")


@pytest.mark.skipif(
    not torch.cuda.is_available(),
    reason="fp16 autocast with its loss scaler needs a CUDA GPU: "
    "accelerate applies neither on a CPU, and `--fp16` there is refused (next test)",
)
def test_fp16_trains_under_autocast_with_a_loss_scaler(synth_root, tmp_path):
    """On a GPU, `--fp16`: float16 activations in training and validation, a loss scaler, float32 master weights."""
    results = _precision_runs(synth_root, tmp_path, ("fp32", "fp16"), "--use_cpu", "false")
    _check_mixed_precision(results, "fp16")
    assert results["fp16"]["loss_scaler"] and not results["fp32"]["loss_scaler"]


@pytest.mark.compat
def test_fp16_on_cpu_is_refused_not_silently_float32(synth_root, tmp_path):
    with pytest.raises(ValueError, match="--fp16 needs a GPU"):
        build_trainer(*parse_args(_common(synth_root, tmp_path / "o", "--fp16", "true", "--eval_strategy", "no")))


def test_a_second_run_never_writes_into_the_folder_of_a_live_run(synth_root, tmp_path):
    """Two real processes: while a run trains (checkpoint-1 written, hundreds of steps to go) it holds its folder; a
    second `ivt train` into it is refused at once and writes nothing (with --overwrite_output_dir the same lock refuses
    it: `test_multiprocess_pretraining.py` starts that one)."""
    live = tmp_path / "live"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    steps = ["--max_steps", "500", "--save_steps", "1", "--eval_strategy", "no"]
    first = subprocess.Popen(
        [sys.executable, str(TRAIN_SCRIPT), *_common(synth_root, live, *steps)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        deadline = time.time() + 600
        while not (live / "checkpoint-1" / "trainer_state.json").is_file() and time.time() < deadline:
            assert first.poll() is None, "the first run ended before its first checkpoint"
            time.sleep(0.05)
        weights = (live / "checkpoint-1" / "model.safetensors").read_bytes()
        second = _run(_common(synth_root, live, "--max_steps", "2", "--eval_strategy", "no"), timeout=600)
        errors = [line for line in second.stderr.splitlines() if line.startswith("error:")]
        assert second.returncode == 2 and errors == [
            f"error: {live} is being written by another ivt_hf command that is still running (it holds "
            f"{tmp_path / '.live.lock'}); wait for it to end or choose another output folder"
        ], second.stderr[-3000:]
        assert (live / "checkpoint-1" / "model.safetensors").read_bytes() == weights and first.poll() is None
    finally:
        first.kill()
        first.wait()

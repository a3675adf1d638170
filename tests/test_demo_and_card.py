"""`ivt demo` end to end at toy size (the full-size run is the README's first command), and generated model cards."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
import yaml
from helpers.remote_code import BLOCK_IVT_HF

from ivt_hf import IVTConfig
from ivt_hf.hub import render_model_card


def _model_index_values(meta: dict) -> dict[str, float]:
    return {
        metric["name"]: metric["value"] for entry in meta["model-index"][0]["results"] for metric in entry["metrics"]
    }


def _front_matter(card: str) -> dict:
    match = re.match(r"---\n(.*?)\n---\n", card, re.S)
    assert match, "card has no YAML front matter"
    return yaml.safe_load(match.group(1))


def test_card_carries_the_given_metrics_and_names_the_protocol():
    evaluation = {
        "benchmark": "synthpedes",
        "split": "test",
        "protocol": "standard",
        "metrics": {"R1": 51.234, "R5": 80.5, "R10": 88.0, "mAP": 55.5, "mINP": 40.1},
        "facts": {"num_queries": 1226, "num_gallery": 613},
        "baselines": {
            "random": {k: 0.5 for k in ("R1", "R5", "R10", "mAP", "mINP")},
            "oracle": {k: 90.0 for k in ("R1", "R5", "R10", "mAP", "mINP")},
        },
    }
    card = render_model_card(
        IVTConfig(patch_stride=12),
        repo_id="someone/ivt-test",
        evaluation=evaluation,
        training={"dataset": "synthpedes", "steps": 600},
        provenance="Test weights.",
        num_parameters=123,
    )
    meta = _front_matter(card)
    assert meta["library_name"] == "transformers" and meta["license"] == "apache-2.0"
    assert meta["pipeline_tag"] and "text-based-person-retrieval" in meta["tags"] and meta["datasets"] == ["synthpedes"]
    results = meta["model-index"][0]["results"]
    values = _model_index_values(meta)
    assert values["R@1 (standard protocol)"] == 51.23 and values["mINP (standard protocol)"] == 40.1
    assert all(entry["dataset"]["split"] == "test" for entry in results)
    for section in (
        "## Model details",
        "## Intended use",
        "## How to use",
        "## Training data and recipe",
        "## Evaluation",
        "## Limitations",
        "## Citation",
    ):
        assert section in card
    assert 'AutoModel.from_pretrained("someone/ivt-test")' in card and "2208.08608" in card
    assert "| random ranking (floor) | 0.50" in card and "**standard**" in card
    assert "stride 12 (310 patches)" in card
    assert not re.search(r"\{[a-z_]+\}", card), "unfilled template field"


def test_card_without_evaluation_says_so():
    card = render_model_card(IVTConfig(), repo_id="x/y")
    assert "Not evaluated in this run." in card and "model-index" not in _front_matter(card)


REMOTE_CODE_LOAD = (
    BLOCK_IVT_HF
    + """
from transformers import AutoModel, AutoProcessor

model = AutoModel.from_pretrained(sys.argv[1], trust_remote_code=True)
processor = AutoProcessor.from_pretrained(sys.argv[1], trust_remote_code=True)
embeds = model.get_text_features(**processor(text=["a man in a red coat"]))
print(type(model).__module__, type(model).__name__, type(processor).__name__, tuple(embeds.shape))
"""
)


TOY_SPLIT_IDS = {"train": 24, "validation": 6, "test": 6}
TOY_SETTINGS = {"image_height": 64, "image_width": 32, "per_device_train_batch_size": 8, "disable_tqdm": True}


def test_demo_runs_end_to_end_at_toy_size(tmp_path):
    from transformers import AutoModel, AutoProcessor

    from ivt_hf.demo import run_demo

    every_second = {"eval_steps": 2, "save_steps": 2, "logging_steps": 1}
    summary = run_demo(tmp_path / "demo", max_steps=4, split_ids=TOY_SPLIT_IDS, overrides=TOY_SETTINGS | every_second)
    metrics = json.loads((tmp_path / "demo" / "metrics.json").read_text())
    assert set(metrics) == {"R1", "R5", "R10", "mAP", "mINP"} and metrics == summary["metrics"]
    assert summary["train_steps"] == 4
    for path in summary["paths"].values():
        assert (tmp_path / "demo").exists() and __import__("pathlib").Path(path).exists(), path
    model_dir = tmp_path / "demo" / "model"
    model = AutoModel.from_pretrained(model_dir)
    processor = AutoProcessor.from_pretrained(model_dir)
    assert type(model).__name__ == "IVTModel" and type(processor).__name__ == "IVTProcessor"
    # and without ivt_hf, from the modules the folder carries (a process in which importing ivt_hf fails)
    remote = subprocess.run(
        [sys.executable, "-c", REMOTE_CODE_LOAD, str(model_dir)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert remote.returncode == 0, remote.stderr[-3000:]
    module, *names = remote.stdout.split()
    assert module.startswith("transformers_modules") and names[:2] == ["IVTModel", "IVTProcessor"], remote.stdout
    facts = json.loads((model_dir / "training_facts.json").read_text())
    assert facts["steps run"] == 4 and facts["step of the shipped checkpoint"] in (2, 4)
    card = (model_dir / "README.md").read_text()
    values = _model_index_values(_front_matter(card))
    assert values["R@1 (standard protocol)"] == round(metrics["R1"], 2)
    assert json.loads((model_dir / "evaluation.json").read_text())["metrics"] == metrics
    # a folder meant for sharing carries no pickle
    assert not (model_dir / "training_args.bin").exists() and (model_dir / "training_args.json").is_file()
    assert not list(model_dir.glob("*.bin")) and not list(model_dir.glob("*.pkl"))


def test_the_budget_validates_and_saves_the_step_it_stops_at():
    """When not even one more step and its validation fit, the budget stops at the step just taken, and has it
    validated and saved (the old time limit stopped without either, so every step since the last validation was
    lost); while the plan fits, it changes nothing."""
    from transformers import TrainerControl, TrainerState

    from ivt_hf.demo import TrainingBudget

    now = [0.0]
    budget = TrainingBudget(100.0, validation_seconds=5.0, step_seconds=8.0, clock=lambda: now[0])
    state = TrainerState(global_step=0, max_steps=10)
    state.eval_steps = 5
    budget.on_train_begin(None, state, TrainerControl())
    for step, seconds in enumerate([8.0, 8.0, 8.0, 30.0], start=1):  # 8 s a step fits (10 x 8 + 2 x 5); 30 s not
        control = TrainerControl()
        budget.on_step_begin(None, state, control)
        now[0] += seconds
        state.global_step = step
        budget.on_step_end(None, state, control)
        if step < 4:
            assert not (control.should_training_stop or control.should_evaluate) and state.max_steps == 10
    # 54 s spent, 46 s left: the probe's step time (8 s, trusted for the first 5 steps) still fits, so the run is
    # re-planned, not stopped
    assert state.max_steps == 4 + 3 and budget.replans == [{"at_step": 4, "from_steps": 10, "to_steps": 7}]
    now[0] += 40.0  # a stall: 6 s left, less than a step and a validation
    state.global_step = 5
    control = TrainerControl()
    budget.on_step_end(None, state, control)
    assert control.should_training_stop and control.should_evaluate and control.should_save and budget.stopped_early


def test_a_slow_first_step_does_not_shorten_the_run():
    """The run's first step also fills the image cache and builds the loader: on an idle 2-core machine it alone made
    the budget cut 1,140 planned steps to 973 at step 1. Until five steps are timed the probe's step time counts."""
    from transformers import TrainerControl, TrainerState

    from ivt_hf.demo import TrainingBudget

    now = [0.0]
    budget = TrainingBudget(300.0, validation_seconds=0.6, step_seconds=0.234, clock=lambda: now[0])
    state = TrainerState(global_step=0, max_steps=1140)
    state.eval_steps = 380
    budget.on_train_begin(None, state, TrainerControl())
    for step, seconds in enumerate([3.0, 0.23, 0.23, 0.23, 0.23, 0.23], start=1):
        budget.on_step_begin(None, state, TrainerControl())
        now[0] += seconds
        state.global_step = step
        budget.on_step_end(None, state, TrainerControl())
    assert state.max_steps == 1140 and not budget.replans


def test_a_re_planned_schedule_still_reaches_its_end():
    """`stretch_schedule` lays the Trainer's warm-up + cosine over the new number of steps: the learning rate reaches
    zero at the new last step instead of being cut off high."""
    import torch
    from transformers import get_scheduler

    from ivt_hf.demo import stretch_schedule

    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = get_scheduler("cosine", optimizer, num_warmup_steps=10, num_training_steps=100)
    for _ in range(40):
        optimizer.step()
        scheduler.step()
    assert stretch_schedule(scheduler, 60)
    for _ in range(20):
        optimizer.step()
        scheduler.step()
    assert scheduler.get_last_lr()[0] == pytest.approx(0.0, abs=1e-12)
    constant = get_scheduler("constant", optimizer)
    assert not stretch_schedule(constant, 60)  # another kind of schedule: left as it is


def test_demo_recipe_validates_and_checkpoints_its_last_step():
    """The recipe parses, and its last step is a validation and checkpoint step, so that `load_best_model_at_end`
    can choose the final model (otherwise the last steps' training would be thrown away)."""
    from ivt_hf.demo import DEMO_RECIPE
    from ivt_hf.training import parse_args

    recipe = json.loads(DEMO_RECIPE.read_text())
    model_args, _, training_args = parse_args([str(DEMO_RECIPE), "--output_dir", "unused"])
    assert training_args.max_steps == recipe["max_steps"] > 0
    assert training_args.max_steps % training_args.eval_steps == 0
    assert training_args.max_steps % training_args.save_steps == 0
    assert training_args.load_best_model_at_end and training_args.images_per_id == 1
    assert model_args.attn_implementation == "eager" and model_args.num_hidden_layers == 3


def test_the_schedule_fits_the_budget_of_the_machine():
    from ivt_hf.demo import LONGEST_SCHEDULE, SAFETY, VALIDATIONS, plan_schedule

    cpu = plan_schedule(300, 0.36, 1.0)  # what 2 CPU cores measure for the demo recipe
    assert cpu.steps == 720 and cpu.validate_every == 240
    assert cpu.steps * 0.36 + VALIDATIONS * 1.0 <= SAFETY * 300 < (cpu.steps + 60) * 0.36 + VALIDATIONS * 1.0
    gpu = plan_schedule(300, 0.02, 0.5)  # a GPU step: the long schedule, and no longer than what was measured
    assert gpu.steps == LONGEST_SCHEDULE and "longest" in gpu.reason
    slow = plan_schedule(30, 1.0, 2.0)
    assert slow.steps == 21 and slow.steps % VALIDATIONS == 0 and "weak" in slow.reason
    with pytest.raises(ValueError):
        plan_schedule(300, 0.0, 1.0)


class SlowingClock:
    """A clock driven by the model instead of the machine: each image batch the model embeds costs `step_cost`
    seconds in training (`slow_cost` from the `slow_after`-th on) and `eval_cost` in evaluation. The demo's probe,
    its validations and its run all read it, so a test can slow a run down mid-way on any machine, busy or idle."""

    def __init__(self, step_cost: float, slow_cost: float, slow_after: int, eval_cost: float):
        self.now, self.training_batches = 0.0, 0
        self.step_cost, self.slow_cost, self.slow_after, self.eval_cost = step_cost, slow_cost, slow_after, eval_cost

    def __call__(self) -> float:
        return self.now

    def attach(self, model) -> None:
        model.image_embeddings.register_forward_hook(self._advance)

    def _advance(self, module, inputs, output) -> None:
        if module.training:
            self.training_batches += 1
            self.now += self.slow_cost if self.training_batches > self.slow_after else self.step_cost
        else:
            self.now += self.eval_cost


def _run_the_demo_training(tmp_path, clock: SlowingClock, budget_seconds: float):
    from ivt_hf.demo import _prepare, _train

    trainer, data = _prepare(tmp_path, TOY_SPLIT_IDS, 0, TOY_SETTINGS)  # the demo's step 1
    clock.attach(trainer.model)
    training = _train(trainer, data["validation"], budget_seconds, plan=True, clock=clock)
    validations = {entry["step"]: entry["eval_R1"] for entry in trainer.state.log_history if "eval_R1" in entry}
    return trainer, training, validations


def test_a_run_that_slows_down_still_ends_on_a_validated_saved_step(tmp_path, capsys):
    """The demo's planning and budget under a clock that triples the step time a quarter into the run (what a busy
    laptop does): the run is re-planned, ends on a step that was validated and saved, its learning-rate schedule
    reaches its end, it stays inside the budget, and the model it ends with is the best of all validations, the
    last one included."""
    clock = SlowingClock(step_cost=1.0, slow_cost=3.0, slow_after=20, eval_cost=0.5)
    trainer, training, validations = _run_the_demo_training(tmp_path / "demo", clock, budget_seconds=150)
    printed = capsys.readouterr().out
    assert training.replans and training.steps_done < training.planned_steps
    assert training.steps_done in validations and list(validations) == list(training.validated_steps)
    assert training.seconds <= 150
    best_step = max(validations, key=lambda step: (validations[step], step))
    assert trainer.state.best_global_step == training.shipped_step and validations[best_step] == max(
        validations.values()
    )
    assert validations[training.shipped_step] == max(validations.values())
    checkpoints = {int(path.name.split("-")[1]) for path in (tmp_path / "demo" / "run").glob("checkpoint-*")}
    assert training.steps_done in checkpoints | {training.shipped_step} and training.shipped_step in checkpoints
    assert trainer.lr_scheduler.get_last_lr()[0] == pytest.approx(0.0, abs=1e-9)  # the stretched cosine's end
    assert f"planned {training.planned_steps} steps, trained {training.steps_done}, validated at steps" in printed
    assert "re-planned" in printed


def test_a_run_at_the_planned_speed_completes_its_schedule(tmp_path):
    """Under a steady clock the plan holds: the planned steps all run, the last one is validated, nothing is
    re-planned."""
    clock = SlowingClock(step_cost=1.0, slow_cost=1.0, slow_after=0, eval_cost=0.5)
    _, training, validations = _run_the_demo_training(tmp_path / "demo", clock, budget_seconds=60)
    assert not training.replans and training.steps_done == training.planned_steps >= 3
    assert training.steps_done in validations and training.seconds <= 60


def test_timing_a_step_leaves_the_run_as_it_was(tmp_path):
    """`measure_step_seconds` runs the real model on the run's batches, so it must leave no trace: the same weights,
    no gradients, the same train / eval mode and random-number states, no optimizer, and no logged loss."""
    import random

    import numpy as np
    import torch

    from ivt_hf.demo import _prepare, measure_step_seconds

    trainer, _ = _prepare(tmp_path, TOY_SPLIT_IDS, 0, TOY_SETTINGS)  # the demo's step 1
    model = trainer.model.eval()
    weights = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    torch.manual_seed(123)
    states = (torch.get_rng_state(), random.getstate(), np.random.get_state()[1].copy())
    assert measure_step_seconds(trainer, num_steps=2) > 0
    assert all(torch.equal(tensor, weights[name]) for name, tensor in model.state_dict().items())
    assert all(parameter.grad is None for parameter in model.parameters()) and not model.training
    assert torch.equal(torch.get_rng_state(), states[0]) and random.getstate() == states[1]
    assert np.array_equal(np.random.get_state()[1], states[2])
    assert trainer.optimizer is None and trainer.state.global_step == 0 and not trainer.state.log_history

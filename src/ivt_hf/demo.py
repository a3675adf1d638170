"""`ivt demo`: the whole job in a few minutes on a laptop CPU, with no download.

1. generate SynthPEDES (about 1,000 train / 100 validation / 200 test people);
2. train a small IVT with MLA and BMM under CMPM (`recipes/synthpedes-cpu.json`);
3. evaluate on the test split, beside the random floor and the attribute-oracle ceiling;
4. save a `from_pretrained` folder (model + processor + model card) and reload it with the Auto classes;
5. search the test gallery with two example sentences and draw the results.

`run_demo` calls one function per step, in this order; they read top to bottom below it. Unless the caller fixes the
steps, step 2 first times this machine (`measure_step_seconds`, one validation) and `plan_schedule` picks the number
of steps whose learning-rate schedule completes within the time budget.
"""

from __future__ import annotations

import functools
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from .errors import IVTInputError
from .training.arguments import RECIPES
from .training.stage import random_states_restored

DEMO_RECIPE = RECIPES / "synthpedes-cpu.json"
DEFAULT_SPLIT_IDS = {"train": 1000, "validation": 100, "test": 200}  # people per split
CARD_TITLE = "IVT tiny, trained on SynthPEDES by `ivt demo`"
# what a demo run writes into its folder, claimed until it ends (a demo killed outright leaves a folder of ivt_hf's)
DEMO_CLAIMS = ("*", "data/**", ".data.*/**", "run/**", "model/**")
CARD_MODEL_NAME = "ivt-tiny-synthpedes-demo"
PROVENANCE = (
    "These weights come from `ivt demo`: {minutes:.1f} minutes of training from random initialisation on SynthPEDES, "
    "a procedural benchmark of drawn pedestrians. They show the package working end to end; they are NOT a model of "
    "real pedestrians and should not be used on real images."
)


class TrainingBudget(TrainerCallback):
    """Keeps a run inside its wall-time budget without throwing trained steps away.

    The demo plans its schedule from a short probe (`measure_step_seconds`), but the run's steps can be slower than
    the probe's: a busy laptop, a CPU that throttles, a plan that was wrong. Cutting the run at the time limit would
    lose every step since the last validation (a third of the run, once). Instead, after each step this callback
    projects the rest of the run from the run's own recent steps and the validations it has timed:

    - while the planned rest fits the remaining budget, nothing changes;
    - when it no longer fits, it re-plans: the run ends at the last step that still fits with its validations
      (`state.max_steps`), and the learning-rate schedule is laid over the new length, so that warm-up and cosine
      still reach their end (`stretch_schedule`); the Trainer then validates and saves that last step as it would
      the planned one;
    - when not even one more step and a validation fit, it validates and saves the step just taken and stops.

    Either way the run ends on a validated, saved step, which `load_best_model_at_end` weighs with the others.
    `clock` is injectable (seconds, monotonic) so that tests can slow a run down without a busy machine.
    """

    def __init__(
        self,
        seconds: float,
        *,
        validation_seconds: float = 0.0,
        step_seconds: float | None = None,
        clock: Callable[[], float] = time.perf_counter,
        window: int = 15,
        min_timed_steps: int = 5,
    ):
        self.seconds, self.clock, self.window, self.min_timed_steps = seconds, clock, window, min_timed_steps
        self.prior_step_seconds = step_seconds  # the probe's, trusted until the run has timed enough steps
        self.validation_seconds = validation_seconds  # the probe's estimate until the run times one of its own
        self.step_durations: list[float] = []
        self.validated_steps: list[int] = []
        self.replans: list[dict[str, float]] = []
        self.stopped_early = False
        self.start = self.step_began = self.step_ended = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.start = self.clock()

    def on_step_begin(self, args, state, control, **kwargs):
        self.step_began = self.clock()

    def on_evaluate(self, args, state, control, **kwargs):
        self.validated_steps.append(state.global_step)

    def on_save(self, args, state, control, **kwargs):
        if self.step_ended is not None and self.validated_steps and self.validated_steps[-1] == state.global_step:
            # a validation and its checkpoint, timed from the end of the step they follow
            self.validation_seconds = max(self.validation_seconds, self.clock() - self.step_ended)

    def on_step_end(self, args, state, control, lr_scheduler=None, **kwargs):
        self.step_ended = now = self.clock()
        self.step_durations.append(now - (self.step_began if self.step_began is not None else self.start))
        if control.should_training_stop:
            return control  # the planned last step: the Trainer validates and saves it
        remaining = self.seconds - (now - self.start)
        step = state.global_step
        this_step = self.validation_seconds if control.should_evaluate else 0.0  # a validation owed for this step
        if self._cost(step, state.max_steps, state.eval_steps) + this_step <= remaining:
            return control
        more = self._affordable_steps(step, state.max_steps, state.eval_steps, remaining - this_step)
        if more > 0 and self.prior_step_seconds is None and len(self.step_durations) < self.min_timed_steps:
            return control  # too few steps to re-plan on, and no probe: only the last resort below may act
        if more <= 0:
            control.should_evaluate = control.should_save = control.should_training_stop = True
            self.stopped_early = True
            self.replans.append({"at_step": step, "from_steps": state.max_steps, "to_steps": step})
            return control
        self.replans.append({"at_step": step, "from_steps": state.max_steps, "to_steps": step + more})
        state.max_steps = step + more
        stretch_schedule(lr_scheduler, state.max_steps)
        return control

    def step_seconds(self) -> float:
        """The run's current step time: the median of its last `window` steps (a slowdown shows within a few).
        Until `min_timed_steps` steps are timed, the probe's time (without one, the slowest step seen, which only
        the last resort acts on): the run's first step also fills caches and builds the loader, and one step is no
        trend."""
        if len(self.step_durations) >= self.min_timed_steps:
            return statistics.median(self.step_durations[-self.window :])
        if self.prior_step_seconds is not None:
            return self.prior_step_seconds
        return max(self.step_durations)

    def _cost(self, step: int, last_step: int, eval_steps: int, step_seconds: float | None = None) -> float:
        """Seconds from after `step` to the end of the validated, saved `last_step`."""
        step_seconds = self.step_seconds() if step_seconds is None else step_seconds
        owed = _validations_between(step, last_step, eval_steps)
        return (last_step - step) * step_seconds + owed * self.validation_seconds

    def _affordable_steps(self, step: int, last_step: int, eval_steps: int, seconds: float) -> int:
        """The most further steps (fewer than planned) whose run, validations included, fits `seconds` with the
        planner's margin, so that a little more noise does not re-plan again at once; 0 when none fits."""
        step_seconds = self.step_seconds()
        more = last_step - step - 1
        while more > 0 and self._cost(step, step + more, eval_steps, step_seconds) > SAFETY * seconds:
            more -= 1
        return more


def _validations_between(step: int, last_step: int, eval_steps: int) -> int:
    """Validations the Trainer runs after `step` up to and including `last_step`: one every `eval_steps`, and one at
    `last_step` when it is not one of those."""
    every = max(1, int(eval_steps))
    return last_step // every - step // every + (1 if last_step % every else 0)


def stretch_schedule(lr_scheduler, num_training_steps: int) -> bool:
    """Lay a transformers learning-rate schedule (a `LambdaLR` over `functools.partial` lambdas with
    `num_training_steps`, as `get_scheduler` builds for linear, cosine and their variants) over a new number of
    steps, from the next step on. Returns False, changing nothing, for a schedule of another kind (or one whose
    warm-up would not end before the new last step): the run then ends where it must, on the old schedule."""
    scheduler = getattr(lr_scheduler, "scheduler", lr_scheduler)  # accelerate's AcceleratedScheduler wraps it
    lambdas = getattr(scheduler, "lr_lambdas", None)
    if not lambdas or not all(isinstance(function, functools.partial) for function in lambdas):
        return False
    if any("num_training_steps" not in function.keywords for function in lambdas):
        return False
    if any(function.keywords.get("num_warmup_steps", 0) >= num_training_steps for function in lambdas):
        return False
    scheduler.lr_lambdas = [
        functools.partial(
            function.func, *function.args, **(function.keywords | {"num_training_steps": num_training_steps})
        )
        for function in lambdas
    ]
    return True


@dataclass(frozen=True)
class DemoSchedule:
    """How many steps the demo trains for, and why."""

    steps: int
    step_seconds: float
    validation_seconds: float
    reason: str

    @property
    def validate_every(self) -> int:
        return max(1, self.steps // VALIDATIONS)


VALIDATIONS = 3  # validations (and checkpoints) per run; the last is at the last step
STEP_GRANULARITY = 60  # steps come in multiples of this, so that a little timing noise changes nothing
LONGEST_SCHEDULE = 2400  # the longest schedule measured (51.3 % test R@1 on SynthPEDES); more is untested
SAFETY = 0.9  # share of the budget the planned steps may fill: the Trainer's steps run a little slower than the probe


def plan_schedule(budget_seconds: float, step_seconds: float, validation_seconds: float) -> DemoSchedule:
    """The longest schedule that completes inside the budget: steps x step time + the validations <= SAFETY x budget,
    in multiples of STEP_GRANULARITY, at most LONGEST_SCHEDULE. The learning-rate schedule (warm-up, cosine) is laid
    over exactly these steps, so it finishes instead of being cut off by the time limit in its steepest part."""
    if budget_seconds <= 0 or step_seconds <= 0 or validation_seconds < 0:
        raise IVTInputError("budget and step time must be positive")
    affordable = (SAFETY * budget_seconds - VALIDATIONS * validation_seconds) / step_seconds
    steps = int(affordable // STEP_GRANULARITY) * STEP_GRANULARITY
    if steps >= LONGEST_SCHEDULE:
        reason = f"the longest measured schedule ({LONGEST_SCHEDULE} steps) fits the budget"
        return DemoSchedule(LONGEST_SCHEDULE, step_seconds, validation_seconds, reason)
    if steps < STEP_GRANULARITY:
        steps = max(VALIDATIONS, int(affordable // VALIDATIONS) * VALIDATIONS)
        reason = f"only {steps} steps fit the budget: expect a weak model"
    else:
        reason = f"the most steps whose schedule completes within {SAFETY:.0%} of the budget"
    return DemoSchedule(steps, step_seconds, validation_seconds, reason)


@dataclass(frozen=True)
class DemoTraining:
    """What step 2 did: the schedule it planned (None when the caller gave the steps) and what the run reached."""

    schedule: DemoSchedule | None
    planned_steps: int
    steps_done: int
    seconds: float
    loss: float
    device: str
    validated_steps: tuple[int, ...] = ()
    shipped_step: int | None = None  # the validated step whose weights the run ends with (the best validation)
    step_seconds_run: float | None = None  # the run's own step time at its end (median of its last steps)
    replans: tuple[dict[str, int], ...] = ()

    @property
    def schedule_reason(self) -> str:
        return self.schedule.reason if self.schedule else "steps given by the caller"


def run_demo(
    output_dir: str | Path = "outputs/demo",
    *,
    max_steps: int | None = None,
    time_budget_minutes: float = 5.0,
    seed: int = 0,
    threads: int | None = None,
    split_ids: dict[str, int] | None = None,
    overrides: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Run the demo's five steps; returns the summary (also written to `output_dir/summary.json`).

    `overrides` replaces settings of the demo recipe (`recipes/synthpedes-cpu.json`), named as the training flags.
    Without `max_steps` (here or in `overrides`) the number of steps is planned from this machine's speed.
    `output_dir` is held for the run (`ivt_hf.outputs.writing_run_dir`): new or empty, or with `overwrite` a demo
    folder that is wholly ivt_hf's; a folder holding anything else is refused before any work.
    """
    from .outputs import writing_run_dir

    output_dir = Path(output_dir)
    with writing_run_dir(output_dir, command="ivt demo", overwrite=overwrite, claims=DEMO_CLAIMS):
        return _run_demo(output_dir, max_steps, time_budget_minutes, seed, threads, split_ids, overrides)


def _run_demo(
    output_dir: Path,
    max_steps: int | None,
    time_budget_minutes: float,
    seed: int,
    threads: int | None,
    split_ids: dict[str, int] | None,
    overrides: dict[str, Any] | None,
) -> dict[str, Any]:
    """The five steps, in the folder that `run_demo` holds."""
    import torch

    started = time.perf_counter()
    if threads:
        torch.set_num_threads(threads)
    split_ids = split_ids or DEFAULT_SPLIT_IDS
    settings = ({"max_steps": max_steps} if max_steps else {}) | (overrides or {})
    trainer, data = _prepare(output_dir, split_ids, seed, settings)
    if max_steps and not {"eval_steps", "save_steps", "warmup_steps"} & set(overrides or {}):
        lay_schedule(trainer.args, settings["max_steps"])
    training = _train(trainer, data["validation"], time_budget_minutes * 60, plan="max_steps" not in settings)
    evaluation, record = _evaluate_on_test(trainer, data["test"], output_dir)
    training_facts = _training_facts(trainer, training, split_ids, seed)
    model, processor = _save_and_reload(trainer, output_dir / "model", record, training_facts, training.seconds)
    pictures = _search_the_test_gallery(model, processor, data["test"], evaluation, output_dir)
    return _summarise(output_dir, record, training, pictures, started)


def _prepare(output_dir: Path, split_ids: dict[str, int], seed: int, settings: dict[str, Any]):
    """Step 1: the demo recipe with this run's folders, sizes, seed and settings; SynthPEDES (generated on first use
    into `output_dir/data`) and the trainer. Returns the trainer and the whole benchmark."""
    import torch

    from .training.finetuning.arguments import recipe_arguments
    from .training.finetuning.train import prepare_training

    settings = {
        "use_cpu": not torch.cuda.is_available(),  # a GPU, when there is one, runs the long schedule in the budget
        "data_dir": str(output_dir / "data"),
        "output_dir": str(output_dir / "run"),
        "seed": seed,
        **{f"synth_{split}_ids": split_ids[split] for split in ("train", "validation", "test")},
        **settings,
    }
    arguments = recipe_arguments(DEMO_RECIPE, **settings)
    _section("1/5 SynthPEDES")
    trainer, data = prepare_training(*arguments)  # generates the benchmark on first use
    for split, rows in data.items():
        people, captions = len(set(rows["person_id"])), sum(len(texts) for texts in rows["captions"])
        print(f"{split:>10}: {people:>5} people {len(rows):>6} images {captions:>6} captions")
    return trainer, data


def _train(
    trainer, validation_split, budget_seconds: float, *, plan: bool, clock: Callable[[], float] = time.perf_counter
) -> DemoTraining:
    """Step 2: with `plan`, time this machine and lay the schedule over the steps that fit the budget
    (`_fit_schedule`); then train, `TrainingBudget` re-planning the run should its steps turn out slower, so that it
    always ends on a validated, saved step."""
    args, config = trainer.args, trainer.model.config
    device = str(args.device)
    _section(f"2/5 training IVT (MLA + BMM, CMPM loss) on {device}")
    schedule = _fit_schedule(trainer, validation_split, budget_seconds, clock) if plan else None
    if schedule:
        print(
            f"one step takes {schedule.step_seconds:.3f} s and a validation {schedule.validation_seconds:.1f} s "
            f"here: {schedule.steps} steps ({schedule.reason})"
        )
    height, width = config.image_size
    print(
        f"model: {trainer.model.num_parameters() / 1e6:.1f}M parameters, image {height}x{width}, "
        f"{config.num_patches} patches; {args.max_steps} steps of {args.per_device_train_batch_size} img x 3 pairs; "
        f"budget {budget_seconds / 60:g} min"
    )
    budget = TrainingBudget(
        budget_seconds,
        validation_seconds=schedule.validation_seconds if schedule else 0.0,
        step_seconds=schedule.step_seconds if schedule else None,
        clock=clock,
    )
    trainer.add_callback(budget)
    start = clock()
    output = trainer.train()
    seconds, steps_done = clock() - start, trainer.state.global_step
    for replan in budget.replans:
        print(
            f"steps ran slower than planned: at step {replan['at_step']} the run was re-planned from "
            f"{replan['from_steps']} to {replan['to_steps']} steps (the schedule laid over the new length)"
        )
    training = DemoTraining(
        schedule,
        planned_steps=args.max_steps,
        steps_done=steps_done,
        seconds=seconds,
        loss=output.training_loss,
        device=device,
        validated_steps=tuple(budget.validated_steps),
        shipped_step=trainer.state.best_global_step or steps_done,
        step_seconds_run=budget.step_seconds() if budget.step_durations else None,
        replans=tuple(budget.replans),
    )
    print(
        f"planned {training.planned_steps} steps, trained {steps_done}, validated at steps "
        f"{', '.join(map(str, training.validated_steps)) or 'none'}; the best validation was step "
        f"{training.shipped_step}"
    )
    return training


def _fit_schedule(trainer, validation_split, budget_seconds: float, clock: Callable[[], float]) -> DemoSchedule:
    """Time a step (`measure_step_seconds`) and a validation on this machine, plan the schedule, and lay the
    trainer's schedule over it (warm-up a tenth of the steps, validation and checkpoint every third, as the recipe
    does at 720 steps)."""
    from .evaluation.split_evaluation import evaluate_split

    args = trainer.args
    step_seconds = measure_step_seconds(trainer, clock=clock)
    start = clock()
    with trainer.accelerator.autocast():  # as `IVTTrainer.evaluate` validates
        evaluate_split(
            trainer.model,
            trainer.processing_class,
            validation_split,
            batch_size=args.per_device_eval_batch_size,
            max_queries=args.eval_max_queries,
            progress=False,
        )
    schedule = plan_schedule(budget_seconds, step_seconds, clock() - start)
    lay_schedule(args, schedule.steps)
    return schedule


def lay_schedule(args, steps: int) -> None:
    """The demo's schedule over `steps`, in the recipe's proportions (72 warm-up steps and a validation every 240
    over 720): warm-up a tenth, validation and checkpoint every third, the last at the last step. A planned run and
    one given `--max_steps` are laid alike, so that runs of different lengths differ only in their length."""
    args.max_steps = steps
    args.eval_steps = args.save_steps = max(1, steps // VALIDATIONS)
    args.warmup_steps = steps // 10


def measure_step_seconds(trainer, num_steps: int = 6, *, clock: Callable[[], float] = time.perf_counter) -> float:
    """Seconds per training step on this machine: the median of `num_steps` steps after one warm-up step, each
    drawing a batch, running forward and backward under the run's autocast and clipping the gradients, on the
    trainer's own model and batches.

    The run's own first steps cannot be timed instead: the Trainer lays the learning-rate schedule (warm-up, cosine)
    over `max_steps` before its first step, and `max_steps` is what this measurement decides. Nor is a copy of the
    model timed (it doubled the model's memory and built a second optimizer). The probe runs on the real model and
    leaves nothing behind: it takes no optimizer step (the run's optimizer does not exist yet; its step, a few percent
    of a step for this model, is part of the margin that `SAFETY` leaves), sets the gradients back to None, restores
    the model's train / eval mode and the random-number states that dropout, drop-path, BMM and the loader draw from,
    and reads its batches from a loader of its own, so the run's sampler is untouched. The run is the one it would
    have been without it.
    """
    model = trainer.model
    was_training = model.training
    seconds = []
    with random_states_restored():
        model.train()
        batches = iter(trainer.probe_batches())  # the run's P x K batches, before accelerate shards them
        try:
            for _ in range(num_steps + 1):
                start = clock()
                _forward_and_backward(trainer, model, trainer._prepare_inputs(next(batches)))
                seconds.append(clock() - start)
        except StopIteration:
            pass  # an epoch shorter than the probe: the steps seen are enough
        finally:
            model.zero_grad(set_to_none=True)
            model.train(was_training)
    if len(seconds) < 2:
        raise IVTInputError("the training split is too small to time a step")
    return statistics.median(seconds[1:])


def _forward_and_backward(trainer, model, inputs: dict[str, Any]) -> None:
    """One training step but the optimizer's: the loss of `IVTTrainer` (its `loss_terms`: `compute_loss` would add
    the probe's losses to the logged ones) under the run's autocast, backward, clipping."""
    import torch

    with trainer.accelerator.autocast():
        terms, _ = trainer.loss_terms(model, inputs)
    (terms.image_to_text + terms.text_to_image).backward()
    if trainer.args.max_grad_norm:
        torch.nn.utils.clip_grad_norm_(model.parameters(), trainer.args.max_grad_norm)
    if torch.cuda.is_available():
        torch.cuda.synchronize()  # the step's kernels have run when the clock is read


def _evaluate_on_test(trainer, test_split, output_dir: Path):
    """Step 3: R@K, mAP and mINP on the test split beside its random floor and attribute-oracle ceiling, written to
    `metrics.json` and `evaluation.json`. Returns the `SplitEvaluation` and its `EvaluationRecord`."""
    from .evaluation.floor_and_ceiling import synthpedes_baselines
    from .evaluation.record import EvaluationRecord
    from .evaluation.split_evaluation import evaluate_split

    _section("3/5 evaluation on the SynthPEDES test split")
    evaluation = evaluate_split(trainer.model, trainer.processing_class, test_split)
    record = EvaluationRecord(
        benchmark="synthpedes",
        split="test",
        protocol="standard",
        metrics=evaluation.metrics,
        facts=evaluation.facts,
        baselines=synthpedes_baselines(test_split, split="test"),
    )
    print(record.table("IVT (this run)"))
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "metrics.json").write_text(json.dumps(evaluation.metrics, indent=1))
    record.save(output_dir / "evaluation.json")
    return evaluation, record


def _training_facts(trainer, training: DemoTraining, split_ids: dict[str, int], seed: int) -> dict[str, Any]:
    """The facts of the run that the model card shows (and `training_facts.json` keeps)."""
    args, config = trainer.args, trainer.model.config
    optimizer = getattr(args.optim, "value", args.optim)
    scheduler = getattr(args.lr_scheduler_type, "value", args.lr_scheduler_type)
    return {
        "dataset": "synthpedes",
        "train / validation / test people": f"{split_ids['train']} / {split_ids['validation']} / {split_ids['test']}",
        "steps run": training.steps_done,
        "step of the shipped checkpoint": training.shipped_step,  # by validation
        "images per step": args.per_device_train_batch_size,
        "images per person in a batch (K)": args.images_per_id,
        "pairs per step (MLA: word, phrase, sentence)": 3 * args.per_device_train_batch_size,
        "BMM token drop ratio": config.token_drop_ratio,
        "optimizer": f"{optimizer} lr {args.learning_rate} wd {args.weight_decay}, {scheduler} schedule",
        "initialisation": f"random, std {config.initializer_range}",
        "train seconds": round(training.seconds, 1),
        "hardware": _hardware(training.device),
        "schedule": training.schedule_reason,
        "seed": seed,
        "recipe": "ivt_hf/recipes/synthpedes-cpu.json",
    }


def _save_and_reload(trainer, model_dir: Path, record, training_facts: dict[str, Any], train_seconds: float):
    """Step 4: the `from_pretrained` folder (model, processor, model card, and the facts the card was generated from,
    since the folder is what gets shared), reloaded with the Auto classes. Returns the model and the processor."""
    from transformers import AutoModel, AutoProcessor

    from .hub.card import save_model_card
    from .training.finetuning.train import save_final_model

    _section("4/5 saving and reloading")
    save_final_model(trainer, model_dir)
    card_text = {  # what the card says in words; its numbers come from the record and the facts
        "title": CARD_TITLE,
        "model_name": CARD_MODEL_NAME,
        "provenance": PROVENANCE.format(minutes=train_seconds / 60),
    }
    save_model_card(
        model_dir,
        trainer.model.config,
        repo_id=str(model_dir),
        evaluation=record,
        training=training_facts,
        num_parameters=trainer.model.num_parameters(),
        **card_text,
    )
    record.save(model_dir / "evaluation.json")
    (model_dir / "training_facts.json").write_text(json.dumps(training_facts, indent=1))
    model = AutoModel.from_pretrained(model_dir).eval()
    processor = AutoProcessor.from_pretrained(model_dir)
    print(f"reloaded {type(model).__name__} + {type(processor).__name__} from {model_dir}")
    return model, processor


def _search_the_test_gallery(model, processor, test_split, evaluation, output_dir: Path) -> dict[str, Path]:
    """Step 5: index the test images with the reloaded model and search them with two test captions
    (`search_examples.png`); draw the top-10 of six test queries from the evaluation (`test_results.png`)."""
    import datasets

    from .evaluation.pictures import draw_retrieval, rows_from_evaluation
    from .search.index import GalleryIndex

    _section("5/5 searching the test gallery")
    image_files = [image["path"] for image in test_split.cast_column("image", datasets.Image(decode=False))["image"]]
    index = GalleryIndex.build(model, processor, image_files, progress=False)
    person_of = dict(zip(index.paths, test_split["person_id"]))
    pictures = {"search_examples": output_dir / "search_examples.png", "test_results": output_dir / "test_results.png"}
    rows = _example_searches(index, model, processor, evaluation, person_of)
    draw_retrieval(
        rows, pictures["search_examples"], title="ivt demo: two example queries, top-10 (green = right person)"
    )
    num_captions = len(evaluation.captions)
    queries = list(range(0, num_captions, max(1, num_captions // 6)))[:6]
    draw_retrieval(
        rows_from_evaluation(evaluation, test_split, queries),
        pictures["test_results"],
        title="SynthPEDES test: top-10 per query (green = right person)",
    )
    return pictures


def _example_searches(index, model, processor, evaluation, person_of: dict[str, int]):
    """Search the index with the first and the middle test caption; print the top-5 of each and return the top-10
    as picture rows."""
    from .evaluation.pictures import RetrievalRow

    examples = [0, len(evaluation.captions) // 2]  # caption rows of the evaluation
    queries = [evaluation.captions[example] for example in examples]
    rows = []
    for query, example, hits in zip(queries, examples, index.search(queries, model, processor, k=10)):
        right = [person_of[hit.path] == int(evaluation.query_pids[example]) for hit in hits]
        print(f'\n"{query}"')
        for hit, is_right in zip(hits[:5], right):
            print(f"  {hit.rank:>2}. {hit.score:.3f} {Path(hit.path).name} ({'right' if is_right else 'other'} person)")
        rows.append(RetrievalRow(query, [hit.path for hit in hits], right, [hit.score for hit in hits]))
    return rows


def _summarise(output_dir: Path, record, training: DemoTraining, pictures: dict[str, Path], started: float):
    """The summary of the run: written to `summary.json`, printed, returned."""
    floor_ceiling, metrics = record.baselines, record.metrics
    summary = {
        "metrics": metrics,
        "random": floor_ceiling["random"],
        "oracle": floor_ceiling["oracle"],
        "train_steps": training.steps_done,
        "planned_steps": training.planned_steps,
        "validated_steps": list(training.validated_steps),
        "shipped_step": training.shipped_step,
        "replans": list(training.replans),
        "step_seconds": round(training.schedule.step_seconds, 4) if training.schedule else None,
        "run_step_seconds": round(training.step_seconds_run, 4) if training.step_seconds_run else None,
        "schedule": training.schedule_reason,
        "train_seconds": round(training.seconds, 1),
        "total_seconds": round(time.perf_counter() - started, 1),
        "train_loss": round(training.loss, 4),
        "paths": {
            "model": str(output_dir / "model"),
            "metrics": str(output_dir / "metrics.json"),
            "evaluation": str(output_dir / "evaluation.json"),
            "model_card": str(output_dir / "model" / "README.md"),
            **{name: str(path) for name, path in pictures.items()},
        },
    }
    (output_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    _section("summary")
    print(
        f"IVT on SynthPEDES test ({record.facts['num_queries']} queries, {record.facts['num_gallery']} images): "
        f"R@1 {metrics['R1']:.1f}% (random {floor_ceiling['random']['R1']:.1f}%, oracle "
        f"{floor_ceiling['oracle']['R1']:.1f}%), mAP {metrics['mAP']:.1f}%, mINP {metrics['mINP']:.1f}%"
    )
    print(
        f"planned {training.planned_steps} steps, trained {training.steps_done} in {training.seconds / 60:.1f} min on "
        f"{_hardware(training.device)} ({summary['schedule']}), validated at steps "
        f"{', '.join(map(str, training.validated_steps))}; the model is step {training.shipped_step}'s; demo "
        f"{summary['total_seconds'] / 60:.1f} min"
    )
    for name, path in summary["paths"].items():
        print(f"  {name:<16} {path}")
    return summary


def _section(title: str) -> None:
    print(f"\n=== {title} ===", flush=True)


def _hardware(device: str) -> str:
    import torch

    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return f"CPU, {torch.get_num_threads()} threads"


__all__ = [
    "DEMO_RECIPE",
    "DemoSchedule",
    "TrainingBudget",
    "measure_step_seconds",
    "plan_schedule",
    "run_demo",
    "stretch_schedule",
]

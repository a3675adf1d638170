"""`ivt demo`: the whole job in a few minutes on a laptop CPU, with no download.

1. generate SynthPEDES (about 1,000 train / 100 validation / 200 test people);
2. train a small IVT with MLA and BMM under CMPM (`recipes/synthpedes-cpu.json`);
3. evaluate on the test split, beside the random floor and the attribute-oracle ceiling;
4. save a `from_pretrained` folder (model + processor + model card) and reload it with the Auto classes;
5. search the test gallery with two example sentences and draw the results.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from .errors import IVTInputError
from .training.arguments import RECIPES

DEMO_RECIPE = RECIPES / "synthpedes-cpu.json"


class TimeBudget(TrainerCallback):
    """Ends training once `seconds` of wall time have passed; `stopped_early` says whether it cut the run short."""

    def __init__(self, seconds: float):
        self.seconds, self.start, self.stopped_early = seconds, None, False

    def on_train_begin(self, args, state, control, **kwargs):
        self.start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        if time.perf_counter() - self.start > self.seconds:
            control.should_training_stop = True
            self.stopped_early = state.global_step < state.max_steps
        return control


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
        return DemoSchedule(LONGEST_SCHEDULE, step_seconds, validation_seconds,
                            f"the longest measured schedule ({LONGEST_SCHEDULE} steps) fits the budget")  # fmt: skip
    if steps < STEP_GRANULARITY:
        steps = max(VALIDATIONS, int(affordable // VALIDATIONS) * VALIDATIONS)
        reason = f"only {steps} steps fit the budget: expect a weak model"
    else:
        reason = f"the most steps whose schedule completes within {SAFETY:.0%} of the budget"
    return DemoSchedule(steps, step_seconds, validation_seconds, reason)


def _section(title: str) -> None:
    print(f"\n=== {title} ===", flush=True)


def run_demo(
    output_dir: str | Path = "outputs/demo",
    *,
    max_steps: int | None = None,
    time_budget_minutes: float = 5.0,
    seed: int = 0,
    threads: int | None = None,
    split_ids: dict[str, int] | None = None,
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run the demo; returns the summary (also written to `output_dir/summary.json`).

    `overrides` replaces settings of the demo recipe (`recipes/synthpedes-cpu.json`), named as the training flags.
    """
    import datasets
    import torch
    from transformers import AutoModel, AutoProcessor

    from .evaluation.baselines import synthpedes_baselines
    from .evaluation.pictures import RetrievalRow, draw_retrieval, rows_from_evaluation
    from .evaluation.record import EvaluationRecord
    from .evaluation.split_evaluation import evaluate_split
    from .hub.card import save_model_card
    from .search.index import GalleryIndex
    from .training.arguments import recipe_arguments
    from .training.train import prepare_training, save_final_model

    started = time.perf_counter()
    if threads:
        torch.set_num_threads(threads)
    output_dir = Path(output_dir)
    data_root, run_dir, model_dir = output_dir / "data", output_dir / "run", output_dir / "model"
    split_ids = split_ids or {"train": 1000, "validation": 100, "test": 200}
    settings = {
        "use_cpu": not torch.cuda.is_available(),  # a GPU, when there is one, runs the long schedule in the budget
        "data_root": str(data_root), "output_dir": str(run_dir), "seed": seed,
        "synth_train_ids": split_ids["train"], "synth_validation_ids": split_ids["validation"],
        "synth_test_ids": split_ids["test"], **({"max_steps": max_steps} if max_steps else {}), **(overrides or {}),
    }  # fmt: skip
    model_args, data_args, training_args = recipe_arguments(DEMO_RECIPE, **settings)

    _section("1/5 SynthPEDES")
    trainer, data = prepare_training(model_args, data_args, training_args)  # generates the benchmark on first use
    image_size = tuple(trainer.model.config.image_size)
    for split, rows in data.items():
        print(f"{split:>10}: {len(set(rows['person_id'])):>5} people {len(rows):>6} images "
              f"{sum(len(c) for c in rows['captions']):>6} captions")  # fmt: skip

    device = str(training_args.device)
    _section(f"2/5 training IVT (MLA + BMM, CMPM loss) on {device}")
    schedule = None
    if not max_steps and "max_steps" not in (overrides or {}):
        schedule = _fit_schedule(trainer, data["validation"], time_budget_minutes * 60)
        print(f"one step takes {schedule.step_seconds:.3f} s and a validation {schedule.validation_seconds:.1f} s "
              f"here: {schedule.steps} steps ({schedule.reason})")  # fmt: skip
    num_parameters = sum(p.numel() for p in trainer.model.parameters())
    print(f"model: {num_parameters / 1e6:.1f}M parameters, image {image_size[0]}x{image_size[1]}, "
          f"{trainer.model.config.num_patches} patches; {training_args.max_steps} steps of "
          f"{training_args.per_device_train_batch_size} img x 3 pairs; budget {time_budget_minutes:g} min")  # fmt: skip
    budget = TimeBudget(time_budget_minutes * 60)
    trainer.add_callback(budget)
    train_start = time.perf_counter()
    train_output = trainer.train()
    train_seconds = time.perf_counter() - train_start
    steps_done = trainer.state.global_step
    if budget.stopped_early:
        print(f"time budget reached after {steps_done} of {training_args.max_steps} steps")

    _section("3/5 evaluation on the SynthPEDES test split")
    evaluation = evaluate_split(trainer.model, trainer.processing_class, data["test"])
    floor_ceiling = synthpedes_baselines(data["test"], split="test")
    evaluation_record = EvaluationRecord(
        benchmark="synthpedes",
        split="test",
        protocol="standard",
        metrics=evaluation.metrics,
        facts=evaluation.facts,
        baselines=floor_ceiling,
    )
    print(evaluation_record.table("IVT (this run)"))
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "metrics.json").write_text(json.dumps(evaluation.metrics, indent=1))
    evaluation_record.save(output_dir / "evaluation.json")

    _section("4/5 saving and reloading")
    save_final_model(trainer, model_dir)
    training_facts = {
        "dataset": "synthpedes",
        "train / validation / test people": f"{split_ids['train']} / {split_ids['validation']} / {split_ids['test']}",
        "steps run": steps_done,
        "step of the shipped checkpoint": trainer.state.best_global_step or steps_done,  # selected on validation
        "images per step": training_args.per_device_train_batch_size,
        "images per person in a batch (K)": training_args.images_per_id,
        "pairs per step (MLA: word, phrase, sentence)": 3 * training_args.per_device_train_batch_size,
        "BMM token drop ratio": trainer.model.config.token_drop_ratio,
        "optimizer": f"{getattr(training_args.optim, 'value', training_args.optim)} lr {training_args.learning_rate} "
        f"wd {training_args.weight_decay}, "
        f"{getattr(training_args.lr_scheduler_type, 'value', training_args.lr_scheduler_type)} schedule",
        "initialisation": f"random, std {trainer.model.config.initializer_range}",
        "train seconds": round(train_seconds, 1),
        "hardware": _hardware(device),
        "schedule": schedule.reason if schedule else "steps given by the caller",
        "seed": seed,
        "recipe": "ivt_hf/recipes/synthpedes-cpu.json",
    }
    provenance = (
        f"These weights come from `ivt demo`: {train_seconds / 60:.1f} minutes of training from random "
        "initialisation on SynthPEDES, a procedural benchmark of drawn pedestrians. They show the package working "
        "end to end; they are NOT a model of real pedestrians and should not be used on real images."
    )
    save_model_card(
        model_dir,
        trainer.model.config,
        repo_id=str(model_dir),
        title="IVT tiny, trained on SynthPEDES by `ivt demo`",
        model_name="ivt-tiny-synthpedes-demo",
        evaluation=evaluation_record,
        training=training_facts,
        provenance=provenance,
        num_parameters=num_parameters,
    )
    # the folder is what gets shared: it carries the facts its card was generated from
    evaluation_record.save(model_dir / "evaluation.json")
    (model_dir / "training_facts.json").write_text(json.dumps(training_facts, indent=1))
    model = AutoModel.from_pretrained(model_dir).eval()
    processor = AutoProcessor.from_pretrained(model_dir)
    print(f"reloaded {type(model).__name__} + {type(processor).__name__} from {model_dir}")

    _section("5/5 searching the test gallery")
    test = data["test"]
    image_files = [image["path"] for image in test.cast_column("image", datasets.Image(decode=False))["image"]]
    index = GalleryIndex.build(model, processor, image_files, progress=False)
    path_to_pid = dict(zip(index.paths, test["person_id"]))
    examples = [evaluation.captions[0], evaluation.captions[len(evaluation.captions) // 2]]
    example_pids = [int(evaluation.query_pids[0]), int(evaluation.query_pids[len(evaluation.captions) // 2])]
    rows = []
    for query, pid, hits in zip(examples, example_pids, index.search(examples, model, processor, k=10)):
        print(f'\n"{query}"')
        for hit in hits[:5]:
            mark = "right person" if path_to_pid[hit.path] == pid else "other person"
            print(f"  {hit.rank:>2}. {hit.score:.3f} {Path(hit.path).name} ({mark})")
        rows.append(RetrievalRow(query, [hit.path for hit in hits], [path_to_pid[h.path] == pid for h in hits],
                                 [hit.score for hit in hits]))  # fmt: skip
    examples_png = output_dir / "search_examples.png"
    draw_retrieval(rows, examples_png, title="ivt demo: two example queries, top-10 (green = right person)")
    queries = list(range(0, len(evaluation.captions), max(1, len(evaluation.captions) // 6)))[:6]
    results_png = output_dir / "test_results.png"
    draw_retrieval(rows_from_evaluation(evaluation, test, queries), results_png,
                   title="SynthPEDES test: top-10 per query (green = right person)")  # fmt: skip

    summary = {
        "metrics": evaluation.metrics,
        "random": floor_ceiling["random"],
        "oracle": floor_ceiling["oracle"],
        "train_steps": steps_done,
        "planned_steps": training_args.max_steps,
        "step_seconds": round(schedule.step_seconds, 4) if schedule else None,
        "schedule": schedule.reason if schedule else "steps given by the caller",
        "train_seconds": round(train_seconds, 1),
        "total_seconds": round(time.perf_counter() - started, 1),
        "train_loss": round(train_output.training_loss, 4),
        "paths": {
            "model": str(model_dir),
            "metrics": str(output_dir / "metrics.json"),
            "evaluation": str(output_dir / "evaluation.json"),
            "model_card": str(model_dir / "README.md"),
            "search_examples": str(examples_png),
            "test_results": str(results_png),
        },
    }
    (output_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    _section("summary")
    print(f"IVT on SynthPEDES test ({evaluation.facts['num_queries']} queries, {evaluation.facts['num_gallery']} "
          f"images): R@1 {evaluation.metrics['R1']:.1f}% (random {floor_ceiling['random']['R1']:.1f}%, oracle "
          f"{floor_ceiling['oracle']['R1']:.1f}%), mAP {evaluation.metrics['mAP']:.1f}%, mINP "
          f"{evaluation.metrics['mINP']:.1f}%")  # fmt: skip
    print(f"trained {steps_done} steps in {train_seconds / 60:.1f} min on {_hardware(device)} "
          f"({summary['schedule']}); demo {summary['total_seconds'] / 60:.1f} min")  # fmt: skip
    for name, path in summary["paths"].items():
        print(f"  {name:<16} {path}")
    return summary


def _fit_schedule(trainer, validation_split, budget_seconds: float) -> DemoSchedule:
    """Time a step and a validation on this machine, plan the schedule, and lay the trainer's schedule over it
    (warm-up a tenth of the steps, validation and checkpoint every third, as the recipe does at 720 steps)."""
    from .evaluation.split_evaluation import evaluate_split

    step_seconds = trainer.measure_step_seconds()
    start = time.perf_counter()
    evaluate_split(trainer.model, trainer.processing_class, validation_split, progress=False,
                   max_queries=trainer.args.eval_max_queries)  # fmt: skip
    schedule = plan_schedule(budget_seconds, step_seconds, time.perf_counter() - start)
    args = trainer.args
    args.max_steps = schedule.steps
    args.eval_steps = args.save_steps = schedule.validate_every
    args.warmup_steps = schedule.steps // 10
    return schedule


def _hardware(device: str) -> str:
    import torch

    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return f"CPU, {torch.get_num_threads()} threads"


__all__ = ["DEMO_RECIPE", "DemoSchedule", "TimeBudget", "plan_schedule", "run_demo"]

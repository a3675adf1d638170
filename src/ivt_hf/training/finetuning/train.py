"""Training IVT: build the model, the data and the trainer from the arguments, train, save. `train_from_arguments`
is `ivt train` and `scripts/train.py` (`cli/train.py` parses the flags); the launch commands are in `scripts/train.py`'s
docstring."""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from transformers import TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from ...data.loading import load_from_arguments
from ...data.normalise import emit_report
from ...data.specs import SYNTHPEDES
from ...errors import InputNotFoundError, IVTInputError
from ...hub.facts import write_training_facts
from ...hub.folder import register_for_remote_code
from ...model.modeling_ivt import IVTModel
from ...model.processing_ivt import IVTProcessor
from ...outputs import RunFolder, writing_run_dir
from ..models import build_model
from ..stage import means_latest, refuse_fp16_on_cpu, seed_process, train_transform
from .arguments import DataArguments, IVTTrainingArguments, ModelArguments
from .batching import MLACollator, TrainImageDataset
from .trainer import IVTTrainer

if TYPE_CHECKING:
    import datasets

logger = logging.getLogger(__name__)


def prepare_training(
    model_args: ModelArguments, data_args: DataArguments, training_args: IVTTrainingArguments
) -> tuple[IVTTrainer, datasets.DatasetDict]:
    """Model, processor, data, collator and trainer, ready for `trainer.train()`; also returns the whole benchmark
    (test split included) for evaluation after training."""
    refuse_fp16_on_cpu(training_args.fp16, training_args.device.type == "cpu")
    seed_process(training_args.seed)  # before the model exists: its random initialisation must follow the seed
    model = build_model(IVTModel, model_args)
    processor = IVTProcessor.from_config(model.config)
    register_for_remote_code(model, processor)  # checkpoints carry auto_map + modules
    if data_args.dataset_name is None:  # `ivt train`'s default data: SynthPEDES, generated at the model's input size
        data_args = dataclasses.replace(data_args, dataset_name=SYNTHPEDES)
    data, report = load_from_arguments(data_args, synth_image_size=tuple(model.config.image_size))
    if report is not None:
        emit_report(report)
    if "train" not in data:
        raise IVTInputError(f"{data_args.name} has no train split")
    eval_split = data.get("validation")
    if eval_split is None and training_args.eval_strategy != "no":
        raise IVTInputError(
            f"{data_args.name} has no validation split; set --eval_strategy no (the test split is never used "
            "for model selection)"
        )
    collator = MLACollator(
        processor,
        train_transform(model.config.image_size, training_args),
        seed=training_args.seed,
        multi_level=training_args.multi_level_alignment,
        max_length=training_args.max_text_length or model.config.max_position_embeddings,
    )
    trainer = IVTTrainer(
        model=model,
        args=training_args,
        train_dataset=TrainImageDataset(data["train"], cache_images=training_args.cache_train_images),
        eval_dataset=eval_split,
        data_collator=collator,
        processing_class=processor,
    )
    return trainer, data


def build_trainer(
    model_args: ModelArguments, data_args: DataArguments, training_args: IVTTrainingArguments
) -> IVTTrainer:
    """`prepare_training` without the benchmark."""
    return prepare_training(model_args, data_args, training_args)[0]


def save_final_model(trainer: IVTTrainer, output_dir: str | Path) -> Path:
    """`save_model` (model + processor, with `auto_map`), with the training arguments as JSON instead of the
    Trainer's pickled `training_args.bin`: a folder meant for sharing should not carry a pickle."""
    trainer.save_model(str(output_dir))
    output_dir = Path(output_dir)
    if trainer.is_world_process_zero():
        (output_dir / "training_args.bin").unlink(missing_ok=True)
        (output_dir / "training_args.json").write_text(trainer.args.to_json_string())
    return output_dir


def train_from_arguments(
    model_args: ModelArguments, data_args: DataArguments, training_args: IVTTrainingArguments
) -> dict[str, float]:
    """`ivt train`: hold `--output_dir` first (`claiming_output_dir`, so that a refusal comes before the data loads),
    then build the trainer and run the training as `run_training` does."""
    with claiming_output_dir(training_args) as folder:
        metrics = _train_in(build_trainer(model_args, data_args, training_args), folder)
        if folder is not None:  # what the model was trained on, for its card and `ivt evaluate`'s cross-domain table
            write_training_facts(training_args.output_dir, {"dataset": data_args.dataset_name or SYNTHPEDES})
        return metrics


def run_training(trainer: IVTTrainer) -> dict[str, float]:
    """Train (resuming when `--resume_from_checkpoint` says so: `latest`/`true` is the newest checkpoint in
    `output_dir`), save the final model folder and write `train_results.json`; returns the metrics. `output_dir` is
    held for the whole run (`claiming_output_dir`)."""
    with claiming_output_dir(trainer.args) as folder:
        return _train_in(trainer, folder)


@contextmanager
def claiming_output_dir(training_args: IVTTrainingArguments) -> Iterator[RunFolder | None]:
    """In the main process, hold `--output_dir` for the run (`ivt_hf.outputs.writing_run_dir`): new, empty, or wholly
    ivt_hf's and continued with `--resume_from_checkpoint` or replaced with `--overwrite_output_dir`; a folder with
    anything ivt_hf did not write is refused, whatever the flags, so neither the final save nor `save_total_limit`
    touches a file of the user's. The other processes write only into the checkpoints the main process claims."""
    if training_args.process_index != 0:
        yield None
        return
    output_dir = Path(training_args.output_dir)
    resume = training_args.resume_from_checkpoint
    with writing_run_dir(
        output_dir,
        command="ivt train",
        overwrite=training_args.overwrite_output_dir,
        resume=bool(resume),
        overwrite_flag="--overwrite_output_dir",
        resume_flag="--resume_from_checkpoint latest",
    ) as folder:
        if means_latest(resume) and not any(output_dir.glob(f"{PREFIX_CHECKPOINT_DIR}-*")):
            raise InputNotFoundError(f"--resume_from_checkpoint {resume}: no checkpoint in {output_dir}")
        yield folder


class _ClaimCheckpoints(TrainerCallback):
    """Claims each checkpoint in the run's marker before the Trainer writes it, and records the folder after."""

    def __init__(self, folder: RunFolder):
        self.folder = folder

    def on_step_end(self, args, state, control, **kwargs):
        if control.should_save or control.should_evaluate:  # with save_strategy "best", evaluating may save
            self.folder.claim(f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}/**")

    on_epoch_end = on_step_end

    def on_save(self, args, state, control, **kwargs):
        self.folder.record()


def _train_in(trainer: IVTTrainer, folder: RunFolder | None) -> dict[str, float]:
    training_args = trainer.args
    world_size = training_args.world_size
    logger.info(
        "training on %d process(es), device %s; %d train images; batch %d images = %d pairs per process",
        world_size,
        training_args.device,
        len(trainer.train_dataset),
        training_args.per_device_train_batch_size,
        3 * training_args.per_device_train_batch_size,
    )
    if folder is not None:
        trainer.add_callback(_ClaimCheckpoints(folder))
    resume = training_args.resume_from_checkpoint
    if means_latest(resume):
        resume = True
    result = trainer.train(resume_from_checkpoint=resume)
    if folder is not None:
        folder.claim("*")  # the final model folder's files, at the top
    save_final_model(trainer, training_args.output_dir)  # the best model when load_best_model_at_end
    metrics = dict(result.metrics) | {"world_size": world_size}
    if trainer.is_world_process_zero():
        Path(training_args.output_dir).mkdir(parents=True, exist_ok=True)
        (Path(training_args.output_dir) / "train_results.json").write_text(json.dumps(metrics, indent=1))
    trainer.accelerator.wait_for_everyone()  # every process's files are written before the folder is recorded
    return metrics


__all__ = [
    "build_trainer",
    "claiming_output_dir",
    "prepare_training",
    "run_training",
    "save_final_model",
    "train_from_arguments",
]

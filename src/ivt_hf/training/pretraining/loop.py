"""The pre-training loop: plain accelerate (not the `Trainer`), because the data is an endless stream and a checkpoint
must hold each process's position in it, so that a resumed run continues with exactly the next pairs.

A checkpoint (`OUTPUT/checkpoint-STEP/`) holds no pickle: the model in safetensors; the optimizer / scheduler / scaler
states and every process's random-number states as tensors (`torch.load(..., weights_only=True)`); each process's
shuffle buffer (`shuffle_rankR.json`: stream position, generator, buffered pairs; `shuffle_rankR.safetensors`: their
images) and progress (`progress_rankR.json`: the next batch number, images skipped); and `state.json`, written last.

Randomness: the model is initialised from `seed` in every process (and DDP starts them all from rank 0's weights);
then process r continues from `seed + r`, so that dropout and the ITM hard negatives differ between processes. The
data's randomness is keyed (`collator.py`), never drawn from these global generators.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch
from transformers import get_scheduler

from ...data.arguments import DataArguments
from ...data.mixture import cleaning_reports, open_pretraining_pairs
from ...data.pairs import PairDataError
from ...data.shuffle_buffer import ShuffleBuffer
from ...errors import InputNotFoundError, IVTInputError
from ...hub.folder import register_for_remote_code, save_model_folder
from ...model.modeling_ivt import OLD_TEMPERATURE_KEY, IVTForPreTraining, IVTForPreTrainingOutput
from ...model.processing_ivt import IVTProcessor
from ...outputs import RunFolder, writing_run_dir
from ..arguments import ModelArguments
from ..distributed import all_gather_with_grad
from ..gradcache import ChunkOutput, GradCache
from ..models import build_model
from ..stage import (
    means_latest,
    refuse_fp16_on_cpu,
    rng_state,
    seed_process,
    set_rng_state,
    stage_optimizer,
    train_transform,
)
from .arguments import PretrainingArguments
from .collator import PairBatches, PairCollator, pair_loader
from .health import ALIKE_NAMES, alikeness, collapse_warning
from .masking import MaskingRules

logger = logging.getLogger(__name__)

CHECKPOINT_PREFIX = "checkpoint-"
RUN_CLAIMS = ("log.jsonl", "pair_keys_rank*.jsonl")  # written between saves (ivt_hf.outputs.writing_run_dir)
LOSS_NAMES = ("loss", "loss_itc", "loss_itm", "loss_mlm")


def itc_settings(args: PretrainingArguments) -> dict[str, Any]:
    """The `IVTConfig` settings of the ITC flags (those left unset keep the config's)."""
    settings: dict[str, Any] = {}
    if args.itc_normalize is not None:
        settings["itc_normalize"] = args.itc_normalize
    if args.itc_temperature is not None:
        settings["itc_temperature"] = args.itc_temperature
    if not args.itc_clamp_temperature:
        settings["itc_temperature_range"] = None
    return settings


def activation_checkpointing(model: IVTForPreTraining, args: PretrainingArguments) -> None:
    """`--gradient_checkpointing` (`--activation_checkpointing`) with its kwargs, as the `Trainer` turns it on for
    fine-tuning: every encoder and fusion layer recomputes its activations in the backward instead of keeping them."""
    if not args.activation_checkpointing:
        return
    kwargs = dict(args.activation_checkpointing_kwargs or {})
    every_n_layers, offload = kwargs.pop("every_n_layers", 1), kwargs.pop("offload", False)
    model.activation_checkpointing_enable(
        activation_checkpointing_kwargs=kwargs or None, every_n_layers=every_n_layers, offload=offload
    )


def learning_rate_schedule(optimizer: torch.optim.Optimizer, args: PretrainingArguments):
    """The `TrainingArguments` schedule, as the `Trainer` builds it: `lr_scheduler_type` with its
    `lr_scheduler_kwargs`, warm-up over `warmup_steps` (steps, or a fraction of `max_steps` when below 1)."""
    kwargs = args.lr_scheduler_kwargs or {}
    if isinstance(kwargs, str):
        kwargs = json.loads(kwargs)
    return get_scheduler(
        args.lr_scheduler_type,
        optimizer,
        num_warmup_steps=args.get_warmup_steps(args.max_steps),
        num_training_steps=args.max_steps,
        scheduler_specific_kwargs=kwargs,
    )


# --------------------------------------------------------------------------------------------------------- checkpoints


def _step_of(checkpoint: Path) -> int | None:
    """STEP of a `checkpoint-STEP` folder, None for another name."""
    step = checkpoint.name[len(CHECKPOINT_PREFIX) :]
    return int(step) if step.isdigit() else None


def find_checkpoint(output_dir: Path, resume: str) -> Path:
    """`'latest'` -> the newest `checkpoint-STEP` in `output_dir` that is complete; else the folder given."""
    if means_latest(resume):
        candidates = sorted(
            (path for path in output_dir.glob(f"{CHECKPOINT_PREFIX}*") if (path / "state.json").is_file()),
            key=lambda path: int(path.name[len(CHECKPOINT_PREFIX) :]),
        )
        if not candidates:
            raise InputNotFoundError(f"--resume_from_checkpoint latest: no complete checkpoint in {output_dir}")
        return candidates[-1]
    path = Path(resume)
    if not (path / "state.json").is_file():
        raise InputNotFoundError(
            f"--resume_from_checkpoint {resume}: not a complete pre-training checkpoint (no state.json)"
        )
    return path


# ---------------------------------------------------------------------------------------------------------------- loop


@dataclass
class PretrainingResult:
    steps: int
    pairs_seen: int
    seconds: float
    pairs_per_second: float
    last_losses: dict[str, float]
    output_dir: str
    world_size: int
    pairs_skipped: int
    data_cleaning: list[dict[str, Any]] = field(default_factory=list)  # what each corpus's caption cleaning did


class PretrainingRun:
    """One pre-training run: `run()` trains to `max_steps`, saving and resuming as told."""

    def __init__(self, model_args: ModelArguments, data_args: DataArguments, args: PretrainingArguments):
        from accelerate import Accelerator
        from accelerate.utils import DistributedDataParallelKwargs

        self.model_args, self.data_args, self.args = model_args, data_args, args
        use_cpu = args.use_cpu or not torch.cuda.is_available()
        refuse_fp16_on_cpu(args.mixed_precision == "fp16", use_cpu)
        self.accelerator = Accelerator(
            mixed_precision=args.mixed_precision,
            gradient_accumulation_steps=args.gradient_accumulation_steps,
            cpu=use_cpu,
            kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=False)],
        )
        self.output_dir = Path(args.output_dir)
        self.rank = self.accelerator.process_index
        self.world_size = self.accelerator.num_processes
        self.is_main = self.accelerator.is_main_process
        self.folder: RunFolder | None = None  # the main process holds the output folder until the run ends
        self._holding = ExitStack()
        try:
            self._prepare(args)
        except BaseException:
            self._holding.__exit__(*sys.exc_info())
            raise

    def _prepare(self, args: PretrainingArguments) -> None:
        """Hold the output folder, then build the model, the data and the optimizer, and load the checkpoint."""
        model_args = self.model_args
        if self.is_main:
            self.folder = self._holding.enter_context(
                writing_run_dir(
                    self.output_dir,
                    command="ivt pretrain",
                    overwrite=args.overwrite_output_dir,
                    resume=bool(args.resume_from_checkpoint),
                    claims=RUN_CLAIMS,
                    overwrite_flag="--overwrite_output_dir",
                    resume_flag="--resume_from_checkpoint latest",
                )
            )
        self.accelerator.wait_for_everyone()
        self.resume_dir = (
            find_checkpoint(self.output_dir, args.resume_from_checkpoint) if args.resume_from_checkpoint else None
        )

        seed_process(args.seed)  # one initialisation in every process
        model = build_model(IVTForPreTraining, model_args, **itc_settings(args))
        activation_checkpointing(model, args)
        seed_process(args.seed, self.rank)  # each process its own dropout and ITM negatives
        self.processor = IVTProcessor.from_config(model.config)
        register_for_remote_code(model, self.processor)
        data_args = self.data_args
        self.stream = open_pretraining_pairs(  # one source's stream, or several sources' mixture
            data_args.dataset_name if isinstance(data_args.dataset_name, list) else data_args.name,
            getattr(data_args, "mix_weights", None),
            rank=self.rank,
            world_size=self.world_size,
            seed=args.seed,
            revision=data_args.revision,
            image_column=data_args.image_column,
            caption_column=data_args.caption_column,
            on_invalid=data_args.on_invalid,
        )
        self.shuffled = ShuffleBuffer(self.stream, args.shuffle_buffer_size, seed=args.seed)
        image_size = tuple(model.config.image_size)
        self.collator = PairCollator(
            self.processor.tokenizer,
            train_transform(image_size, args),
            seed=args.seed,
            rank=self.rank,
            max_text_tokens=args.max_text_tokens,
            max_caption_words=args.max_caption_words,
            rules=MaskingRules(
                mask_probability=args.mlm_probability,
                max_predictions=args.mlm_max_predictions,
                span_probability=args.mlm_span_probability,
                max_span_words=args.mlm_max_span_words,
            ),
        )
        optimizer = stage_optimizer(model, args, decay_all=False)  # no decay on biases, norms, the ITC temperature
        self.scheduler = learning_rate_schedule(optimizer, args)  # stepped by hand, once per optimizer step
        self.model, self.optimizer = self.accelerator.prepare(model, optimizer)
        self.step = 0
        self.epoch = 0  # of the newest pair trained on
        self.next_batch = 0  # the number of the next batch to train on (batches left out as too small included)
        self.images_skipped = 0  # pairs left out because their image does not decode (--on_invalid skip)
        self.resume_state: dict[str, Any] | None = None  # the shuffle buffer after the last batch trained on
        self.log_history: list[dict[str, Any]] = []
        self._warned_collapse = False
        if self.resume_dir is not None:
            self._load_checkpoint(self.resume_dir)

    # -- checkpoints
    def _save_checkpoint(self) -> Path:
        folder = self.output_dir / f"{CHECKPOINT_PREFIX}{self.step}"
        partial = self.output_dir / f".{CHECKPOINT_PREFIX}{self.step}.partial"
        if self.is_main:
            self.folder.claim(f"{folder.name}/**", f"{partial.name}/**")  # a kill mid-save leaves only ivt_hf's files
            shutil.rmtree(partial, ignore_errors=True)
            partial.mkdir(parents=True)
        self.accelerator.wait_for_everyone()
        torch.save(rng_state(), partial / f"rng_rank{self.rank}.pt")
        ShuffleBuffer.save(self.resume_state, partial, f"shuffle_rank{self.rank}")
        progress = {"next_batch": self.next_batch, "images_skipped": self.images_skipped}
        (partial / f"progress_rank{self.rank}.json").write_text(json.dumps(progress))
        if self.is_main:
            from safetensors.torch import save_model

            save_model(self.accelerator.unwrap_model(self.model), str(partial / "model.safetensors"))
            states = {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict()}
            if self.accelerator.scaler is not None:
                states["scaler"] = self.accelerator.scaler.state_dict()
            torch.save(states, partial / "training_states.pt")
        self.accelerator.wait_for_everyone()
        if self.is_main:
            state = {
                "step": self.step,
                "world_size": self.world_size,
                "model_args": asdict(self.model_args),
                "data_args": asdict(self.data_args),
                "args": json.loads(self.args.to_json_string()),
            }
            (partial / "state.json").write_text(json.dumps(state, indent=1))  # written last: marks it complete
            shutil.rmtree(folder, ignore_errors=True)
            partial.rename(folder)
            self._prune_checkpoints()
            self.folder.record()
        self.accelerator.wait_for_everyone()
        return folder

    def _prune_checkpoints(self) -> None:
        limit = self.args.save_total_limit
        if not limit:
            return
        folders = sorted(  # all this run's or an earlier one's: the folder was wholly ivt_hf's when the run took it
            (path for path in self.output_dir.glob(f"{CHECKPOINT_PREFIX}*") if _step_of(path) is not None),
            key=_step_of,
        )
        for folder in folders[:-limit]:
            shutil.rmtree(folder)

    def _load_checkpoint(self, folder: Path) -> None:
        from safetensors.torch import load_model

        state = json.loads((folder / "state.json").read_text())
        if state["world_size"] != self.world_size:
            raise IVTInputError(
                f"{folder} was written by {state['world_size']} process(es) and this run has {self.world_size}: each "
                "process's stream position is in the checkpoint, so resume with the same number of processes"
            )
        from safetensors import safe_open

        model = self.accelerator.unwrap_model(self.model)
        with safe_open(folder / "model.safetensors", framework="pt") as weights:
            old_temperature = OLD_TEMPERATURE_KEY in weights.keys()  # saved before the temperature was learnt as log
        load_model(model, str(folder / "model.safetensors"))  # its `temperature` loads converted (a load pre-hook)
        states = torch.load(folder / "training_states.pt", map_location="cpu", weights_only=True)
        self.optimizer.load_state_dict(states["optimizer"])
        if old_temperature:  # the optimizer's state of the temperature (momentum) is on the old scale: it restarts
            self.optimizer.state.pop(model.log_temperature, None)
            logger.warning("%s: saved with the ITC temperature itself; resumed with its logarithm", folder)
        self.scheduler.load_state_dict(states["scheduler"])
        if "scaler" in states and self.accelerator.scaler is not None:
            self.accelerator.scaler.load_state_dict(states["scaler"])
        self.shuffled.load_state_dict(ShuffleBuffer.read(folder, f"shuffle_rank{self.rank}"))
        progress = json.loads((folder / f"progress_rank{self.rank}.json").read_text())
        self.next_batch, self.images_skipped = progress["next_batch"], progress["images_skipped"]
        set_rng_state(torch.load(folder / f"rng_rank{self.rank}.pt", weights_only=True))
        self.step = state["step"]
        for name in ("log.jsonl", f"pair_keys_rank{self.rank}.jsonl"):  # drop what the interrupted run did later
            path = self.output_dir / name
            if path.is_file() and (self.is_main or name.startswith("pair_keys")):
                kept = [line for line in path.read_text().splitlines() if json.loads(line)["step"] <= self.step]
                path.write_text("".join(line + "\n" for line in kept))
        self.accelerator.wait_for_everyone()
        logger.info("resumed from %s at step %d", folder, self.step)

    # -- training
    def _next_batch(self, loader_iterator, batches: PairBatches) -> dict[str, Any]:
        """The next batch to train on: pairs whose image does not decode raise (`--on_invalid error`) or are left out,
        counted and logged (`skip`); a batch left with fewer than 2 pairs (ITM needs a negative) is passed over."""
        while True:
            batch = next(loader_iterator)
            self.resume_state = batches.state_after(batch["batch_number"])
            self.next_batch = batch["batch_number"] + 1
            for key, reason in batch["invalid"]:
                if self.data_args.on_invalid == "error":
                    raise PairDataError(
                        f"{reason} (pass --on_invalid skip to leave such pairs out)",
                        where=self.data_args.name,
                        key=key,
                    )
                self.images_skipped += 1
                logger.warning(
                    "skipped a pair whose image does not decode: %s: sample %r: %s", self.data_args.name, key, reason
                )
            if batch["pixel_values"].shape[0] >= 2:
                return batch
            logger.warning("passed over batch %d: fewer than 2 pairs decode", batch["batch_number"])

    def run(self) -> PretrainingResult:
        """Train to `max_steps`, save the final folder; the output folder is let go when it returns or raises."""
        with self._holding:
            return self._run()

    def _run(self) -> PretrainingResult:
        from tqdm.auto import tqdm

        args = self.args
        batches = PairBatches(self.shuffled, args.per_device_train_batch_size, first_batch=self.next_batch)
        on_gpu = self.accelerator.device.type == "cuda"
        loader = pair_loader(batches, self.collator, num_workers=args.dataloader_num_workers, pin_memory=on_gpu)
        loader_iterator = iter(loader)
        self.model.train()
        sums = dict.fromkeys((*LOSS_NAMES, *ALIKE_NAMES), 0.0)
        count = pairs_trained = 0
        start_step, started = self.step, time.perf_counter()
        with tqdm(total=args.max_steps, initial=self.step, disable=not self.is_main, desc="pre-training") as progress:
            while self.step < args.max_steps:
                for micro_step in range(args.gradient_accumulation_steps):
                    batch = self._next_batch(loader_iterator, batches)
                    output = self._forward_backward(batch)
                    for name in LOSS_NAMES:
                        value = getattr(output, name)
                        sums[name] += float(value.detach()) if value is not None else 0.0
                    sums["image_alike"] += alikeness(output.image_embeds)
                    sums["text_alike"] += alikeness(output.text_embeds)
                    count += 1
                    pairs_trained += len(batch["pairs"])
                    self.epoch = max(epoch for epoch, _ in batch["pairs"])
                    self._record_pairs(batch, micro_step)
                self.scheduler.step()
                self.step += 1
                progress.update(1)
                if self.step % args.every(args.logging_steps) == 0 or self.step == args.max_steps:
                    self._log(sums, count, started, start_step)
                    sums, count = dict.fromkeys(sums, 0.0), 0
                if self.step % args.every(args.save_steps) == 0 or self.step == args.max_steps:
                    self._save_checkpoint()
        del loader_iterator  # stops the workers
        seconds = time.perf_counter() - started
        pairs_seen = int(self.accelerator.reduce(torch.tensor(pairs_trained, device=self.accelerator.device), "sum"))
        skipped = self._pairs_skipped()
        self._save_final()
        last = self.log_history[-1] if self.log_history else {}
        result = PretrainingResult(
            steps=self.step,
            pairs_seen=pairs_seen,
            seconds=round(seconds, 2),
            pairs_per_second=round(pairs_seen / seconds, 2) if seconds > 0 else 0.0,
            last_losses={name: last[name] for name in LOSS_NAMES if name in last},
            output_dir=str(self.output_dir),
            world_size=self.world_size,
            pairs_skipped=skipped,
            data_cleaning=cleaning_reports(self.stream),
        )
        if self.is_main:
            (self.output_dir / "pretrain_results.json").write_text(json.dumps(asdict(result), indent=1))
        return result

    def _forward_backward(self, batch: dict[str, Any]):
        """One micro-batch: forward under the run's autocast, backward, and (at the end of an accumulation) the
        optimizer step. Returns the model output."""
        accelerator, model = self.accelerator, self.model
        names = ("pixel_values", "input_ids", "attention_mask", "mlm_input_ids", "mlm_labels")
        inputs = {name: batch[name].to(accelerator.device) for name in names}
        itc_gather = all_gather_with_grad if self.args.gather_itc and self.world_size > 1 else None
        with accelerator.accumulate(model):
            if self.args.grad_cache_chunk:
                grad_cache = GradCache(
                    self.args.grad_cache_chunk,
                    backward=accelerator.backward,
                    no_sync=partial(accelerator.no_sync, model),
                )
                with accelerator.autocast():
                    output = cached_pretraining_step(
                        model, accelerator.unwrap_model(model), inputs, grad_cache, itc_gather
                    )
            else:
                with accelerator.autocast():
                    output = model(**inputs, itc_gather=itc_gather)
                accelerator.backward(output.loss)
            if accelerator.sync_gradients and self.args.max_grad_norm > 0:
                accelerator.clip_grad_norm_(model.parameters(), self.args.max_grad_norm)
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
        return output

    def _record_pairs(self, batch: dict[str, Any], micro_step: int) -> None:
        """With --log_pair_keys: the [epoch, key] of every pair of the batch, in pair_keys_rankR.jsonl."""
        if self.args.log_pair_keys:
            record = {"step": self.step + 1, "micro_step": micro_step, "pairs": batch["pairs"]}
            with (self.output_dir / f"pair_keys_rank{self.rank}.jsonl").open("a") as handle:
                handle.write(json.dumps(record) + "\n")

    def _pairs_skipped(self) -> int:
        """Pairs left out so far by every process: invalid in the stream, or an image that does not decode."""
        stream_skipped = self.resume_state["stream"]["skipped"] if self.resume_state else 0
        mine = torch.tensor(stream_skipped + self.images_skipped, device=self.accelerator.device)
        return int(self.accelerator.reduce(mine, "sum"))

    def _log(self, sums: dict[str, float], count: int, started: float, start_step: int) -> None:
        if not count:
            return
        # the losses of this process; every process logs the mean over all processes
        means = torch.tensor([sums[name] / count for name in sums], device=self.accelerator.device)
        means = self.accelerator.reduce(means, reduction="mean")
        record = {"step": self.step, "epoch": self.epoch}
        record |= {name: round(float(value), 5) for name, value in zip(sums, means.tolist(), strict=True)}
        unwrapped = self.accelerator.unwrap_model(self.model)
        record["temperature"] = round(float(unwrapped.current_temperature().detach()), 5)
        record["learning_rate"] = self.scheduler.get_last_lr()[0]
        record["pairs_skipped"] = self._pairs_skipped()
        elapsed = time.perf_counter() - started
        record["pairs_per_second"] = round(
            (self.step - start_step)
            * self.args.per_device_train_batch_size
            * self.args.gradient_accumulation_steps
            * self.world_size
            / max(elapsed, 1e-9),
            2,
        )
        self.log_history.append(record)
        if self.is_main:
            logger.info("step %d: %s", self.step, {key: value for key, value in record.items() if key != "step"})
            self._warn_if_collapsed(record)
            with (self.output_dir / "log.jsonl").open("a") as handle:
                handle.write(json.dumps(record) + "\n")

    def _warn_if_collapsed(self, record: dict[str, Any]) -> None:
        """The collapse warning (`health.collapse_warning`), once a run: at the first logged step that shows it."""
        gathered = self.args.gather_itc and self.world_size > 1
        itc_batch = self.args.per_device_train_batch_size * (self.world_size if gathered else 1)
        warning = None if self._warned_collapse else collapse_warning(record, itc_batch)
        if warning:
            logger.warning(warning)
            self._warned_collapse = True

    def _save_final(self) -> None:
        self.accelerator.wait_for_everyone()
        if self.is_main:
            self.folder.claim("*")  # the model folder's files and pretrain_results.json, at the top
            save_model_folder(self.accelerator.unwrap_model(self.model), self.processor, self.output_dir)
        self.accelerator.wait_for_everyone()


def cached_pretraining_step(
    model: torch.nn.Module,
    unwrapped: IVTForPreTraining,
    inputs: dict[str, torch.Tensor],
    grad_cache: GradCache,
    itc_gather=None,
) -> IVTForPreTrainingOutput:
    """One pre-training forward and backward as a GradCache step (`--grad_cache_chunk`, `ivt_hf.training.gradcache`).

    ITC sees the whole batch (all processes' with `itc_gather`) through the cached CLS embeddings; its gradient for
    the temperature goes in with the last chunk. MLM is per pair, so each chunk computes its own, weighted by its share
    of the batch's masked tokens: the sum is the full batch's mean, exactly. ITM draws its hard negatives within the
    chunk (as the authors' code draws them within one GPU's batch), weighted by the chunk's share of the pairs.
    `model` is what runs with a graph (DDP's wrapper under several processes), `unwrapped` the model itself.
    Returns the losses (detached) in an `IVTForPreTrainingOutput`."""
    batch_size = inputs["pixel_values"].shape[0]
    masked = inputs["mlm_labels"] != -100
    total_masked = max(int(masked.sum()), 1)
    chunk_terms = {"loss_itm": [], "loss_mlm": []}
    embeddings = {"image_embeds": [], "text_embeds": []}
    unwrapped.clamp_temperature_()

    def encode_chunk(rows: slice, with_graph: bool) -> ChunkOutput:
        if not with_graph:  # the encoder passes only, drawing what the forward draws before its embeddings
            image = unwrapped.ivt.image_hidden_states(inputs["pixel_values"][rows], token_drop=False)[:, 0]
            text = unwrapped.ivt.text_hidden_states(
                inputs["input_ids"][rows], inputs["attention_mask"][rows], token_drop=False
            )[:, 0]
            return ChunkOutput((image, text))
        output = model(**{name: tensor[rows] for name, tensor in inputs.items()})  # its own ITC is left unused
        itm = output.loss_itm * ((rows.stop - rows.start) / batch_size)
        mlm = output.loss_mlm * (int(masked[rows].sum()) / total_masked)
        chunk_terms["loss_itm"].append(itm.detach())
        chunk_terms["loss_mlm"].append(mlm.detach())
        embeddings["image_embeds"].append(output.image_embeds.detach())
        embeddings["text_embeds"].append(output.text_embeds.detach())
        return ChunkOutput((output.image_embeds, output.text_embeds), itm + mlm)

    def batch_loss(image_embeds: torch.Tensor, text_embeds: torch.Tensor) -> dict[str, torch.Tensor]:
        features = unwrapped._itc_features(image_embeds, text_embeds)
        return {"loss_itc": unwrapped._itc_loss(*features, unwrapped.current_temperature(), itc_gather)}

    step = grad_cache.step(batch_size, encode_chunk, batch_loss, parameters=[unwrapped.log_temperature])
    return IVTForPreTrainingOutput(
        loss=step.loss,
        loss_itc=step.batch_terms["loss_itc"],
        loss_itm=torch.stack(chunk_terms["loss_itm"]).sum(),
        loss_mlm=torch.stack(chunk_terms["loss_mlm"]).sum(),
        image_embeds=torch.cat(embeddings["image_embeds"]),
        text_embeds=torch.cat(embeddings["text_embeds"]),
        temperature=unwrapped.current_temperature().detach(),
    )


def pretrain(model_args: ModelArguments, data_args: DataArguments, args: PretrainingArguments) -> PretrainingResult:
    return PretrainingRun(model_args, data_args, args).run()


__all__ = [
    "CHECKPOINT_PREFIX",
    "PretrainingResult",
    "PretrainingRun",
    "activation_checkpointing",
    "cached_pretraining_step",
    "itc_settings",
    "learning_rate_schedule",
    "find_checkpoint",
    "pretrain",
]

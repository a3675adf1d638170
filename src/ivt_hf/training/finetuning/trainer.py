"""`IVTTrainer`: the HF `Trainer` with IVT's batches, loss, optimizer and retrieval validation.

It overrides little: the training data loader (P x K identity batches with keyed augmentation), `compute_loss` (one
forward of both modalities, CMPM over the 3B pairs, optionally over all processes), `training_step` only with
`--grad_cache_chunk` (a GradCache step: `ivt_hf.training.gradcache`), the optimizer's parameter groups (the
reference's doubled bias learning rate) and `evaluate` (R@K / mAP / mINP on the validation split, never the test
split, so that `load_best_model_at_end` selects on validation).
"""

from __future__ import annotations

import math
from functools import partial

import torch
from torch.utils.data import DataLoader
from transformers import Trainer, TrainerCallback

from ...errors import IVTInputError
from ...evaluation.split_evaluation import evaluate_split
from ..gradcache import ChunkOutput, GradCache
from ..stage import seed_process, stage_optimizer
from .batching import KeyedBatchSampler
from .losses import cmpm_loss_terms, gather_embeddings_and_labels
from .sampler import IdentityBatchSampler


class SamplerEpochCallback(TrainerCallback):
    """Tells the trainer's own `KeyedBatchSampler` which epoch begins, from the trainer's state.

    The Trainer's `set_epoch` reaches the sampler through accelerate's wrappers, except in one case: a run resumed in
    the middle of an epoch with several processes. There the loader of the resumed epoch is
    `SkipBatchSampler(BatchSamplerShard(KeyedBatchSampler))`, and neither transformers' nor accelerate's forwarding
    gets through that chain, so the rest of that epoch would replay epoch 0's identity schedule, augmentations and
    text picks. `on_epoch_begin` runs before every epoch, the resumed one included, with `state.epoch` already
    restored from the checkpoint (`epoch + steps done / steps per epoch`), so its integer part is the epoch.
    """

    def __init__(self):
        self.sampler: KeyedBatchSampler | None = None

    def on_epoch_begin(self, args, state, control, **kwargs):
        if self.sampler is not None:
            self.sampler.set_epoch(math.floor(state.epoch or 0))


class IVTTrainer(Trainer):
    """A `Trainer` for IVT. Pass `train_dataset=TrainImageDataset(...)`, `eval_dataset=<image-level split>`,
    `data_collator=MLACollator(...)` and `processing_class=IVTProcessor`."""

    loss_is_scaled_for_ga = False  # compute_loss returns a per-batch mean; the Trainer divides by the GA steps

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # The Trainer seeded every process alike. The model is already built (from the common seed, and DDP starts
        # every process from rank 0's weights anyway); from here on dropout, drop-path and BMM's token drops should
        # differ between processes, so each process continues from seed + rank. (A resumed run restores each
        # process's own saved state instead.)
        seed_process(self.args.seed, self.args.process_index, full_determinism=self.args.full_determinism)
        self._sampler_epoch = SamplerEpochCallback()
        self.add_callback(self._sampler_epoch)
        self._loss_term_sums = {"loss_image_to_text": 0.0, "loss_text_to_image": 0.0}
        self._loss_term_count = 0

    def get_train_dataloader(self) -> DataLoader:
        loader = self.probe_batches()
        self._sampler_epoch.sampler = loader.batch_sampler
        return self.accelerator.prepare(loader)

    def probe_batches(self) -> DataLoader:
        """A new loader of the run's P x K identity batches with keyed augmentation, before accelerate shards them
        across processes: the training loader's own, and what `ivt demo` times a step on without touching the run's
        sampler."""
        args = self.args
        if args.per_device_train_batch_size % args.images_per_id:
            raise IVTInputError(
                f"per_device_train_batch_size ({args.per_device_train_batch_size}) must be a multiple of "
                f"images_per_id ({args.images_per_id}): batches hold P identities x K images"
            )
        identity_sampler = IdentityBatchSampler(
            self.train_dataset.person_ids,
            images_per_id=args.images_per_id,
            ids_per_batch=args.per_device_train_batch_size // args.images_per_id,
            num_replicas=args.world_size,
            rank=args.process_index,
            seed=args.data_seed if args.data_seed is not None else args.seed,
            drop_last=True,
            yield_all_replicas=True,  # accelerate's BatchSamplerShard hands batch i to process i % world_size
        )
        if len(identity_sampler) == 0:
            raise IVTInputError(
                f"the training split ({len(self.train_dataset)} images) is too small for one batch of "
                f"{args.per_device_train_batch_size} images on {args.world_size} process(es)"
            )
        loader = DataLoader(
            self.train_dataset,
            batch_sampler=KeyedBatchSampler(identity_sampler),
            collate_fn=self.data_collator,
            num_workers=args.dataloader_num_workers,
            pin_memory=args.dataloader_pin_memory,
            persistent_workers=args.dataloader_persistent_workers and args.dataloader_num_workers > 0,
        )
        return loader

    def loss_terms(self, model, inputs):
        """CMPM's two terms over the batch's 3B pairs (over every process's with `gather_loss`), and the outputs;
        unlike `compute_loss`, adds nothing to the logged losses."""
        labels = inputs["labels"]
        # one forward for both modalities, so that DDP sees every parameter used in this step
        outputs = model(
            pixel_values=inputs["pixel_values"],
            input_ids=inputs["input_ids"],
            attention_mask=inputs["attention_mask"],
            text_length_buckets=self.args.text_length_buckets,
        )
        return self._cmpm_terms(outputs.image_embeds, outputs.text_embeds, labels), outputs

    def _cmpm_terms(self, image_embeds: torch.Tensor, text_embeds: torch.Tensor, labels: torch.Tensor):
        """CMPM over these pairs, or over every process's with `gather_loss`."""
        if self.args.gather_loss:
            image_embeds, text_embeds, labels = gather_embeddings_and_labels(image_embeds, text_embeds, labels)
        return cmpm_loss_terms(image_embeds, text_embeds, labels)

    def _record_terms(self, image_to_text: torch.Tensor, text_to_image: torch.Tensor) -> None:
        self._loss_term_sums["loss_image_to_text"] += float(image_to_text.detach())
        self._loss_term_sums["loss_text_to_image"] += float(text_to_image.detach())
        self._loss_term_count += 1

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        terms, outputs = self.loss_terms(model, inputs)
        if model.training:
            self._record_terms(terms.image_to_text, terms.text_to_image)
        loss = terms.image_to_text + terms.text_to_image
        return (loss, outputs) if return_outputs else loss

    def training_step(self, model, inputs, num_items_in_batch=None) -> torch.Tensor:
        """The Trainer's step, or with `--grad_cache_chunk N` a GradCache step (`ivt_hf.training.gradcache`): CMPM
        over all 3B pairs (over every process's with `gather_loss`) while the graph holds N pairs at a time."""
        if not self.args.grad_cache_chunk:
            return super().training_step(model, inputs, num_items_in_batch)
        if self.args.n_gpu > 1:
            raise IVTInputError(
                "--grad_cache_chunk does not work with torch.nn.DataParallel (several GPUs in one process); launch "
                "one process per GPU (torchrun or accelerate launch)"
            )
        model.train()
        if callable(getattr(self.optimizer, "train", None)):
            self.optimizer.train()
        inputs = self._prepare_inputs(inputs)
        scale = 1.0 / self.current_gradient_accumulation_steps  # as the Trainer divides its loss (not GA-scaled)
        grad_cache = GradCache(
            self.args.grad_cache_chunk,
            backward=lambda surrogate: self.accelerator.backward(surrogate * scale),
            no_sync=partial(self.accelerator.no_sync, model),
        )
        unwrapped = self.accelerator.unwrap_model(model)  # the pass without a graph needs no DDP hooks

        def encode_chunk(rows: slice, with_graph: bool) -> ChunkOutput:
            outputs = (model if with_graph else unwrapped)(
                pixel_values=inputs["pixel_values"][rows],
                input_ids=inputs["input_ids"][rows],
                attention_mask=inputs["attention_mask"][rows],
                text_length_buckets=self.args.text_length_buckets,
            )
            return ChunkOutput((outputs.image_embeds, outputs.text_embeds))

        def batch_loss(image_embeds: torch.Tensor, text_embeds: torch.Tensor) -> dict[str, torch.Tensor]:
            terms = self._cmpm_terms(image_embeds, text_embeds, inputs["labels"])
            return {"loss_image_to_text": terms.image_to_text, "loss_text_to_image": terms.text_to_image}

        with self.compute_loss_context_manager():
            step = grad_cache.step(inputs["labels"].shape[0], encode_chunk, batch_loss)
        self._record_terms(step.batch_terms["loss_image_to_text"], step.batch_terms["loss_text_to_image"])
        return step.loss * scale

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs and self._loss_term_count:
            for name, total in self._loss_term_sums.items():
                logs[name] = round(total / self._loss_term_count, 4)
                self._loss_term_sums[name] = 0.0
            self._loss_term_count = 0
        super().log(logs, start_time)

    def create_optimizer(self, model=None):
        """SGD (momentum 0.9) or AdamW per `args.optim`; biases get `lr * bias_lr_multiplier`; weight decay on all
        parameters, as the reference."""
        if self.optimizer is None:
            self.optimizer = stage_optimizer(self.model if model is None else model, self.args, decay_all=True)
        return self.optimizer

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval") -> dict[str, float]:
        """Text-to-image retrieval metrics on the validation split (every process computes the same numbers, so that
        best-model selection agrees across processes), under the run's mixed precision; the similarities themselves
        are computed in float32 from the embeddings."""
        image_split = eval_dataset if eval_dataset is not None else self.eval_dataset
        if image_split is None:
            raise IVTInputError("IVTTrainer.evaluate needs an image-level eval split (the validation split)")
        model = self.accelerator.unwrap_model(self.model)
        with self.accelerator.autocast():  # validate in the precision the run trains in (--bf16 / --fp16)
            evaluation = evaluate_split(
                model,
                self.processing_class,
                image_split,
                batch_size=self.args.per_device_eval_batch_size,
                max_queries=self.args.eval_max_queries,
                progress=self.is_world_process_zero() and not self.args.disable_tqdm,
            )
        metrics = {f"{metric_key_prefix}_{name}": round(value, 4) for name, value in evaluation.metrics.items()}
        metrics[f"{metric_key_prefix}_seconds"] = evaluation.facts["seconds"]
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics


__all__ = ["IVTTrainer", "SamplerEpochCallback"]

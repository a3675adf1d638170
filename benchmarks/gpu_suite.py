"""The GPU suite: one command, one table, about 10 minutes on one H100.

    python benchmarks/gpu_suite.py                    # on a GPU: the base model at 384x128
    python benchmarks/gpu_suite.py --smoke            # on a CPU: the micro preset, tiny batches, the same code paths

Rows (the base preset, ViT-B/16 at 384x128):
- fine-tuning step, images/s (28 images = 84 pairs under MLA, stride 12, BMM on, SGD): fp16 and bf16, each with
  eager attention, SDPA and `torch.compile` (of the SDPA model); "x ref" divides by the reference pattern, fp16 eager
  (the authors' explicit softmax(QK^T)V under fp16 mixed precision), measured in the same run;
- pre-training step, pairs/s (48 pairs, stride 16, ITC + ITM + MLM, fp16 SDPA);
- encoding throughput, images/s and captions/s: PyTorch (float16 on a GPU) and ONNX Runtime (an fp16 export on
  the CUDA provider), when `ivt_hf.onnx` and onnxruntime's provider are there (else the row says why not);
- the paper's global batch, 112 images (336 pairs) on one process, fp16 SDPA: peak memory and images/s without
  either technique, with activation checkpointing, and with checkpointing and GradCache (84 pairs a chunk).

Every step is the package's own: `IVTTrainer.training_step` under accelerate's mixed precision (the GradCache step
with `grad_cache_chunk`), the optimizer's step, gradients set to None. Peak memory is torch's allocator peak over the
timed steps (GPU only). A row that runs out of memory says OOM; a row that fails says so and the suite exits 1.
`--smoke` runs every row on the CPU with the micro preset, a batch of a few images, one timed step and
`torch.compile`'s eager backend (dynamo without code generation); tests/test_benchmarks.py runs it.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import torch

FULL = {
    "preset": "base",
    "stride": 12,
    "pretraining_stride": 16,
    "images": 28,
    "pretraining_pairs": 48,
    "encode_images": 256,
    "encode_texts": 1024,
    "paper_images": 112,
    "chunk": 84,
    "text_length": 64,
    "warmup": 3,
    "steps": 10,
    "compile_backend": "inductor",
}
SMOKE = FULL | {
    "preset": "micro",
    "images": 2,
    "pretraining_pairs": 4,
    "encode_images": 4,
    "encode_texts": 8,
    "paper_images": 4,
    "chunk": 5,
    "text_length": 16,
    "warmup": 1,
    "steps": 1,
    "compile_backend": "eager",
}


@dataclass
class Row:
    section: str
    setting: str
    value: float | None = None
    unit: str = ""
    peak_gib: float | None = None
    note: str = ""
    failed: bool = False
    extra: dict = field(default_factory=dict)


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def release() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def timed(step, warmup: int, steps: int) -> tuple[float, float | None]:
    """Median seconds of `steps` calls after `warmup`, and the allocator's peak GiB over them (GPU)."""
    for _ in range(warmup):
        step()
    synchronize()
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    durations = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        synchronize()
        durations.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None
    return statistics.median(durations), peak


def mla_batch(config, images: int, text_length: int) -> dict[str, torch.Tensor]:
    """Random inputs of MLA's shapes: 3 pairs per image, K = 4 images per identity, shorter word / phrase texts."""
    generator = torch.Generator().manual_seed(0)
    pairs = 3 * images
    input_ids = torch.randint(1000, 20000, (pairs, text_length), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[0::3, text_length // 3 :] = 0
    attention_mask[1::3, text_length // 2 :] = 0
    return {
        "pixel_values": torch.randn(pairs, 3, *config.image_size, generator=generator),
        "input_ids": input_ids * attention_mask,
        "attention_mask": attention_mask,
        "labels": torch.arange(pairs) // 12,
    }


def finetuning_step(setting: dict, precision: str, attention: str, images: int, *, checkpointing=False, chunk=0):
    """(seconds per step, peak GiB) of `IVTTrainer`'s step on the base model, prepared by accelerate."""
    from ivt_hf import IVTConfig, IVTModel
    from ivt_hf.training.finetuning.arguments import IVTTrainingArguments
    from ivt_hf.training.finetuning.trainer import IVTTrainer

    torch.manual_seed(0)
    config = IVTConfig.from_preset(setting["preset"], patch_stride=setting["stride"])
    model = IVTModel(config).train()
    model.set_attn_implementation("eager" if attention == "eager" else "sdpa")
    if checkpointing:
        model.activation_checkpointing_enable()  # what the Trainer does for --gradient_checkpointing
    compiled = attention == "compile"
    with tempfile.TemporaryDirectory() as output_dir:
        args = IVTTrainingArguments(
            output_dir=output_dir,
            use_cpu=device().type == "cpu",
            report_to="none",
            fp16=precision == "fp16",
            bf16=precision == "bf16",
            optim="sgd",
            learning_rate=5e-3,
            weight_decay=1e-4,
            grad_cache_chunk=chunk,
            torch_compile=compiled,
            torch_compile_backend=setting["compile_backend"] if compiled else None,
        )
        trainer = IVTTrainer(model=model, args=args)
        trainer.current_gradient_accumulation_steps = 1  # set by Trainer.train's loop
        prepared, optimizer = trainer.accelerator.prepare(model, trainer.create_optimizer())
        batch = mla_batch(config, images, setting["text_length"])

        def step() -> None:
            trainer.training_step(prepared, batch)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        return timed(step, setting["warmup"], setting["steps"])


def pretraining_step(setting: dict, pairs: int) -> tuple[float, float | None]:
    """(seconds per step, peak GiB) of the pre-training step (`ivt pretrain`'s: forward under autocast, backward)."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    from ivt_hf import IVTConfig
    from ivt_hf.model.modeling_ivt import IVTForPreTraining

    torch.manual_seed(0)
    config = IVTConfig.from_preset(setting["preset"], patch_stride=setting["pretraining_stride"])
    AcceleratorState._reset_state(reset_partial_state=True)  # as TrainingArguments does before each Trainer's
    accelerator = Accelerator(mixed_precision="fp16", cpu=device().type == "cpu")
    model = IVTForPreTraining(config).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=5e-3, momentum=0.9)
    model, optimizer = accelerator.prepare(model, optimizer)
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(1000, 20000, (pairs, 50), generator=generator)
    input_ids[:, 0] = 101
    labels = torch.full_like(input_ids, -100)
    labels[:, 3:9] = input_ids[:, 3:9]
    inputs = {
        "pixel_values": torch.randn(pairs, 3, *config.image_size, generator=generator),
        "input_ids": input_ids,
        "attention_mask": torch.ones_like(input_ids),
        "mlm_input_ids": input_ids.masked_fill(labels != -100, 103),
        "mlm_labels": labels,
    }
    inputs = {name: tensor.to(accelerator.device) for name, tensor in inputs.items()}

    def step() -> None:
        with accelerator.autocast():
            output = model(**inputs)
        accelerator.backward(output.loss)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return timed(step, setting["warmup"], setting["steps"])


def encode_rows(setting: dict) -> list[Row]:
    """Images/s and captions/s of the eval-mode encoder: PyTorch, then ONNX Runtime when it is there."""
    import numpy as np

    from ivt_hf import IVTConfig, IVTModel
    from ivt_hf.evaluation.encoding import prepare_for_inference

    torch.manual_seed(0)
    config = IVTConfig.from_preset(setting["preset"], patch_stride=setting["stride"])
    model = IVTModel(config).to(device()).eval()
    on_gpu = device().type == "cuda"
    dtype = "float16" if on_gpu else "float32"
    generator = torch.Generator().manual_seed(0)
    pixels = torch.randn(setting["encode_images"], 3, *config.image_size, generator=generator)
    ids = torch.randint(1000, 20000, (setting["encode_texts"], setting["text_length"]), generator=generator)
    mask = torch.ones_like(ids)
    mask[::2, setting["text_length"] // 2 :] = 0
    encoder = prepare_for_inference(model, dtype)
    warmup, steps = setting["warmup"], setting["steps"]
    with torch.inference_mode():
        image_seconds, _ = timed(lambda: encoder.get_image_features(pixels.to(device())), warmup, steps)
        text_seconds, _ = timed(lambda: encoder.get_text_features(ids.to(device()), mask.to(device())), warmup, steps)
    rows = [
        Row("encode", f"PyTorch {dtype} images", len(pixels) / image_seconds, "images/s"),
        Row("encode", f"PyTorch {dtype} captions", len(ids) / text_seconds, "captions/s"),
    ]
    try:
        onnx = onnx_encoder(model.float().cpu(), "fp16" if on_gpu else "fp32")
    except Exception as error:  # not exported yet, the extra not installed, no CUDA provider: say which
        reason = f"{type(error).__name__}: {str(error).splitlines()[0][:100]}" if str(error) else type(error).__name__
        return rows + [Row("encode", "ONNX Runtime", None, "", note=f"not available ({reason})")]
    image_seconds, _ = timed(lambda: onnx.image_embeddings(pixels.numpy()), warmup, steps)
    text_seconds, _ = timed(lambda: onnx.text_embeddings(ids.numpy(), mask.numpy().astype(np.int64)), warmup, steps)
    label = f"ONNX Runtime {onnx.dtype}"
    return rows + [
        Row("encode", f"{label} images", len(pixels) / image_seconds, "images/s"),
        Row("encode", f"{label} captions", len(ids) / text_seconds, "captions/s"),
    ]


def onnx_encoder(model, dtype: str):
    """`ivt export onnx` of `model` (saved as a folder first) into a temporary folder, loaded in onnxruntime."""
    from ivt_hf import IVTProcessor
    from ivt_hf.hub import save_model_folder
    from ivt_hf.onnx.export import export_onnx
    from ivt_hf.onnx.runtime import IVTOnnxEncoder

    folder = Path(tempfile.mkdtemp(prefix="ivt_gpu_suite_"))
    save_model_folder(model, IVTProcessor.from_config(model.config), folder / "model")
    export_onnx(folder / "model", folder / "onnx", dtype=dtype)
    providers = ["CUDAExecutionProvider"] if dtype == "fp16" else ["CPUExecutionProvider"]
    return IVTOnnxEncoder(folder / "onnx", providers=providers)


def attempt(row: Row, measure) -> Row:
    """Fill `row` from `measure()` -> (value, peak GiB); out of memory is a result, another error a failure."""
    try:
        row.value, row.peak_gib = measure()
    except torch.OutOfMemoryError:
        row.note = "OOM"
    except Exception as error:
        traceback.print_exc()
        row.failed, row.note = True, f"failed: {type(error).__name__}: {error}"[:160]
    release()
    return row


def suite(setting: dict) -> list[Row]:
    rows: list[Row] = []
    images = setting["images"]
    for precision in ("fp16", "bf16"):
        for attention in ("eager", "sdpa", "compile"):
            label = f"{precision} {attention}" + (
                " (reference pattern)" if (precision, attention) == ("fp16", "eager") else ""
            )
            row = Row("fine-tuning step", label, unit="images/s", note=f"{images} images")
            rows.append(
                attempt(
                    row, lambda p=precision, a=attention: per_second(images, finetuning_step(setting, p, a, images))
                )
            )
            print(format_row(row, None), file=sys.stderr, flush=True)
    pairs = setting["pretraining_pairs"]
    row = Row(
        "pre-training step", "fp16 sdpa", unit="pairs/s", note=f"{pairs} pairs, stride {setting['pretraining_stride']}"
    )
    rows.append(attempt(row, lambda: per_second(pairs, pretraining_step(setting, pairs))))
    try:
        rows += encode_rows(setting)
    except Exception as error:
        traceback.print_exc()
        rows.append(Row("encode", "PyTorch", failed=True, note=f"failed: {type(error).__name__}: {error}"[:160]))
    release()
    paper, chunk = setting["paper_images"], setting["chunk"]
    for label, checkpointing, grad_cache in (
        ("plain", False, 0),
        ("checkpointing", True, 0),
        (f"checkpointing + GradCache ({chunk} pairs a chunk)", True, chunk),
    ):
        row = Row(f"paper batch, {paper} images", f"fp16 sdpa, {label}", unit="images/s", note=f"{3 * paper} pairs")
        measure = lambda c=checkpointing, g=grad_cache: per_second(  # noqa: E731
            paper, finetuning_step(setting, "fp16", "sdpa", paper, checkpointing=c, chunk=g)
        )
        rows.append(attempt(row, measure))
        print(format_row(row, None), file=sys.stderr, flush=True)
    return rows


def per_second(count: int, measured: tuple[float, float | None]) -> tuple[float, float | None]:
    seconds, peak = measured
    return count / seconds, peak


def format_row(row: Row, reference: float | None) -> str:
    """One line of the table; columns apart by at least two spaces (no field holds two in a row)."""
    value = f"{row.value:>10.2f}" if row.value is not None else f"{'-':>10}"
    in_ratio = reference and row.value and row.section == "fine-tuning step"
    ratio = f"{row.value / reference:>6.2f}x" if in_ratio else f"{'-':>7}"
    peak = f"{row.peak_gib:>8.2f}" if row.peak_gib is not None else f"{'-':>8}"
    return f"{row.section:<24}  {row.setting:<56}  {value}  {row.unit or '-':<10}  {ratio}  {peak}  {row.note or '-'}"


HEADER = f"{'section':<24}  {'setting':<56}  {'value':>10}  {'unit':<10}  {'x ref':>7}  {'peak GiB':>8}  note"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="CPU, micro preset, tiny batches: the code paths")
    parser.add_argument("--threads", type=int, help="torch threads on a CPU")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if not args.smoke and not torch.cuda.is_available():
        print("no GPU here: run with --smoke to check the code paths on a CPU", file=sys.stderr)
        return 2
    setting = SMOKE if args.smoke else FULL
    started = time.perf_counter()
    where = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    print(
        f"IVT {setting['preset']} preset, {where}, torch {torch.__version__}"
        + (
            " (smoke: micro preset, tiny batches, compile with the eager backend; fp16 runs as float32 on a CPU)"
            if args.smoke
            else ""
        ),
        flush=True,
    )
    rows = suite(setting)
    reference = next((row.value for row in rows if row.setting.endswith("(reference pattern)")), None)
    print(HEADER)
    for row in rows:
        print(format_row(row, reference))
    print(f"total {time.perf_counter() - started:.0f} s", flush=True)
    return 1 if any(row.failed for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())

"""Peak memory of one fine-tuning step on CPU: the base model (ViT-B/16) at 384x128, stride 12 (CUHK-PEDES, ICFG-PEDES),
without either technique, with activation checkpointing (`--gradient_checkpointing`), and with checkpointing and
GradCache (`--grad_cache_chunk`); at 28 images (one GPU's batch in the paper) and 112 (the paper's global batch,
4 GPUs x 28 = 336 pairs under MLA) on one process.

    python benchmarks/bench_memory.py                  # the full table (time: benchmarks/README.md)
    python benchmarks/bench_memory.py --quick          # the micro preset at 2 images, seconds (tested)

Each configuration runs in a subprocess of its own and its figure is that process's peak resident set
(`ru_maxrss`): the model, its gradients, SGD's momentum (allocated by a one-image warm-up step before), the batch,
the activations and the Python and torch runtime. A step is `IVTTrainer.training_step` (the trainer's own plain or
GradCache step) and the optimizer's step, on random inputs of MLA's shapes (3 pairs per image, K = 4 images per
identity, 64 text tokens with the word and phrase levels shorter) with BMM on.

Activation memory grows linearly with the pairs, so each configuration is first measured at 1 and 4 images
(`--calibration`; rows of the table too); a larger size whose straight-line extrapolation would not fit in this
machine's available memory (`--max_gib`, default 60 % of MemAvailable: the machine may be shared) is not run, and its
row shows the extrapolation, marked as such.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONFIGS = ("plain", "checkpointing", "both")
# `calibration`: the small sizes every configuration is measured at first (the line larger sizes are predicted from)
FULL = {"preset": "base", "stride": 12, "calibration": (1, 4), "images": (28, 112), "chunk": 84, "text_length": 64}
QUICK = {"preset": "micro", "stride": 12, "calibration": (2,), "images": (), "chunk": 4, "text_length": 16}


def random_batch(config, images: int, text_length: int, images_per_id: int = 4) -> dict:
    """MLA's shapes: 3 pairs per image (word, phrase, sentence texts), K images per identity."""
    import torch

    pairs = 3 * images
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(1000, 20000, (pairs, text_length), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[0::3, text_length // 3 :] = 0  # word-level texts are short
    attention_mask[1::3, text_length // 2 :] = 0  # phrase-level texts mid-length
    return {
        "pixel_values": torch.randn(pairs, 3, *config.image_size, generator=generator),
        "input_ids": input_ids * attention_mask,
        "attention_mask": attention_mask,
        "labels": torch.arange(pairs) // (3 * images_per_id),
    }


def current_rss_gib() -> float:
    with open("/proc/self/statm") as handle:
        resident_pages = int(handle.read().split()[1])
    return resident_pages * resource.getpagesize() / 2**30


def worker(preset: str, stride: int, images: int, config_name: str, chunk: int, text_length: int) -> dict:
    import torch

    from ivt_hf import IVTConfig, IVTModel
    from ivt_hf.training.finetuning.arguments import IVTTrainingArguments
    from ivt_hf.training.finetuning.trainer import IVTTrainer

    torch.manual_seed(0)
    config = IVTConfig.from_preset(preset, patch_stride=stride)
    model = IVTModel(config).train()
    if config_name in ("checkpointing", "both"):
        model.activation_checkpointing_enable()  # what the Trainer does for --gradient_checkpointing
    with tempfile.TemporaryDirectory() as output_dir:
        args = IVTTrainingArguments(
            output_dir=output_dir,
            use_cpu=True,
            report_to="none",
            optim="sgd",
            learning_rate=5e-3,
            weight_decay=1e-4,
            grad_cache_chunk=chunk if config_name == "both" else 0,
        )
        trainer = IVTTrainer(model=model, args=args)
        trainer.current_gradient_accumulation_steps = 1  # set by Trainer.train's loop, which this bench skips
        optimizer = trainer.create_optimizer()

        def step(batch: dict) -> None:
            trainer.training_step(model, batch)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        step(random_batch(config, 1, text_length))  # warm-up: SGD's momentum exists from here on
        batch = random_batch(config, images, text_length)
        resting = current_rss_gib()
        start = time.perf_counter()
        step(batch)
        seconds = time.perf_counter() - start
    return {
        "config": config_name,
        "images": images,
        "pairs": 3 * images,
        "chunk": chunk if config_name == "both" else None,
        "peak_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
        "resting_gib": round(resting, 2),
        "seconds": round(seconds, 1),
        "measured": True,
    }


def extrapolate(points: list[tuple[int, float]], images: int) -> float:
    """The peak at `images` on the straight line through the measured (images, peak GiB) points (least squares)."""
    count = len(points)
    mean_x = sum(x for x, _ in points) / count
    mean_y = sum(y for _, y in points) / count
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / spread if spread else 0.0
    return mean_y + slope * (images - mean_x)


def available_gib() -> float:
    with open("/proc/meminfo") as handle:
        fields = dict(line.split(":", 1) for line in handle)
    return int(fields["MemAvailable"].split()[0]) / 2**20


def run_worker(setting: dict, images: int, config_name: str, threads: int) -> dict:
    command = [sys.executable, __file__, "--worker", config_name, "--images", str(images), "--threads", str(threads)]
    command += ["--preset", setting["preset"], "--stride", str(setting["stride"]), "--chunk", str(setting["chunk"])]
    command += ["--text_length", str(setting["text_length"])]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{config_name} at {images} images failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def predicted_gib(config_name: str, images: int, chunk: int, measured: dict) -> float:
    """What a configuration would need, on its line through its measured sizes; for `both`, whose activations stop
    growing at one chunk, the line's value at one chunk's images (the cached embeddings are a few MB; the batch
    itself, 0.6 MB an image-text pair at 384x128, is left out of this safety estimate)."""
    if config_name == "both":
        images = min(images, max(1, chunk // 3))
    return extrapolate(measured[config_name], images)


def table(setting: dict, configs: tuple[str, ...], threads: int, limit_gib: float) -> list[dict]:
    rows, measured = [], {name: [] for name in CONFIGS}
    for config_name in sorted(configs, key=CONFIGS.index):
        for images in sorted({*setting["calibration"], *setting["images"]}):
            if (
                images in setting["calibration"]
                or predicted_gib(config_name, images, setting["chunk"], measured) < limit_gib
            ):
                row = run_worker(setting, images, config_name, threads)
                measured[config_name].append((images, row["peak_gib"]))
            else:
                peak = predicted_gib(config_name, images, setting["chunk"], measured)
                row = {"config": config_name, "images": images, "pairs": 3 * images, "measured": False}
                row |= {"chunk": setting["chunk"] if config_name == "both" else None, "peak_gib": round(peak, 1)}
            rows.append(row)
            print(format_row(row), flush=True)
    return rows


def format_row(row: dict) -> str:
    chunk = str(row["chunk"]) if row.get("chunk") else "-"
    how = "measured" if row["measured"] else "extrapolated"
    seconds = f"{row['seconds']:>8.1f}" if row.get("seconds") is not None else f"{'-':>8}"
    return (
        f"{row['config']:<14} {row['images']:>6} {row['pairs']:>6} {chunk:>6} {row['peak_gib']:>9.2f} {seconds}  {how}"
    )


HEADER = f"{'config':<14} {'images':>6} {'pairs':>6} {'chunk':>6} {'peak GiB':>9} {'s/step':>8}  how"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="the micro preset at 2 images (seconds)")
    parser.add_argument("--configs", nargs="+", choices=CONFIGS, default=list(CONFIGS))
    parser.add_argument("--images", type=int, nargs="*", help="sizes besides the calibration (default 28 112)")
    parser.add_argument("--calibration", type=int, nargs="+", help="the small sizes measured first (default 1 4)")
    parser.add_argument("--chunk", type=int, help=f"GradCache pairs per chunk (default {FULL['chunk']})")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max_gib", type=float, help="run only what fits under this (default 60%% of MemAvailable)")
    parser.add_argument("--json", help="also write the rows to this file")
    parser.add_argument("--worker", choices=CONFIGS, help=argparse.SUPPRESS)
    parser.add_argument("--preset", help=argparse.SUPPRESS)
    parser.add_argument("--stride", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--text_length", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        import torch

        torch.set_num_threads(args.threads)
        row = worker(args.preset, args.stride, args.images[0], args.worker, args.chunk, args.text_length)
        print(json.dumps(row))
        return
    setting = dict(QUICK if args.quick else FULL)
    if args.images is not None:
        setting["images"] = tuple(args.images)
    if args.calibration is not None:
        setting["calibration"] = tuple(args.calibration)
    if args.chunk is not None:
        setting["chunk"] = args.chunk
    limit = args.max_gib if args.max_gib is not None else 0.6 * available_gib()
    print(
        f"IVT {setting['preset']} preset, stride {setting['stride']}, one fine-tuning step on CPU ({args.threads} "
        f"threads), SGD; limit {limit:.1f} GiB"
    )
    print(HEADER)
    rows = table(setting, tuple(args.configs), args.threads, limit)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()

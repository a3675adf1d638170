"""Pre-training throughput (pairs/s, peak memory, precisions), the input side, the ITC choice and the temperature.

    python benchmarks/bench_pretraining.py throughput [--presets tiny] [--precisions fp32 bf16] [--batch 16]
    python benchmarks/bench_pretraining.py data [--batch 48] [--workers 0 1 2]
    python benchmarks/bench_pretraining.py flops
    python benchmarks/bench_pretraining.py itc [--steps 300] [--batch 16] [--seed 0]
    python benchmarks/bench_pretraining.py temperature [--steps 800] [--batch 16] [--seed 0]

throughput: one real IVTForPreTraining step per iteration (shared encoder on B images and 2B captions of 50 tokens,
fusion encoder on 4B captions, ITC + ITM with hard negatives + MLM, backward, AdamW), random inputs of the right
shapes; each (preset, precision) in its own subprocess so that peak memory is its own (RSS on CPU, CUDA peak
allocation on a GPU). data: the whole input side of `ivt pretrain` (stream from WebDataset shards, shuffle buffer,
JPEG decode, augmentation to 384x128, caption cleaning, tokenising, whole-word masking) on generated photo-like JPEGs
of about 500x400 (40-60 kB), in the training process and with DataLoader workers. flops: the base model's training
FLOPs per pair (counted by torch's FlopCounterMode on one real step), hence pairs/s a GPU would need fed at a given
utilisation. itc: two `ivt pretrain` runs of the tiny preset on generated colour-described pairs, one per ITC
setting, then text-to-image matching on 64 held-out pairs (top-1 image shows the described colours). temperature:
ITC + ITM of the tiny preset trained with the pre-training recipe's own optimiser (SGD 5e-3, momentum 0.9, biases
x2, weight decay 1e-4 on matrices, warm-up 4 %, cosine to 1e-5) under three ways of learning the temperature: the
package's (its logarithm, clamped in place), the old one (the raw value, clamped inside the graph) and ALBEF's (the
raw value, clamped in place).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COLOURS = {
    "red": (220, 30, 30),
    "blue": (30, 30, 220),
    "green": (30, 200, 30),
    "yellow": (230, 230, 20),
    "black": (10, 10, 10),
    "white": (245, 245, 245),
    "pink": (250, 150, 190),
    "grey": (128, 128, 128),
}
GARMENTS = ["shirt", "coat", "t-shirt", "jacket", "sweater"]


def colour_pairs(count: int, seed: int):
    """(key, jpeg, caption, (top, bottom)): a person-shaped crop whose upper and lower halves show the colours."""
    from PIL import Image

    rng = random.Random(seed)
    for number in range(count):
        top, bottom = rng.choice(list(COLOURS)), rng.choice(list(COLOURS))
        image = Image.new("RGB", (48, 128), COLOURS[top])
        image.paste(Image.new("RGB", (48, 64), COLOURS[bottom]), (0, 64))
        noise = Image.effect_noise((48, 128), 20).convert("RGB")
        image = Image.blend(image, noise, 0.15)
        buffer = io.BytesIO()
        image.save(buffer, "JPEG")
        caption = f"a person wearing a {top} {rng.choice(GARMENTS)} and {bottom} trousers"
        yield f"{seed}-{number:06d}", buffer.getvalue(), caption, (top, bottom)


def throughput_worker(preset: str, precision: str, batch: int, steps: int, threads: int) -> dict:
    import torch

    from ivt_hf.model import IVTConfig, IVTForPreTraining
    from ivt_hf.training import build_optimizer

    torch.set_num_threads(threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    config = IVTConfig.from_preset(preset)
    model = IVTForPreTraining(config).to(device).train()
    optimizer = build_optimizer(model, "adamw_torch", lr=1e-4, weight_decay=0.02)
    scaler = torch.amp.GradScaler(device) if precision == "fp16" else None
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    generator = torch.Generator().manual_seed(0)
    pixels = torch.randn(batch, 3, *config.image_size, generator=generator).to(device)
    ids = torch.randint(1000, 20000, (batch, 50), generator=generator)
    ids[:, 0] = 101
    mask = torch.ones_like(ids)
    mask[::2, 20:] = 0
    labels = torch.full_like(ids, -100)
    labels[:, 3:9] = ids[:, 3:9]
    masked = ids.clone()
    masked[:, 3:9] = 103
    inputs = {
        "pixel_values": pixels,
        "input_ids": ids.to(device),
        "attention_mask": mask.to(device),
        "mlm_input_ids": masked.to(device),
        "mlm_labels": labels.to(device),
    }
    seconds = []
    for _ in range(steps + 1):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.autocast(device, dtype=dtype, enabled=dtype is not None):
            loss = model(**inputs).loss
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device == "cuda":
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - start)
    step = sorted(seconds[1:])[len(seconds[1:]) // 2]
    if device == "cuda":
        memory = torch.cuda.max_memory_allocated() / 2**30
        where = torch.cuda.get_device_name()
    else:
        memory = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        where = f"CPU, {threads} threads"
    return {
        "preset": preset,
        "precision": precision,
        "batch": batch,
        "device": where,
        "params_M": round(sum(p.numel() for p in model.parameters()) / 1e6, 1),
        "step_s": round(step, 3),
        "pairs_per_s": round(batch / step, 1),
        "peak_GiB": round(memory, 2),
    }


def run_throughput(args) -> None:
    rows = []
    for preset in args.presets:
        for precision in args.precisions:
            command = [
                sys.executable,
                __file__,
                "_worker",
                preset,
                precision,
                str(args.batch),
                str(args.steps),
                str(args.threads),
            ]
            result = subprocess.run(command, capture_output=True, text=True)
            if result.returncode:
                print(f"{preset} {precision}: failed\n{result.stderr[-2000:]}")
                continue
            rows.append(json.loads(result.stdout.strip().splitlines()[-1]))
    print(f"{'preset':7}{'precision':10}{'params':>9}{'batch':>6}{'step s':>9}{'pairs/s':>9}{'peak GiB':>10}  device")
    for row in rows:
        print(
            f"{row['preset']:7}{row['precision']:10}{row['params_M']:>8}M{row['batch']:>6}{row['step_s']:>9}"
            f"{row['pairs_per_s']:>9}{row['peak_GiB']:>10}  {row['device']}"
        )


def photo_like_pairs(count: int, seed: int):
    """(key, jpeg, caption): about 500x400 JPEGs of smooth colour fields with noise and edges (40-60 kB each, like
    resized web photos), so that decoding costs what a real image costs."""
    from PIL import Image, ImageDraw, ImageFilter

    rng = random.Random(seed)
    for number in range(count):
        width, height = rng.randrange(440, 560), rng.randrange(360, 440)
        image = Image.new("RGB", (width, height), tuple(rng.randrange(256) for _ in range(3)))
        draw = ImageDraw.Draw(image)
        for _ in range(12):
            x, y = rng.randrange(width), rng.randrange(height)
            draw.ellipse(
                [x, y, x + rng.randrange(40, 200), y + rng.randrange(40, 200)],
                fill=tuple(rng.randrange(256) for _ in range(3)),
            )
        image = image.filter(ImageFilter.GaussianBlur(2))
        image = Image.blend(image, Image.effect_noise((width, height), 40).convert("RGB"), 0.25)
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=85)
        top, bottom = rng.choice(list(COLOURS)), rng.choice(list(COLOURS))
        caption = f"a person wearing a {top} {rng.choice(GARMENTS)} and {bottom} trousers"
        yield f"{number:06d}", buffer.getvalue(), caption


def run_data(args) -> None:
    import torch

    from ivt_hf.data.pair_writing import write_webdataset_shards
    from ivt_hf.data.pairs import open_pair_stream
    from ivt_hf.data.shuffle_buffer import ShuffleBuffer
    from ivt_hf.model.processing_ivt import default_tokenizer
    from ivt_hf.training.pretraining import PairBatches, PairCollator, pair_loader
    from ivt_hf.training.transforms import TrainTransform, reference_padding

    torch.set_num_threads(1)
    batches = args.batches
    with tempfile.TemporaryDirectory() as folder:
        pairs = list(photo_like_pairs(args.batch * (batches + 4), 0))
        sizes = sorted(len(data) for _, data, _ in pairs)
        write_webdataset_shards(pairs, Path(folder) / "shards", pairs_per_shard=args.batch * 2)
        print(
            f"{len(pairs)} JPEGs of about 500x400, {sizes[len(sizes) // 2] / 1000:.0f} kB median; batches of "
            f"{args.batch} pairs at 384x128; {os.cpu_count()} cores"
        )
        for workers in args.workers:
            shuffled = ShuffleBuffer(open_pair_stream(Path(folder) / "shards"), args.batch, seed=0)
            collator = PairCollator(
                default_tokenizer(),
                TrainTransform(image_size=(384, 128), padding=reference_padding((384, 128))),
                seed=0,
            )
            loader = iter(
                pair_loader(PairBatches(shuffled, args.batch), collator, num_workers=workers, pin_memory=False)
            )
            next(loader)  # workers started, buffer filled
            start = time.perf_counter()
            for _ in range(batches):
                next(loader)
            seconds = time.perf_counter() - start
            del loader
            rate = batches * args.batch / seconds
            print(f"workers {workers}: {rate:6.1f} pairs/s ({1000 * seconds / batches:.0f} ms a batch of {args.batch})")


def run_flops(args) -> None:
    """Training FLOPs per pair of the base model (one real forward + backward at batch 2, counted), and the pairs/s an
    H100 (989 dense bf16 TFLOP/s) would train at 30 / 40 / 50 % utilisation."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from ivt_hf.model import IVTConfig, IVTForPreTraining

    torch.manual_seed(0)
    config = IVTConfig.from_preset("base")
    model = IVTForPreTraining(config).train()
    batch = 2
    ids = torch.randint(1000, 20000, (batch, 50))
    ids[:, 0] = 101
    labels = torch.full_like(ids, -100)
    labels[:, 3:9] = ids[:, 3:9]
    inputs = {
        "pixel_values": torch.randn(batch, 3, *config.image_size),
        "input_ids": ids,
        "attention_mask": torch.ones_like(ids),
        "mlm_input_ids": ids,
        "mlm_labels": labels,
    }
    with FlopCounterMode(display=False) as counter:
        model(**inputs).loss.backward()
    per_pair = counter.get_total_flops() / batch
    print(
        f"base model (patch stride {config.patch_stride}, 50 text tokens, 6 fusion layers): "
        f"{per_pair / 1e9:.0f} GFLOP per pair for forward + backward"
    )
    for utilisation in (0.3, 0.4, 0.5):
        print(f"  H100 at {int(100 * utilisation)} % of 989 TFLOP/s: {utilisation * 989e12 / per_pair:,.0f} pairs/s")


def _matching_accuracy(model_dir: Path, held_out: list) -> float:
    import torch
    from PIL import Image

    from ivt_hf.model import IVTModel, IVTProcessor

    model = IVTModel.from_pretrained(model_dir).eval()
    processor = IVTProcessor.from_pretrained(model_dir)
    images = [Image.open(io.BytesIO(data)).convert("RGB") for _, data, _, _ in held_out]
    with torch.no_grad():
        image_embeds = model.get_image_features(**processor(images=images))
        text_inputs = processor(text=[caption for _, _, caption, _ in held_out])
        text_embeds = model.get_text_features(**text_inputs)
    normalize = torch.nn.functional.normalize
    similarity = normalize(text_embeds, dim=-1) @ normalize(image_embeds, dim=-1).t()
    top = similarity.argmax(dim=1).tolist()
    return sum(held_out[i][3] == held_out[j][3] for i, j in enumerate(top)) / len(held_out)


def run_itc(args) -> None:
    from ivt_hf.data.pair_writing import write_webdataset_shards

    settings = {
        "authors (raw CLS, T 0.5 unclamped)": [
            "--itc_normalize",
            "false",
            "--itc_temperature",
            "0.5",
            "--itc_clamp_temperature",
            "false",
        ],
        "ours (normalised CLS, T 0.07 clamped)": [],
    }
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        train = [
            (key, data, caption)
            for key, data, caption, _ in colour_pairs(args.steps * args.batch // 2, 1 + 10 * args.seed)
        ]
        write_webdataset_shards(train, root / "shards", pairs_per_shard=64)
        held_out = list(colour_pairs(64, 2))
        print(f"{'ITC':40}{'first-20 ITC':>14}{'last-20 ITC':>13}{'last-20 loss':>14}{'top-1 colours':>15}{'s':>7}")
        for name, flags in settings.items():
            output = root / name.split()[0]
            command = [
                sys.executable,
                "-m",
                "ivt_hf",
                "pretrain",
                "--dataset_name",
                str(root / "shards"),
                "--output_dir",
                str(output),
                "--model_preset",
                "tiny",
                "--max_steps",
                str(args.steps),
                "--per_device_train_batch_size",
                str(args.batch),
                "--learning_rate",
                "3e-4",
                "--weight_decay",
                "0.02",
                "--warmup_steps",
                "0.04",
                "--lr_scheduler_type",
                "cosine_with_min_lr",
                "--lr_scheduler_kwargs",
                '{"min_lr": 1e-6}',
                "--max_grad_norm",
                "0",
                "--logging_steps",
                "1",
                "--save_steps",
                str(args.steps),
                "--seed",
                str(args.seed),
                "--dataloader_num_workers",
                "0",
                "--use_cpu",
                *flags,
            ]
            start = time.perf_counter()
            result = subprocess.run(command, capture_output=True, text=True)
            if result.returncode:
                print(f"{name}: failed\n{result.stderr[-2000:]}")
                continue
            seconds = time.perf_counter() - start
            log = [json.loads(line) for line in (output / "log.jsonl").read_text().splitlines()]
            first = sum(r["loss_itc"] for r in log[:20]) / 20
            last = sum(r["loss_itc"] for r in log[-20:]) / 20
            last_total = sum(r["loss"] for r in log[-20:]) / 20
            accuracy = _matching_accuracy(output, held_out)
            print(f"{name:40}{first:>14.3f}{last:>13.3f}{last_total:>14.3f}{100 * accuracy:>14.1f}%{seconds:>7.0f}")
        print(f"chance: {100 / len(COLOURS) ** 2:.1f}% (64 held-out pairs, {len(COLOURS) ** 2} colour combinations)")


TEMPERATURE_VARIANTS = {
    "log": "ivt_hf: log T, clamped in place",
    "graph": "before: raw T, clamped in the graph",
    "albef": "ALBEF: raw T, clamped in place",
}


def temperature_worker(variant: str, steps: int, batch: int, seed: int) -> dict:
    """ITC + ITM of the tiny preset with the pre-training recipe's optimiser; the temperature learnt as `variant`."""
    import torch
    from PIL import Image

    from ivt_hf.model import IVTConfig, IVTForPreTraining, IVTProcessor
    from ivt_hf.training import build_optimizer
    from ivt_hf.training.pretraining import learning_rate_schedule, parse_pretraining_args

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    config = IVTConfig.from_preset("tiny")
    model = IVTForPreTraining(config).train()
    low, high = config.itc_temperature_range
    if variant != "log":  # the raw temperature as its own parameter; the model's log_temperature left unused
        model.log_temperature.requires_grad_(False)
        model.raw_temperature = torch.nn.Parameter(torch.tensor(config.itc_temperature))
        if variant == "graph":
            model.current_temperature = lambda: model.raw_temperature.clamp(low, high)
            model.clamp_temperature_ = lambda: None
        else:
            model.current_temperature = lambda: model.raw_temperature
            model.clamp_temperature_ = lambda: model.raw_temperature.data.clamp_(low, high)
    recipe = Path(__file__).resolve().parents[1] / "src/ivt_hf/recipes/pretrain-ivt.json"
    _, _, args = parse_pretraining_args(
        [
            str(recipe),
            "--dataset_name",
            "unused",
            "--output_dir",
            "unused",
            "--use_cpu",
            "--fp16",
            "false",
            "--max_steps",
            str(steps),
        ]
    )
    optimizer = build_optimizer(
        model,
        str(args.optim.value),
        lr=args.learning_rate,
        weight_decay=args.weight_decay,
        bias_lr_multiplier=args.bias_lr_multiplier,
        decay_all=False,
    )
    schedule = learning_rate_schedule(optimizer, args)  # the recipe's, as `ivt pretrain` builds it
    processor = IVTProcessor.from_config(config)
    pairs = list(colour_pairs(steps * batch, 1 + 10 * seed))
    itc, temperature = [], []
    for step in range(steps):
        chunk = pairs[step * batch : (step + 1) * batch]
        inputs = processor(
            images=[Image.open(io.BytesIO(data)).convert("RGB") for _, data, _, _ in chunk],
            text=[caption for _, _, caption, _ in chunk],
        )
        output = model(
            pixel_values=inputs["pixel_values"], input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]
        )
        itc.append(output.loss_itc.item())
        temperature.append(output.temperature.item())  # before the step: a raw T's output is the parameter itself
        output.loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        schedule.step()
    held_out = list(colour_pairs(64, 2))
    model.eval()
    with torch.no_grad():
        images = model.ivt.get_image_features(
            **processor(images=[Image.open(io.BytesIO(d)).convert("RGB") for _, d, _, _ in held_out])
        )
        texts = model.ivt.get_text_features(**processor(text=[caption for _, _, caption, _ in held_out]))
    top = (torch.nn.functional.normalize(texts, dim=-1) @ torch.nn.functional.normalize(images, dim=-1).t()).argmax(1)
    accuracy = sum(held_out[i][3] == held_out[j][3] for i, j in enumerate(top.tolist())) / len(held_out)
    window = max(1, min(50, steps // 4))
    marks = sorted({0, 5, 10, 50, 100, 200, steps // 2, steps - 1} & set(range(steps)))
    return {
        "variant": variant,
        "first_itc": sum(itc[:window]) / window,
        "last_itc": sum(itc[-window:]) / window,
        "window": window,
        "temperature": {mark: round(temperature[mark], 3) for mark in marks},
        "top1": accuracy,
    }


def run_temperature(args) -> None:
    rows = []
    for variant in TEMPERATURE_VARIANTS:
        command = [sys.executable, __file__, "_temperature", variant, str(args.steps), str(args.batch), str(args.seed)]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode:
            print(f"{variant}: failed\n{result.stderr[-2000:]}")
            continue
        rows.append(json.loads(result.stdout.strip().splitlines()[-1]))
    window = rows[0]["window"] if rows else 0
    print(
        f"{args.steps} steps of {args.batch} pairs, seed {args.seed}; ITC = mean of the first / last {window} steps "
        f"(a uniform guess: ln {args.batch} = {__import__('math').log(args.batch):.2f})"
    )
    print(f"{'temperature':38}{'first ITC':>10}{'last ITC':>10}{'top-1':>8}  T at step")
    for row in rows:
        marks = " ".join(f"{mark}:{value}" for mark, value in row["temperature"].items())
        print(
            f"{TEMPERATURE_VARIANTS[row['variant']]:38}{row['first_itc']:>10.3f}{row['last_itc']:>10.3f}"
            f"{100 * row['top1']:>7.1f}%  {marks}"
        )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_worker":
        _, _, preset, precision, batch, steps, threads = sys.argv
        print(json.dumps(throughput_worker(preset, precision, int(batch), int(steps), int(threads))))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "_temperature":
        _, _, variant, steps, batch, seed = sys.argv
        print(json.dumps(temperature_worker(variant, int(steps), int(batch), int(seed))))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=["throughput", "data", "flops", "itc", "temperature"])
    parser.add_argument("--presets", nargs="+", default=["tiny"])
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0, help="itc, temperature: the run's seed (and its pairs)")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2], help="data: DataLoader workers")
    parser.add_argument("--batches", type=int, default=10, help="data: batches timed")
    args = parser.parse_args()
    parts = {
        "throughput": run_throughput,
        "data": run_data,
        "flops": run_flops,
        "itc": run_itc,
        "temperature": run_temperature,
    }
    parts[args.part](args)


if __name__ == "__main__":
    main()

"""Pre-training throughput (pairs/s, peak memory, precisions) and the ITC choice (the authors' raw CLS at temperature
0.5 vs normalised CLS with a learnt, clamped temperature).

    python benchmarks/bench_pretraining.py throughput [--presets tiny] [--precisions fp32 bf16] [--batch 16]
    python benchmarks/bench_pretraining.py data [--batch 16]
    python benchmarks/bench_pretraining.py itc [--steps 300] [--batch 16] [--seed 0]

throughput: one real IVTForPreTraining step per iteration (shared encoder on B images and 2B captions of 50 tokens,
fusion encoder on 4B captions, ITC + ITM with hard negatives + MLM, backward, AdamW), random inputs of the right
shapes; each (preset, precision) in its own subprocess so that peak memory is its own (RSS on CPU, CUDA peak
allocation on a GPU). data: the pair collator alone (JPEG decode, augmentation, caption cleaning, tokenising,
whole-word masking) on generated WebDataset shards. itc: two `ivt pretrain` runs of the tiny preset on generated
colour-described pairs, one per ITC setting, then text-to-image matching on 64 held-out pairs (top-1 image shows the
described colours).
"""

from __future__ import annotations

import argparse
import io
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COLOURS = {"red": (220, 30, 30), "blue": (30, 30, 220), "green": (30, 200, 30), "yellow": (230, 230, 20),
           "black": (10, 10, 10), "white": (245, 245, 245), "pink": (250, 150, 190),
           "grey": (128, 128, 128)}  # fmt: skip
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
    from ivt_hf.training.pretraining import PRETRAINING_PRESETS

    torch.set_num_threads(threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    config = IVTConfig(**PRETRAINING_PRESETS[preset])
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
    inputs = {"pixel_values": pixels, "input_ids": ids.to(device), "attention_mask": mask.to(device),
              "mlm_input_ids": masked.to(device), "mlm_labels": labels.to(device)}  # fmt: skip
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
    return {"preset": preset, "precision": precision, "batch": batch, "device": where,
            "params_M": round(sum(p.numel() for p in model.parameters()) / 1e6, 1), "step_s": round(step, 3),
            "pairs_per_s": round(batch / step, 1), "peak_GiB": round(memory, 2)}  # fmt: skip


def run_throughput(args) -> None:
    rows = []
    for preset in args.presets:
        for precision in args.precisions:
            command = [sys.executable, __file__, "_worker", preset, precision, str(args.batch), str(args.steps),
                       str(args.threads)]  # fmt: skip
            result = subprocess.run(command, capture_output=True, text=True)
            if result.returncode:
                print(f"{preset} {precision}: failed\n{result.stderr[-2000:]}")
                continue
            rows.append(json.loads(result.stdout.strip().splitlines()[-1]))
    print(f"{'preset':7}{'precision':10}{'params':>9}{'batch':>6}{'step s':>9}{'pairs/s':>9}{'peak GiB':>10}  device")
    for row in rows:
        print(f"{row['preset']:7}{row['precision']:10}{row['params_M']:>8}M{row['batch']:>6}{row['step_s']:>9}"
              f"{row['pairs_per_s']:>9}{row['peak_GiB']:>10}  {row['device']}")  # fmt: skip


def run_data(args) -> None:
    from ivt_hf.data.pairs import PairStream, write_webdataset_shards
    from ivt_hf.model.processing_ivt import default_tokenizer
    from ivt_hf.training.pretraining import PairCollator
    from ivt_hf.training.transforms import TrainTransform

    with tempfile.TemporaryDirectory() as folder:
        pairs = [(key, data, caption) for key, data, caption, _ in colour_pairs(args.batch * 20, 0)]
        write_webdataset_shards(pairs, Path(folder) / "shards", pairs_per_shard=args.batch * 5)
        for size in ((128, 64), (384, 128)):
            for threads in (1, 2):
                stream = iter(PairStream(Path(folder) / "shards"))
                collator = PairCollator(default_tokenizer(), TrainTransform(image_size=size), seed=0, threads=threads)
                start = time.perf_counter()
                for batch_index in range(20):
                    collator([next(stream) for _ in range(args.batch)], batch_index)
                seconds = time.perf_counter() - start
                print(f"image {size[0]}x{size[1]}, {threads} thread(s): {20 * args.batch / seconds:.1f} pairs/s "
                      "(stream + decode + augment + tokenise + mask)")  # fmt: skip


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
    from ivt_hf.data.pairs import write_webdataset_shards

    settings = {
        "authors (raw CLS, T 0.5 unclamped)": ["--itc_normalize", "false", "--itc_temperature", "0.5",
                                               "--itc_clamp_temperature", "false"],
        "ours (normalised CLS, T 0.07 clamped)": [],
    }  # fmt: skip
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
            command = [sys.executable, "-m", "ivt_hf", "pretrain", "--train_data", str(root / "shards"),
                       "--output_dir", str(output), "--model_preset", "tiny", "--max_steps", str(args.steps),
                       "--per_device_train_batch_size", str(args.batch), "--learning_rate", "3e-4",
                       "--logging_steps", "1", "--save_steps", str(args.steps), "--seed", str(args.seed),
                       *flags]  # fmt: skip
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


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_worker":
        _, _, preset, precision, batch, steps, threads = sys.argv
        print(json.dumps(throughput_worker(preset, precision, int(batch), int(steps), int(threads))))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=["throughput", "data", "itc"])
    parser.add_argument("--presets", nargs="+", default=["tiny"])
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0, help="itc: the run's seed (and its generated pairs)")
    args = parser.parse_args()
    {"throughput": run_throughput, "data": run_data, "itc": run_itc}[args.part](args)


if __name__ == "__main__":
    main()

"""Does pre-training help? Fine-tune the tiny model from a tiny `ivt pretrain` output and from scratch, with the same
recipe (`finetune-cpu.json`), steps and seed, and compare text-to-image R@1 on held-out people.

    python benchmarks/bench_transfer.py [--seeds 0 1 2] [--pretrain_steps 600] [--finetune_steps 400] [--out DIR]

The data is made here, offline, and is not SynthPEDES:

- OUTFITS, the fine-tuning set: people drawn as head, torso and legs, with an optional bag and hat; a person is a
  fixed combination of top colour, bottom colour, bottom kind (trousers / skirt / shorts), bag and hat; each has 4
  images (position, size, pose width, background, noise and JPEG quality vary) and 2 captions per image, from 6
  sentence templates with synonyms. 300 people train, 50 validate, 100 test (disjoint people).
- the pre-training pairs: 9,600 images of the same renderer with every attribute drawn afresh (no identities) and
  one caption each, from 4 other templates ("photo of ...", word order changed): generic image-text pairs of the
  same visual world, as CC3M is for pedestrian photos. No test person's image is among them (new draws).

Per seed s: `ivt pretrain` (tiny preset, seed s, AdamW 3e-4, batch 16, shuffle buffer 256), then `ivt train
finetune-cpu.json` twice (from scratch with --model_preset tiny; from the pre-training output with
--model_name_or_path), both with --seed s, then `ivt evaluate` on the test split. Prints one table row per seed and
the means.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "src" / "ivt_hf" / "recipes" / "finetune-cpu.json"
COLOURS = {
    "red": (200, 30, 30),
    "blue": (35, 55, 200),
    "green": (40, 160, 60),
    "yellow": (230, 210, 40),
    "black": (20, 20, 20),
    "white": (240, 240, 240),
    "pink": (240, 140, 180),
    "brown": (120, 75, 35),
}
TOPS = {"shirt": ["shirt", "top"], "jacket": ["jacket", "coat"], "sweater": ["sweater", "jumper"]}
BOTTOMS = {"trousers": ["trousers", "pants"], "skirt": ["skirt"], "shorts": ["shorts"]}
FINETUNE_TEMPLATES = [
    "a person wearing a {top_colour} {top} and {bottom_colour} {bottom}{bag}{hat}.",
    "this pedestrian has a {top_colour} {top} on, with {bottom_colour} {bottom}{bag}{hat}.",
    "the person is dressed in {bottom_colour} {bottom} and a {top_colour} {top}{bag}{hat}.",
    "someone in a {top_colour} {top}{hat}, wearing {bottom_colour} {bottom}{bag}.",
    "a walker with {bottom_colour} {bottom} and a {top_colour} {top}{bag}{hat}.",
    "{top_colour} {top}, {bottom_colour} {bottom}{bag}{hat}: that is what this person wears.",
]
PRETRAIN_TEMPLATES = [
    "photo of someone in {bottom_colour} {bottom} and a {top_colour} {top}{bag}{hat}",
    "a {top_colour} {top} worn over {bottom_colour} {bottom}{bag}{hat}",
    "street picture: {top_colour} {top}, {bottom_colour} {bottom}{bag}{hat}",
    "man or woman, {top_colour} {top} with {bottom_colour} {bottom}{bag}{hat}",
]


def draw_person(attributes: dict, rng: random.Random) -> bytes:
    """A 64 x 128 JPEG of one person with these attributes, in a random pose, place and light."""
    from PIL import Image, ImageDraw, ImageFilter

    background = tuple(rng.randrange(90, 200) for _ in range(3))
    image = Image.new("RGB", (64, 128), background)
    draw = ImageDraw.Draw(image)
    scale, x0, y0 = rng.uniform(0.8, 1.0), rng.randrange(4, 14), rng.randrange(2, 12)
    width = int(rng.uniform(26, 36) * scale)

    def box(left, top, right, bottom, colour):
        draw.rectangle([x0 + left * scale, y0 + top * scale, x0 + right * scale, y0 + bottom * scale], fill=colour)

    skin = (225, 185, 150)
    draw.ellipse([x0 + width / 2 - 8 * scale, y0, x0 + width / 2 + 8 * scale, y0 + 16 * scale], fill=skin)
    if attributes["hat"]:
        box(width / 2 / scale - 9, -2, width / 2 / scale + 9, 5, COLOURS[attributes["hat"]])
    top_length = 44 if attributes["top"] == "jacket" else 36
    box(0, 17, width / scale, 17 + top_length, COLOURS[attributes["top_colour"]])
    legs = {"trousers": 50, "skirt": 24, "shorts": 18}[attributes["bottom"]]
    box(2, 53, width / scale - 2, 53 + legs, COLOURS[attributes["bottom_colour"]])
    if attributes["bottom"] != "trousers":
        box(6, 53 + legs, width / scale - 6, 103, skin)
    if attributes["bag"]:
        box(width / scale - 2, 40, width / scale + 10, 62, COLOURS[attributes["bag"]])
    image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.0, 0.8)))
    noise = Image.effect_noise((64, 128), rng.uniform(10, 30)).convert("RGB")
    image = Image.blend(image, noise, rng.uniform(0.05, 0.15))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=rng.randrange(70, 95))
    return buffer.getvalue()


def random_attributes(rng: random.Random) -> dict:
    colours = list(COLOURS)
    return {
        "top": rng.choice(list(TOPS)),
        "top_colour": rng.choice(colours),
        "bottom": rng.choice(list(BOTTOMS)),
        "bottom_colour": rng.choice(colours),
        "bag": rng.choice([None, None, *colours[:4]]),
        "hat": rng.choice([None, None, None, *colours[4:]]),
    }


def caption(attributes: dict, template: str, rng: random.Random) -> str:
    return template.format(
        top_colour=attributes["top_colour"],
        top=rng.choice(TOPS[attributes["top"]]),
        bottom_colour=attributes["bottom_colour"],
        bottom=rng.choice(BOTTOMS[attributes["bottom"]]),
        bag=f", carrying a {attributes['bag']} bag" if attributes["bag"] else "",
        hat=f", in a {attributes['hat']} hat" if attributes["hat"] else "",
    )


def write_outfits(folder: Path, seed: int = 1234) -> None:
    """The fine-tuning set as an image folder with metadata.jsonl (train 300 / validation 50 / test 100 people)."""
    rng = random.Random(seed)
    people, seen = [], set()
    while len(people) < 450:
        attributes = random_attributes(rng)
        key = tuple(sorted((name, value or "") for name, value in attributes.items()))
        if key not in seen:
            seen.add(key)
            people.append(attributes)
    splits = ["train"] * 300 + ["validation"] * 50 + ["test"] * 100
    lines = []
    for person_id, (attributes, split) in enumerate(zip(people, splits)):
        for number in range(4):
            name = f"{split}/{person_id:04d}_{number}.jpg"
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(draw_person(attributes, rng))
            captions = [caption(attributes, template, rng) for template in rng.sample(FINETUNE_TEMPLATES, 2)]
            lines.append(json.dumps({"file_name": name, "person_id": person_id, "captions": captions, "split": split}))
    (folder / "metadata.jsonl").write_text("\n".join(lines) + "\n")


def write_pretraining_pairs(folder: Path, count: int = 9600, seed: int = 99) -> None:
    from ivt_hf.data import write_webdataset_shards

    rng = random.Random(seed)

    def pairs():
        for number in range(count):
            attributes = random_attributes(rng)
            text = caption(attributes, rng.choice(PRETRAIN_TEMPLATES), rng)
            yield f"{number:06d}", draw_person(attributes, rng), text

    write_webdataset_shards(pairs(), folder, pairs_per_shard=400)


def run(command: list[str], log: Path) -> float:
    start = time.perf_counter()
    with log.open("w") as handle:
        completed = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, cwd=ROOT)
    if completed.returncode:
        sys.exit(f"failed ({completed.returncode}): {' '.join(command)}\n{log.read_text()[-3000:]}")
    return time.perf_counter() - start


def pretrain_arguments(pairs: Path, output_dir: Path, steps: int, seed: int, batch: int = 16) -> list[str]:
    """`ivt pretrain`'s arguments of the transfer benches: tiny preset, AdamW 3e-4, cosine to 1e-6, shuffle buffer
    256, `batch` pairs a process."""
    return [
        "pretrain",
        *("--dataset_name", str(pairs), "--output_dir", str(output_dir), "--overwrite_output_dir"),
        *("--model_preset", "tiny", "--max_steps", str(steps), "--per_device_train_batch_size", str(batch)),
        *("--learning_rate", "3e-4", "--weight_decay", "0.02", "--warmup_steps", "0.05"),
        *("--lr_scheduler_type", "cosine_with_min_lr", "--lr_scheduler_kwargs", '{"min_lr": 1e-6}'),
        *("--max_grad_norm", "0", "--save_steps", str(steps), "--logging_steps", "50"),
        *("--shuffle_buffer_size", "256", "--dataloader_num_workers", "1", "--seed", str(seed), "--use_cpu"),
    ]


def finetune_and_evaluate(
    recipe: Path, start: list[str], dataset: Path, run_dir: Path, steps: int, seed: int, extra: tuple[str, ...] = ()
) -> tuple[float, dict]:
    """`ivt train RECIPE` from `start` (a preset or `--model_name_or_path`), then `ivt evaluate` on the test split;
    (seconds of training, the test metrics). Logs and results lie beside `run_dir`."""
    ivt = [sys.executable, "-m", "ivt_hf"]
    shutil.rmtree(run_dir, ignore_errors=True)  # this script's own folder: a rerun starts afresh
    train = [*ivt, "train", str(recipe), *start, "--dataset_name", str(dataset), "--output_dir", str(run_dir)]
    train += ["--max_steps", str(steps), "--seed", str(seed), "--disable_tqdm", "true", *extra]
    seconds = run(train, run_dir.with_name(run_dir.name + ".log"))
    results = run_dir.with_name(run_dir.name + "-test.json")
    evaluate = [*ivt, "evaluate", "--model", str(run_dir), "--dataset_name", str(dataset), "--split", "test"]
    run([*evaluate, "--output", str(results)], run_dir.with_name(run_dir.name + "-eval.log"))
    metrics = json.loads(results.read_text())["metrics"]
    return seconds, {name: metrics[name] for name in ("R1", "R5", "R10", "mAP")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--pretrain_steps", type=int, default=600)
    parser.add_argument("--finetune_steps", type=int, default=400)
    parser.add_argument("--out", type=Path, default=None, help="keep everything here (default: a temporary folder)")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="bench_transfer-"))
    out.mkdir(parents=True, exist_ok=True)
    ivt = [sys.executable, "-m", "ivt_hf"]
    if not (out / "outfits" / "metadata.jsonl").is_file():
        write_outfits(out / "outfits")
    if not (out / "pairs").is_dir():
        write_pretraining_pairs(out / "pairs")
    rows = []
    for seed in args.seeds:
        pretrained = out / f"pretrain-seed{seed}"
        seconds = {}
        if not (pretrained / "pretrain_results.json").is_file():
            command = [*ivt, *pretrain_arguments(out / "pairs", pretrained, args.pretrain_steps, seed)]
            seconds["pretrain"] = run(command, out / f"pretrain-seed{seed}.log")
        row = {"seed": seed}
        for arm, start in (
            ("scratch", ["--model_preset", "tiny"]),
            ("pretrained", ["--model_name_or_path", str(pretrained)]),
        ):
            seconds[arm], row[arm] = finetune_and_evaluate(
                RECIPE, start, out / "outfits", out / f"{arm}-seed{seed}", args.finetune_steps, seed
            )
        row["seconds"] = {name: round(value) for name, value in seconds.items()}
        rows.append(row)
        print(json.dumps(row), flush=True)
    print(f"\n{'seed':>4} | {'scratch R1':>10} {'R5':>6} {'mAP':>6} | {'pretrained R1':>13} {'R5':>6} {'mAP':>6}")
    for row in rows:
        print(
            f"{row['seed']:>4} | {row['scratch']['R1']:>10.2f} {row['scratch']['R5']:>6.2f} "
            f"{row['scratch']['mAP']:>6.2f} | {row['pretrained']['R1']:>13.2f} {row['pretrained']['R5']:>6.2f} "
            f"{row['pretrained']['mAP']:>6.2f}"
        )
    for arm in ("scratch", "pretrained"):
        mean = sum(row[arm]["R1"] for row in rows) / len(rows)
        print(f"mean R@1 {arm}: {mean:.2f}")
    print(f"(everything in {out})")


if __name__ == "__main__":
    main()

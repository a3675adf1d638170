"""Ablation on SynthPEDES: sentence-only CMPM vs + MLA vs + MLA + BMM, same budget, several seeds.

    .venv/bin/python benchmarks/ablation_mla_bmm.py [--max_steps N] [--seeds 0 1 2] [--data_root outputs/demo/data]

Every run uses the demo recipe (`ivt_hf/recipes/synthpedes-cpu.json`: tiny IVT, same data, same steps, same batch
of images and the same three (view, text) pairs per image); only the text granularity and BMM change:
- sentence-only: three sentence-level texts per image, no token dropping;
- + MLA: word / phrase / sentence texts, no token dropping;
- + MLA + BMM: word / phrase / sentence texts and BMM token dropping (the full IVT objective).
Metrics are text-to-image on the SynthPEDES test split (standard protocol); the table shows mean and standard
deviation over seeds, and is printed as Markdown for benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

VARIANTS = {  # settings of the demo recipe that each variant replaces
    "sentence-only CMPM": {"multi_level_alignment": False, "token_drop_ratio": 0.0},
    "+ MLA": {"multi_level_alignment": True, "token_drop_ratio": 0.0},
    "+ MLA + BMM (IVT)": {"multi_level_alignment": True},
}
KEYS = ("R1", "R5", "R10", "mAP", "mINP")


def run_one(variant: dict[str, Any], seed: int, max_steps: int, data_root: Path, work: Path) -> dict[str, float]:
    from ivt_hf.demo import DEMO_RECIPE
    from ivt_hf.evaluation import evaluate_split
    from ivt_hf.training import prepare_training, recipe_arguments

    settings = {
        "data_root": str(data_root),
        "output_dir": str(work),
        "seed": seed,
        "max_steps": max_steps,
        "save_strategy": "no",
        "eval_strategy": "no",
        "load_best_model_at_end": False,
        "disable_tqdm": True,
        **variant,
    }
    trainer, data = prepare_training(*recipe_arguments(DEMO_RECIPE, **settings))
    trainer.train()
    return evaluate_split(trainer.model, trainer.processing_class, data["test"], progress=False).metrics


def markdown_table(results: dict[str, list[dict[str, float]]], max_steps: int, seeds: list[int]) -> str:
    lines = [
        f"| objective ({max_steps} steps, seeds {', '.join(map(str, seeds))}) | " + " | ".join(KEYS) + " |",
        "|---" * (len(KEYS) + 1) + "|",
    ]
    for name, runs in results.items():
        cells = []
        for key in KEYS:
            values = [run[key] for run in runs]
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            cells.append(f"{statistics.mean(values):.1f} ± {spread:.1f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    from ivt_hf.demo import DEMO_RECIPE

    recipe_steps = json.loads(DEMO_RECIPE.read_text())["max_steps"]
    parser.add_argument(
        "--max_steps", type=int, default=recipe_steps, help=f"default: the demo recipe's ({recipe_steps})"
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--data_root", default=".cache/synthpedes")
    parser.add_argument("--output", default="benchmarks/results/ablation_mla_bmm.json")
    args = parser.parse_args(argv)

    results: dict[str, list[dict[str, float]]] = {name: [] for name in VARIANTS}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as work:
        for seed in args.seeds:
            for name, variant in VARIANTS.items():
                run_start = time.perf_counter()
                metrics = run_one(variant, seed, args.max_steps, Path(args.data_root), Path(work) / "run")
                results[name].append(metrics)
                print(
                    f"seed {seed} {name:<20} R1 {metrics['R1']:5.1f} mAP {metrics['mAP']:5.1f} "
                    f"({time.perf_counter() - run_start:.0f} s)",
                    flush=True,
                )
    table = markdown_table(results, args.max_steps, args.seeds)
    print("\n" + table)
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(
        json.dumps({"max_steps": args.max_steps, "seeds": args.seeds, "runs": results, "table": table}, indent=1)
    )


if __name__ == "__main__":
    main()

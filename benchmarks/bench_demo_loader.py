"""The demo's training time with and without a data-loader worker, on the same steps.

    .venv/bin/python benchmarks/bench_demo_loader.py [--output_dir outputs/demo] [--max_steps 150]

Runs `ivt demo` (its recipe; a copy of `--output_dir`'s data folder if there is one, else freshly generated data)
twice for `--max_steps` steps in a temporary folder, with validation and checkpoints off: once with one persistent
loader worker preparing the next batch during the step, once with batches prepared in the training process. On 2
cores the worker competes with the two compute threads, so it only pays when preparing a batch is expensive.
Prints the training seconds of each run.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from ivt_hf.demo import run_demo

SETTINGS = {
    "one persistent loader worker": {"dataloader_num_workers": 1, "dataloader_persistent_workers": True},
    "no worker (in-process, the recipe)": {"dataloader_num_workers": 0, "dataloader_persistent_workers": False},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", default="outputs/demo", help="its data/ folder is copied, if present")
    parser.add_argument("--max_steps", type=int, default=150)
    args = parser.parse_args()
    quiet = {
        "eval_strategy": "no",
        "save_strategy": "no",
        "load_best_model_at_end": False,
        "disable_tqdm": True,
        "warmup_steps": args.max_steps // 10,
    }
    results = {}
    with tempfile.TemporaryDirectory() as work:
        if (Path(args.output_dir) / "data").is_dir():
            shutil.copytree(Path(args.output_dir) / "data", Path(work) / "data")
        for name, overrides in SETTINGS.items():
            summary = run_demo(work, max_steps=args.max_steps, overrides=overrides | quiet)
            results[name] = summary["train_seconds"]
    print()
    for name, seconds in results.items():
        print(f"{name:<36} {args.max_steps} steps in {seconds:6.1f} s ({seconds / args.max_steps:.3f} s per step)")


if __name__ == "__main__":
    main()

"""`ivt demo`: generate SynthPEDES, train, evaluate, save, reload and search, on a CPU in minutes (`ivt_hf.demo`)."""

from __future__ import annotations

import argparse

from . import flag


def run(args: argparse.Namespace) -> int:
    from ..demo import run_demo

    run_demo(
        args.output_dir,
        max_steps=args.max_steps,
        time_budget_minutes=args.time_budget_minutes,
        seed=args.seed,
        threads=args.threads,
    )
    return 0


def register(subparsers) -> None:
    demo = subparsers.add_parser("demo", help="train, evaluate, save, reload and search on SynthPEDES (CPU, minutes)")
    demo.add_argument(*flag("--output_dir"), default="outputs/demo")
    demo.add_argument(*flag("--max_steps"), type=int, default=None, help="default: the recipe's")
    demo.add_argument(*flag("--time_budget_minutes"), type=float, default=5.0, help="stop training after this time")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--threads", type=int, default=None)
    demo.set_defaults(handler=run)

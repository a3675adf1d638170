"""`ivt demo`: generate SynthPEDES, train, evaluate, save, reload and search, on a CPU in minutes (`ivt_hf.demo`)."""

from __future__ import annotations

import argparse

from . import flag
from .parsers import non_negative_int, positive_float, positive_int


def run(args: argparse.Namespace) -> int:
    from ..demo import run_demo

    run_demo(
        args.output_dir,
        max_steps=args.max_steps,
        time_budget_minutes=args.time_budget_minutes,
        seed=args.seed,
        threads=args.threads,
        overwrite=args.overwrite,
    )
    return 0


def register(subparsers) -> None:
    demo = subparsers.add_parser("demo", help="train, evaluate, save, reload and search on SynthPEDES (CPU, minutes)")
    demo.add_argument(*flag("--output_dir"), default="outputs/demo")
    demo.add_argument(
        *flag("--max_steps"),
        type=positive_int,
        default=None,
        help="train exactly this many steps (warm-up a tenth, a validation every third); default: as many as fit "
        "the time budget on this machine",
    )
    demo.add_argument(
        *flag("--time_budget_minutes"),
        type=positive_float,
        default=5.0,
        help="training time; a run whose steps turn out slower than planned is re-planned to end, validated, within it",
    )
    demo.add_argument("--seed", type=non_negative_int, default=0)
    demo.add_argument("--threads", type=positive_int, default=None)
    demo.add_argument("--overwrite", action="store_true", help="replace a demo folder that ivt_hf wrote")
    demo.set_defaults(handler=run)

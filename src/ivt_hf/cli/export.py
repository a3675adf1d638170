"""`ivt export onnx`: a model folder or Hub id as two ONNX encoders, for `--runtime onnx` (needs the onnx extra).

ivt export onnx --model MODEL --output_dir OUT [--dtype fp32|int8|fp16]

Also `--runtime`, which `ivt index build`, `ivt search`, `ivt evaluate` and `ivt app` take, and the one loader
behind it (`ivt_hf.onnx.runtime.load_for_runtime`), so that `--runtime onnx` means the same everywhere.
"""

from __future__ import annotations

import argparse

from . import flag


def add_runtime_argument(parser: argparse.ArgumentParser) -> None:
    """`--runtime torch|onnx`: which runtime encodes (`--model` is then a PyTorch folder or an ONNX export)."""
    parser.add_argument(
        "--runtime",
        choices=("torch", "onnx"),  # `ivt_hf.onnx.runtime.RUNTIMES`, spelled here so that `ivt --help` stays light
        default="torch",
        help="torch (a model folder or Hub id), or onnx (a folder written by `ivt export onnx`; pip install "
        "'ivt_hf[onnx]')",
    )


def load_for_runtime(model: str, runtime: str, *, threads: int | None = None):
    """(model, processor) of `model` for `runtime` (`ivt_hf.onnx.runtime.load_for_runtime`)."""
    from ..onnx.runtime import load_for_runtime as load

    return load(model, runtime, threads=threads)


def run_export_onnx(args: argparse.Namespace) -> int:
    from ..onnx.export import export_onnx

    report = export_onnx(args.model, args.output_dir, dtype=args.dtype, overwrite=args.overwrite)
    print(report.summary())
    return 0


def register(subparsers) -> None:
    export = subparsers.add_parser("export", help="export a model for another runtime (ONNX)")
    formats = export.add_subparsers(dest="export_format", required=True, metavar="FORMAT")
    onnx = formats.add_parser(
        "onnx",
        help="two ONNX encoders (image_encoder.onnx, text_encoder.onnx) with the processor, for --runtime onnx",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    onnx.add_argument("--model", required=True, help="an IVT model folder or Hub repo id (not a pre-training one)")
    onnx.add_argument(*flag("--output_dir"), "--output", dest="output_dir", required=True, help="the ONNX folder")
    onnx.add_argument(
        "--dtype",
        choices=("fp32", "int8", "fp16"),
        default="fp32",
        help="fp32 (the PyTorch model's numbers), int8 (onnxruntime dynamic quantisation, for CPUs) or fp16 (GPUs)",
    )
    onnx.add_argument("--overwrite", action="store_true", help="replace an ONNX folder that ivt_hf wrote there")
    onnx.set_defaults(handler=run_export_onnx)

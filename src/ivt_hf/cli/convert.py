"""`ivt convert`: an IVT checkpoint written by the authors' code -> a `from_pretrained` folder.

    ivt convert --checkpoint_path best.pth --output_dir ivt-cuhk
    ivt convert --checkpoint_path pretrain.pth --output_dir ivt-pretrained --pretraining

The folder holds the model (safetensors), the processor (image processor + bert-base-uncased tokenizer) and the
modules for `trust_remote_code=True`. Widths and the patch stride are read from the tensor shapes; the head count
cannot be, so it defaults to hidden_size // 64 (12 for ViT-B). Without --pretraining the folder holds the retrieval
encoder (`IVTModel`) of a fine-tuning or a pre-training checkpoint; with it, a pre-training checkpoint becomes the whole
`IVTForPreTraining` (fusion encoder, ITM and MLM heads, temperature), which `AutoModelForPreTraining` loads. It is
written all at once (an interrupted conversion leaves nothing there); --overwrite replaces only a folder that ivt_hf
wrote.
"""

from __future__ import annotations

import argparse
import logging

from . import flag
from .parsers import documented_command, positive_int


def run_convert(args: argparse.Namespace) -> int:
    from ..conversion.original_checkpoint import convert_to_folder
    from ..outputs import check_output_dir, writing_output_dir

    logging.basicConfig(level=logging.WARNING)
    check_output_dir(args.output_dir, overwrite=args.overwrite)  # before the checkpoint is read
    with writing_output_dir(args.output_dir, overwrite=args.overwrite, command="ivt convert") as staging:
        report = convert_to_folder(
            args.checkpoint_path,
            staging,
            image_size=tuple(args.image_size),
            num_attention_heads=args.num_attention_heads,
            vocab_file=args.vocab_file,
            pretraining=args.pretraining,
        )
    print(report.summary())
    print(f"wrote {args.output_dir}")
    return 0


def register(subparsers) -> None:
    convert = documented_command(
        subparsers, "convert", help="convert an authors' IVT checkpoint into a from_pretrained folder", doc=__doc__
    )
    convert.add_argument(*flag("--checkpoint_path"), required=True, help="the reference .pth (loaded weights-only)")
    convert.add_argument(*flag("--output_dir"), required=True, help="folder to write (new or empty)")
    convert.add_argument("--overwrite", action="store_true", help="replace an output folder that ivt_hf wrote")
    convert.add_argument(*flag("--image_size"), type=positive_int, nargs=2, default=(384, 128), metavar=("H", "W"))
    convert.add_argument(
        *flag("--num_attention_heads"), type=positive_int, default=None, help="default: hidden_size // 64"
    )
    convert.add_argument(*flag("--vocab_file"), default=None, help="WordPiece vocab (default: bert-base-uncased's)")
    convert.add_argument(
        "--pretraining",
        action="store_true",
        help="convert a pre-training checkpoint with its heads into an IVTForPreTraining folder",
    )
    convert.set_defaults(handler=run_convert)

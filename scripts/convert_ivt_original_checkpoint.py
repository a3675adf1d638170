"""Convert an IVT checkpoint written by the authors' code into a `from_pretrained` folder.

    python scripts/convert_ivt_original_checkpoint.py --checkpoint_path best.pth --output_dir ivt-cuhk

The folder holds the model (safetensors), the processor (image processor + bert-base-uncased tokenizer) and the
modules for `trust_remote_code=True`. Widths and the patch stride are read from the tensor shapes; the head count
cannot be, so it defaults to hidden_size // 64 (12 for ViT-B).
"""

from __future__ import annotations

import argparse
import logging
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint_path", required=True, help="the reference .pth file (loaded weights-only)")
    parser.add_argument("--output_dir", required=True, help="folder to write")
    parser.add_argument("--image_size", type=int, nargs=2, default=(384, 128), metavar=("H", "W"))
    parser.add_argument("--num_attention_heads", type=int, default=None, help="default: hidden_size // 64")
    parser.add_argument("--vocab_file", default=None, help="WordPiece vocab (default: the packaged bert-base-uncased)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    from ivt_hf.convert_ivt_original_checkpoint import CheckpointConversionError, convert_to_folder

    try:
        report = convert_to_folder(
            args.checkpoint_path,
            args.output_dir,
            image_size=tuple(args.image_size),
            num_attention_heads=args.num_attention_heads,
            vocab_file=args.vocab_file,
        )
    except (CheckpointConversionError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(report.summary())
    print(f"wrote {args.output_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Convert an IVT checkpoint written by the authors' code into a `from_pretrained` folder; the same as `ivt convert`.

python scripts/convert_ivt_original_checkpoint.py --checkpoint_path best.pth --output_dir ivt-cuhk
"""

from __future__ import annotations

import sys

from ivt_hf.cli import main as ivt


def main(argv: list[str] | None = None) -> int:
    return ivt(["convert", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())

"""Share an IVT model folder on the Hugging Face Hub; the same as `ivt push` (see `ivt push --help`).

hf auth login   # or export HF_TOKEN=...
python scripts/push_to_hub.py --model_dir outputs/demo/model --repo_id your-name/ivt-synthpedes-demo [--private]
"""

from __future__ import annotations

import sys

from ivt_hf.cli import main as ivt


def main(argv: list[str] | None = None) -> int:
    return ivt(["push", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())

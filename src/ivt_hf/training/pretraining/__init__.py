"""Vision-language pre-training of IVT (the authors' first stage): ITC + ITM + MLM on a stream of image-text pairs.

`pretrain(model_args, data_args, args)` is `ivt pretrain` and `scripts/pretrain.py` (`cli/pretrain.py` parses the
flags).

- `arguments.py`: `PretrainingArguments` (flags or a recipe JSON, beside the data's `DataArguments`);
- `collator.py`: the data path (stream -> shuffle buffer -> numbered batches -> DataLoader workers that decode,
  augment, tokenise and mask), exactly resumable;
- `loop.py`: the accelerate loop, checkpoints (no pickle) and exact resume.
"""

from .arguments import (
    PretrainingArguments,
    parse_pretraining_args,
    read_pretraining_recipe,
)
from .collator import PairBatches, PairCollator, pair_loader
from .loop import (
    CHECKPOINT_PREFIX,
    PretrainingResult,
    PretrainingRun,
    find_checkpoint,
    itc_settings,
    learning_rate_schedule,
    pretrain,
)

__all__ = [
    "CHECKPOINT_PREFIX",
    "PairBatches",
    "PairCollator",
    "PretrainingArguments",
    "PretrainingResult",
    "PretrainingRun",
    "itc_settings",
    "learning_rate_schedule",
    "find_checkpoint",
    "pair_loader",
    "parse_pretraining_args",
    "pretrain",
    "read_pretraining_recipe",
]

"""Training IVT, in two stages on one floor.

- `finetuning/`: `ivt train` with the HF `Trainer` (MLA batches, BMM inside the model, the CMPM loss, retrieval
  validation): `arguments.py`, `train.py`, `trainer.py` (`IVTTrainer`), `batching.py`, `sampler.py`, `text_levels.py`,
  `losses.py`;
- `pretraining/`: `ivt pretrain`, the authors' first stage (ITC + ITM + MLM on `ivt_hf.data.open_pair_stream`, an
  accelerate loop with exact resume): `arguments.py`, `collator.py`, `loop.py`, `masking.py` (whole-word masking);
- what both stages share: `stage.py` (flags and recipe, seeding, the fp16 refusal, the resume words, the optimiser and
  transform from the arguments, random-number states), `arguments.py` (`ModelArguments`, `StageArguments`),
  `models.py` (the one model builder), `optim.py` (the optimiser), `transforms.py` (augmentation), `distributed.py`
  (gathers with and without gradient).
"""

from .arguments import ModelArguments, StageArguments
from .finetuning.arguments import DataArguments, IVTTrainingArguments, parse_args, recipe_arguments
from .finetuning.losses import cmpm_loss, cmpm_loss_terms
from .finetuning.train import build_trainer, prepare_training, save_final_model
from .finetuning.trainer import IVTTrainer
from .models import build_model
from .optim import build_optimizer

__all__ = [
    "DataArguments",
    "IVTTrainer",
    "IVTTrainingArguments",
    "ModelArguments",
    "StageArguments",
    "build_model",
    "build_optimizer",
    "build_trainer",
    "cmpm_loss",
    "cmpm_loss_terms",
    "parse_args",
    "prepare_training",
    "recipe_arguments",
    "save_final_model",
]

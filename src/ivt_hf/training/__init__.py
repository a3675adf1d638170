"""Training IVT with the HF `Trainer` (MLA batches, BMM inside the model, the CMPM loss, retrieval validation).

- `arguments.py`: model / data / training arguments of both stages, recipes; `models.py`: the one model
  builder of both stages;
- `train.py`: build model, data and trainer; `train_from_arguments` behind `ivt train` and `scripts/train.py`;
- `trainer.py`: `IVTTrainer`; `optim.py`: the optimiser of both stages; `stage.py`: the floor both stages stand on
  (flags and recipe, seeding, the fp16 refusal, the resume words, the optimiser and transform from the arguments,
  random-number states);
- `batching.py` (dataset, keyed batches, the MLA collator), `sampler.py` (P x K identities), `text_levels.py` (word /
  phrase / sentence texts), `transforms.py` (augmentation);
- `losses.py` (CMPM, pure functions) and `distributed.py` (gathers with and without gradient);
- `pretraining/`: `ivt pretrain`, the authors' first stage (ITC + ITM + MLM on `ivt_hf.data.open_pair_stream`, an
  accelerate loop with exact resume: `arguments.py`, `collator.py`, `loop.py`), and `masking.py` (its whole-word
  masking).
"""

from .arguments import (
    DataArguments,
    IVTTrainingArguments,
    ModelArguments,
    StageArguments,
    parse_args,
    recipe_arguments,
)
from .losses import cmpm_loss, cmpm_loss_terms
from .models import build_model
from .optim import build_optimizer
from .train import build_trainer, load_training_data, prepare_training, save_final_model
from .trainer import IVTTrainer

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
    "load_training_data",
    "parse_args",
    "prepare_training",
    "recipe_arguments",
    "save_final_model",
]
